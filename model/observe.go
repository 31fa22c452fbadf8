package model

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/connector-manager/cm/migrations"
)

// Observer hears what the store did, for the node's metrics. Its methods
// must be cheap and must not call the store.
type Observer interface {
	// Query is called after each statement: op is create, query, update,
	// delete, row or raw; table the statement's table ("" for raw SQL).
	Query(op, table string, took time.Duration)
	// Transition is called once a write that moved a task from one state
	// to another has committed (its audit row says so).
	Transition(from, to State)
}

// observerBox is shared by a store and the stores of its transactions.
type observerBox struct{ o atomic.Pointer[Observer] }

func (b *observerBox) get() Observer {
	if b == nil {
		return nil
	}
	if p := b.o.Load(); p != nil {
		return *p
	}
	return nil
}

// Observe hands what the store does to o from now on. Call it before the
// node runs; a later call replaces the observer (the test harness wraps the
// node's metrics with a statement counter this way).
func (s *Store) Observe(o Observer) error {
	if s.obs == nil {
		return fmt.Errorf("%w: the store was not opened by Open", ErrInvalidArgument)
	}
	if s.obs.get() == nil {
		if err := registerQueryTiming(s.db, s.obs); err != nil {
			return err
		}
	}
	s.obs.o.Store(&o)
	return nil
}

const queryStartKey = "cm:query_start"

// registerQueryTiming times every statement with a pair of gorm callbacks
// around each of gorm's processors: one time.Now and one map store per
// statement.
func registerQueryTiming(db *gorm.DB, box *observerBox) error {
	before := func(tx *gorm.DB) { tx.InstanceSet(queryStartKey, time.Now()) }
	after := func(op string) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			o := box.get()
			if o == nil {
				return
			}
			v, ok := tx.InstanceGet(queryStartKey)
			if !ok {
				return
			}
			start, _ := v.(time.Time)
			o.Query(op, tx.Statement.Table, time.Since(start))
		}
	}
	cb := db.Callback()
	var errs []error
	reg := func(beforeErr, afterErr error) { errs = append(errs, beforeErr, afterErr) }
	reg(cb.Create().Before("*").Register("cm:timing_start_create", before), cb.Create().After("*").Register("cm:timing_end_create", after("create")))
	reg(cb.Query().Before("*").Register("cm:timing_start_query", before), cb.Query().After("*").Register("cm:timing_end_query", after("query")))
	reg(cb.Update().Before("*").Register("cm:timing_start_update", before), cb.Update().After("*").Register("cm:timing_end_update", after("update")))
	reg(cb.Delete().Before("*").Register("cm:timing_start_delete", before), cb.Delete().After("*").Register("cm:timing_end_delete", after("delete")))
	reg(cb.Row().Before("*").Register("cm:timing_start_row", before), cb.Row().After("*").Register("cm:timing_end_row", after("row")))
	reg(cb.Raw().Before("*").Register("cm:timing_start_raw", before), cb.Raw().After("*").Register("cm:timing_end_raw", after("raw")))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

// afterCommit runs fn once what s wrote has committed: at once outside a
// transaction, after the commit inside one (not at all on a rollback).
func (s *Store) afterCommit(fn func()) {
	if s.pending != nil {
		*s.pending = append(*s.pending, fn)
		return
	}
	fn()
}

// noteTransition tells the observer about an audit row that moved a task.
func (s *Store) noteTransition(a *Audit) {
	o := s.obs.get()
	if o == nil || a.StateBefore == "" || a.StateAfter == "" || a.StateBefore == a.StateAfter {
		return
	}
	from, to := a.StateBefore, a.StateAfter
	s.afterCommit(func() { o.Transition(from, to) })
}

// Ready says whether the node may take traffic as far as the store goes:
// it answers, and every migration this build knows is applied. The error
// says what is missing.
func (s *Store) Ready(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: the store does not answer: %v", ErrUnavailable, err)
	}
	applied, err := s.AppliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("reading the applied migrations: %w", err)
	}
	var missing []string
	for _, m := range migrations.All() {
		if !slices.Contains(applied, m.ID) {
			missing = append(missing, m.ID)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: migrations not applied: %v (run cm migrate)", ErrUnavailable, missing)
	}
	return nil
}
