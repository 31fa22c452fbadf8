package supervisor

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/journal"
)

// advanceJournal moves a journaled operation of a task this node owns one
// step, if it can: it gathers what the step needs to know (journal.Facts),
// lets journal.Advance decide, and writes the step in one transaction. A
// concurrent or repeated call is harmless (every step is a
// compare-and-swap). It reports whether it wrote.
func (r *Reconciler) advanceJournal(ctx context.Context, t *model.Task) bool {
	step, err := journal.Write(ctx, r.store, t.Component, t.Version, r.actor(), func(cur *model.Task, j *journal.Journal) (journal.Step, error) {
		f, err := r.facts(ctx, cur, j)
		if err != nil {
			return journal.Step{}, err
		}
		return journal.Advance(cur, j, f), nil
	})
	if err != nil {
		if !errors.Is(err, model.ErrConflict) && ctx.Err() == nil {
			r.log.Warn("advancing journal", zap.String(logkey.Task, t.Name().String()), zap.Error(err))
		}
		return false
	}
	if step.Next == nil {
		return false
	}
	r.stepWritten(ctx, step)
	return true
}

// stepWritten is what follows a written journal step: the log, the
// failpoint of that step, and the wakes.
func (r *Reconciler) stepWritten(ctx context.Context, step journal.Step) {
	log := r.log.With(zap.String(logkey.Task, step.Next.Name().String()), zap.String("step", step.Op))
	if step.Cause != nil {
		log.Warn("rolled back", zap.Error(step.Cause))
	} else {
		log.Info("journal step")
	}
	r.cfg.Failpoint.Reach(r.log, step.Op)
	if step.Op == pullbackRewriteStep {
		r.recorder.Pullback(step.Next.Component)
	}
	r.changes.Broadcast(step.Next.Component)
	r.Nudge(step.Next.Component)
	if step.Wake != "" {
		r.wakeNode(ctx, step.Wake, step.Next.Component)
	}
}

// facts reads what the next step of j may depend on: the durable progress
// of a stopped pullback, the liveness of a migrate's nodes, and whether a
// migrated incarnation has beaten since it started.
func (r *Reconciler) facts(ctx context.Context, t *model.Task, j *journal.Journal) (journal.Facts, error) {
	var f journal.Facts
	switch j.Op {
	case journal.OpPullback:
		if j.Step != journal.StepStopping || t.State.Active() {
			return f, nil
		}
		rows, err := r.store.Checkpoints(ctx, t.Component)
		if err != nil {
			return f, err
		}
		f.Progress = map[string]int64{}
		for _, row := range rows {
			if row.Version == t.Version {
				f.Progress[row.Subtopic] = row.TS
			}
		}
	case journal.OpMigrate:
		to := r.nodes.State(ctx, j.To)
		f.ToAlive, f.ToState = to == cluster.NodeAlive, string(to)
		f.FromAlive = r.nodes.State(ctx, j.From) == cluster.NodeAlive
		if j.Step == journal.StepStarting && (t.State == model.StateRunning || t.State == model.StatePaused) {
			f.Beat = r.beatSince(ctx, t)
		}
	}
	return f, nil
}

// beatSince reports whether the task's current incarnation has sent a
// heartbeat that shows it survived its start. The committer beats once when
// the runner registers, before the connector has done anything; only a
// later beat, half a heartbeat period after RUNNING, shows the runner
// survived its start.
func (r *Reconciler) beatSince(ctx context.Context, t *model.Task) bool {
	hbs, err := r.store.Heartbeats(ctx, []string{t.Component})
	if err != nil {
		return false
	}
	hb, ok := hbs[t.Component]
	return ok && hb.Version == t.Version && !hb.At.Before(t.UpdatedAt.Add(r.cfg.Committer.Heartbeat/2))
}
