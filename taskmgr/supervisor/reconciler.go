package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/connector"
	"github.com/connector-manager/cm/taskmgr/journal"
)

// Reconciler drives the runners of the tasks this node owns until their
// observed state matches the desired state. A nudge after a commit names
// the tasks written, and the pass that follows reads and reconciles only
// those (one query); a pass over every task of the node runs on a period,
// after a nudge that names none, and at start, so it converges after missed
// nudges and after a crash: on start, every task whose desired state is
// RUNNING runs again from its last durable checkpoint. Runners are started
// at most Config.StartBurst a pass, so a node restarting with thousands of
// tasks neither floods the store nor the sources, and the runners' events
// are handled between bursts.
//
// Only the reconciler's own goroutine touches runners; runners and the
// committer talk back through the event queue.
type Reconciler struct {
	cfg       Config
	store     *model.Store
	registry  *connector.Registry
	committer *checkpoint.Committer
	changes   *cluster.Changes
	nodes     *cluster.Nodes
	waker     Waker
	recorder  Recorder
	log       *zap.Logger

	nudge  chan struct{}
	mu     sync.Mutex // guards events, dirty, full, and writes of runners
	events []runnerEvent
	// dirty are the components to reconcile in the next pass, and why.
	// full asks the next pass to list every task of the node.
	dirty map[string]dirtyKind
	full  bool
	// rows are the task rows the reconciler last read or wrote, by
	// component, for the tasks that have runners (reconciler goroutine
	// only): a runtime write starts from its row (ChangeTaskFrom), and a
	// full pass reads only the rows whose revision moved since.
	rows map[string]*model.Task
	// runners by component: read and written by the reconciler goroutine,
	// which holds mu to write, so Running may read it from elsewhere.
	runners map[string]*runner
	wg      sync.WaitGroup // runner goroutines

	passes   sync.Mutex // guards lastPass
	lastPass time.Duration
}

// dirtyKind is why a task is reconciled again; a task marked for two
// reasons keeps the stronger.
type dirtyKind int

const (
	// byNudge: a write on this node (an operator's call, a job, this
	// reconciler's write for a runner's event): its writer published the
	// row (cluster.Changes.Publish), else it is read.
	byNudge dirtyKind = iota
	// byWake: a write on another node: read the row and tell this node's
	// waiters.
	byWake
)

func (r *Reconciler) mark(component string, k dirtyKind) {
	if cur, ok := r.dirty[component]; !ok || k > cur {
		r.dirty[component] = k
	}
}

// NewReconciler builds the reconciler of this node, with its committer.
// changes is shared with the use cases, so their waits wake on this node's
// writes; nodes answers whether a migrate's nodes are alive.
func NewReconciler(cfg Config, store *model.Store, registry *connector.Registry, changes *cluster.Changes, nodes *cluster.Nodes, log *zap.Logger) *Reconciler {
	r := &Reconciler{
		cfg: cfg, store: store, registry: registry, changes: changes, nodes: nodes,
		log:      log.Named("reconciler"),
		recorder: nopRecorder{},
		nudge:    make(chan struct{}, 1),
		runners:  map[string]*runner{},
		dirty:    map[string]dirtyKind{},
		rows:     map[string]*model.Task{},
	}
	r.committer = checkpoint.NewCommitter(cfg.Committer, store, log.Named("committer"), checkpoint.Hooks{
		Fenced: func(component string, version int64) {
			r.push(runnerEvent{kind: evFenced, component: component, version: version})
		},
		Held: func(component string, version int64, h checkpoint.HeldTime) {
			r.push(runnerEvent{kind: evWarning, component: component, version: version, warnings: []model.ErrorDetail{{
				Code: model.CodeCheckpointTimeHeld, Level: model.LevelWarning, Time: time.Now().UTC(),
				Message: fmt.Sprintf("the connector reported time %d for subtopic %s after a later time %d; the checkpoint keeps %d and its position moves on",
					h.Reported, h.Subtopic, h.Kept, h.Kept),
				Reason:   "a source's reported times went backwards",
				Proposal: "check the connector's clock or the times it reports; a pullback to a time may replay from slightly later than asked",
			}}})
		},
		Flushed: func(reports int, took time.Duration, err error) { r.recorder.Flushed(reports, took, err) },
	})
	return r
}

