// Package job runs the cluster-wide jobs under the leader lease: task and
// node liveness, auto-restart under the restart policy, the delay watch and audit
// retention. Each job is a struct with its own dependencies; the Scheduler
// runs them on the schedules of their system parameters. No job is the only
// path to correctness: every run is idempotent and may be cut short.
package job

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/journal"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Tasks is what the jobs ask of the operator use cases (taskmgr.Manager):
// an automatic resume and a move off a dead node, each audited like an
// operator's call.
type Tasks interface {
	// AutoResume resumes an EXCEPTION task whose desired state is RUNNING,
	// audited as operation auto-restart with detail.
	AutoResume(ctx context.Context, t *model.Task, detail map[string]any) error
	// MoveOff starts migrating t off its dead node to the least loaded live
	// node, without waiting.
	MoveOff(ctx context.Context, t *model.Task, reason string) error
}

// Waker nudges the reconciler of a task's node (cluster.Waker).
type Waker interface {
	Wake(ctx context.Context, node model.NodeID, components ...string)
}

// Deps are what the jobs are built from.
type Deps struct {
	Store   *model.Store
	Nodes   *cluster.Nodes
	Tasks   Tasks
	Waker   Waker
	Changes *cluster.Changes
	Log     *zap.Logger
}

// All returns the cluster-wide jobs.
func All(d Deps) []Job {
	w := &writer{store: d.Store, changes: d.Changes, waker: d.Waker, log: d.Log.Named("job")}
	return []Job{
		{params.JobTaskLiveness, (&taskLiveness{store: d.Store, nodes: d.Nodes, w: w}).Run},
		{params.JobNodeLiveness, (&nodeLiveness{store: d.Store, nodes: d.Nodes, tasks: d.Tasks, w: w}).Run},
		{params.JobAutoRestart, (&autoRestart{store: d.Store, nodes: d.Nodes, tasks: d.Tasks}).Run},
		{params.JobDelayWatch, (&delayWatch{store: d.Store, w: w}).Run},
		{params.JobAuditRetention, (&auditRetention{store: d.Store}).Run},
	}
}

// taskLiveness: a RUNNING task whose heartbeat is older than
// task.heartbeat.staleAfter becomes EXCEPTION (HEARTBEAT_STALE). Tasks of
// dead nodes are left to node-liveness, which says why more precisely.
type taskLiveness struct {
	store *model.Store
	nodes *cluster.Nodes
	w     *writer
}

// Run is one run of the job.
func (j *taskLiveness) Run(ctx context.Context, set params.Set) (string, error) {
	stale := set.Duration(params.HeartbeatStaleAfter)
	states, err := j.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	// A paused runner beats as a running one does. Only the tasks whose
	// heartbeat is already stale are read.
	now := time.Now()
	tasks, hbs, err := j.store.QuietTasks(ctx, []model.State{model.StateRunning, model.StatePaused}, now.Add(-stale))
	if err != nil {
		return "", err
	}
	// A node that (re)started is still starting the runners of its tasks,
	// a burst at a time: the heartbeats they left before it went down are
	// not theirs to answer for until staleAfter after its start.
	nodes, err := j.store.Nodes(ctx)
	if err != nil {
		return "", err
	}
	startedAt := make(map[model.NodeID]time.Time, len(nodes))
	for _, n := range nodes {
		startedAt[n.ID] = n.StartedAt
	}
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
		if s := startedAt[t.Node]; s.After(last) {
			last = s
		}
		if now.Sub(last) <= stale {
			continue
		}
		d := model.ErrorDetail{Code: model.CodeHeartbeatStale, Level: model.LevelError, Time: now.UTC(),
			Message:  fmt.Sprintf("no heartbeat from %s for %s (task.heartbeat.staleAfter is %s)", t.Node, model.FormatDuration(now.Sub(last)), model.FormatDuration(stale)),
			Reason:   "the runner is wedged, or its node cannot reach the store",
			Proposal: "check the node's logs; auto-restart resumes the task if enabled"}
		if j.w.event(ctx, t, model.EventFailed, &d, params.JobTaskLiveness) {
			failed++
		}
	}
	return fmt.Sprintf("%d quiet, %d stale", len(tasks), failed), nil
}

