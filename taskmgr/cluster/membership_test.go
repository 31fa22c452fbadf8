package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

func openStore(t *testing.T, url string) *model.Store {
	t.Helper()
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestNodeIDLease: two memberships with one node id, each on its own
// connection pool as two processes would be, on SQLite and MariaDB. The
// second is refused while the first is alive, with a message naming the
// holder; of two starting at once one wins; once the holder's heartbeat is
// older than node.suspectAfter the id is taken over and the old holder's
// Run returns the takeover; a released id, or one whose holder on this host
// has exited, is taken at once.
func TestNodeIDLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s1, s2 := openStore(t, url), openStore(t, url)
		const node = model.NodeID("127.0.0.1-7001")
		const beat = 10 * time.Millisecond
		m1 := NewMembership(node, beat, s1, "http://127.0.0.1:7001", "test", zap.NewNop())
		m2 := NewMembership(node, beat, s2, "http://127.0.0.1:7002", "test", zap.NewNop())
		if m1.Instance() == m2.Instance() || len(m1.Instance()) != 24 {
			t.Fatalf("instance ids %q and %q", m1.Instance(), m2.Instance())
		}

		// Of two starting at once, one wins.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*Membership{m1, m2} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = m.Register(ctx) }()
		}
		wg.Wait()
		var held *NodeHeldError
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("both or neither registered: %v / %v", errs[0], errs[1])
		}
		holder, other := m1, m2
		if errs[0] != nil {
			holder, other = m2, m1
		}
		refusal := errs[0]
		if refusal == nil {
			refusal = errs[1]
		}
		if !errors.As(refusal, &held) || held.TakenOver || !errors.Is(refusal, model.ErrConflict) {
			t.Fatalf("refusal = %v", refusal)
		}
		for _, want := range []string{"127.0.0.1-7001", holder.Instance(), fmt.Sprintf("pid %d", os.Getpid()), holder.addr, "--advertise"} {
			if !strings.Contains(refusal.Error(), want) {
				t.Errorf("refusal %q does not name %q", refusal, want)
			}
		}
		// Still refused at a second try: the holder is fresh.
		if err := other.Register(ctx); !errors.As(err, &held) {
			t.Fatalf("second try = %v", err)
		}

		// The holder's heartbeat ages past node.suspectAfter (10s by
		// default): the other takes the id, the holder's Run says so.
		n, err := s1.GetNode(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		n.SeenAt = time.Now().Add(-11 * time.Second)
		if err := s1.UpsertNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := other.Register(ctx); err != nil {
			t.Fatalf("register over a stale holder: %v", err)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = holder.Run(rctx)
		if !errors.As(err, &held) || !held.TakenOver || held.Holder.Instance != other.Instance() {
			t.Fatalf("old holder's Run = %v, want a takeover by %s", err, other.Instance())
		}
		if !strings.Contains(err.Error(), other.Instance()) || !strings.Contains(err.Error(), "taken over") {
			t.Errorf("takeover message %q", err)
		}

		// A holder on this host whose process has exited: taken at once,
		// though its heartbeat is fresh. One that still runs: refused.
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		third := NewMembership(node, beat, s1, "http://127.0.0.1:7003", "test", zap.NewNop())
		for _, pid := range []int{os.Getppid(), gone.Process.Pid} {
			n, _ := s1.GetNode(ctx, node)
			n.Instance, n.PID, n.SeenAt = "someone", pid, time.Now()
			if err := s1.UpsertNode(ctx, n); err != nil {
				t.Fatal(err)
			}
			err := third.Register(ctx)
			if pid == os.Getppid() && !errors.As(err, &held) {
				t.Fatalf("register over a live holder on this host = %v", err)
			}
			if pid == gone.Process.Pid && err != nil {
				t.Fatalf("register over an exited holder on this host: %v", err)
			}
		}

		// Released at a clean shutdown: free at once.
		if err := third.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := holder.Register(ctx); err != nil {
			t.Fatalf("register after release: %v", err)
		}
	})
}
