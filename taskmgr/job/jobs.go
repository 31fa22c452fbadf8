package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Error codes the jobs write into errorDetails.
const (
	CodeHeartbeatStale = "HEARTBEAT_STALE"
	CodeNodeDead       = "NODE_DEAD"
	CodeDelay          = "DELAY_OVER_THRESHOLD"
)

// auditPurgeBatch bounds one purge statement; auditPurgeBatches bounds a run.
const (
	auditPurgeBatch   = 500
	auditPurgeBatches = 200
)

// Jobs returns the cluster-wide jobs, bodies over this manager; rec is the
// local reconciler, which completes migrations whose old node died.
func (m *Manager) Jobs(rec *Reconciler) []Job {
	return []Job{
		{params.JobTaskLiveness, m.taskLiveness},
		{params.JobNodeLiveness, func(ctx context.Context, set params.Set) (string, error) { return m.nodeLiveness(ctx, set, rec) }},
		{params.JobAutoRestart, m.autoRestart},
		{params.JobDelayWatch, m.delayWatch},
		{params.JobAuditRetention, m.auditRetention},
	}
}

// taskLiveness: a RUNNING task whose heartbeat is older than
// task.heartbeat.staleAfter becomes EXCEPTION (HEARTBEAT_STALE). Tasks of
// dead nodes are left to node-liveness, which says why more precisely.
func (m *Manager) taskLiveness(ctx context.Context, set params.Set) (string, error) {
	stale := set.Duration(params.HeartbeatStaleAfter)
	states, err := m.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	tasks, _, err := m.store.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateRunning}})
	if err != nil {
		return "", err
	}
	hbs, err := m.store.Heartbeats(ctx, components(tasks))
	if err != nil {
		return "", err
	}
	now := m.now()
	failed := 0
	for i := range tasks {
		t := &tasks[i]
		if cluster.StateOf(states, t.Node) == cluster.NodeDead {
			continue
		}
		last := t.UpdatedAt
		if hb, ok := hbs[t.Component]; ok && hb.Version == t.Version {
			last = hb.At
		}
		if now.Sub(last) <= stale {
			continue
		}
		d := model.ErrorDetail{Code: CodeHeartbeatStale, Level: model.LevelError, Time: now.UTC(),
			Message:  fmt.Sprintf("no heartbeat from %s for %s (task.heartbeat.staleAfter is %s)", t.Node, now.Sub(last).Round(time.Second), stale),
			Reason:   "the runner is wedged, or its node cannot reach the store",
			Proposal: "check the node's logs; auto-restart resumes the task if enabled"}
		if m.runtimeEvent(ctx, t, model.EventFailed, &d, params.JobTaskLiveness) {
			failed++
		}
	}
	return fmt.Sprintf("%d running, %d stale", len(tasks), failed), nil
}

// nodeLiveness: the tasks of a dead node become EXCEPTION (NODE_DEAD), or
// with ha.enable are migrated to the least loaded live node. A migrate
// whose old node died while stopping is completed (the version bump
// fences the dead node).
func (m *Manager) nodeLiveness(ctx context.Context, set params.Set, rec *Reconciler) (string, error) {
	states, err := m.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	tasks, _, err := m.store.ListTasks(ctx, model.TaskFilter{})
	if err != nil {
		return "", err
	}
	ha := set.Bool(params.HAEnable)
	var failed, moved, stopped, errs int
	var lastErr error
	for i := range tasks {
		t := &tasks[i]
		if cluster.StateOf(states, t.Node) != cluster.NodeDead {
			continue
		}
		if t.Journal != "" {
			j, err := decodeJournal(t.Journal)
			if err == nil && j.Op == opMigrate && j.Step == stepStarting && rec != nil {
				// The target died before the new incarnation was up.
				if rec.migrateRollback(ctx, t, j, fmt.Errorf("target node %s died while starting the task", t.Node)) {
					moved++
				}
				continue
			}
			if err == nil && j.Op == opMigrate && j.Step == stepStopping && rec != nil {
				cp := *t
				if t.State.Active() {
					// Record the runner's end first, so the rebind's
					// compare-and-swap starts from a settled row.
					if !m.runtimeEvent(ctx, t, model.EventStopped, nil, params.JobNodeLiveness) {
						continue
					}
					fresh, err := m.store.GetTask(ctx, t.Component)
					if err != nil {
						continue
					}
					cp = *fresh
				}
				if rec.migrateRebind(ctx, &cp, j) {
					moved++
				}
			}
			continue
		}
		wantRun := t.Desired == model.DesiredRunning && (t.State.Active() || (t.State == model.StateException && !permanentFailure(t)))
		if ha && wantRun {
			to, err := m.pickNode(ctx, t.Node, MigrateTarget{})
			if err == nil {
				call := Call{Actor: "job:" + params.JobNodeLiveness, Params: map[string]string{"reason": "node " + string(t.Node) + " is dead", "ha.enable": "true"}}
				_, _, err = m.startMigrate(ctx, call, t.Name().String(), to)
			}
			if err == nil {
				moved++
				continue
			}
			errs++
			lastErr = fmt.Errorf("moving %s off dead %s: %w", t.Component, t.Node, err)
			// Not movable now: at least say why it is not running.
		}
		switch t.State {
		case model.StateStopping:
			if m.runtimeEvent(ctx, t, model.EventStopped, nil, params.JobNodeLiveness) {
				stopped++
			}
		case model.StateStarting, model.StateRunning:
			d := model.ErrorDetail{Code: CodeNodeDead, Level: model.LevelError, Time: m.now().UTC(),
				Message:  fmt.Sprintf("node %s is dead (not seen for over node.deadAfter)", t.Node),
				Proposal: "restart the node, or migrate the task to a live node (ha.enable does it automatically)"}
			if m.runtimeEvent(ctx, t, model.EventFailed, &d, params.JobNodeLiveness) {
				failed++
			}
		case model.StateCreated, model.StateStopped, model.StateException, model.StateFinished, model.StateDeleted:
		}
	}
	summary := fmt.Sprintf("%d failed, %d migrated, %d stopped", failed, moved, stopped)
	if errs > 0 {
		return summary, lastErr
	}
	return summary, nil
}

