package checkpoint

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
)

// ProgressStore is what the committer needs from the store.
type ProgressStore interface {
	SaveProgress(ctx context.Context, reports []model.Progress) (fenced []string, err error)
}

// CommitterConfig tunes the committer.
type CommitterConfig struct {
	// Interval is how often pending positions are flushed.
	Interval time.Duration
	// Heartbeat is how often a registered runner's heartbeat is written.
	Heartbeat time.Duration
	// MaxBatch bounds the reports written in one transaction.
	MaxBatch int
}

// DefaultCommitterConfig flushes every second and heartbeats every 2 s.
func DefaultCommitterConfig() CommitterConfig {
	return CommitterConfig{Interval: time.Second, Heartbeat: 2 * time.Second, MaxBatch: 500}
}

// Hooks are how the committer tells its owner about one task's reports.
// They are called outside any lock of the committer.
type Hooks struct {
	// Fenced is called for each report the store refused because its
	// incarnation was superseded.
	Fenced func(component string, version int64)
	// Held is called once per incarnation and subtopic when a report's time
	// was lower than one already reported: its token moved on, its time was
	// held at the higher value.
	Held func(component string, version int64, h HeldTime)
	// Flushed is called after each flush that wrote reports: how many, how
	// long the writes took, and the first error if some did not land.
	Flushed func(reports int, took time.Duration, err error)
}

// HeldTime describes a report whose time went backwards.
type HeldTime struct {
	Subtopic string
	// Reported is the time the report carried; Kept the time recorded.
	Reported, Kept int64
}

// Committer is the one writer of runtime progress for a node: runners hand it
// positions and it writes them in batches, fenced by task version, along with
// heartbeats of every registered runner. Times only move forward within an
// incarnation: a report whose time is lower than one before it keeps the
// higher time (its token still moves), so one connector's clock cannot stall
// the flush of every task on the node.
type Committer struct {
	cfg     CommitterConfig
	store   ProgressStore
	log     *zap.Logger
	hooks   Hooks
	flushMu sync.Mutex // one flush at a time, so writes of a component stay ordered

	mu      sync.Mutex
	entries map[string]*entry

	roundMu   sync.Mutex  // guards gathering
	gathering *flushRound // the Flush calls waiting for the next flush
}

// flushRound is the Flush calls that one flush serves: those that came
// while the flush before it ran. The first of them to get the flush lock
// writes for all (one transaction, not one each), the others take its
// results. ran and results are read and written under flushMu.
type flushRound struct {
	comps   map[string]bool
	ran     bool
	results map[string]error
}

type entry struct {
	version int64
	pending map[string]Position
	// high is the highest time tracked per subtopic in this incarnation
	// (seeded with where it resumed from); held lists the subtopics whose
	// backwards time was already reported to Hooks.Held.
	high     map[string]int64
	held     map[string]bool
	metrics  map[string]float64
	lastBeat time.Time
	dirty    bool
}

// NewCommitter builds a committer.
func NewCommitter(cfg CommitterConfig, store ProgressStore, log *zap.Logger, hooks Hooks) *Committer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	return &Committer{cfg: cfg, store: store, log: log, hooks: hooks, entries: map[string]*entry{}}
}

