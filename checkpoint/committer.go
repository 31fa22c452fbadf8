package checkpoint

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"cm/model"
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

// Committer is the one writer of runtime progress for a node: runners hand it
// positions and it writes them in batches, fenced by task version, along with
// heartbeats of every registered runner. Positions only move forward within
// an incarnation.
type Committer struct {
	cfg     CommitterConfig
	store   ProgressStore
	log     *zap.Logger
	fenced  func(component string, version int64)
	flushMu sync.Mutex // one flush at a time, so writes of a component stay ordered

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	version  int64
	pending  map[string]Position
	metrics  map[string]float64
	lastBeat time.Time
	dirty    bool
}

// NewCommitter builds a committer. fenced is called (outside any lock) for
// each report the store refused because its incarnation was superseded.
func NewCommitter(cfg CommitterConfig, store ProgressStore, log *zap.Logger, fenced func(component string, version int64)) *Committer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	return &Committer{cfg: cfg, store: store, log: log, fenced: fenced, entries: map[string]*entry{}}
}

// Register starts heartbeating an incarnation. It replaces any entry of an
// older version, dropping its unflushed positions.
func (c *Committer) Register(component string, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[component] = &entry{version: version, pending: map[string]Position{}, dirty: true}
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
// its sink. A position older than one already pending is ignored.
func (c *Committer) Track(component string, version int64, positions []Position, metrics map[string]float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[component]
	if e == nil || e.version != version {
		return
	}
	for _, p := range positions {
		if cur, ok := e.pending[p.Subtopic]; ok && cur.TS > p.TS {
			continue
		}
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
			_ = c.flush(fctx, "", false)
			cancel()
			return
		case <-t.C:
			if err := c.flush(ctx, "", false); err != nil && ctx.Err() == nil {
				c.log.Warn("flushing checkpoints", zap.Error(err))
			}
		}
	}
}

// Flush writes the pending positions of one component now, with a heartbeat.
// A runner calls it on stop so that STOPPED is only reported once the last
// checkpoint is durable. It returns model.ErrFenced if the incarnation was
// superseded.
func (c *Committer) Flush(ctx context.Context, component string) error {
	return c.flush(ctx, component, true)
}

// flush writes dirty entries (only component's if non-empty) and due heartbeats.
func (c *Committer) flush(ctx context.Context, component string, force bool) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
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
		if component != "" && comp != component {
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
		if len(reports) >= c.cfg.MaxBatch {
			break
		}
	}
	c.mu.Unlock()
	if len(reports) == 0 {
		return nil
	}
	fenced, err := c.store.SaveProgress(ctx, reports)
	if err != nil {
		// Put the positions back so the next flush retries them, unless newer
		// ones arrived meanwhile.
		c.mu.Lock()
		for _, t := range took {
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
		return err
	}
	var fencedErr error
	for _, comp := range fenced {
		var version int64
		for _, t := range took {
			if t.component == comp {
				version = t.version
			}
		}
		c.log.Warn("refused a write from a superseded incarnation", zap.String("task", comp), zap.Int64("version", version))
		c.Unregister(comp, version)
		if c.fenced != nil {
			c.fenced(comp, version)
		}
		if comp == component {
			fencedErr = model.ErrFenced
		}
	}
	return fencedErr
}
