package model_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// seen keeps what the store told its observer.
type seen struct {
	mu          sync.Mutex
	queries     map[string]int
	transitions []string
}

func (s *seen) Query(op, table string, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[op+" "+table]++
}

func (s *seen) Transition(from, to model.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transitions = append(s.transitions, string(from)+">"+string(to))
}

// TestObserverSeesCommittedTransitionsOnly: a state change's audit row is
// reported once its transaction commits, not when it rolls back; an audit
// row that changes no state is not a transition; statements are timed by
// operation and table.
func TestObserverSeesCommittedTransitionsOnly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s := open(t, url)
		obs := &seen{queries: map[string]int{}}
		if err := s.Observe(obs); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		audit := func(from, to model.State) *model.Audit {
			return &model.Audit{Actor: "test", Operation: "stop", Component: "p_1-incr_trans-1-0", StateBefore: from, StateAfter: to, Result: model.ResultSuccess}
		}
		boom := errors.New("rolled back")
		if err := s.Tx(ctx, func(tx *model.Store) error {
			if err := tx.InsertAudit(ctx, audit(model.StateRunning, model.StateStopping)); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Tx = %v", err)
		}
		if len(obs.transitions) != 0 {
			t.Fatalf("a rolled-back write was counted: %v", obs.transitions)
		}
		if err := s.Tx(ctx, func(tx *model.Store) error {
			return tx.InsertAudit(ctx, audit(model.StateRunning, model.StateStopping))
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertAudit(ctx, audit(model.StateStopping, model.StateStopped)); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertAudit(ctx, audit(model.StateRunning, model.StateRunning)); err != nil {
			t.Fatal(err)
		}
		if err := s.Ready(ctx); err != nil {
			t.Fatalf("Ready on a migrated store: %v", err)
		}
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if got := obs.transitions; len(got) != 2 || got[0] != "RUNNING>STOPPING" || got[1] != "STOPPING>STOPPED" {
			t.Fatalf("transitions = %v, want RUNNING>STOPPING STOPPING>STOPPED", got)
		}
		if obs.queries["create operation_audit_log"] < 4 {
			t.Fatalf("audit inserts timed: %v", obs.queries)
		}
	})
}