// Register starts heartbeating an incarnation that resumes from the given
// positions (its later reports never record a lower time than these). It
// replaces any entry of an older version, dropping its unflushed positions.
func (c *Committer) Register(component string, version int64, from map[string]Position) {
	high := make(map[string]int64, len(from))
	for sub, p := range from {
		high[sub] = p.TS
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[component] = &entry{version: version, pending: map[string]Position{}, high: high, held: map[string]bool{}, dirty: true}
}

// Unregister stops heartbeating; unflushed positions are dropped, so call
// Flush first.
func (c *Committer) Unregister(component string, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[component]; e != nil && e.version == version {
		delete(c.entries, component)
	}
}

// Track records positions (and metrics) an incarnation has made durable in
// its sink. Positions are in the order the source reached them, so the last
// one of a subtopic wins; one whose time is lower than a time already
// tracked keeps that higher time, and the first such report of a subtopic
// is logged and passed to Hooks.Held.
func (c *Committer) Track(component string, version int64, positions []Position, metrics map[string]float64) {
	var held []HeldTime
	defer func() {
		for _, h := range held {
			c.log.Warn("a checkpoint time went backwards; keeping the higher time",
				zap.String(logkey.Task, component), zap.Int64(logkey.Version, version), zap.String("subtopic", h.Subtopic),
				zap.Int64("reported", h.Reported), zap.Int64("kept", h.Kept))
			if c.hooks.Held != nil {
				c.hooks.Held(component, version, h)
			}
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[component]
	if e == nil || e.version != version {
		return
	}
	for _, p := range positions {
		if hi, ok := e.high[p.Subtopic]; ok && p.TS < hi {
			if !e.held[p.Subtopic] {
				e.held[p.Subtopic] = true
				held = append(held, HeldTime{Subtopic: p.Subtopic, Reported: p.TS, Kept: hi})
			}
			p.TS = hi
		}
		e.high[p.Subtopic] = p.TS
		e.pending[p.Subtopic] = p
		e.dirty = true
	}
	if len(metrics) > 0 {
		if e.metrics == nil {
			e.metrics = map[string]float64{}
		}
		for k, v := range metrics {
			e.metrics[k] = v
		}
	}
}

// Run flushes every Interval until ctx is done, then flushes once more.
func (c *Committer) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = c.flushAll(fctx)
			cancel()
			return
		case <-t.C:
			if err := c.flushAll(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("flushing checkpoints", zap.Error(err))
			}
		}
	}
}

// Flush writes the pending positions of one component now, with a heartbeat
// (of every component, with their heartbeats, when component is empty).
// A runner calls it on stop so that STOPPED is only reported once the last
// checkpoint is durable. It returns model.ErrFenced if the incarnation was
// superseded.
//
// Calls that arrive while a flush runs are served together by the next one:
// many runners stopping at once cost one transaction per flush, not one
// each (group commit). The round runs with the context of the call that
// leads it, without its cancellation and bounded by flushTimeout.
func (c *Committer) Flush(ctx context.Context, component string) error {
	if component == "" {
		// Everything, now: every entry with a heartbeat.
		c.flushMu.Lock()
		defer c.flushMu.Unlock()
		_, err := c.flushLocked(ctx, nil, true)
		return err
	}
	c.roundMu.Lock()
	r := c.gathering
	if r == nil {
		r = &flushRound{comps: map[string]bool{}}
		c.gathering = r
	}
	r.comps[component] = true
	c.roundMu.Unlock()

	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if !r.ran {
		c.roundMu.Lock()
		if c.gathering == r {
			c.gathering = nil // later calls gather for the next flush
		}
		c.roundMu.Unlock()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		r.results, _ = c.flushLocked(fctx, r.comps, true)
		cancel()
		r.ran = true
	}
	return r.results[component]
}

// flushTimeout bounds one flush that Flush calls share.
const flushTimeout = 15 * time.Second

// flushAll writes every dirty entry and every due heartbeat.
func (c *Committer) flushAll(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	_, err := c.flushLocked(ctx, nil, false)
	return err
}

