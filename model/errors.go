package model

import (
	"errors"
	"fmt"
)

// Error categories. Stores translate driver errors into these once, here in
// model; callers test them with errors.Is.
var (
	// ErrNotFound: the row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a unique key is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a compare-and-swap found a newer revision than the one read.
	ErrConflict = errors.New("conflict: changed concurrently")
	// ErrInvalidArgument: the input is malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the store could not be reached or was too busy; retrying may help.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalidName: a task name, component or node id is malformed. It is an ErrInvalidArgument too.
	ErrInvalidName = fmt.Errorf("%w: invalid task name", ErrInvalidArgument)
	// ErrFenced: a runtime write carried a task version that is no longer current.
	ErrFenced = errors.New("fenced: stale task version")
)

// IllegalTransitionError says an operation is not allowed from the current state.
type IllegalTransitionError struct {
	From State
	Op   string
}

func (e *IllegalTransitionError) Error() string {
	return fmt.Sprintf("%s is not allowed while the task is %s", e.Op, e.From)
}

// NewIllegalTransition builds the error for an operator or runtime event.
func newIllegalTransition(from State, ev Event) error {
	return &IllegalTransitionError{From: from, Op: string(ev)}
}
