package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"cm/checkpoint"
	"cm/model"
	"cm/taskmgr/connector"
)

// Reconciler drives the runners of the tasks this node owns until their
// observed state matches the desired state. It wakes on a nudge after a
// commit and on a period, so it converges after missed nudges and after a
// crash: on start, every task whose desired state is RUNNING runs again from
// its last durable checkpoint.
//
// Only the reconciler's own goroutine touches runners; runners and the
// committer talk back through the event queue.
type Reconciler struct {
	cfg       Config
	store     *model.Store
	registry  *connector.Registry
	committer *checkpoint.Committer
	changes   *notifier
	params    *Params
	waker     Waker
	log       *zap.Logger

	nudge   chan struct{}
	mu      sync.Mutex
	events  []runnerEvent
	runners map[string]*runner // by component; reconciler goroutine only
	wg      sync.WaitGroup     // runner goroutines

	passes   sync.Mutex // guards lastPass
	lastPass time.Duration
}

// NewReconciler builds the reconciler of this node, with its committer.
func NewReconciler(cfg Config, store *model.Store, registry *connector.Registry, changes *notifier, log *zap.Logger) *Reconciler {
	r := &Reconciler{
		cfg: cfg, store: store, registry: registry, changes: changes, params: NewParams(store),
		log:     log.Named("reconciler"),
		nudge:   make(chan struct{}, 1),
		runners: map[string]*runner{},
	}
	r.committer = checkpoint.NewCommitter(cfg.Committer, store, log.Named("committer"), func(component string, version int64) {
		r.push(runnerEvent{kind: evFenced, component: component, version: version})
	})
	return r
}

// Nudge asks for a pass soon. It never blocks.
func (r *Reconciler) Nudge() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// SetWaker sets how the reconciler wakes other nodes when a journaled
// operation hands a task over to them. Call it before Run.
func (r *Reconciler) SetWaker(w Waker) { r.waker = w }

func (r *Reconciler) wakeNode(ctx context.Context, node model.NodeID) {
	if node == r.cfg.Node {
		r.Nudge()
		return
	}
	if r.waker != nil {
		r.waker.Wake(ctx, node)
	}
}

// Wake implements Waker for tasks of this node.
func (r *Reconciler) Wake(_ context.Context, node model.NodeID) {
	if node == r.cfg.Node {
		r.Nudge()
	}
}

func (r *Reconciler) push(ev runnerEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.Nudge()
}

// Run reconciles until ctx is done. Then it stops every runner without
// changing task states, so the next start resumes them, and returns once
// their last checkpoints are flushed.
func (r *Reconciler) Run(ctx context.Context) {
	cctx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		r.committer.Run(cctx)
	}()
	defer func() {
		r.shutdown()
		stopCommitter()
		cwg.Wait()
	}()

	tick := time.NewTicker(r.cfg.ReconcileInterval)
	defer tick.Stop()
	r.pass(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.nudge:
		case <-tick.C:
		}
		r.pass(ctx)
	}
}

// LastPass reports how long the last full pass took.
func (r *Reconciler) LastPass() time.Duration {
	r.passes.Lock()
	defer r.passes.Unlock()
	return r.lastPass
}

// Running reports how many runners this node has.
func (r *Reconciler) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runners)
}

func (r *Reconciler) shutdown() {
	for _, rn := range r.runners {
		if rn.stopping == notStopping {
			rn.stopping = stopForShutdown
		}
		rn.cancel()
	}
	r.wg.Wait()
	r.mu.Lock()
	r.runners = map[string]*runner{}
	r.events = nil
	r.mu.Unlock()
}

// pass handles queued runner events, then compares every task of this node
// with its runner.
func (r *Reconciler) pass(ctx context.Context) {
	started := time.Now()
	r.drainEvents(ctx)
	tasks, _, err := r.store.ListTasks(ctx, model.TaskFilter{Node: r.cfg.Node})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("listing tasks", zap.Error(err))
		}
		return
	}
	seen := make(map[string]bool, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		seen[t.Component] = true
		r.reconcile(ctx, t)
	}
	// Runners whose task left this node or was deleted.
	for comp, rn := range r.runners {
		if !seen[comp] && rn.stopping == notStopping {
			rn.stopping = stopSuperseded
			rn.cancel()
		}
	}
	r.passes.Lock()
	r.lastPass = time.Since(started)
	r.passes.Unlock()
}