// nodeLiveness: the tasks of a dead node become EXCEPTION (NODE_DEAD), or
// with ha.enable are migrated to the least loaded live node. A migrate
// whose old node died while stopping is completed (the version bump fences
// the dead node); one whose target died while starting is rolled back.
type nodeLiveness struct {
	store *model.Store
	nodes *cluster.Nodes
	tasks Tasks
	w     *writer
}

// Run is one run of the job.
func (j *nodeLiveness) Run(ctx context.Context, set params.Set) (string, error) {
	states, err := j.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	// Only the tasks of dead nodes (or of nodes no longer registered): the
	// live and suspect nodes' tasks are left out by the query, so a cluster
	// with every node alive reads no task at all.
	var notDead []model.NodeID
	for id, st := range states {
		if st != cluster.NodeDead {
			notDead = append(notDead, id)
		}
	}
	tasks, _, err := j.store.ListTasks(ctx, model.TaskFilter{ExceptNodes: notDead})
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
			if j.finishMigrate(ctx, t, states) {
				moved++
			}
			continue
		}
		wantRun := t.Desired == model.DesiredRunning && (t.State.Active() || (t.State == model.StateException && !permanentFailure(t)))
		if ha && wantRun {
			err := j.tasks.MoveOff(ctx, t, "node "+string(t.Node)+" is dead")
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
			if j.w.event(ctx, t, model.EventStopped, nil, params.JobNodeLiveness) {
				stopped++
			}
		case model.StateStarting, model.StateRunning, model.StatePaused:
			d := model.ErrorDetail{Code: model.CodeNodeDead, Level: model.LevelError, Time: time.Now().UTC(),
				Message:  fmt.Sprintf("node %s is dead (not seen for over node.deadAfter)", t.Node),
				Proposal: "restart the node, or migrate the task to a live node (ha.enable does it automatically)"}
			if j.w.event(ctx, t, model.EventFailed, &d, params.JobNodeLiveness) {
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

// finishMigrate advances a migrate whose current node is dead, as its own
// reconciler cannot: a target that died while starting the task rolls the
// migrate back; an old node that died while stopping it has its runner's
// end recorded, then the task is rebound to the target.
func (j *nodeLiveness) finishMigrate(ctx context.Context, t *model.Task, states map[model.NodeID]cluster.NodeState) bool {
	jr, err := journal.Decode(t.Journal)
	if err != nil || jr.Op != journal.OpMigrate {
		return false
	}
	facts := journal.Facts{
		FromAlive: cluster.StateOf(states, jr.From) == cluster.NodeAlive,
		ToAlive:   cluster.StateOf(states, jr.To) == cluster.NodeAlive,
		ToState:   string(cluster.StateOf(states, jr.To)),
	}
	version := t.Version
	switch jr.Step {
	case journal.StepStarting:
	case journal.StepStopping:
		if t.State.Active() && !j.w.event(ctx, t, model.EventStopped, nil, params.JobNodeLiveness) {
			return false
		}
	default:
		return false
	}
	step, err := journal.Write(ctx, j.store, t.Component, version, "job:"+params.JobNodeLiveness, func(cur *model.Task, jr *journal.Journal) (journal.Step, error) {
		if jr.Op != journal.OpMigrate {
			return journal.Step{}, nil
		}
		if jr.Step == journal.StepStarting {
			// The target died before the new incarnation was up.
			return journal.RollbackMigrate(cur, jr, facts, fmt.Errorf("target node %s died while starting the task", cur.Node)), nil
		}
		return journal.Advance(cur, jr, facts), nil
	})
	if err != nil {
		j.w.log.Warn("completing a migrate off a dead node", zap.String(logkey.Task, t.Name().String()), zap.Error(err))
		return false
	}
	if step.Next == nil {
		return false
	}
	j.w.written(ctx, step.Next)
	if step.Wake != "" && step.Wake != step.Next.Node {
		j.w.waker.Wake(ctx, step.Wake, step.Next.Component)
	}
	return true
}

// autoRestart resumes EXCEPTION tasks whose desired state is RUNNING, as
// restartPolicy allows: attempts are the auto-restart audit rows of the
// task within the window, and the wait runs from the time of the failure.
type autoRestart struct {
	store *model.Store
	nodes *cluster.Nodes
	tasks Tasks
}

// Run is one run of the job.
func (j *autoRestart) Run(ctx context.Context, set params.Set) (string, error) {
	if !set.Bool(params.AutoRestartEnable) {
		return "disabled", nil
	}
	pol := policyFrom(set)
	states, err := j.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return "", err
	}
	tasks, _, err := j.store.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateException}})
	if err != nil {
		return "", err
	}
	now := time.Now()
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
		rows, err := j.store.ListAudit(ctx, model.AuditFilter{Component: t.Component, Operation: model.OpAutoRestart, Since: now.Add(-pol.Window), Limit: 1000})
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
		detail := map[string]any{"attempt": attempts + 1, "maxAttempts": pol.MaxAttempts, "window": pol.Window.String(), "wait": wait.String()}
		if last != nil {
			detail["lastError"] = last.Code + ": " + last.Message
		}
		if err := j.tasks.AutoResume(ctx, t, detail); err != nil {
			continue // audited by the use case; the next run looks again
		}
		restarted++
	}
	return fmt.Sprintf("%d restarted, %d waiting, %d not retried", restarted, waiting, refused), nil
}