// Nudge asks for a pass soon over the components named, or over every task
// of the node when none is. It never blocks.
func (r *Reconciler) Nudge(components ...string) {
	r.mu.Lock()
	if len(components) == 0 {
		r.full = true
	}
	for _, c := range components {
		r.mark(c, byNudge)
	}
	r.mu.Unlock()
	r.signal()
}

// Woken is Nudge for a wake from another node, which wrote the tasks named:
// once the pass has read them, this node's waiters are told too.
func (r *Reconciler) Woken(components ...string) {
	r.mu.Lock()
	if len(components) == 0 {
		r.full = true
	}
	for _, c := range components {
		r.mark(c, byWake)
	}
	r.mu.Unlock()
	r.signal()
}

// signal wakes the reconciler's goroutine.
func (r *Reconciler) signal() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// SetWaker sets how the reconciler wakes other nodes when a journaled
// operation hands a task over to them. Call it before Run.
func (r *Reconciler) SetWaker(w Waker) { r.waker = w }

func (r *Reconciler) wakeNode(ctx context.Context, node model.NodeID, components ...string) {
	if node == r.cfg.Node {
		r.Nudge(components...)
		return
	}
	if r.waker != nil {
		r.waker.Wake(ctx, node, components...)
	}
}

// Wake implements Waker for tasks of this node.
func (r *Reconciler) Wake(_ context.Context, node model.NodeID, components ...string) {
	if node == r.cfg.Node {
		r.Nudge(components...)
	}
}

func (r *Reconciler) push(ev runnerEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mark(ev.component, byNudge)
	r.mu.Unlock()
	r.signal()
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
	r.Nudge()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.nudge:
		case <-tick.C:
			r.Nudge()
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

// pass handles queued runner events, then compares the tasks nudged (every
// task of this node on a full pass) with their runners.
func (r *Reconciler) pass(ctx context.Context) {
	started := time.Now()
	r.drainEvents(ctx)
	r.mu.Lock()
	full, dirty := r.full, r.dirty
	r.full, r.dirty = false, map[string]dirtyKind{}
	r.mu.Unlock()
	if !full && len(dirty) == 0 {
		return
	}
	f := model.TaskFilter{Node: r.cfg.Node}
	var tasks []model.Task
	if !full {
		// A nudged task may have left this node: read it wherever it is.
		// A row written on this node (by a call, or by this reconciler
		// for a runner's event) was published by its writer, unless a
		// wake says another node wrote it since.
		f = model.TaskFilter{Components: make([]string, 0, len(dirty))}
		for c, why := range dirty {
			if why != byWake {
				// Written on this node: its writer published the row.
				if t, ok := r.changes.Latest(c); ok && (r.rows[c] == nil || t.Revision >= r.rows[c].Revision) {
					tasks = append(tasks, t)
					continue
				}
			}
			f.Components = append(f.Components, c)
		}
	}
	// On a full pass, the rows of the node's tasks that have not changed
	// since the reconciler's copy (an idle running task) are not read
	// again: their revisions say so.
	seen := map[string]bool{}
	if full {
		revs, err := r.store.TaskRevisions(ctx, r.cfg.Node)
		if err == nil {
			f = model.TaskFilter{Components: []string{}}
			for _, rv := range revs {
				seen[rv.Component] = true
				// A journal in flight is looked at again: its next step
				// waits on facts (a heartbeat, a node's liveness), not on
				// the row.
				if row := r.rows[rv.Component]; row != nil && row.Revision == rv.Revision && row.Journal == "" && r.runners[rv.Component] != nil {
					if _, nudged := dirty[rv.Component]; !nudged {
						continue
					}
				}
				f.Components = append(f.Components, rv.Component)
			}
			for c := range dirty {
				if !seen[c] {
					f.Components = append(f.Components, c) // left the node: read it where it is
				}
			}
		} else if ctx.Err() == nil {
			r.log.Warn("listing task revisions", zap.Error(err))
		}
	}
	if len(f.Components) > 0 || (full && f.Components == nil) {
		read, err := r.listTasks(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("listing tasks", zap.Error(err))
			}
			// Try again on the next wake-up.
			r.mu.Lock()
			r.full = r.full || full
			for c, why := range dirty {
				r.mark(c, why)
			}
			r.mu.Unlock()
			return
		}
		tasks = append(tasks, read...)
	}
	var woken []string
	for c, why := range dirty {
		if why == byWake {
			woken = append(woken, c)
		}
	}
	if len(woken) > 0 {
		// Another node wrote these tasks: this node's waiters read them
		// again.
		r.changes.Broadcast(woken...)
	}
	starts := 0
	for i := range tasks {
		t := &tasks[i]
		seen[t.Component] = true
		if t.Node != r.cfg.Node && r.runners[t.Component] == nil {
			continue // another node's task, and none of ours
		}
		if r.rows[t.Component] != nil || r.wouldStart(t) {
			r.rows[t.Component] = t
		}
		if r.wouldStart(t) {
			if starts >= r.cfg.StartBurst {
				// Paced: the rest start on the next passes, right after
				// this one, with the runners' events handled between.
				r.mu.Lock()
				r.mark(t.Component, byNudge)
				r.mu.Unlock()
				r.signal()
				continue
			}
			starts++
		}
		r.reconcile(ctx, t)
	}
	// Rows are kept for the tasks that have runners only.
	for i := range tasks {
		if c := tasks[i].Component; r.runners[c] == nil {
			delete(r.rows, c)
		}
	}
	// Runners whose task left this node or was deleted.
	for comp, rn := range r.runners {
		if _, nudged := dirty[comp]; (full || nudged) && !seen[comp] && rn.stopping == notStopping {
			rn.stopping = stopSuperseded
			rn.cancel()
		}
	}
	r.passes.Lock()
	r.lastPass = time.Since(started)
	r.passes.Unlock()
}