func (r *Reconciler) reconcile(ctx context.Context, t *model.Task) {
	if t.Journal != "" && r.advanceJournal(ctx, t) {
		return // the row changed; the nudge brings the next pass
	}
	rn := r.runners[t.Component]
	if rn != nil {
		switch {
		case rn.stopping != notStopping:
			// Already on its way out; its exit event finishes the job.
		case rn.name.Version != t.Version || t.Node != r.cfg.Node:
			rn.stopping = stopSuperseded
			rn.cancel()
		case t.Desired != model.DesiredRunning || t.State == model.StateStopping:
			rn.stopping = stopForOperator
			rn.cancel()
		case t.State == model.StateException:
			// A job declared it failed (stale heartbeat): the row already
			// says why; the runner just goes.
			rn.stopping = stopForFailure
			rn.cancel()
		}
		return
	}
	switch {
	case t.State == model.StateStopping:
		// No runner here (it exited, or this node restarted): whatever was
		// flushed is the durable checkpoint.
		r.write(ctx, t.Component, t.Version, model.EventStopped, nil)
	case t.Desired == model.DesiredRunning && (t.State == model.StateStarting || t.State == model.StateRunning):
		r.start(ctx, t)
	}
}

// start launches a runner for t. Each subtopic resumes from its durable
// progress, else from the configured checkpoint, else from the beginning of
// the source.
func (r *Reconciler) start(ctx context.Context, t *model.Task) {
	log := r.log.With(zap.String(logTask, t.Name().String()))
	cfg, err := t.ParsedConfig()
	if err != nil {
		r.fail(ctx, t, err)
		return
	}
	dir := filepath.Join(r.cfg.DataDir, "tasks", t.Component)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.fail(ctx, t, fmt.Errorf("creating %s: %w", dir, err))
		return
	}
	ccfg := connector.Config{Task: t.Name(), Type: t.Type, Scopes: cfg, Logger: log, Dir: dir}
	src, snk, err := r.registry.Build(ccfg)
	if err != nil {
		r.fail(ctx, t, err)
		return
	}
	from, err := r.resumeFrom(ctx, t, cfg)
	if err != nil {
		r.fail(ctx, t, err)
		return
	}
	if err := r.store.ClaimHeartbeat(ctx, t.Component, t.Version, r.cfg.Node); err != nil {
		log.Warn("claiming heartbeat", zap.Error(err))
		return
	}
	rctx, cancel := context.WithCancel(context.Background())
	rn := &runner{
		component: t.Component, name: t.Name(), typ: t.Type, src: src, snk: snk, from: from,
		committer: r.committer, log: log, report: r.push, cancel: cancel, done: make(chan struct{}),
		openTimeout: r.cfg.OpenTimeout,
	}
	r.committer.Register(t.Component, t.Version)
	r.runners[t.Component] = rn
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		rn.run(rctx)
	}()
	log.Info("runner started", zap.Int("positions", len(from)))
}

func (r *Reconciler) resumeFrom(ctx context.Context, t *model.Task, cfg model.Config) (map[string]checkpoint.Position, error) {
	rows, err := r.store.Checkpoints(ctx, t.Component)
	if err != nil {
		return nil, err
	}
	from := map[string]checkpoint.Position{}
	for _, row := range rows {
		if row.Version == t.Version {
			from[row.Subtopic] = checkpoint.Position{Subtopic: row.Subtopic, TS: row.TS, Token: row.Token}
		}
	}
	// A subtopic without durable progress starts from the configured
	// checkpoint (after a pullback, or before its first flush).
	if raw := cfg.Get("source", "checkpoint"); raw != "" {
		target, err := checkpoint.Parse(raw)
		if err != nil {
			return nil, connector.Fail("INVALID_CHECKPOINT", "source.checkpoint cannot be parsed", err.Error(),
				"correct source.checkpoint with update, then resume", true, err)
		}
		for sub, ts := range target {
			if _, ok := from[sub]; !ok {
				from[sub] = checkpoint.Position{Subtopic: sub, TS: ts}
			}
		}
	}
	return from, nil
}

