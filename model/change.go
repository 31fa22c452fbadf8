package model

import (
	"context"
	"errors"
	"fmt"
)

// TaskWrite is one write of a task row, decided on the row as read.
type TaskWrite struct {
	// Next is the changed copy of the row to write.
	Next *Task
	// Audit is written in the same transaction.
	Audit *Audit
	// Extra are more writes of the same transaction (progress reset or
	// rebound, a new incarnation, the end of an operator's audit row).
	Extra func(tx *Store) error
}

// changeAttempts bounds how often ChangeTask decides again after a lost
// compare-and-swap.
const changeAttempts = 5

// ChangeTask is the one writer of task rows besides operator calls (runtime
// events, journal steps, jobs): it reads the row, lets decide work out the
// write, and writes it with a compare-and-swap, the audit row and Extra in
// one transaction (WriteTask). When another writer got there first it reads
// the row again and decides again, up to a few times. decide returns nil to
// write nothing; it must not write anything itself. ChangeTask returns the
// row it wrote, or nil.
func (s *Store) ChangeTask(ctx context.Context, component string, decide func(cur *Task) (*TaskWrite, error)) (*Task, error) {
	return s.ChangeTaskFrom(ctx, component, nil, decide)
}

// ChangeTaskFrom is ChangeTask for a writer that holds a recent copy of the
// row (known, nil if none): decide sees it first, and the row is read from
// the store only when the compare-and-swap finds it changed since. A
// decision on a stale copy never lands: the revision it carries fails the
// compare-and-swap, and decide runs again on the row read then. Nothing
// to do on the copy is not trusted either: decide runs again on the stored
// row.
func (s *Store) ChangeTaskFrom(ctx context.Context, component string, known *Task, decide func(cur *Task) (*TaskWrite, error)) (*Task, error) {
	for attempt := 0; ; attempt++ {
		cur, fromCopy := known, known != nil && known.Component == component
		known = nil
		if fromCopy {
			c := *cur
			cur = &c
		} else {
			var err error
			if cur, err = s.GetTask(ctx, component); err != nil {
				return nil, err
			}
		}
		w, err := decide(cur)
		if fromCopy && err == nil && w == nil {
			attempt--
			continue
		}
		if err != nil || w == nil {
			return nil, err
		}
		w.Next.ID, w.Next.Revision = cur.ID, cur.Revision
		err = s.WriteTask(ctx, w.Next, w.Audit, w.Extra)
		if errors.Is(err, ErrConflict) && attempt+1 < changeAttempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writing task %s: %w", component, err)
		}
		return w.Next, nil
	}
}