// delayWatch flags RUNNING tasks whose delay (model.TaskDelay: what the
// source reports while fresh, else the checkpoint's age) exceeds
// task.delay.threshold with a WARNING in errorDetails, and clears the flag
// once they catch up. Health computes delay itself; this makes it visible
// in detail.
type delayWatch struct {
	store *model.Store
	w     *writer
}

// Run is one run of the job.
func (j *delayWatch) Run(ctx context.Context, set params.Set) (string, error) {
	threshold := set.Duration(params.DelayThreshold)
	tasks, _, err := j.store.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateRunning}})
	if err != nil {
		return "", err
	}
	cps, err := j.store.CheckpointsOf(ctx, model.Components(tasks))
	if err != nil {
		return "", err
	}
	hbs, err := j.store.Heartbeats(ctx, model.Components(tasks))
	if err != nil {
		return "", err
	}
	fresh := set.Duration(params.HeartbeatStaleAfter)
	now := time.Now()
	var over, raised, cleared int
	for i := range tasks {
		t := &tasks[i]
		var hb *model.Heartbeat
		if b, ok := hbs[t.Component]; ok {
			hb = &b
		}
		delay, from, ok := model.TaskDelay(t, cps[t.Component], hb, now, fresh)
		isOver := ok && delay > threshold
		flagged := hasCode(t.Errors(), model.CodeDelay)
		if isOver {
			over++
		}
		switch {
		case isOver && !flagged:
			d := model.ErrorDetail{Code: model.CodeDelay, Level: model.LevelWarning, Time: now.UTC(),
				Message:  fmt.Sprintf("%s exceeds task.delay.threshold %s", model.DelayWords(delay, from), model.FormatDuration(threshold)),
				Proposal: "check the source and sink throughput"}
			if j.w.flag(ctx, t, &d, "delay:flag") {
				raised++
			}
		case !isOver && flagged:
			if j.w.flag(ctx, t, nil, "delay:clear") {
				cleared++
			}
		}
	}
	return fmt.Sprintf("%d over threshold, %d flagged, %d cleared", over, raised, cleared), nil
}

// auditPurgeBatch bounds one purge statement; auditPurgeBatches bounds a run.
const (
	auditPurgeBatch   = 500
	auditPurgeBatches = 200
)

// auditRetention purges audit rows older than
// operation_audit_log.retention_time, in bounded batches.
type auditRetention struct {
	store *model.Store
}