func (r *Reconciler) drainEvents(ctx context.Context) {
	r.mu.Lock()
	evs := r.events
	r.events = nil
	r.mu.Unlock()
	for _, ev := range evs {
		rn := r.runners[ev.component]
		if rn == nil || rn.name.Version != ev.version {
			continue
		}
		switch ev.kind {
		case evStarted:
			if rn.stopping == notStopping {
				r.write(ctx, ev.component, ev.version, model.EventStarted, nil)
			}
		case evFenced:
			r.log.Warn("stopping a superseded runner", zap.String(logTask, rn.name.String()))
			if rn.stopping == notStopping {
				rn.stopping = stopSuperseded
			}
			rn.cancel()
		case evExited:
			delete(r.runners, ev.component)
			r.exited(ctx, rn, ev)
		}
	}
}

// exited records how a runner ended.
func (r *Reconciler) exited(ctx context.Context, rn *runner, ev runnerEvent) {
	log := rn.log.With(zap.NamedError("cause", ev.err), zap.NamedError("flush", ev.flushErr))
	switch {
	case errors.Is(ev.flushErr, model.ErrFenced) || rn.stopping == stopSuperseded:
		log.Info("superseded runner exited")
	case rn.stopping == stopForShutdown:
		log.Info("runner stopped for shutdown")
	case rn.stopping == stopForFailure:
		log.Info("runner of a failed task stopped")
	case rn.stopping == stopForOperator:
		if ev.flushErr != nil {
			// Not durable yet: leave STOPPING; the next pass, finding no
			// runner, records STOPPED with what the store holds, and a resume
			// replays from there (at-least-once).
			log.Warn("last checkpoint flush failed")
		}
		r.write(ctx, rn.component, rn.name.Version, model.EventStopped, nil)
		log.Info("runner stopped")
	default:
		evt, details := exitDetail(rn.typ, ev.err, time.Now().UTC())
		r.write(ctx, rn.component, rn.name.Version, evt, details)
		if evt == model.EventFailed {
			log.Warn("runner failed")
		} else {
			log.Info("runner finished")
		}
	}
}

// fail records a failure to start.
func (r *Reconciler) fail(ctx context.Context, t *model.Task, err error) {
	_, details := exitDetail(t.Type, err, time.Now().UTC())
	r.write(ctx, t.Component, t.Version, model.EventFailed, details)
}

// write applies a runtime event to the task's state with a compare-and-swap
// and an audit row, if the task is still this incarnation on this node.
func (r *Reconciler) write(ctx context.Context, component string, version int64, ev model.Event, details []model.ErrorDetail) {
	for attempt := 0; attempt < 5; attempt++ {
		t, err := r.store.GetTask(ctx, component)
		if err != nil {
			r.log.Warn("loading task", zap.String(logTask, component), zap.Error(err))
			return
		}
		if t.Version != version || t.Node != r.cfg.Node {
			return
		}
		to, err := model.Next(t.State, ev, t.Desired)
		if err != nil {
			r.log.Debug("ignoring runtime event", zap.String(logTask, component), zap.Error(err))
			return
		}
		before := *t
		t.State = to
		if details != nil {
			t.SetErrors(append(t.Errors(), details...)[max(0, len(t.Errors())+len(details)-10):])
		}
		if to == before.State && details == nil {
			return
		}
		audit := &model.Audit{
			At: time.Now().UTC(), Actor: "node:" + string(r.cfg.Node), Operation: "runtime:" + string(ev),
			Component: component, TaskBefore: before.Name().String(), TaskAfter: t.Name().String(),
			StateBefore: before.State, StateAfter: to, Result: model.ResultSuccess,
		}
		if len(details) > 0 {
			audit.ErrCode, audit.ErrMsg = details[0].Code, details[0].Message
		}
		err = r.store.WriteTask(ctx, t, audit, nil)
		if errors.Is(err, model.ErrConflict) {
			continue
		}
		if err != nil {
			r.log.Warn("writing task state", zap.String(logTask, component), zap.String(logState, string(to)), zap.Error(err))
			return
		}
		r.changes.broadcast()
		r.log.Info("task state", zap.String(logTask, t.Name().String()), zap.String(logState, string(to)))
		if to == model.StateStopped && t.Journal != "" {
			if j, err := decodeJournal(t.Journal); err == nil && j.Op == "pullback" {
				r.cfg.reach(r.log, FailpointPullbackStopped)
			}
		}
		return
	}
}
