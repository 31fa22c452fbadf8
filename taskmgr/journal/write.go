package journal

import (
	"context"
	"time"

	"github.com/connector-manager/cm/model"
)

// Decide works out a step on the freshly read task and its journal; it may
// read the store (Facts), but writes nothing.
type Decide func(cur *model.Task, j *Journal) (Step, error)

// Write reads the task, decides its step and writes it in one transaction
// with its effects and an audit row by actor, through model.Store.ChangeTask
// (deciding again on a lost compare-and-swap). It returns the step written;
// a zero Step (Next nil) when there was nothing to do, no journal, or the
// task is no longer incarnation version.
func Write(ctx context.Context, store *model.Store, component string, version int64, actor string, decide Decide) (Step, error) {
	var step Step
	_, err := store.ChangeTask(ctx, component, func(cur *model.Task) (*model.TaskWrite, error) {
		step = Step{}
		if cur.Version != version || cur.Journal == "" {
			return nil, nil
		}
		j, err := Decode(cur.Journal)
		if err != nil {
			step = drop(cur)
		} else if step, err = decide(cur, j); err != nil {
			return nil, err
		}
		if step.Next == nil {
			return nil, nil
		}
		audit := &model.Audit{At: time.Now().UTC(), Actor: actor, Operation: step.Op, Component: cur.Component,
			TaskBefore: cur.Name().String(), TaskAfter: step.Next.Name().String(), StateBefore: cur.State, StateAfter: step.Next.State,
			Result: model.ResultSuccess}
		var auditID int64
		var started time.Time
		if j != nil {
			auditID, started = j.AuditID, j.Started
		}
		return &model.TaskWrite{Next: step.Next, Audit: audit, Extra: effects(ctx, step, auditID, started)}, nil
	})
	if err != nil {
		return Step{}, err
	}
	return step, nil
}

// effects are the writes that go with a step, in its transaction.
func effects(ctx context.Context, s Step, auditID int64, started time.Time) func(tx *model.Store) error {
	return func(tx *model.Store) error {
		next := s.Next
		switch {
		case s.Reset != nil:
			if err := tx.ResetSubtopics(ctx, next.Component, s.Reset, next.Version); err != nil {
				return err
			}
		case s.Rebind:
			if err := tx.RebindProgress(ctx, next.Component, next.Version); err != nil {
				return err
			}
		}
		if s.Incarnation != "" {
			if err := tx.StartIncarnation(ctx, next, s.Incarnation); err != nil {
				return err
			}
		}
		if s.Finish != nil && auditID != 0 {
			return tx.FinishAudit(ctx, auditID, s.Finish.Result, s.Finish.Code, s.Finish.Message, time.Since(started))
		}
		return nil
	}
}
