package journal

import (
	"fmt"

	"github.com/connector-manager/cm/model"
)

func advanceMigrate(t *model.Task, j *Journal, f Facts) Step {
	switch j.Step {
	case StepStopping:
		if t.State.Active() {
			return Step{}
		}
		return rebind(t, j, f)
	case StepStarting:
		switch t.State {
		case model.StateRunning, model.StatePaused:
			if !f.Beat {
				return Step{}
			}
			return migrateDone(t, j)
		case model.StateException:
			return RollbackMigrate(t, j, f, fmt.Errorf("the new incarnation failed on %s: %s", j.To, t.LastError()))
		case model.StateFinished, model.StateStopped, model.StateCreated, model.StateDeleted:
			return migrateDone(t, j)
		case model.StateStarting, model.StateStopping:
		}
	}
	return Step{}
}

func migrateDone(t *model.Task, j *Journal) Step {
	next := *t
	next.Journal = ""
	return Step{Next: &next, Op: "migrate:done", Finish: &Outcome{Result: model.ResultSuccess}}
}

// rebind is the middle step, once the old incarnation is gone (or its node
// is dead): the next incarnation on the target. If the target is no longer
// alive, the migrate is rolled back.
func rebind(t *model.Task, j *Journal, f Facts) Step {
	if !f.ToAlive {
		return abandonMigrate(t, j, fmt.Errorf("target %s is %s", j.To, f.ToState))
	}
	next := *t
	if err := RebindTo(&next, j); err != nil {
		return abandonMigrate(t, j, err)
	}
	s := Step{Next: &next, Op: "migrate:rebind", Rebind: true, Incarnation: OpMigrate, Wake: next.Node}
	if next.Journal == "" {
		s.Finish = &Outcome{Result: model.ResultSuccess}
	}
	return s
}

// RebindTo makes t the next incarnation on j.To: version + 1 and, if the
// operator wanted it running, STARTING there with the journal at step
// starting; otherwise the journal is cleared. A task still marked active
// (its node died) is recorded stopped first: whatever it flushed is its
// checkpoint.
func RebindTo(t *model.Task, j *Journal) error {
	if t.Version >= model.MaxVersion {
		return fmt.Errorf("%w: %s has reached the last version", model.ErrInvalidArgument, t.Component)
	}
	if t.State.Active() {
		if err := t.Apply(model.EventStopped); err != nil {
			return err
		}
	}
	t.Version++
	t.Node = j.To
	if j.DesiredBefore == model.DesiredRunning && t.State != model.StateFinished {
		if err := t.Apply(model.EventResume); err != nil {
			return err
		}
		step := *j
		step.Step = StepStarting
		t.Journal = step.Encode()
		return nil
	}
	t.Desired = j.DesiredBefore
	t.Journal = ""
	return nil
}

// abandonMigrate ends a migrate before anything moved: the task stays
// where it is, as the operator had asked.
func abandonMigrate(t *model.Task, j *Journal, cause error) Step {
	next := *t
	next.Journal = ""
	restoreDesired(&next, j)
	return Step{Next: &next, Op: "migrate:rollback", Cause: cause,
		Finish: &Outcome{Result: model.ResultFailure, Code: model.CodeMigrateRolledBack, Message: cause.Error()}}
}

// RollbackMigrate undoes a migrate whose new incarnation failed or whose
// target died while starting it: back to the old node as one more
// incarnation if that node is alive, else the task stays on the target.
// Either way the audit says so.
func RollbackMigrate(t *model.Task, j *Journal, f Facts, cause error) Step {
	next := *t
	next.Journal = ""
	msg := cause.Error()
	s := Step{Next: &next, Op: "migrate:rollback", Cause: cause}
	if f.FromAlive && next.Version < model.MaxVersion {
		if next.State.Active() || next.State == model.StateException {
			// No runner is left on the target.
			if err := next.Apply(model.EventStopped); err != nil {
				return abandonMigrate(t, j, err)
			}
		}
		next.Version++
		next.Node = j.From
		restoreDesired(&next, j)
		msg += "; moved back to " + string(j.From)
		s.Rebind, s.Incarnation, s.Wake = true, "migrate-rollback", next.Node
	} else {
		msg += "; the old node " + string(j.From) + " is not alive, so the task stays here"
		s.Wake = next.Node
	}
	s.Finish = &Outcome{Result: model.ResultFailure, Code: model.CodeMigrateRolledBack, Message: msg}
	return s
}
