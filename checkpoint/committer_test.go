package checkpoint_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

const node = "127.0.0.1-8088"

// openStore opens a migrated store with n incr tasks p_c-incr_trans-<i>-0 at
// version 1 on node, each with its heartbeat claimed.
func openStore(t *testing.T, url string, n int) (*model.Store, []string) {
	t.Helper()
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := model.Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var comps []string
	for i := 1; i <= n; i++ {
		comp := "p_c-incr_trans-" + string(rune('0'+i)) + "-0"
		tk := &model.Task{Component: comp, Project: "p_c", Type: model.TypeIncr, Node: node, Version: 1,
			Desired: model.DesiredRunning, State: model.StateRunning, Config: "{}"}
		if err := s.CreateTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		if err := s.ClaimHeartbeat(ctx, comp, 1, node); err != nil {
			t.Fatal(err)
		}
		comps = append(comps, comp)
	}
	return s, comps
}

func pos(sub string, ts int64, token string) []checkpoint.Position {
	return []checkpoint.Position{{Subtopic: sub, TS: ts, Token: token}}
}

func durable(t *testing.T, s *model.Store, comp string) model.Checkpoint {
	t.Helper()
	cps, err := s.Checkpoints(context.Background(), comp)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints of %s = %+v, %v", comp, cps, err)
	}
	return cps[0]
}

// TestCommitterBackwardReportInBatch: one task of three reports a time lower
// than its last, in the middle of a flush. Every report lands; the bad one
// moves its token and keeps the higher time, and is reported to Held once.
func TestCommitterBackwardReportInBatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s, comps := openStore(t, url, 3)
		var mu sync.Mutex
		var held []checkpoint.HeldTime
		c := checkpoint.NewCommitter(checkpoint.CommitterConfig{}, s, zap.NewNop(), checkpoint.Hooks{
			Held: func(comp string, version int64, h checkpoint.HeldTime) {
				mu.Lock()
				defer mu.Unlock()
				if comp != comps[1] || version != 1 {
					t.Errorf("held reported for %s v%d", comp, version)
				}
				held = append(held, h)
			},
		})
		ctx := context.Background()
		for _, comp := range comps {
			c.Register(comp, 1, nil)
			c.Track(comp, 1, pos("s", 1700000100, "a"), nil)
		}
		if err := c.Flush(ctx, ""); err != nil {
			t.Fatal(err)
		}
		before := map[string]time.Time{}
		hbs, _ := s.Heartbeats(ctx, comps)
		for _, comp := range comps {
			before[comp] = hbs[comp].At
		}
		time.Sleep(1100 * time.Millisecond) // heartbeat times are stored to the second on MariaDB
		c.Track(comps[0], 1, pos("s", 1700000110, "b"), nil)
		c.Track(comps[1], 1, pos("s", 1700000090, "b"), nil) // backwards
		c.Track(comps[2], 1, pos("s", 1700000110, "b"), nil)
		if err := c.Flush(ctx, ""); err != nil {
			t.Fatalf("a flush with a backward report failed: %v", err)
		}
		for i, want := range []int64{1700000110, 1700000100, 1700000110} {
			if cp := durable(t, s, comps[i]); cp.TS != want || cp.Token != "b" {
				t.Fatalf("%s = ts %d token %q, want ts %d token b", comps[i], cp.TS, cp.Token, want)
			}
		}
		hbs, _ = s.Heartbeats(ctx, comps)
		for _, comp := range comps {
			if !hbs[comp].At.After(before[comp]) {
				t.Fatalf("heartbeat of %s did not move: %v -> %v", comp, before[comp], hbs[comp].At)
			}
		}
		// Again backwards: held, but Held hears of a subtopic once.
		c.Track(comps[1], 1, pos("s", 1700000095, "c"), nil)
		if err := c.Flush(ctx, comps[1]); err != nil {
			t.Fatal(err)
		}
		if cp := durable(t, s, comps[1]); cp.TS != 1700000100 || cp.Token != "c" {
			t.Fatalf("second backward report: %+v", cp)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(held) != 1 || held[0] != (checkpoint.HeldTime{Subtopic: "s", Reported: 1700000090, Kept: 1700000100}) {
			t.Fatalf("held = %+v, want one report of 1700000090 kept at 1700000100", held)
		}
	})
}