// listTasks reads the tasks f selects; a long list of components is read
// in chunks.
func (r *Reconciler) listTasks(ctx context.Context, f model.TaskFilter) ([]model.Task, error) {
	const chunk = 500
	if len(f.Components) <= chunk {
		tasks, _, err := r.store.ListTasks(ctx, f)
		return tasks, err
	}
	var out []model.Task
	for start := 0; start < len(f.Components); start += chunk {
		part := f
		part.Components = f.Components[start:min(start+chunk, len(f.Components))]
		tasks, _, err := r.store.ListTasks(ctx, part)
		if err != nil {
			return nil, err
		}
		out = append(out, tasks...)
	}
	return out, nil
}

// wouldStart reports whether reconcile would start a runner for t.
func (r *Reconciler) wouldStart(t *model.Task) bool {
	return r.runners[t.Component] == nil && t.Node == r.cfg.Node && t.Journal == "" && t.State != model.StateStopping &&
		runs(t.Desired) && (t.State == model.StateStarting || t.State == model.StateRunning || t.State == model.StatePaused)
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
		case !runs(t.Desired) || t.State == model.StateStopping:
			rn.stopping = stopForOperator
			rn.cancel()
		case t.State == model.StateException:
			// A job declared it failed (stale heartbeat): the row already
			// says why; the runner just goes.
			rn.stopping = stopForFailure
			rn.cancel()
		default:
			// Paused or moving, as desired; the runner reports when it is.
			rn.hold.set(t.Desired == model.DesiredPaused)
		}
		return
	}
	switch {
	case t.State == model.StateStopping:
		// No runner here (it exited, or this node restarted): whatever was
		// flushed is the durable checkpoint.
		r.write(ctx, t.Component, t.Version, model.EventStopped, nil)
	case runs(t.Desired) && (t.State == model.StateStarting || t.State == model.StateRunning || t.State == model.StatePaused):
		r.start(ctx, t)
	}
}

// runs reports whether a task desired d has a runner: running, or paused
// (a paused runner keeps its connectors open and its position).
func runs(d model.Desired) bool { return d == model.DesiredRunning || d == model.DesiredPaused }

