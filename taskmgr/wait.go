package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connector-manager/cm/model"
)

// pollEvery is how often a waiter re-reads the task when no local write woke it.
const pollEvery = 25 * time.Millisecond

// waitFor re-reads t until done says it has converged, another operator
// call changed its intent (the later call owns the outcome), or timeout.
func (m *Manager) waitFor(ctx context.Context, t *model.Task, timeout time.Duration, done func(*model.Task) (bool, error), onTimeout error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ch := m.changes.Changed()
		cur, err := m.store.GetTask(ctx, t.Component)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			if !sameIntent(t, cur) {
				return nil
			}
			if ok, err := done(cur); ok || err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			state := t.State
			if cur != nil {
				state = cur.State
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &timeoutError{base: onTimeout, task: t.Name().String(), state: state, after: timeout}
			}
			return ctx.Err()
		case <-ch:
		case <-tick.C:
		}
	}
}

// waitRunning waits for RUNNING (or FINISHED); EXCEPTION is a failure.
func (m *Manager) waitRunning(ctx context.Context, t *model.Task, timeout time.Duration) error {
	return m.waitFor(ctx, t, timeout, func(cur *model.Task) (bool, error) {
		switch cur.State {
		case model.StateRunning, model.StateFinished:
			return true, nil
		case model.StateException:
			return true, &FailedError{Task: cur.Name().String(), Details: cur.Errors()}
		case model.StateCreated, model.StateStarting, model.StatePaused, model.StateStopping, model.StateStopped, model.StateDeleted:
			return false, nil
		}
		return false, fmt.Errorf("unknown state %q", cur.State)
	}, ErrStartTimeout)
}

// waitPaused waits for PAUSED; EXCEPTION is a failure, and a task that
// ended (a full import that finished first) is done too.
func (m *Manager) waitPaused(ctx context.Context, t *model.Task, timeout time.Duration) error {
	return m.waitFor(ctx, t, timeout, func(cur *model.Task) (bool, error) {
		switch cur.State {
		case model.StatePaused, model.StateFinished:
			return true, nil
		case model.StateException:
			return true, &FailedError{Task: cur.Name().String(), Details: cur.Errors()}
		case model.StateCreated, model.StateStarting, model.StateRunning, model.StateStopping, model.StateStopped, model.StateDeleted:
			return false, nil
		}
		return false, fmt.Errorf("unknown state %q", cur.State)
	}, ErrPauseTimeout)
}

// waitQuiet waits until no runner is alive for the task.
func (m *Manager) waitQuiet(ctx context.Context, t *model.Task, timeout time.Duration, onTimeout error) error {
	return m.waitFor(ctx, t, timeout, func(cur *model.Task) (bool, error) {
		return !cur.State.Active(), nil
	}, onTimeout)
}