// autoRestart resumes EXCEPTION tasks whose desired state is RUNNING, as
// RestartPolicy allows: attempts are the auto-restart audit rows of the
// task within the window, and the wait runs from the time of the failure.
func (m *Manager) autoRestart(ctx context.Context, set params.Set) (string, error) {
	if !set.Bool(params.AutoRestartEnable) {
		return "disabled", nil
	}
	pol := policyFrom(set)
	states, err := m.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	tasks, _, err := m.store.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateException}})
	if err != nil {
		return "", err
	}
	now := m.now()
	var restarted, waiting, refused int
	for i := range tasks {
		t := &tasks[i]
		if t.Desired != model.DesiredRunning || t.Journal != "" || cluster.StateOf(states, t.Node) != cluster.NodeAlive {
			continue
		}
		var last *model.ErrorDetail
		failedAt := t.UpdatedAt
		if errs := t.Errors(); len(errs) > 0 {
			last = &errs[len(errs)-1]
			if !last.Time.IsZero() {
				failedAt = last.Time
			}
		}
		rows, err := m.store.ListAudit(ctx, model.AuditFilter{Component: t.Component, Operation: opAutoRestart, Since: now.Add(-pol.Window), Limit: 1000})
		if err != nil {
			return "", err
		}
		attempts := 0
		for _, r := range rows {
			if r.Result != model.ResultFailure {
				attempts++
			}
		}
		wait, ok := pol.Next(attempts, last, failedAt)
		if !ok {
			refused++
			continue
		}
		if now.Before(failedAt.Add(wait)) {
			waiting++
			continue
		}
		call := Call{Actor: "job:" + params.JobAutoRestart}
		detail := map[string]any{"attempt": attempts + 1, "maxAttempts": pol.MaxAttempts, "window": pol.Window.String(), "wait": wait.String()}
		if last != nil {
			detail["lastError"] = last.Code + ": " + last.Message
		}
		_, audit, err := m.mutate(ctx, call, opAutoRestart, t.Name().String(), func(t *model.Task) error {
			if t.State != model.StateException || t.Desired != model.DesiredRunning {
				return fmt.Errorf("%w: %s is now %s", ErrBusy, t.Component, t.State)
			}
			return transition(t, model.EventResume)
		}, func(_ *model.Store, _ *model.Task, a *model.Audit) error {
			a.Detail = jsonString(detail)
			return nil
		})
		if err != nil {
			continue // audited by mutate; the next run looks again
		}
		m.finish(ctx, audit, nil, now)
		restarted++
	}
	return fmt.Sprintf("%d restarted, %d waiting, %d not retried", restarted, waiting, refused), nil
}

// opAutoRestart is the audit operation of an automatic resume; its rows
// are the restart history.
const opAutoRestart = "auto-restart"

// delayWatch flags RUNNING tasks whose checkpoint delay exceeds
// task.delay.threshold with a WARNING in errorDetails, and clears the
// flag once they catch up. Health computes delay itself; this makes it
// visible in detail.
func (m *Manager) delayWatch(ctx context.Context, set params.Set) (string, error) {
	threshold := set.Duration(params.DelayThreshold)
	tasks, _, err := m.store.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateRunning}})
	if err != nil {
		return "", err
	}
	cps, err := m.store.CheckpointsOf(ctx, components(tasks))
	if err != nil {
		return "", err
	}
	now := m.now()
	var over, raised, cleared int
	for i := range tasks {
		t := &tasks[i]
		delay, ok := taskDelay(t, cps[t.Component], now)
		isOver := ok && delay > threshold
		flagged := hasCode(t.Errors(), CodeDelay)
		if isOver {
			over++
		}
		switch {
		case isOver && !flagged:
			d := model.ErrorDetail{Code: CodeDelay, Level: model.LevelWarning, Time: now.UTC(),
				Message:  fmt.Sprintf("checkpoint delay %s exceeds task.delay.threshold %s", delay.Round(time.Second), threshold),
				Proposal: "check the source and sink throughput"}
			if m.flagTask(ctx, t, &d, "delay:flag") {
				raised++
			}
		case !isOver && flagged:
			if m.flagTask(ctx, t, nil, "delay:clear") {
				cleared++
			}
		}
	}
	return fmt.Sprintf("%d over threshold, %d flagged, %d cleared", over, raised, cleared), nil
}