// TestCommitterResumeFloor: positions an incarnation resumed from are the
// floor of its later reports.
func TestCommitterResumeFloor(t *testing.T) {
	s, comps := openStore(t, dbtest.SQLiteURL(t), 1)
	c := checkpoint.NewCommitter(checkpoint.CommitterConfig{}, s, zap.NewNop(), checkpoint.Hooks{})
	c.Register(comps[0], 1, map[string]checkpoint.Position{"s": {Subtopic: "s", TS: 500, Token: "x"}})
	c.Track(comps[0], 1, pos("s", 400, "y"), nil)
	if err := c.Flush(context.Background(), comps[0]); err != nil {
		t.Fatal(err)
	}
	if cp := durable(t, s, comps[0]); cp.TS != 500 || cp.Token != "y" {
		t.Fatalf("checkpoint = %+v, want ts 500 (the resume point) token y", cp)
	}
}

// failing is the real store, except that a write including a report of
// component bad fails while fail is set.
type failing struct {
	*model.Store
	mu   sync.Mutex
	bad  string
	fail bool
}

var errInjected = errors.New("injected store failure")

func (f *failing) SaveProgress(ctx context.Context, reports []model.Progress) ([]string, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	for _, r := range reports {
		if fail && r.Component == f.bad {
			return nil, errInjected
		}
	}
	return f.Store.SaveProgress(ctx, reports)
}

// TestCommitterIsolatesAFailingReport: a report the store cannot take fails
// only its own task; the others of the same flush land, and the failed one
// is retried by a later flush.
func TestCommitterIsolatesAFailingReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s, comps := openStore(t, url, 3)
		f := &failing{Store: s, bad: comps[1], fail: true}
		c := checkpoint.NewCommitter(checkpoint.CommitterConfig{}, f, zap.NewNop(), checkpoint.Hooks{})
		ctx := context.Background()
		for i, comp := range comps {
			c.Register(comp, 1, nil)
			c.Track(comp, 1, pos("s", int64(100+i), "a"), nil)
		}
		if err := c.Flush(ctx, ""); !errors.Is(err, errInjected) {
			t.Fatalf("flush = %v, want the injected failure reported", err)
		}
		for _, i := range []int{0, 2} {
			if cp := durable(t, s, comps[i]); cp.Token != "a" {
				t.Fatalf("%s did not land beside the failing report: %+v", comps[i], cp)
			}
		}
		if cps, _ := s.Checkpoints(ctx, comps[1]); len(cps) != 0 {
			t.Fatalf("the failing report landed: %+v", cps)
		}
		if err := c.Flush(ctx, comps[0]); err != nil {
			t.Fatalf("flushing a healthy task alone: %v", err)
		}
		f.mu.Lock()
		f.fail = false
		f.mu.Unlock()
		if err := c.Flush(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if cp := durable(t, s, comps[1]); cp.TS != 101 || cp.Token != "a" {
			t.Fatalf("the failed report was not retried: %+v", cp)
		}
	})
}

// TestCommitterFencedReportInBatch: a superseded incarnation's report is
// refused and reported to Fenced; the rest of the flush lands.
func TestCommitterFencedReportInBatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s, comps := openStore(t, url, 3)
		ctx := context.Background()
		tk, err := s.GetTask(ctx, comps[1])
		if err != nil {
			t.Fatal(err)
		}
		tk.Version = 2
		if err := s.UpdateTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		var fenced []string
		c := checkpoint.NewCommitter(checkpoint.CommitterConfig{}, s, zap.NewNop(), checkpoint.Hooks{
			Fenced: func(comp string, version int64) { fenced = append(fenced, comp) },
		})
		for _, comp := range comps {
			c.Register(comp, 1, nil)
			c.Track(comp, 1, pos("s", 100, "a"), nil)
		}
		if err := c.Flush(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if len(fenced) != 1 || fenced[0] != comps[1] {
			t.Fatalf("fenced = %v, want [%s]", fenced, comps[1])
		}
		for _, i := range []int{0, 2} {
			if cp := durable(t, s, comps[i]); cp.Token != "a" {
				t.Fatalf("%s: %+v", comps[i], cp)
			}
		}
		if err := c.Flush(ctx, comps[1]); err != nil {
			t.Fatalf("flush of an unregistered (fenced) task = %v, want nothing to do", err)
		}
	})
}

