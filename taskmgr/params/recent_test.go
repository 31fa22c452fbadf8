package params

import (
	"context"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestRecentSnapshot: Recent answers from a snapshot for up to a second,
// then reads again; a change made through this service shows at once, one
// made elsewhere (another node) within the second.
func TestRecentSnapshot(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		dsn, err := model.ParseDSN(url)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		store, err := model.Open(ctx, dsn, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		clock := time.Unix(1_700_000_000, 0)
		p := New(store)
		p.now = func() time.Time { return clock }
		elsewhere := New(store)
		stale := func() time.Duration {
			t.Helper()
			set, err := p.Recent(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return set.Duration(HeartbeatStaleAfter)
		}
		def := stale()
		if err := elsewhere.Update(ctx, "test", "", HeartbeatStaleAfter, "45s"); err != nil {
			t.Fatal(err)
		}
		if got := stale(); got != def {
			t.Fatalf("within the second Recent read again: %s, want the snapshot's %s", got, def)
		}
		clock = clock.Add(time.Second)
		if got := stale(); got != 45*time.Second {
			t.Fatalf("a second later: %s, want 45s", got)
		}
		if err := p.Update(ctx, "test", "", HeartbeatStaleAfter, "50s"); err != nil {
			t.Fatal(err)
		}
		if got := stale(); got != 50*time.Second {
			t.Fatalf("after this service's own update: %s, want 50s at once", got)
		}
	})
}
