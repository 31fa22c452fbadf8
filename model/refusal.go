package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// RefusalConfig bounds how many audit rows refused calls write.
type RefusalConfig struct {
	// Window is how long identical refusals (same actor, operation,
	// component and errCode) are coalesced: the first is written at once,
	// the rest are counted and written as one summary row when the window
	// closes.
	Window time.Duration
	// PerActor is how many windows one actor may open per Window; its
	// further refusals, whatever they name, are coalesced into one window of
	// the actor's (component "*"), so a client naming a new task on every
	// call writes no more rows than one naming the same.
	PerActor int
	// MaxOpen bounds the windows held in memory; beyond it refusals of
	// every actor are coalesced into one window (actor "*").
	MaxOpen int
}

// DefaultRefusalConfig coalesces for a minute, 20 windows per actor.
func DefaultRefusalConfig() RefusalConfig {
	return RefusalConfig{Window: time.Minute, PerActor: 20, MaxOpen: 10000}
}

// Validate refuses an unusable config.
func (c RefusalConfig) Validate() error {
	if c.Window <= 0 || c.PerActor < 1 || c.MaxOpen < 1 {
		return fmt.Errorf("%w: refusal audit window %s, %d per actor, %d open: all must be positive", ErrInvalidArgument, c.Window, c.PerActor, c.MaxOpen)
	}
	return nil
}

// Refusals writes the audit rows of refused calls so that a storm of them
// cannot flood the audit log: within a window, identical refusals write
// their first row at once and one summary row (Calls = how many followed,
// the last one's request id and message) when the window closes. Rows are
// written once and never updated, like every audit row; the sum of Calls
// over a window's rows is the number of refusals. Windows live in this
// node's memory: each node coalesces its own calls.
type Refusals struct {
	cfg   RefusalConfig
	store *Store
	log   *zap.Logger
	now   func() time.Time

	mu      sync.Mutex
	open    map[refusalKey]*refusalWindow
	byActor map[string]int // windows opened per actor, counted while they are open
}

type refusalKey struct{ actor, operation, component, errCode string }

type refusalWindow struct {
	opened time.Time
	first  time.Time // of the first refusal the summary counts
	last   Audit     // the last refusal counted
	count  int64     // refusals after the one written at once
}

// NewRefusals coalesces refusals written to store.
func NewRefusals(cfg RefusalConfig, store *Store, log *zap.Logger) *Refusals {
	return &Refusals{cfg: cfg, store: store, log: log.Named("refusals"), now: time.Now,
		open: map[refusalKey]*refusalWindow{}, byActor: map[string]int{}}
}

// SetClock replaces the clock, for tests.
func (r *Refusals) SetClock(now func() time.Time) { r.now = now }

// Record audits the refused call a (Result failure, ErrCode set): written
// now if it opens a window, else counted into its window's summary row.
func (r *Refusals) Record(ctx context.Context, a *Audit) error {
	now := r.now()
	r.mu.Lock()
	closed := r.closeExpired(now)
	k := refusalKey{a.Actor, a.Operation, a.Component, a.ErrCode}
	if _, ok := r.open[k]; !ok {
		switch {
		case len(r.open) >= r.cfg.MaxOpen:
			k = refusalKey{actor: "*", operation: "*", component: "*", errCode: "*"}
		case r.byActor[a.Actor] >= r.cfg.PerActor:
			k = refusalKey{actor: a.Actor, operation: "*", component: "*", errCode: "*"}
		}
	}
	w, ok := r.open[k]
	if ok {
		if w.count == 0 {
			w.first = a.At
		}
		w.count++
		w.last = *a
	} else {
		r.open[k] = &refusalWindow{opened: now}
		r.byActor[k.actor]++
	}
	r.mu.Unlock()
	err := r.write(ctx, closed)
	if ok {
		return err
	}
	return errors.Join(err, r.store.InsertAudit(ctx, a))
}

// closeExpired takes the windows opened a Window or more before now out,
// returning their summary rows. r.mu is held.
func (r *Refusals) closeExpired(now time.Time) []Audit {
	var rows []Audit
	for k, w := range r.open {
		if now.Sub(w.opened) < r.cfg.Window {
			continue
		}
		delete(r.open, k)
		if r.byActor[k.actor]--; r.byActor[k.actor] <= 0 {
			delete(r.byActor, k.actor)
		}
		if w.count > 0 {
			rows = append(rows, summary(k, w))
		}
	}
	return rows
}

// summary is the row that stands for a window's refusals after its first.
func summary(k refusalKey, w *refusalWindow) Audit {
	a := w.last
	a.ID = 0
	a.Calls = w.count
	if k.operation == "*" {
		// A window of mixed refusals keeps the last one's fields, with no
		// task: it names none in particular.
		a.Component, a.TaskBefore, a.TaskAfter, a.StateBefore, a.StateAfter = "", "", "", "", ""
	}
	detail, _ := json.Marshal(map[string]any{"coalesced": map[string]any{
		"calls": w.count, "first": w.first.UTC(), "last": w.last.At.UTC(), "mixed": k.operation == "*",
	}})
	a.Detail = string(detail)
	return a
}

func (r *Refusals) write(ctx context.Context, rows []Audit) error {
	var errs []error
	for i := range rows {
		if err := r.store.InsertAudit(ctx, &rows[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Flush writes the summary rows of the windows that have closed, or of
// every window when all is set (at shutdown).
func (r *Refusals) Flush(ctx context.Context, all bool) error {
	now := r.now()
	if all {
		now = now.Add(r.cfg.Window)
	}
	r.mu.Lock()
	rows := r.closeExpired(now)
	r.mu.Unlock()
	return r.write(ctx, rows)
}

// Run writes summary rows as windows close, until ctx is done, then those
// of the windows still open.
func (r *Refusals) Run(ctx context.Context) {
	tick := time.NewTicker(max(r.cfg.Window/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(fctx, true); err != nil {
				r.log.Warn("writing coalesced refusals at shutdown", zap.Error(err))
			}
			return
		case <-tick.C:
			if err := r.Flush(ctx, false); err != nil {
				r.log.Warn("writing coalesced refusals", zap.Error(err))
			}
		}
	}
}