// start launches a runner for t. Each subtopic resumes from its durable
// progress, else from the configured checkpoint, else from the beginning of
// the source.
func (r *Reconciler) start(ctx context.Context, t *model.Task) {
	log := r.log.With(zap.String(logkey.Task, t.Name().String()))
	cfg, err := t.ParsedConfig()
	if err != nil {
		r.fail(ctx, t, err)
		return
	}
	// ${env:} and ${file:} references are resolved here, on the task's
	// node, into the connectors' config only: what they name is never
	// written back. The runner's log and its error details are scrubbed of
	// the config's secrets and of what the references resolved to.
	cfg, secrets, err := cfg.ResolveReferences(model.OSResolver)
	if err != nil {
		r.fail(ctx, t, connector.Fail(model.CodeSecretUnresolved, err.Error(),
			"a secret reference of the config names an environment variable or file this node does not have",
			"set the variable in cm's environment or create the file on this node (or update the config), then resume", true, err))
		return
	}
	log = scrubbed(log, model.ScrubberOf(cfg, secrets...))
	dir := filepath.Join(r.cfg.DataDir, "tasks", t.Component)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.fail(ctx, t, fmt.Errorf("creating %s: %w", dir, err))
		return
	}
	ccfg := connector.Config{Task: t.Name(), Type: t.Type, Scopes: cfg, Logger: log, Dir: dir}
	src, snk, err := r.registry.Build(ccfg)
	if err != nil {
		r.failWith(ctx, t, err, secrets)
		return
	}
	from, err := r.resumeFrom(ctx, t, cfg)
	if err != nil {
		r.fail(ctx, t, err)
		return
	}
	if err := r.store.ClaimHeartbeat(ctx, t.Component, t.Version, r.cfg.Node); err != nil {
		if errors.Is(err, model.ErrFenced) {
			log.Info("not starting a superseded incarnation", zap.Error(err))
		} else {
			log.Warn("claiming heartbeat", zap.Error(err))
		}
		return
	}
	rctx, cancel := context.WithCancel(context.Background())
	rn := &runner{
		component: t.Component, name: t.Name(), typ: t.Type, src: src, snk: snk, from: from,
		committer: r.committer, log: log, report: r.push, cancel: cancel, done: make(chan struct{}),
		openTimeout: r.cfg.OpenTimeout, secrets: secrets, recorder: r.recorder,
	}
	rn.hold.set(t.Desired == model.DesiredPaused)
	r.committer.Register(t.Component, t.Version, from)
	r.mu.Lock()
	r.runners[t.Component] = rn
	r.mu.Unlock()
	r.recorder.RunnerStarted(t.Component)
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
			return nil, connector.Fail(model.CodeInvalidCheckpoint, "source.checkpoint cannot be parsed", err.Error(),
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
				r.apply(ctx, ev.component, ev.version, runtimeWrite{event: model.EventStarted, warnings: ev.warnings, resetWarnings: true, secrets: rn.secrets})
			}
		case evPaused:
			if rn.stopping == notStopping {
				r.apply(ctx, ev.component, ev.version, runtimeWrite{event: model.EventPaused})
			}
		case evWarning:
			if rn.stopping == notStopping {
				r.apply(ctx, ev.component, ev.version, runtimeWrite{warnings: ev.warnings, secrets: rn.secrets})
			}
		case evFenced:
			r.log.Warn("stopping a superseded runner", zap.String(logkey.Task, rn.name.String()))
			if rn.stopping == notStopping {
				rn.stopping = stopSuperseded
			}
			rn.cancel()
		case evExited:
			r.mu.Lock()
			delete(r.runners, ev.component)
			r.mu.Unlock()
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
		r.apply(ctx, rn.component, rn.name.Version, runtimeWrite{event: evt, details: details, secrets: rn.secrets})
		if evt == model.EventFailed {
			log.Warn("runner failed")
		} else {
			log.Info("runner finished")
		}
	}
}

// fail records a failure to start.
func (r *Reconciler) fail(ctx context.Context, t *model.Task, err error) {
	r.failWith(ctx, t, err, nil)
}

// failWith records a failure to start, scrubbed of secrets too (what the
// config's references resolved to).
func (r *Reconciler) failWith(ctx context.Context, t *model.Task, err error, secrets []string) {
	_, details := exitDetail(t.Type, err, time.Now().UTC())
	r.apply(ctx, t.Component, t.Version, runtimeWrite{event: model.EventFailed, details: details, secrets: secrets})
}

// write applies a runtime event to the task's state with a compare-and-swap
// and an audit row, if the task is still this incarnation on this node.
func (r *Reconciler) write(ctx context.Context, component string, version int64, ev model.Event, details []model.ErrorDetail) {
	r.apply(ctx, component, version, runtimeWrite{event: ev, details: details})
}