// taskDelay is now minus the oldest checkpoint of the current incarnation.
func taskDelay(t *model.Task, cps []model.Checkpoint, now time.Time) (time.Duration, bool) {
	var delay time.Duration
	found := false
	for _, c := range cps {
		if c.Version != t.Version {
			continue
		}
		d := now.Sub(time.Unix(c.TS, 0))
		if !found || d > delay {
			delay, found = d, true
		}
	}
	return delay, found
}

func hasCode(errs []model.ErrorDetail, code string) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

// auditRetention purges audit rows older than
// operation_audit_log.retention_time, in bounded batches.
func (m *Manager) auditRetention(ctx context.Context, set params.Set) (string, error) {
	keep := set.Duration(params.AuditRetention)
	before := m.now().Add(-keep)
	var total int64
	for i := 0; i < auditPurgeBatches; i++ {
		n, err := m.store.PurgeAudit(ctx, before, auditPurgeBatch)
		total += n
		if err != nil {
			return fmt.Sprintf("purged %d", total), err
		}
		if n < auditPurgeBatch {
			break
		}
	}
	return fmt.Sprintf("purged %d rows older than %s (retention %s)", total, before.UTC().Format(time.RFC3339), keep), nil
}

// runtimeEvent applies a runtime event decided by a job (the runner or its
// node cannot report it) with a compare-and-swap and an audit row, if the
// task is still the incarnation t and in state t.State. It wakes the owner.
func (m *Manager) runtimeEvent(ctx context.Context, t *model.Task, ev model.Event, detail *model.ErrorDetail, job string) bool {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := m.store.GetTask(ctx, t.Component)
		if err != nil || cur.Version != t.Version || cur.Node != t.Node || cur.State != t.State {
			return false
		}
		to, err := model.Next(cur.State, ev, cur.Desired)
		if err != nil {
			return false
		}
		next := *cur
		next.State = to
		if detail != nil {
			errs := append(cur.Errors(), *detail)
			next.SetErrors(errs[max(0, len(errs)-10):])
		}
		audit := &model.Audit{At: m.now().UTC(), Actor: "job:" + job, Operation: "runtime:" + string(ev), Component: cur.Component,
			TaskBefore: cur.Name().String(), TaskAfter: next.Name().String(), StateBefore: cur.State, StateAfter: to, Result: model.ResultSuccess}
		if detail != nil {
			audit.ErrCode, audit.ErrMsg = detail.Code, detail.Message
		}
		err = m.store.WriteTask(ctx, &next, audit, nil)
		if errors.Is(err, model.ErrConflict) {
			continue
		}
		if err != nil {
			m.log.Warn("job write", zap.String("job", job), zap.String(logTask, cur.Name().String()), zap.Error(err))
			return false
		}
		m.log.Info("task state by job", zap.String("job", job), zap.String(logTask, next.Name().String()), zap.String(logState, string(to)))
		m.changes.Broadcast()
		m.waker.Wake(ctx, next.Node)
		return true
	}
	return false
}

// flagTask adds detail to (or, when nil, removes the delay flag from) a
// task's errorDetails without changing its state.
func (m *Manager) flagTask(ctx context.Context, t *model.Task, detail *model.ErrorDetail, op string) bool {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := m.store.GetTask(ctx, t.Component)
		if err != nil || cur.Version != t.Version || cur.State != t.State {
			return false
		}
		next := *cur
		var errs []model.ErrorDetail
		for _, e := range cur.Errors() {
			if e.Code != CodeDelay {
				errs = append(errs, e)
			}
		}
		if detail != nil {
			errs = append(errs, *detail)
		}
		next.SetErrors(errs[max(0, len(errs)-10):])
		audit := &model.Audit{At: m.now().UTC(), Actor: "job:" + params.JobDelayWatch, Operation: op, Component: cur.Component,
			TaskBefore: cur.Name().String(), TaskAfter: cur.Name().String(), StateBefore: cur.State, StateAfter: cur.State, Result: model.ResultSuccess}
		if detail != nil {
			audit.ErrCode, audit.ErrMsg = detail.Code, detail.Message
		}
		err = m.store.WriteTask(ctx, &next, audit, nil)
		if errors.Is(err, model.ErrConflict) {
			continue
		}
		return err == nil
	}
	return false
}

func components(tasks []model.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.Component
	}
	return out
}

// permanentFailure reports whether a task's last error says retrying (or
// moving it) will not help.
func permanentFailure(t *model.Task) bool {
	errs := t.Errors()
	if len(errs) == 0 {
		return false
	}
	last := errs[len(errs)-1]
	return last.Permanent || last.Code == "INVALID_CONFIG"
}
