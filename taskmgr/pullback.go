package taskmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// A pullback is journaled on the task row: the operator's call writes the
// journal with step "stopping" (and desired STOPPED); the owning node's
// reconciler advances it. Each step is one transaction, so a crash between
// steps leaves the journal naming where to continue:
//
//	stopping --(runner gone)--> rewrite source.checkpoint, version+1,
//	                            reset progress of the rewound subtopics,
//	                            desired RUNNING      --> resuming
//	resuming --(RUNNING)------> journal cleared, audit row success
//	resuming --(EXCEPTION)----> journal cleared, audit row failure
//
// While a journal is set, other operator calls answer TASK_BUSY.
const (
	stepStopping = "stopping"
	stepResuming = "resuming"
)

// journal is the in-flight multi-step operation stored in model.Task.Journal.
type journal struct {
	Op   string `json:"op"`
	Step string `json:"step"`
	// Target is the time each rewound subtopic restarts from.
	Target map[string]int64 `json:"target"`
	// CheckpointBefore is source.checkpoint before the pullback; with
	// ProgressBefore it is what an operator needs to undo it.
	CheckpointBefore string           `json:"checkpointBefore"`
	ProgressBefore   map[string]int64 `json:"progressBefore"`
	VersionBefore    int64            `json:"versionBefore"`
	// DesiredBefore is restored if the operation has to be rolled back.
	DesiredBefore model.Desired `json:"desiredBefore"`
	// Force lets the rewrite step move a subtopic forward past its durable
	// progress (the operator's force=true).
	Force bool `json:"force,omitempty"`
	// From and To are the nodes a migrate moves the task between.
	From    model.NodeID `json:"from,omitempty"`
	To      model.NodeID `json:"to,omitempty"`
	AuditID int64        `json:"auditId"`
	Started time.Time    `json:"started"`
}

func (j *journal) encode() string { return jsonString(j) }

func decodeJournal(s string) (*journal, error) {
	var j journal
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return nil, fmt.Errorf("decoding journal: %w", err)
	}
	return &j, nil
}

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
	var j *journal
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
		j = &journal{Op: "pullback", Step: stepStopping, Target: plan.target, CheckpointBefore: plan.configBefore,
			ProgressBefore: plan.progressBefore, VersionBefore: t.Version, DesiredBefore: t.Desired, Force: req.Force, Started: m.now().UTC()}
		t.Journal = j.encode()
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
	m.cfg.reach(m.log, FailpointPullbackCall)
	m.waker.Wake(ctx, t.Node)
	return m.waitJournal(ctx, t.Component, audit.ID, pick(req.Timeout, m.cfg.StopTimeout+m.cfg.StartTimeout))
}

