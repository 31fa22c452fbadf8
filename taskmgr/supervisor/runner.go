package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// runner owns one incarnation of a task: it opens the connectors, moves
// batches from source to sink and hands what the sink made durable to the
// committer. It ends when its context is cancelled (stop or shutdown) or
// its connectors fail or finish; either way it closes the connectors and
// flushes its last checkpoint before it reports its exit.
type runner struct {
	component string
	name      model.TaskName
	typ       model.TaskType
	src       connector.Source
	snk       connector.Sink
	from      map[string]checkpoint.Position
	committer *checkpoint.Committer
	log       *zap.Logger
	report    func(runnerEvent)
	recorder  Recorder

	// openTimeout bounds open (Config.OpenTimeout).
	openTimeout time.Duration
	// secrets are what the config's references resolved to, scrubbed from
	// what the runner reports.
	secrets []string

	// durable lists the subtopics that have a durable position in this
	// incarnation (resumed from one, or anchored at open); loop goroutine
	// only.
	durable map[string]bool

	cancel context.CancelFunc
	done   chan struct{}
	// stopping is set by the reconciler (its goroutine only) when it asked
	// the runner to stop, and why.
	stopping stopReason
	// hold says whether the task is desired PAUSED: set by the reconciler,
	// obeyed by the loop between batches.
	hold gate
}

// gate is a switch one goroutine sets and another waits on.
type gate struct {
	mu      sync.Mutex
	on      bool
	changed chan struct{} // closed and replaced at each change
}

// set turns the gate on or off; it reports whether that changed it.
func (g *gate) set(on bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	if g.on == on {
		return false
	}
	g.on = on
	close(g.changed)
	g.changed = make(chan struct{})
	return true
}

// get returns the gate's state and a channel closed at its next change.
func (g *gate) get() (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.on, g.changed
}

type stopReason int

const (
	notStopping stopReason = iota
	stopForOperator
	stopForShutdown
	stopSuperseded
	stopForFailure
)

type eventKind int

const (
	evStarted eventKind = iota + 1
	evExited
	evFenced
	evWarning
	evPaused
)

// runnerEvent is what a runner (or the committer) tells its reconciler.
type runnerEvent struct {
	kind      eventKind
	component string
	version   int64
	err       error // evExited: why it ended; nil or context.Canceled when stopped
	flushErr  error // evExited: the final checkpoint flush failed
	// warnings are shown on the task: evStarted carries the source's
	// standing conditions (replacing those of earlier incarnations),
	// evWarning one condition met while running.
	warnings []model.ErrorDetail
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	err := r.open(ctx)
	if err == nil {
		err = r.anchor(ctx)
	}
	if err == nil {
		r.reportStarted()
		err = r.loop(ctx)
	}
	if cerr := r.close(); cerr != nil {
		r.log.Warn("closing connectors", zap.Error(cerr))
	}
	// The last positions the sink made durable must be in the store before
	// the task may be reported stopped.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	flushErr := r.committer.Flush(fctx, r.component)
	cancel()
	r.committer.Unregister(r.component, r.name.Version)
	r.report(runnerEvent{kind: evExited, component: r.component, version: r.name.Version, err: err, flushErr: flushErr})
}

// reportStarted tells the reconciler that data moves, with the source's
// standing conditions.
func (r *runner) reportStarted() {
	var warnings []model.ErrorDetail
	if w, ok := r.src.(connector.Warner); ok {
		warnings = w.Warnings()
	}
	r.report(runnerEvent{kind: evStarted, component: r.component, version: r.name.Version, warnings: warnings})
}

