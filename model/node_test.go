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

// TestNodeClaimContract: a node id is claimed with a compare-and-swap on
// what the claimer read, on SQLite and MariaDB: of two processes claiming
// at once (separate connection pools) exactly one wins, a fresh holder
// cannot be claimed away with a staleness bound, heartbeats are fenced by
// the instance, and a released id can be claimed at once.
func TestNodeClaimContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a, b := open(t, url), open(t, url)
		if ids, err := a.AppliedMigrations(ctx); err != nil || len(ids) < 3 || ids[2] != "0003_node_instance" {
			t.Fatalf("migrations = %v %v", ids, err)
		}
		const id = model.NodeID("127.0.0.1-8088")
		now := time.Now().UTC().Truncate(time.Millisecond)
		row := func(instance string, seen time.Time) *model.Node {
			return &model.Node{ID: id, Addr: "http://127.0.0.1:8088", Instance: instance, Host: "h-" + instance, PID: 7, StartedAt: seen, SeenAt: seen}
		}
		// race claims from two stores with the same view of the row; it
		// returns the instances that won.
		race := func(seen *model.Node, staleBefore time.Time, at time.Time) []string {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			names := []string{"A" + at.Format("150405.000"), "B" + at.Format("150405.000")}
			for i, s := range []*model.Store{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = s.ClaimNode(ctx, row(names[i], at), seen, staleBefore)
				}()
			}
			wg.Wait()
			var won []string
			for i, err := range errs {
				switch {
				case err == nil:
					won = append(won, names[i])
				case !errors.Is(err, model.ErrConflict):
					t.Fatalf("claim %s: %v", names[i], err)
				}
			}
			return won
		}

		// No row yet: both insert, one wins.
		won := race(nil, time.Time{}, now)
		if len(won) != 1 {
			t.Fatalf("first claims won by %v, want exactly one", won)
		}
		holder := won[0]
		n, err := a.GetNode(ctx, id)
		if err != nil || n.Instance != holder || n.Host != "h-"+holder || n.PID != 7 {
			t.Fatalf("row after the first claims = %+v %v", n, err)
		}

		// The holder heartbeats; a stale instance is fenced; an unknown id is not found.
		if err := a.TouchNode(ctx, id, holder, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := b.TouchNode(ctx, id, "someone-else", now.Add(time.Second)); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("touch by another instance = %v, want conflict", err)
		}
		if err := b.TouchNode(ctx, "127.0.0.1-9", holder, now); !errors.Is(err, model.ErrNotFound) {
			t.Fatalf("touch of an unknown id = %v, want not found", err)
		}

		// While the holder is fresh (seen at now+1s), a claim bounded by
		// "not seen since now" fails, even with the right instance.
		seen, _ := a.GetNode(ctx, id)
		if err := b.ClaimNode(ctx, row("C", now.Add(2*time.Second)), seen, now); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("claim of a fresh holder = %v, want conflict", err)
		}
		// A claim made on an outdated view (the instance changed) fails.
		if err := b.ClaimNode(ctx, row("C", now.Add(2*time.Second)), &model.Node{ID: id, Instance: "gone"}, time.Time{}); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("claim with an outdated view = %v, want conflict", err)
		}

		// Once it is stale, two claimers racing on the same view: one wins,
		// and the old holder's heartbeat is fenced from then on.
		later := now.Add(time.Minute)
		won = race(seen, now.Add(30*time.Second), later)
		if len(won) != 1 {
			t.Fatalf("takeover claims won by %v, want exactly one", won)
		}
		if err := a.TouchNode(ctx, id, holder, later); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("heartbeat of the old holder after the takeover = %v, want conflict", err)
		}
		holder = won[0]

		// Release: a no-op for another instance, then the id is free.
		if err := b.ReleaseNode(ctx, id, "someone-else"); err != nil {
			t.Fatal(err)
		}
		if n, _ := a.GetNode(ctx, id); n.Instance != holder {
			t.Fatalf("released by another instance: %+v", n)
		}
		if err := a.ReleaseNode(ctx, id, holder); err != nil {
			t.Fatal(err)
		}
		released, _ := a.GetNode(ctx, id)
		if released.Instance != "" || !released.SeenAt.Equal(later) {
			t.Fatalf("after release = %+v, want no instance and seen_at kept", released)
		}
		if err := b.ClaimNode(ctx, row("D", later), released, time.Time{}); err != nil {
			t.Fatalf("claim of a released id: %v", err)
		}
		if err := a.TouchNode(ctx, id, holder, later); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("heartbeat of the released holder = %v, want conflict", err)
		}
	})
}
