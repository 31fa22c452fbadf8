package model_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestLeaseContract: two contenders on separate connection pools (as two
// nodes would have) race for one lease on SQLite and MariaDB; exactly one
// wins each round, renewals need the holder's last expiry, and an expired
// lease can be taken over.
func TestLeaseContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a, b := open(t, url), open(t, url)
		if ids, err := a.AppliedMigrations(ctx); err != nil || len(ids) < 2 || ids[1] != "0002_cluster" {
			t.Fatalf("migrations = %v %v", ids, err)
		}
		now := time.Now()
		const ttl = 2 * time.Second

		// A first round: both try at once, from scratch.
		type res struct {
			ok  bool
			exp int64
			err error
		}
		var wg sync.WaitGroup
		out := make([]res, 2)
		for i, s := range []*model.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, exp, err := s.AcquireLease(ctx, "leader", []string{"A", "B"}[i], 0, now, ttl)
				out[i] = res{ok, exp, err}
			}()
		}
		wg.Wait()
		if out[0].err != nil || out[1].err != nil {
			t.Fatalf("errors: %v %v", out[0].err, out[1].err)
		}
		if out[0].ok == out[1].ok {
			t.Fatalf("both or neither won: %+v", out)
		}
		winner, loser, wExp := "A", "B", out[0].exp
		ws, ls := a, b
		if out[1].ok {
			winner, loser, wExp = "B", "A", out[1].exp
			ws, ls = b, a
		}
		l, err := a.GetLease(ctx, "leader")
		if err != nil || l.Holder != winner || l.ExpiresAt != wExp {
			t.Fatalf("lease = %+v %v, want %s until %d", l, err, winner, wExp)
		}

		// While it is valid, the loser cannot take it, with or without a guess.
		for _, prev := range []int64{0, wExp} {
			if ok, _, err := ls.AcquireLease(ctx, "leader", loser, prev, now.Add(time.Second), ttl); ok || err != nil {
				t.Fatalf("loser took a valid lease (prev %d): %v %v", prev, ok, err)
			}
		}
		// The holder renews with its last expiry; a stale expiry is refused.
		ok, exp2, err := ws.AcquireLease(ctx, "leader", winner, wExp, now.Add(time.Second), ttl)
		if !ok || err != nil || exp2 <= wExp {
			t.Fatalf("renew = %v %d %v", ok, exp2, err)
		}
		if ok, _, _ := ws.AcquireLease(ctx, "leader", winner, wExp, now.Add(1500*time.Millisecond), ttl); ok {
			t.Fatal("renew with a stale expiry succeeded")
		}
		// Once it expires the loser takes it, and the old holder's renewal fails.
		later := time.UnixMilli(exp2).Add(time.Millisecond)
		ok, exp3, err := ls.AcquireLease(ctx, "leader", loser, 0, later, ttl)
		if !ok || err != nil {
			t.Fatalf("take over after expiry = %v %v", ok, err)
		}
		if ok, _, _ := ws.AcquireLease(ctx, "leader", winner, exp2, later, ttl); ok {
			t.Fatal("the old holder renewed a lease taken over")
		}
		// Release lets the other side in at once.
		if err := ls.ReleaseLease(ctx, "leader", loser, exp3); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := ws.AcquireLease(ctx, "leader", winner, 0, later, ttl); !ok || err != nil {
			t.Fatalf("acquire after release = %v %v", ok, err)
		}

		// Many rounds of racing renewals and takeovers: never two holders.
		for round := 0; round < 20; round++ {
			at := later.Add(time.Duration(round+1) * 3 * ttl) // every round starts expired
			var wins int
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, s := range []*model.Store{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, _, err := s.AcquireLease(ctx, "leader", []string{"A", "B"}[i], 0, at, ttl)
					if err != nil {
						t.Errorf("round %d: %v", round, err)
					}
					if ok {
						mu.Lock()
						wins++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if wins != 1 {
				t.Fatalf("round %d: %d winners", round, wins)
			}
		}
	})
}

// TestJobRunsAndCounts covers the cluster bookkeeping queries.
func TestJobRunsAndCounts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		for i := 0; i < 2; i++ {
			r := &model.JobRun{Name: "j", Node: "127.0.0.1-1", StartedAt: time.Now(), DurationMS: int64(i), Result: model.ResultSuccess, Summary: "ok", Runs: 1}
			if err := s.SaveJobRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		runs, err := s.JobRuns(ctx)
		if err != nil || len(runs) != 1 || runs[0].Runs != 2 || runs[0].DurationMS != 1 {
			t.Fatalf("runs = %+v %v", runs, err)
		}
		for i, st := range []model.State{model.StateRunning, model.StateRunning, model.StateStopped} {
			tk := newTask([]string{"p-incr_trans-1-0", "p-incr_trans-2-0", "p-incr_trans-3-0"}[i])
			tk.State = st
			if err := s.CreateTask(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		counts, err := s.CountTasks(ctx)
		if err != nil || len(counts) != 2 || counts[0].State != model.StateRunning || counts[0].N != 2 || counts[1].N != 1 {
			t.Fatalf("counts = %+v %v", counts, err)
		}
	})
}