// pause holds the runner still until the gate opens or ctx ends: a
// self-contained source is told to hold still (connector.Pauser), what the
// sink made durable is flushed, and the reconciler hears evPaused; once the
// gate opens the source goes on and the reconciler hears evStarted. The
// connectors stay open throughout.
func (r *runner) pause(ctx context.Context) error {
	p, selfContained := r.src.(connector.Pauser)
	if r.snk != nil {
		selfContained = false
	}
	if selfContained {
		if err := p.Pause(); err != nil {
			return fmt.Errorf("pausing source: %w", err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := r.committer.Flush(fctx, r.component)
	cancel()
	if err != nil {
		return err
	}
	r.report(runnerEvent{kind: evPaused, component: r.component, version: r.name.Version})
	for {
		on, changed := r.hold.get()
		if !on {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
	if selfContained {
		if err := p.Resume(); err != nil {
			return fmt.Errorf("resuming source: %w", err)
		}
	}
	r.reportStarted()
	return nil
}

// errOpenTimeout is the cause of an open that ran out of time.
var errOpenTimeout = errors.New("open timed out")

// open opens the source, then the sink, within openTimeout. A connector
// that outlives the deadline (a server that accepts connections but never
// answers) fails the task with OPEN_TIMEOUT; the restart policy may try
// again.
func (r *runner) open(ctx context.Context) error {
	octx, cancel := context.WithTimeoutCause(ctx, r.openTimeout, errOpenTimeout)
	defer cancel()
	err := r.openConnectors(octx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(octx), errOpenTimeout) {
		return connector.Fail(model.CodeOpenTimeout, fmt.Sprintf("the connectors did not open within %s", r.openTimeout),
			err.Error(), "check that the servers the task connects to are up and answer", false, err)
	}
	return err
}

// anchor makes durable where the subtopics without a position start, before
// any record moves: a restart then continues from that place instead of
// resolving "start" again (a later binlog end) and skipping what came in
// between.
func (r *runner) anchor(ctx context.Context) error {
	r.durable = make(map[string]bool, len(r.from))
	for sub := range r.from {
		r.durable[sub] = true
	}
	st, ok := r.src.(connector.Starter)
	if !ok {
		return nil
	}
	positions := st.Start()
	if len(positions) == 0 {
		return nil
	}
	if err := r.makeDurable(ctx, positions); err != nil {
		return connector.Fail(model.CodeStartNotDurable, "the start position could not be recorded", err.Error(),
			"check that the store is reachable; the task starts again from its last durable position", false, err)
	}
	return nil
}

// makeDurable tracks positions and flushes them now. The subtopics count as
// durable from then on.
func (r *runner) makeDurable(ctx context.Context, positions []checkpoint.Position) error {
	r.committer.Track(r.component, r.name.Version, positions, nil)
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.committer.Flush(fctx, r.component); err != nil {
		return err
	}
	for _, p := range positions {
		r.durable[p.Subtopic] = true
	}
	return nil
}

func (r *runner) openConnectors(ctx context.Context) error {
	if err := r.src.Open(ctx, r.from); err != nil {
		return fmt.Errorf("opening source: %w", err)
	}
	if r.snk != nil {
		if err := r.snk.Open(ctx); err != nil {
			return fmt.Errorf("opening sink: %w", err)
		}
	}
	return nil
}

// loop moves batches from the source to the sink until either fails or
// the source ends. With a sink and a source that is worth it
// (connector.Prefetcher: the mysql sources), the source reads one batch
// ahead on a goroutine loop owns: while the sink writes batch n (mostly waiting for
// the target to commit), batch n+1 is read and decoded, so the two overlap
// instead of taking turns. Positions are handed to the committer only
// after the sink wrote their batch, and an error from Read reaches the
// loop only after every batch read before it was written.
//
// Between batches the loop obeys the pause gate (pause): a paused runner
// takes no batch, so its reader blocks with at most one batch read.
//
// Other sources are read on the loop's goroutine (loopInTurn: one
// goroutine for an idle task), and so is a self-contained source (no sink),
// so that Read and Durable never run at once.
func (r *runner) loop(ctx context.Context) error {
	if r.snk == nil {
		return r.loopSelfContained(ctx)
	}
	if p, ok := r.src.(connector.Prefetcher); !ok || !p.Prefetch() {
		return r.loopInTurn(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan readResult) // unbuffered: the reader holds at most one batch ahead
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			b, err := r.src.Read(ctx)
			select {
			case batches <- readResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// The reader must be gone before the caller closes the source.
	defer func() {
		cancel()
		<-readerDone
	}()
	for {
		on, changed := r.hold.get()
		if on {
			if err := r.pause(ctx); err != nil {
				return err
			}
			continue
		}
		var res readResult
		select {
		case res = <-batches:
		case <-changed:
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if res.err != nil {
			return res.err
		}
		if err := r.move(ctx, res.batch); err != nil {
			return err
		}
	}
}

// loopInTurn is loop for a source that is not read ahead: read a batch,
// write it, and between the two obey the pause gate (a pause waits for the
// read under way: a file source's returns within its report interval).
func (r *runner) loopInTurn(ctx context.Context) error {
	for {
		if on, _ := r.hold.get(); on {
			if err := r.pause(ctx); err != nil {
				return err
			}
			continue
		}
		b, err := r.src.Read(ctx)
		if err != nil {
			return err
		}
		if err := r.move(ctx, b); err != nil {
			return err
		}
	}
}

// loopSelfContained is loop for a source that moves data itself. Read is
// called with a context that the pause gate cancels, so a paused task is not
// kept waiting on a source with nothing to report; a Read cut short that way
// returns nothing, and the next Read goes on from where it stood.
func (r *runner) loopSelfContained(ctx context.Context) error {
	for {
		on, changed := r.hold.get()
		if on {
			if err := r.pause(ctx); err != nil {
				return err
			}
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-rctx.Done():
			}
		}()
		b, err := r.src.Read(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.Canceled) {
				continue // the gate changed
			}
			return err
		}
		if err := r.move(ctx, b); err != nil {
			return err
		}
	}
}

type readResult struct {
	batch connector.Batch
	err   error
}

// move writes one batch and then tracks its positions and metrics.
func (r *runner) move(ctx context.Context, b connector.Batch) error {
	if len(b.Records) > 0 {
		if r.snk == nil {
			return connector.Fail(model.CodeNoSink, "the source produced records but the task has no sink", "", "set sink.type", true, nil)
		}
		if err := r.snk.Write(ctx, b); err != nil {
			return fmt.Errorf("writing to sink: %w", err)
		}
		if r.recorder != nil {
			r.recorder.RecordsApplied(r.component, len(b.Records))
		}
	}
	if r.snk == nil && r.firstPosition(b.Positions) {
		// A self-contained source moves data itself: its first position of
		// a subtopic is written at once, not on the next flush, and the
		// source hears when it is durable.
		r.committer.Track(r.component, r.name.Version, nil, b.Metrics)
		if err := r.makeDurable(ctx, b.Positions); err != nil {
			if errors.Is(err, model.ErrFenced) {
				return err
			}
			return connector.Fail(model.CodeStartNotDurable, "the first position could not be recorded", err.Error(),
				"check that the store is reachable; the task starts again from its last durable position", false, err)
		}
		if a, ok := r.src.(connector.Acker); ok {
			a.Durable(b.Positions)
		}
		return nil
	}
	if len(b.Positions) > 0 || len(b.Metrics) > 0 {
		r.committer.Track(r.component, r.name.Version, b.Positions, b.Metrics)
	}
	return nil
}

// firstPosition reports whether positions name a subtopic that has no
// durable position in this incarnation yet.
func (r *runner) firstPosition(positions []checkpoint.Position) bool {
	for _, p := range positions {
		if !r.durable[p.Subtopic] {
			return true
		}
	}
	return false
}

func (r *runner) close() error {
	var errs []error
	if r.snk != nil {
		errs = append(errs, r.snk.Close())
	}
	errs = append(errs, r.src.Close())
	return errors.Join(errs...)
}

// exitDetail turns how a runner ended into the event for the state machine
// and the error details an operator sees.
func exitDetail(typ model.TaskType, err error, now time.Time) (model.Event, []model.ErrorDetail) {
	if errors.Is(err, io.EOF) {
		if typ == model.TypeFull {
			return model.EventDone, nil
		}
		return model.EventFailed, []model.ErrorDetail{{
			Code: model.CodeSourceEnded, Level: model.LevelError, Time: now,
			Message:  "the source of an incremental task ended",
			Reason:   "an incr_trans source is expected to run until stopped",
			Proposal: "check the connector; resume the task to start it again",
		}}
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		d := ce.Detail
		d.Permanent = d.Permanent || ce.Permanent
		if d.Time.IsZero() {
			d.Time = now
		}
		if d.Level == "" {
			d.Level = model.LevelError
		}
		if d.Message == "" {
			d.Message = err.Error()
		}
		return model.EventFailed, []model.ErrorDetail{d}
	}
	d := model.ErrorDetail{Code: model.CodeConnectorError, Level: model.LevelError, Message: err.Error(), Time: now,
		Proposal: "fix the cause and resume the task"}
	if errors.Is(err, connector.ErrConfig) {
		d.Code, d.Level, d.Permanent = model.CodeInvalidConfig, model.LevelFatal, true
		d.Proposal = "correct the task config with update, then resume"
	}
	return model.EventFailed, []model.ErrorDetail{d}
}
