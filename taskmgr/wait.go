package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connector-manager/cm/model"
)

// How a waiter learns that its task changed. A task this node owns is
// written by this node's reconciler (and jobs), which tell the waiters of
// that task (cluster.Changes): the waiter reads the row once per write,
// and every safetyPoll besides, in case a write came from elsewhere
// unannounced. A task another node owns is read every pollFirst at first,
// backing off to pollMax: that node's writes are not announced here.
const (
	safetyPoll = time.Second
	pollFirst  = 10 * time.Millisecond
	pollMax    = 200 * time.Millisecond
)

// poller paces a waiter's reads of one task.
type poller struct {
	m         *Manager
	component string
	local     bool
	every     time.Duration
	timer     *time.Timer
}

func (m *Manager) newPoller(t *model.Task) *poller {
	return m.pollerOf(t.Component, t.Node == m.cfg.Node)
}

// pollerOf paces the reads of component, a task this node owns (local) or
// not.
func (m *Manager) pollerOf(component string, local bool) *poller {
	p := &poller{m: m, component: component, local: local, every: pollFirst}
	if p.local {
		p.every = safetyPoll
	}
	p.timer = time.NewTimer(p.every)
	return p
}

// changed returns the channel of the next write this node announces for
// the task; take it before reading the row, so a write in between is not
// missed.
func (p *poller) changed() <-chan struct{} { return p.m.changes.ChangedOf(p.component) }

// wait blocks until the task may have changed, or ctx ends; notified says
// this node announced a write (else the poll's time came).
func (p *poller) wait(ctx context.Context, changed <-chan struct{}) (notified bool, err error) {
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-changed:
		notified = true
		if !p.timer.Stop() {
			<-p.timer.C
		}
	case <-p.timer.C:
		if !p.local {
			p.every = min(2*p.every, pollMax)
		}
	}
	p.timer.Reset(p.every)
	return notified, nil
}

func (p *poller) stop() { p.timer.Stop() }

// waitFor follows t (the row the call wrote) until done says it has
// converged, another operator call changed its intent (the later call owns
// the outcome), or timeout. A write this node announces with its row
// (cluster.Changes.Publish) is taken as published; the store is read when
// the poll's time comes, or when a write was announced without its row.
func (m *Manager) waitFor(ctx context.Context, t *model.Task, timeout time.Duration, done func(*model.Task) (bool, error), onTimeout error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := m.newPoller(t)
	defer p.stop()
	last := *t // the newest row seen
	read := false
	for {
		ch := p.changed()
		var cur *model.Task
		var err error
		if pub, ok := m.changes.Latest(t.Component); ok && !read && pub.Revision >= last.Revision {
			cur = &pub
		} else {
			cur, err = m.store.GetTask(ctx, t.Component)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			last = *cur
			if !sameIntent(t, cur) {
				return nil
			}
			if ok, err := done(cur); ok || err != nil {
				return err
			}
		}
		notified, err := p.wait(ctx, ch)
		if err != nil {
			state := last.State
			if errors.Is(err, context.DeadlineExceeded) {
				return &timeoutError{base: onTimeout, task: t.Name().String(), state: state, after: timeout}
			}
			return err
		}
		// A notification without a newer published row (a write announced
		// without it), or the poll's time: read the store.
		read = true
		if notified {
			if pub, ok := m.changes.Latest(t.Component); ok && pub.Revision > last.Revision {
				read = false
			}
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
