package journal

import (
	"errors"
	"fmt"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

func advancePullback(t *model.Task, j *Journal, f Facts) Step {
	switch j.Step {
	case StepStopping:
		if t.State.Active() {
			return Step{} // the runner is still on its way out
		}
		return rewrite(t, j, f)
	case StepResuming:
		switch t.State {
		case model.StateRunning, model.StatePaused, model.StateException, model.StateFinished:
			return closePullback(t, j)
		case model.StateCreated, model.StateStarting, model.StateStopping, model.StateStopped, model.StateDeleted:
		}
	}
	return Step{}
}

// rewrite is the middle step: new checkpoint, new incarnation, resume.
func rewrite(t *model.Task, j *Journal, f Facts) Step {
	cfg, err := t.ParsedConfig()
	if err != nil {
		return rollbackPullback(t, j, err)
	}
	configured, _ := checkpoint.Parse(cfg.Get("source", "checkpoint"))
	if t.Version >= model.MaxVersion {
		return rollbackPullback(t, j, fmt.Errorf("%w: last version reached", model.ErrInvalidArgument))
	}
	if !j.Force {
		// The stop made the last progress durable: the call may have seen
		// none, or less. Judge "forward" again on what is there now.
		if err := notForward(j.Target, f.Progress, configured); err != nil {
			return rollbackPullback(t, j, err)
		}
	}
	merged := map[string]int64{}
	for s, ts := range configured {
		merged[s] = ts
	}
	for s, ts := range j.Target {
		merged[s] = ts
	}
	next := *t
	cfg.Set("source", "checkpoint", checkpoint.Format(merged))
	next.SetConfig(cfg)
	next.Version++
	if err := next.Apply(model.EventRestart); err != nil {
		return rollbackPullback(t, j, err)
	}
	step := *j
	step.Step = StepResuming
	next.Journal = step.Encode()
	subs := make([]string, 0, len(j.Target))
	for s := range j.Target {
		subs = append(subs, s)
	}
	return Step{Next: &next, Op: "pullback:rewrite", Reset: subs, Incarnation: OpPullback}
}

// notForward refuses a target past the durable progress of the stopped
// incarnation (or, for a subtopic without progress, past its configured
// checkpoint).
func notForward(target, progress, configured map[string]int64) error {
	for sub, ts := range target {
		cur, ok := progress[sub]
		what := "the progress made durable by the stop"
		if !ok {
			cur, ok = configured[sub]
			what = "the configured checkpoint"
		}
		if ok && ts > cur {
			return fmt.Errorf("%w: subtopic %q: %d (%s) is after %s, %d (%s); moving forward would skip data, set force=true to do it anyway",
				checkpoint.ErrForward, sub, ts, checkpoint.FormatUnix(ts), what, cur, checkpoint.FormatUnix(cur))
		}
	}
	return nil
}

// rollbackPullback abandons a pullback that cannot go on, restoring what
// the operator had asked before, so the task is never left silently
// stopped, and says so in the audit log.
func rollbackPullback(t *model.Task, j *Journal, cause error) Step {
	next := *t
	next.Journal = ""
	restoreDesired(&next, j)
	code := model.CodePullbackRolledBack
	if errors.Is(cause, checkpoint.ErrForward) {
		code = model.CodeCheckpointForward
	}
	return Step{Next: &next, Op: "pullback:rollback", Cause: cause,
		Finish: &Outcome{Result: model.ResultFailure, Code: code, Message: cause.Error()}}
}

// closePullback ends a pullback once the new incarnation runs (or failed).
func closePullback(t *model.Task, j *Journal) Step {
	next := *t
	next.Journal = ""
	out := &Outcome{Result: model.ResultSuccess}
	if t.State == model.StateException {
		out = &Outcome{Result: model.ResultFailure, Code: model.CodeTaskException, Message: "the new incarnation failed to start"}
	}
	return Step{Next: &next, Op: "pullback:done", Finish: out}
}