// flushLocked writes the dirty entries and due heartbeats of the
// components in only (of all when only is nil; with force, the heartbeats
// of only's components are due). results answers for each component of
// only: nil, model.ErrFenced when its incarnation was superseded, or the
// error that kept its report out; err is the first such error of the flush.
// The caller holds flushMu.
func (c *Committer) flushLocked(ctx context.Context, only map[string]bool, force bool) (results map[string]error, err error) {
	results = make(map[string]error, len(only))
	now := time.Now()
	type taken struct {
		component string
		version   int64
		positions map[string]Position
	}
	var reports []model.Progress
	var took []taken
	c.mu.Lock()
	for comp, e := range c.entries {
		if only != nil && !only[comp] {
			continue
		}
		beat := force || now.Sub(e.lastBeat) >= c.cfg.Heartbeat
		if !e.dirty && !beat {
			continue
		}
		r := model.Progress{Component: comp, Version: e.version}
		for _, p := range e.pending {
			r.Positions = append(r.Positions, model.CheckpointPosition{Subtopic: p.Subtopic, TS: p.TS, Token: p.Token})
		}
		if beat {
			r.Beat = now
			if len(e.metrics) > 0 {
				b, _ := json.Marshal(e.metrics)
				r.Metrics = string(b)
			}
			e.lastBeat = now
		}
		took = append(took, taken{comp, e.version, e.pending})
		e.pending = map[string]Position{}
		e.dirty = false
		reports = append(reports, r)
	}
	c.mu.Unlock()
	if len(reports) == 0 {
		return results, nil
	}
	// Every due report is written now, MaxBatch to a transaction: a node
	// with more tasks than MaxBatch must not leave heartbeats for later
	// flushes (they would go stale).
	var fenced []string
	failed := map[string]error{}
	for start := 0; start < len(reports); start += c.cfg.MaxBatch {
		chunk := reports[start:min(start+c.cfg.MaxBatch, len(reports))]
		saveStart := time.Now()
		f, fl, serr := c.save(ctx, chunk)
		if c.hooks.Flushed != nil {
			c.hooks.Flushed(len(chunk), time.Since(saveStart), serr)
		}
		fenced = append(fenced, f...)
		for k, kerr := range fl {
			failed[k] = kerr
		}
		if serr != nil && err == nil {
			err = serr
		}
	}
	if len(failed) > 0 {
		// Put the positions back so the next flush retries them, unless newer
		// ones arrived meanwhile.
		c.mu.Lock()
		for _, t := range took {
			if failed[t.component] == nil {
				continue
			}
			e := c.entries[t.component]
			if e == nil || e.version != t.version {
				continue
			}
			for sub, p := range t.positions {
				if _, newer := e.pending[sub]; !newer {
					e.pending[sub] = p
				}
			}
			e.dirty = true
		}
		c.mu.Unlock()
	}
	for _, comp := range fenced {
		var version int64
		for _, t := range took {
			if t.component == comp {
				version = t.version
			}
		}
		c.log.Warn("refused a write from a superseded incarnation", zap.String(logkey.Task, comp), zap.Int64(logkey.Version, version))
		c.Unregister(comp, version)
		if c.hooks.Fenced != nil {
			c.hooks.Fenced(comp, version)
		}
		if only[comp] {
			results[comp] = model.ErrFenced
		}
	}
	for comp, ferr := range failed {
		if only[comp] {
			results[comp] = ferr
		}
	}
	return results, err
}

// save writes reports in one transaction. If that fails, each report is
// written on its own, so a report the store cannot take fails only its own
// task: the others land, with their heartbeats. failed names the components
// whose report did not land; err is the first such error.
func (c *Committer) save(ctx context.Context, reports []model.Progress) (fenced []string, failed map[string]error, err error) {
	fenced, err = c.store.SaveProgress(ctx, reports)
	if err == nil {
		return fenced, nil, nil
	}
	failed = map[string]error{}
	if len(reports) == 1 || ctx.Err() != nil {
		for _, r := range reports {
			failed[r.Component] = err
		}
		return nil, failed, err
	}
	var first error
	for _, r := range reports {
		f, err := c.store.SaveProgress(ctx, []model.Progress{r})
		if err != nil {
			failed[r.Component] = err
			if first == nil {
				first = err
			}
			c.log.Warn("writing a task's checkpoint", zap.String(logkey.Task, r.Component), zap.Int64(logkey.Version, r.Version), zap.Error(err))
			continue
		}
		fenced = append(fenced, f...)
	}
	return fenced, failed, first
}