// runtimeWrite is what a runtime report changes on a task row.
type runtimeWrite struct {
	// event moves the state through model.Next; empty leaves the state.
	event model.Event
	// details are appended to the task's error details.
	details []model.ErrorDetail
	// warnings are added, replacing earlier warnings with the same code
	// and message; with resetWarnings every earlier warning goes first.
	warnings      []model.ErrorDetail
	resetWarnings bool
	// secrets are scrubbed from details and warnings besides the secrets
	// of the stored config: what the config's references resolved to.
	secrets []string
}

// apply writes w to the task with a compare-and-swap and an audit row, if
// the task is still this incarnation on this node (model.Store.ChangeTask).
func (r *Reconciler) apply(ctx context.Context, component string, version int64, w runtimeWrite) {
	op := "runtime:" + string(w.event)
	if w.event == "" {
		op = "runtime:warning"
	}
	t, err := r.store.ChangeTaskFrom(ctx, component, r.rows[component], func(cur *model.Task) (*model.TaskWrite, error) {
		if cur.Version != version || cur.Node != r.cfg.Node {
			return nil, nil
		}
		if w.event == model.EventPaused && cur.Desired != model.DesiredPaused {
			// Resumed since the runner paused: it is on its way again.
			return nil, nil
		}
		next := *cur
		// Error details are free text a connector wrote, which may quote
		// its config: scrubbed before they reach the row, the audit and
		// the API.
		w := w
		if len(w.details) > 0 || len(w.warnings) > 0 {
			cfg, _ := cur.ParsedConfig()
			scrub := model.ScrubberOf(cfg, w.secrets...)
			w.details, w.warnings = scrub.Details(w.details), scrub.Details(w.warnings)
		}
		if w.event != "" {
			if err := next.Apply(w.event); err != nil {
				r.log.Debug("ignoring runtime event", zap.String(logkey.Task, component), zap.Error(err))
				return nil, nil
			}
		}
		errs, changed := mergeDetails(cur.Errors(), w)
		if changed {
			next.SetErrors(errs)
		}
		if next.State == cur.State && !changed {
			return nil, nil
		}
		audit := &model.Audit{
			At: time.Now().UTC(), Actor: r.actor(), Operation: op,
			Component: component, TaskBefore: cur.Name().String(), TaskAfter: next.Name().String(),
			StateBefore: cur.State, StateAfter: next.State, Result: model.ResultSuccess,
		}
		if first := append(append([]model.ErrorDetail{}, w.details...), w.warnings...); len(first) > 0 {
			audit.ErrCode, audit.ErrMsg = first[0].Code, first[0].Message
		}
		return &model.TaskWrite{Next: &next, Audit: audit}, nil
	})
	if err != nil {
		r.log.Warn("writing task state", zap.String(logkey.Task, component), zap.String("event", string(w.event)), zap.Error(err))
		return
	}
	if t == nil {
		return
	}
	r.rows[component] = t
	r.changes.Publish(t)
	r.log.Info("task state", zap.String(logkey.Task, t.Name().String()), zap.String(logkey.State, string(t.State)))
	if w.event != "" && t.State == model.StateStopped && t.Journal != "" {
		if j, err := journal.Decode(t.Journal); err == nil && j.Op == journal.OpPullback {
			r.cfg.Failpoint.Reach(r.log, failpoint.PullbackStopped)
		}
	}
}

// actor is how this node signs its audit rows.
func (r *Reconciler) actor() string { return "node:" + string(r.cfg.Node) }

// mergeDetails applies w's details and warnings to a task's error details and
// reports whether they changed (SetErrors keeps the newest).
func mergeDetails(cur []model.ErrorDetail, w runtimeWrite) ([]model.ErrorDetail, bool) {
	if len(w.details) == 0 && len(w.warnings) == 0 && !w.resetWarnings {
		return cur, false
	}
	changed := len(w.details) > 0
	out := make([]model.ErrorDetail, 0, len(cur)+len(w.details)+len(w.warnings))
	for _, d := range cur {
		drop := d.Level == model.LevelWarning && w.resetWarnings
		for _, nw := range w.warnings {
			if d.Level == model.LevelWarning && d.Code == nw.Code && d.Message == nw.Message {
				drop = true
			}
		}
		if drop {
			changed = true
			continue
		}
		out = append(out, d)
	}
	out = append(out, w.details...)
	out = append(out, w.warnings...)
	if len(w.warnings) > 0 {
		changed = true
	}
	if !changed {
		return cur, false
	}
	return out, true
}