// TestCommitterFlushesEveryDueReport: one flush writes every due report,
// MaxBatch to a transaction, so a node with more tasks than MaxBatch leaves
// no heartbeat or position for a later flush.
func TestCommitterFlushesEveryDueReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s, comps := openStore(t, url, 5)
		var chunks []int
		c := checkpoint.NewCommitter(checkpoint.CommitterConfig{Interval: time.Hour, Heartbeat: time.Hour, MaxBatch: 2}, s, zap.NewNop(), checkpoint.Hooks{
			Flushed: func(reports int, _ time.Duration, err error) {
				if err != nil {
					t.Errorf("flush: %v", err)
				}
				chunks = append(chunks, reports)
			},
		})
		for i, comp := range comps {
			c.Register(comp, 1, nil)
			c.Track(comp, 1, pos("s", int64(100+i), "t"), nil)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.Run(ctx) // the last flush, once ctx is done
		for i, comp := range comps {
			if cp := durable(t, s, comp); cp.TS != int64(100+i) {
				t.Errorf("%s: checkpoint %d, want %d", comp, cp.TS, 100+i)
			}
		}
		if len(chunks) != 3 || chunks[0]+chunks[1]+chunks[2] != 5 || chunks[0] > 2 || chunks[1] > 2 || chunks[2] > 2 {
			t.Errorf("one flush wrote transactions of %v reports; want 3 of at most 2, 5 in all", chunks)
		}
	})
}

// slow is a store whose SaveProgress takes a while and is counted.
type slow struct {
	*model.Store
	calls atomic.Int64
}

func (s *slow) SaveProgress(ctx context.Context, reports []model.Progress) ([]string, error) {
	s.calls.Add(1)
	time.Sleep(50 * time.Millisecond)
	return s.Store.SaveProgress(ctx, reports)
}

// TestCommitterGroupsFlushes: Flush calls that arrive while a flush runs
// are served by the next one together (one transaction for all), and each
// still learns about its own component: durable, or fenced.
func TestCommitterGroupsFlushes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s, comps := openStore(t, url, 9)
		st := &slow{Store: s}
		c := checkpoint.NewCommitter(checkpoint.CommitterConfig{Interval: time.Hour, Heartbeat: time.Hour}, st, zap.NewNop(), checkpoint.Hooks{})
		ctx := context.Background()
		for i, comp := range comps {
			c.Register(comp, 1, nil)
			c.Track(comp, 1, pos("s", int64(100+i), "a"), nil)
		}
		// comps[8]'s incarnation is superseded: its report is fenced.
		tk, err := s.GetTask(ctx, comps[8])
		if err != nil {
			t.Fatal(err)
		}
		tk.Version = 2
		if err := s.UpdateTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, len(comps))
		var wg sync.WaitGroup
		for i, comp := range comps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.Flush(ctx, comp)
			}()
		}
		wg.Wait()
		for i, comp := range comps[:8] {
			if errs[i] != nil {
				t.Errorf("Flush(%s) = %v", comp, errs[i])
			}
			if cp := durable(t, s, comp); cp.TS != int64(100+i) {
				t.Errorf("%s: checkpoint %d, want %d", comp, cp.TS, 100+i)
			}
		}
		if !errors.Is(errs[8], model.ErrFenced) {
			t.Errorf("Flush of the superseded incarnation = %v, want ErrFenced", errs[8])
		}
		// The first call flushes alone (or with whoever came in time); the
		// rest arrive while it writes and share the next one.
		if n := st.calls.Load(); n > 3 {
			t.Errorf("9 concurrent Flush calls took %d transactions, want at most 3", n)
		}
	})
}
