package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
	"github.com/connector-manager/cm/taskmgr/journal"
)

// PullbackRequest is the single-call pullback.
type PullbackRequest struct {
	Task string
	// Timestamp is unix seconds or YYYY-MM-DD HH:MM:SS in TZ.
	Timestamp string
	TZ        string
	// Subtopic limits the rewind to one subtopic; empty rewinds all.
	Subtopic string
	// Force allows moving a subtopic forward past its progress (skips data).
	Force   bool
	Timeout time.Duration
}

// Pullback stops the task if needed, rewrites source.checkpoint, and resumes
// it as a new incarnation from that time, as one journaled operation. It
// answers the new task name once the task runs again.
func (m *Manager) Pullback(ctx context.Context, call Call, req PullbackRequest) (string, error) {
	started := m.now()
	if req.Timestamp == "" {
		err := fmt.Errorf("%w: timestamp is required (unix seconds, or YYYY-MM-DD HH:MM:SS with tz)", checkpoint.ErrInvalid)
		m.auditFailure(ctx, call, "pullback", componentOf(req.Task), nil, err, started)
		return "", err
	}
	ts, err := checkpoint.ParseTime(req.Timestamp, req.TZ)
	if err != nil {
		m.auditFailure(ctx, call, "pullback", componentOf(req.Task), nil, err, started)
		return "", err
	}
	var j *journal.Journal
	t, audit, err := m.mutate(ctx, call, "pullback", req.Task, func(t *model.Task) error {
		if t.Type != model.TypeIncr {
			return fmt.Errorf("%w: pullback applies to incr_trans tasks; %s is %s (use resume with restartFlag=true)", model.ErrInvalidArgument, t.Component, t.Type)
		}
		if err := checkState(t, "pullback", pullbackStates...); err != nil {
			return err
		}
		plan, err := m.planRewind(ctx, t, func(known []string) (map[string]int64, error) {
			if req.Subtopic != "" {
				return map[string]int64{req.Subtopic: ts}, nil
			}
			if len(known) == 0 {
				return nil, fmt.Errorf("%w: the task has no known subtopic yet; name one with subtopic=", checkpoint.ErrUnknownSubtopic)
			}
			target := map[string]int64{}
			for _, s := range known {
				target[s] = ts
			}
			return target, nil
		}, req.Force, false)
		if err != nil {
			return err
		}
		j = &journal.Journal{Op: journal.OpPullback, Step: journal.StepStopping, Target: plan.target, CheckpointBefore: plan.configBefore,
			ProgressBefore: plan.progressBefore, VersionBefore: t.Version, DesiredBefore: t.Desired, Force: req.Force, Started: m.now().UTC()}
		t.Journal = j.Encode()
		if t.State.Active() || t.State == model.StateException {
			return transition(t, model.EventStop)
		}
		t.Desired = model.DesiredStopped
		return nil
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		a.Detail = jsonString(map[string]any{
			"target": j.Target, "checkpointBefore": j.CheckpointBefore, "progressBefore": j.ProgressBefore,
			"checkpointAfter": checkpoint.Format(j.Target), "versionBefore": j.VersionBefore,
		})
		return nil
	})
	if err != nil {
		return "", err
	}
	m.cfg.Failpoint.Reach(m.log, failpoint.PullbackCall)
	m.waker.Wake(ctx, t.Node, t.Component)
	return m.waitJournal(ctx, t.Component, audit.ID, pick(req.Timeout, m.cfg.StopTimeout+m.cfg.StartTimeout))
}

// waitJournal waits until the task's journal is done and answers like
// resume; an operation that was rolled back answers ErrRolledBack with the
// reason its audit row gives.
func (m *Manager) waitJournal(ctx context.Context, component string, auditID int64, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The steps of a journal may be written by other nodes (a migrate's
	// target, the jobs): read as for a task another node owns.
	p := m.pollerOf(component, false)
	defer p.stop()
	var cur *model.Task // the last task read
	for {
		ch := p.changed()
		got, err := m.store.GetTask(ctx, component)
		if err != nil && ctx.Err() == nil {
			return "", err
		}
		if err == nil {
			cur = got
		}
		if err == nil && cur.Journal == "" {
			if a, aerr := m.store.GetAudit(ctx, auditID); aerr == nil && a.Result == model.ResultFailure {
				if a.ErrCode == model.CodeCheckpointForward {
					// Found only once the task stopped: the same answer as a
					// forward target refused at the call.
					return cur.Name().String(), fmt.Errorf("%w: rolled back: %s", checkpoint.ErrForward, a.ErrMsg)
				}
				return cur.Name().String(), &RolledBackError{Task: cur.Name().String(), Code: a.ErrCode, Reason: a.ErrMsg}
			}
			if cur.State == model.StateException {
				return cur.Name().String(), &FailedError{Task: cur.Name().String(), Details: cur.Errors()}
			}
			return cur.Name().String(), nil
		}
		if _, err := p.wait(ctx, ch); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				name, state := component, model.State("")
				if cur != nil {
					name, state = cur.Name().String(), cur.State
				}
				return name, &timeoutError{base: ErrOperationTimeout, task: name, state: state, after: timeout}
			}
			return "", err
		}
	}
}

