package model_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func refusal(actor, op, comp, code string, at time.Time, i int) *model.Audit {
	return &model.Audit{At: at, Actor: actor, Operation: op, Component: comp, Result: model.ResultFailure, ErrCode: code,
		ErrMsg: fmt.Sprintf("refused %d", i), RequestID: fmt.Sprintf("req-%d", i)}
}

func calls(t *testing.T, s *model.Store) (rows int, total int64, all []model.Audit) {
	t.Helper()
	all, err := s.ListAudit(context.Background(), model.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		total += a.Calls
	}
	return len(all), total, all
}

// TestRefusalsCoalesce: a storm of identical refusals writes the first row
// at once and one summary row per window, counting the rest; the sum of
// the rows' calls is the number of refusals, and no row is written twice.
func TestRefusalsCoalesce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		r := model.NewRefusals(model.RefusalConfig{Window: time.Minute, PerActor: 5, MaxOpen: 100}, s, zap.NewNop())
		r.SetClock(clock.now)

		const storm = 500
		tasks := []string{"a-incr_trans-1-0", "b-incr_trans-1-0", "c-incr_trans-1-0"}
		for i := 0; i < storm; i++ {
			if err := r.Record(ctx, refusal("anonymous@127.0.0.1", "stop", tasks[i%3], "TASK_BUSY", clock.now(), i)); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if rows, _, _ := calls(t, s); rows != 1 {
					t.Fatalf("the first refusal wrote %d rows, want 1 at once", rows)
				}
			}
			clock.add(100 * time.Millisecond) // 500 refusals over 50 s: one window
		}
		if rows, total, _ := calls(t, s); rows != 3 || total != 3 {
			t.Fatalf("within the window: %d rows for %d calls, want the 3 first refusals", rows, total)
		}
		clock.add(time.Minute)
		if err := r.Flush(ctx, false); err != nil {
			t.Fatal(err)
		}
		rows, total, all := calls(t, s)
		if rows != 6 || total != storm {
			t.Fatalf("after the window: %d rows for %d calls, want 6 rows for %d", rows, total, storm)
		}
		for _, a := range all {
			if a.Calls > 1 {
				var d struct {
					Coalesced struct {
						Calls int64 `json:"calls"`
					} `json:"coalesced"`
				}
				if err := json.Unmarshal([]byte(a.Detail), &d); err != nil || d.Coalesced.Calls != a.Calls || a.ErrCode != "TASK_BUSY" || a.RequestID == "" {
					t.Fatalf("summary row %+v: detail %v", a, err)
				}
			}
		}
		// Another errCode, another operation or another actor is another window.
		for _, a := range []*model.Audit{
			refusal("anonymous@127.0.0.1", "stop", tasks[0], "ILLEGAL_STATE", clock.now(), 1),
			refusal("anonymous@127.0.0.1", "resume", tasks[0], "TASK_BUSY", clock.now(), 2),
			refusal("ops@127.0.0.2", "stop", tasks[0], "TASK_BUSY", clock.now(), 3),
		} {
			if err := r.Record(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if rows, total, _ := calls(t, s); rows != 9 || total != storm+3 {
			t.Fatalf("three distinct refusals: %d rows for %d calls, want 9 for %d", rows, total, storm+3)
		}
		// At shutdown the open windows write their summaries.
		for i := 0; i < 10; i++ {
			if err := r.Record(ctx, refusal("ops@127.0.0.2", "stop", tasks[0], "TASK_BUSY", clock.now(), i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Flush(ctx, true); err != nil {
			t.Fatal(err)
		}
		if rows, total, _ := calls(t, s); rows != 10 || total != storm+13 {
			t.Fatalf("after the shutdown flush: %d rows for %d calls, want 10 for %d", rows, total, storm+13)
		}
	})
}

// TestRefusalsBudget: a client naming a new task on every call opens at
// most PerActor windows; the rest of its refusals share one.
func TestRefusalsBudget(t *testing.T) {
	ctx := context.Background()
	s := open(t, dbtest.SQLiteURL(t))
	clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := model.NewRefusals(model.RefusalConfig{Window: time.Minute, PerActor: 5, MaxOpen: 8}, s, zap.NewNop())
	r.SetClock(clock.now)
	const storm = 1000
	for i := 0; i < storm; i++ {
		if err := r.Record(ctx, refusal("sprayer", "stop", fmt.Sprintf("t%d-incr_trans-1-0", i), "TASK_NOT_FOUND", clock.now(), i)); err != nil {
			t.Fatal(err)
		}
	}
	// A second client finds the table nearly full: it gets the windows
	// left, then shares the one of every actor.
	for i := 0; i < storm; i++ {
		if err := r.Record(ctx, refusal("other", "stop", fmt.Sprintf("t%d-incr_trans-1-0", i), "TASK_NOT_FOUND", clock.now(), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	rows, total, _ := calls(t, s)
	// sprayer: 5 firsts + its own window (first + summary); other: 1 first
	// (table then full at 8), then the shared window (first + summary).
	if total != 2*storm || rows > 12 {
		t.Fatalf("%d rows for %d calls, want at most 12 for %d", rows, total, 2*storm)
	}
	t.Logf("%d refusals wrote %d rows", 2*storm, rows)
}