// waitJournal waits until the task's journal is done and answers like
// resume; an operation that was rolled back answers ErrRolledBack with the
// reason its audit row gives.
func (m *Manager) waitJournal(ctx context.Context, component string, auditID int64, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var cur *model.Task // the last task read
	for {
		ch := m.changes.Changed()
		got, err := m.store.GetTask(ctx, component)
		if err != nil && ctx.Err() == nil {
			return "", err
		}
		if err == nil {
			cur = got
		}
		if err == nil && cur.Journal == "" {
			if a, aerr := m.store.GetAudit(ctx, auditID); aerr == nil && a.Result == model.ResultFailure {
				if a.ErrCode == CodeCheckpointForward {
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
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				name, state := component, model.State("")
				if cur != nil {
					name, state = cur.Name().String(), cur.State
				}
				return name, &timeoutError{base: ErrOperationTimeout, task: name, state: state, after: timeout}
			}
			return "", ctx.Err()
		case <-ch:
		case <-tick.C:
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
	src, _, err := m.registry.Build(m.connectorConfig(t, cfg))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
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
			return nil, fmt.Errorf("asking the source how far back it can go: %w", err)
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
			return nil, fmt.Errorf("%w: %v", ErrRewindUnsafe, err)
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

// advanceJournal moves a journaled operation one step, if it can. It is
// called by the owning node's reconciler; every step is a compare-and-swap,
// so a concurrent or repeated call is harmless. It reports whether it wrote.
func (r *Reconciler) advanceJournal(ctx context.Context, t *model.Task) bool {
	j, err := decodeJournal(t.Journal)
	if err != nil {
		r.log.Error("dropping unreadable journal", zap.String(logTask, t.Name().String()), zap.Error(err))
		next := *t
		next.Journal = ""
		return r.writeIntent(ctx, t, &next, "journal:dropped", nil)
	}
	if j.Op == opMigrate {
		return r.advanceMigrate(ctx, t, j)
	}
	switch j.Step {
	case stepStopping:
		if t.State.Active() {
			return false
		}
		return r.rewrite(ctx, t, j)
	case stepResuming:
		switch t.State {
		case model.StateRunning, model.StateException, model.StateFinished:
			return r.closeJournal(ctx, t, j)
		case model.StateCreated, model.StateStarting, model.StateStopping, model.StateStopped, model.StateDeleted:
			return false
		}
	}
	return false
}

// rewrite is the middle step: new checkpoint, new incarnation, resume.
func (r *Reconciler) rewrite(ctx context.Context, t *model.Task, j *journal) bool {
	cfg, err := t.ParsedConfig()
	if err != nil {
		return r.rollback(ctx, t, j, err)
	}
	merged := map[string]int64{}
	if prev, err := checkpoint.Parse(cfg.Get("source", "checkpoint")); err == nil {
		for s, ts := range prev {
			merged[s] = ts
		}
	}
	for s, ts := range j.Target {
		merged[s] = ts
	}
	if t.Version >= model.MaxVersion {
		return r.rollback(ctx, t, j, fmt.Errorf("%w: last version reached", model.ErrInvalidArgument))
	}
	if !j.Force {
		// The stop made the last progress durable: the call may have seen
		// none, or less. Judge "forward" again on what is there now.
		if err := r.checkNotForward(ctx, t, j, prevCheckpoint(cfg)); err != nil {
			return r.rollback(ctx, t, j, err)
		}
	}
	next := *t
	cfg.Set("source", "checkpoint", checkpoint.Format(merged))
	next.SetConfig(cfg)
	next.Version++
	if err := transition(&next, model.EventRestart); err != nil {
		return r.rollback(ctx, t, j, err)
	}
	j.Step = stepResuming
	next.Journal = j.encode()
	subs := make([]string, 0, len(j.Target))
	for s := range j.Target {
		subs = append(subs, s)
	}
	return r.writeIntent(ctx, t, &next, "pullback:rewrite", func(tx *model.Store) error {
		if err := tx.ResetSubtopics(ctx, next.Component, subs, next.Version); err != nil {
			return err
		}
		return tx.StartIncarnation(ctx, &next, "pullback")
	})
}

func prevCheckpoint(cfg model.Config) map[string]int64 {
	m, _ := checkpoint.Parse(cfg.Get("source", "checkpoint"))
	return m
}

// checkNotForward refuses a target past the durable progress of the
// stopped incarnation (or, for a subtopic without progress, past its
// configured checkpoint).
func (r *Reconciler) checkNotForward(ctx context.Context, t *model.Task, j *journal, configured map[string]int64) error {
	rows, err := r.store.Checkpoints(ctx, t.Component)
	if err != nil {
		return err
	}
	current := map[string]checkpoint.Position{}
	for _, row := range rows {
		if row.Version == t.Version {
			current[row.Subtopic] = checkpoint.Position{Subtopic: row.Subtopic, TS: row.TS, Token: row.Token}
		}
	}
	for sub, ts := range configured {
		if _, ok := current[sub]; !ok {
			current[sub] = checkpoint.Position{Subtopic: sub, TS: ts}
		}
	}
	for sub, ts := range j.Target {
		if cur, ok := current[sub]; ok && ts > cur.TS {
			return fmt.Errorf("%w: subtopic %q: %d (%s) is after the progress %d (%s) made durable by the stop; moving forward would skip data, set force=true to do it anyway",
				checkpoint.ErrForward, sub, ts, checkpoint.FormatUnix(ts), cur.TS, checkpoint.FormatUnix(cur.TS))
		}
	}
	return nil
}

// rollback abandons a pullback that cannot go on, restoring what the
// operator had asked before, so the task is never left silently stopped,
// and says so in the audit log.
func (r *Reconciler) rollback(ctx context.Context, t *model.Task, j *journal, cause error) bool {
	r.log.Warn("rolling back pullback", zap.String(logTask, t.Name().String()), zap.Error(cause))
	next := *t
	next.Journal = ""
	if j.DesiredBefore == model.DesiredRunning && !next.State.Active() {
		if err := transition(&next, model.EventResume); err != nil {
			next.Desired = j.DesiredBefore
		}
	}
	code := "PULLBACK_ROLLED_BACK"
	if errors.Is(cause, checkpoint.ErrForward) {
		code = CodeCheckpointForward
	}
	return r.writeIntent(ctx, t, &next, "pullback:rollback", finishAudit(ctx, j, model.ResultFailure, code, cause.Error()))
}

// closeJournal ends a pullback once the new incarnation runs (or failed).
func (r *Reconciler) closeJournal(ctx context.Context, t *model.Task, j *journal) bool {
	next := *t
	next.Journal = ""
	result, code, msg := model.ResultSuccess, "", ""
	if t.State == model.StateException {
		result, code, msg = model.ResultFailure, "TASK_EXCEPTION", "the new incarnation failed to start"
	}
	return r.writeIntent(ctx, t, &next, "pullback:done", finishAudit(ctx, j, result, code, msg))
}

// finishAudit closes the operator's audit row of a journaled operation in
// the transaction that clears the journal, so a waiter that sees the
// journal gone also sees how it ended.
func finishAudit(ctx context.Context, j *journal, result, code, msg string) func(tx *model.Store) error {
	return func(tx *model.Store) error {
		if j.AuditID == 0 {
			return nil
		}
		return tx.FinishAudit(ctx, j.AuditID, result, code, msg, time.Since(j.Started))
	}
}

// writeIntent writes next (a changed copy of cur) with a compare-and-swap,
// runs extra in the same transaction, and audits the step.
func (r *Reconciler) writeIntent(ctx context.Context, cur, next *model.Task, op string, extra func(tx *model.Store) error) bool {
	audit := &model.Audit{At: time.Now().UTC(), Actor: "node:" + string(r.cfg.Node), Operation: op, Component: cur.Component,
		TaskBefore: cur.Name().String(), TaskAfter: next.Name().String(), StateBefore: cur.State, StateAfter: next.State,
		Result: model.ResultSuccess}
	err := r.store.WriteTask(ctx, next, audit, extra)
	if err != nil {
		if !errors.Is(err, model.ErrConflict) {
			r.log.Warn("advancing journal", zap.String(logTask, cur.Name().String()), zap.String("step", op), zap.Error(err))
		}
		return false
	}
	r.log.Info("journal step", zap.String(logTask, next.Name().String()), zap.String("step", op))
	r.cfg.reach(r.log, op)
	r.changes.Broadcast()
	r.Nudge()
	return true
}