// Run is one run of the job.
func (j *auditRetention) Run(ctx context.Context, set params.Set) (string, error) {
	keep := set.Duration(params.AuditRetention)
	before := time.Now().Add(-keep)
	var total int64
	for i := 0; i < auditPurgeBatches; i++ {
		n, err := j.store.PurgeAudit(ctx, before, auditPurgeBatch)
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

// writer is how the jobs write task rows: through model.Store.ChangeTask,
// then a broadcast and a wake of the task's node.
type writer struct {
	store   *model.Store
	changes *cluster.Changes
	waker   Waker
	log     *zap.Logger
}

// event applies a runtime event decided by a job (the runner or its node
// cannot report it) with a compare-and-swap and an audit row, if the task
// is still the incarnation t and in state t.State.
func (w *writer) event(ctx context.Context, t *model.Task, ev model.Event, detail *model.ErrorDetail, job string) bool {
	next, err := w.store.ChangeTask(ctx, t.Component, func(cur *model.Task) (*model.TaskWrite, error) {
		if cur.Version != t.Version || cur.Node != t.Node || cur.State != t.State {
			return nil, nil
		}
		next := *cur
		if err := next.Apply(ev); err != nil {
			return nil, nil
		}
		if detail != nil {
			next.SetErrors(append(cur.Errors(), *detail))
		}
		audit := &model.Audit{At: time.Now().UTC(), Actor: "job:" + job, Operation: "runtime:" + string(ev), Component: cur.Component,
			TaskBefore: cur.Name().String(), TaskAfter: next.Name().String(), StateBefore: cur.State, StateAfter: next.State, Result: model.ResultSuccess}
		if detail != nil {
			audit.ErrCode, audit.ErrMsg = detail.Code, detail.Message
		}
		return &model.TaskWrite{Next: &next, Audit: audit}, nil
	})
	if err != nil {
		w.log.Warn("job write", zap.String("job", job), zap.String(logkey.Task, t.Name().String()), zap.Error(err))
		return false
	}
	if next == nil {
		return false
	}
	w.log.Info("task state by job", zap.String("job", job), zap.String(logkey.Task, next.Name().String()), zap.String(logkey.State, string(next.State)))
	w.written(ctx, next)
	return true
}

// flag adds detail to (or, when nil, removes the delay flag from) a task's
// errorDetails without changing its state.
func (w *writer) flag(ctx context.Context, t *model.Task, detail *model.ErrorDetail, op string) bool {
	next, err := w.store.ChangeTask(ctx, t.Component, func(cur *model.Task) (*model.TaskWrite, error) {
		if cur.Version != t.Version || cur.State != t.State {
			return nil, nil
		}
		next := *cur
		var errs []model.ErrorDetail
		for _, e := range cur.Errors() {
			if e.Code != model.CodeDelay {
				errs = append(errs, e)
			}
		}
		if detail != nil {
			errs = append(errs, *detail)
		}
		next.SetErrors(errs)
		audit := &model.Audit{At: time.Now().UTC(), Actor: "job:" + params.JobDelayWatch, Operation: op, Component: cur.Component,
			TaskBefore: cur.Name().String(), TaskAfter: cur.Name().String(), StateBefore: cur.State, StateAfter: cur.State, Result: model.ResultSuccess}
		if detail != nil {
			audit.ErrCode, audit.ErrMsg = detail.Code, detail.Message
		}
		return &model.TaskWrite{Next: &next, Audit: audit}, nil
	})
	return err == nil && next != nil
}

// written tells this node's waiters and the task's node.
func (w *writer) written(ctx context.Context, t *model.Task) {
	w.changes.Broadcast(t.Component)
	w.waker.Wake(ctx, t.Node, t.Component)
}

func hasCode(errs []model.ErrorDetail, code string) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

// permanentFailure reports whether a task's last error says retrying (or
// moving it) will not help: its Permanent flag, nothing else.
func permanentFailure(t *model.Task) bool {
	errs := t.Errors()
	return len(errs) > 0 && errs[len(errs)-1].Permanent
}
