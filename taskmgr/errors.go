package taskmgr

import (
	"errors"
	"fmt"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// Errors of the use cases, on top of model's categories.
var (
	// ErrBusy: another operation on the task won the race, or one is in
	// flight; retry.
	ErrBusy = errors.New("task is busy with another operation")
	// ErrStopTimeout: the runner did not stop within the wait; the task stays
	// STOPPING and its node keeps converging.
	ErrStopTimeout = errors.New("stop timed out")
	// ErrStartTimeout: the task did not reach RUNNING within the wait.
	ErrStartTimeout = errors.New("start timed out")
	// ErrPauseTimeout: the runner did not report that it holds still within
	// the wait; the task stays desired PAUSED and the runner pauses later.
	ErrPauseTimeout = errors.New("pause timed out")
	// ErrOperationTimeout: a journaled operation (pullback) did not complete
	// within the wait; it goes on, and detail shows its step.
	ErrOperationTimeout = errors.New("operation still in progress")
	// ErrRolledBack: a journaled operation (migrate, pullback) could not
	// complete and was undone; the audit log says why.
	ErrRolledBack = errors.New("operation rolled back")
	// ErrSkipDDL: resume with skipDdl=true was refused: the task is not
	// stopped at a statement it can skip, or its durable checkpoint is not
	// exactly before it.
	ErrSkipDDL = errors.New("cannot skip the statement")
	// ErrRewindUnsafe: the source says a pullback to that time would not be
	// replayed correctly (rows decoded with the wrong table definition).
	ErrRewindUnsafe = errors.New("pullback would not replay correctly")
	// ErrTaskFailed: the task went to EXCEPTION while the call waited.
	ErrTaskFailed = errors.New("task failed")
	// ErrInvalidConfig: the task config does not build a connector.
	ErrInvalidConfig = fmt.Errorf("%w: invalid task config", model.ErrInvalidArgument)
	// ErrCommandRefused: a process task gave its own command (or working
	// directory) instead of naming a declared plugin; nothing ran.
	ErrCommandRefused = fmt.Errorf("%w: command refused", ErrInvalidConfig)
	// ErrUnknownPlugin: a process task names no declared plugin.
	ErrUnknownPlugin = fmt.Errorf("%w: unknown plugin", ErrInvalidConfig)
	// ErrOutsideRoots: a file connector's path resolves outside the file
	// roots.
	ErrOutsideRoots = fmt.Errorf("%w: path outside the file roots", ErrInvalidConfig)
	// ErrTaskNotFound: no task with that component, or no such incarnation.
	ErrTaskNotFound = fmt.Errorf("task %w", model.ErrNotFound)
	// ErrTaskExists: the component already exists.
	ErrTaskExists = fmt.Errorf("task %w", model.ErrAlreadyExists)
)

// SupersededError: a write named an incarnation that is no longer current.
type SupersededError struct {
	Given, Current string
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("task %s is superseded by %s", e.Given, e.Current)
}

// FailedError carries the error details of a task that went to EXCEPTION.
type FailedError struct {
	Task    string
	Details []model.ErrorDetail
}

func (e *FailedError) Error() string {
	msg := "task " + e.Task + " is in EXCEPTION"
	if len(e.Details) > 0 {
		last := e.Details[len(e.Details)-1]
		msg += ": " + last.Code + ": " + last.Message
	}
	return msg
}

func (e *FailedError) Unwrap() error { return ErrTaskFailed }

// timeoutError says which wait ran out, and what the task is doing now.
type timeoutError struct {
	base  error
	task  string
	state model.State
	after time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%v: %s is still %s after %s; its node keeps converging", e.base, e.task, e.state, e.after)
}

func (e *timeoutError) Unwrap() error { return e.base }

// RolledBackError says a journaled operation was undone, and why.
type RolledBackError struct {
	Task   string
	Code   string
	Reason string
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("operation on %s rolled back (%s): %s", e.Task, e.Code, e.Reason)
}

func (e *RolledBackError) Unwrap() error { return ErrRolledBack }

// configError is the category of a config the connectors refuse to build:
// a refusal of what a caller may not ask for (connector.ErrCommandRefused
// and the like) keeps an errCode of its own, anything else is
// ErrInvalidConfig.
func configError(err error) error {
	switch {
	case errors.Is(err, connector.ErrCommandRefused):
		return ErrCommandRefused
	case errors.Is(err, connector.ErrUnknownPlugin):
		return ErrUnknownPlugin
	case errors.Is(err, connector.ErrOutsideRoots):
		return ErrOutsideRoots
	}
	return ErrInvalidConfig
}