// rewindPlan is a checked pullback target.
type rewindPlan struct {
	target         map[string]int64
	configBefore   string
	progressBefore map[string]int64
}

// planRewind works out and checks the guard rails of a rewind: known
// subtopics, not in the future, not older than the source still holds, and
// not forward past current progress unless forced.
//
// configuredIsTarget says the target is the configured source.checkpoint
// (the three-call form), so it cannot also be the baseline.
func (m *Manager) planRewind(ctx context.Context, t *model.Task, targetOf func(known []string) (map[string]int64, error), force, configuredIsTarget bool) (*rewindPlan, error) {
	cfg, err := t.ParsedConfig()
	if err != nil {
		return nil, err
	}
	rows, err := m.store.Checkpoints(ctx, t.Component)
	if err != nil {
		return nil, err
	}
	current := map[string]checkpoint.Position{}
	progress := map[string]int64{}
	for _, r := range rows {
		if r.Version == t.Version {
			current[r.Subtopic] = checkpoint.Position{Subtopic: r.Subtopic, TS: r.TS, Token: r.Token}
			progress[r.Subtopic] = r.TS
		}
	}
	// The guard rails ask the source itself (its range, its origin): it is
	// built as the runner builds it, with its references resolved here, in
	// memory only, and its errors scrubbed of the secrets.
	resolved, secrets, err := cfg.ResolveReferences(model.OSResolver)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	scrub := model.ScrubberOf(cfg, secrets...)
	src, _, err := m.registry.Build(m.connectorConfig(t, resolved))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, scrub.Error(err))
	}
	known := knownSubtopics(src, progress, cfg)
	target, err := targetOf(known)
	if err != nil {
		return nil, err
	}
	if !force {
		// "Forward" is judged against what the task really has: its
		// durable progress, else where it would start.
		if err := m.startingPoints(ctx, src, cfg, target, current, !configuredIsTarget); err != nil {
			return nil, err
		}
	}
	var oldest map[string]int64
	if r, ok := src.(connector.Ranger); ok {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		oldest, err = r.Oldest(octx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("asking the source how far back it can go: %w", scrub.Wrap(err))
		}
	}
	if err := checkpoint.CheckPullback(current, target, known, oldest, force, m.now()); err != nil {
		return nil, err
	}
	if rc, ok := src.(connector.RewindChecker); ok {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = rc.CheckRewind(rctx, target)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrRewindUnsafe, scrub.Error(err))
		}
	}
	return &rewindPlan{target: target, configBefore: cfg.Get("source", "checkpoint"), progressBefore: progress}, nil
}

// startingPoints fills current, for the target subtopics that have no
// durable progress, with where the task would start them: the configured
// source.checkpoint (unless it is the target), else the source's own start
// when it is a time
// (connector.Origin). A subtopic with neither starts wherever the source
// resolves "start" (the binlog end: no pullback to the past is forward).
func (m *Manager) startingPoints(ctx context.Context, src connector.Source, cfg model.Config, target map[string]int64, current map[string]checkpoint.Position, useConfigured bool) error {
	var configured map[string]int64
	if useConfigured {
		configured, _ = checkpoint.Parse(cfg.Get("source", "checkpoint"))
	}
	var origin map[string]int64
	for sub := range target {
		if _, ok := current[sub]; ok {
			continue
		}
		if ts, ok := configured[sub]; ok {
			current[sub] = checkpoint.Position{Subtopic: sub, TS: ts}
			continue
		}
		o, ok := src.(connector.Origin)
		if !ok {
			continue
		}
		if origin == nil {
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			origin, err = o.Origin(octx)
			cancel()
			if err != nil {
				return fmt.Errorf("asking the source where it starts: %w", err)
			}
		}
		if ts, ok := origin[sub]; ok {
			current[sub] = checkpoint.Position{Subtopic: sub, TS: ts}
		}
	}
	return nil
}

// knownSubtopics: what the source declares, else what it has progress for,
// else what the configured checkpoint names.
func knownSubtopics(src connector.Source, progress map[string]int64, cfg model.Config) []string {
	if s, ok := src.(connector.Subtopicer); ok {
		if subs := s.Subtopics(); len(subs) > 0 {
			return subs
		}
	}
	var out []string
	for s := range progress {
		out = append(out, s)
	}
	if len(out) == 0 {
		if m, err := checkpoint.Parse(cfg.Get("source", "checkpoint")); err == nil {
			for s := range m {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}
