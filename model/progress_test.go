package model_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestProgressOf: the one joined read answers what CheckpointsOf and
// Heartbeats answer, for a task with a heartbeat and checkpoints, one with a
// heartbeat only, one with neither, and a component with no task.
func TestProgressOf(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s := open(t, url)
		ctx := context.Background()
		comps := []string{"a-incr_trans-1-0", "b-incr_trans-1-0", "c-incr_trans-1-0"}
		for _, c := range comps {
			if err := s.CreateTask(ctx, newTask(c)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range comps[:2] {
			if err := s.ClaimHeartbeat(ctx, c, 1, "127.0.0.1-8088"); err != nil {
				t.Fatal(err)
			}
		}
		fenced, err := s.SaveProgress(ctx, []model.Progress{
			{Component: comps[0], Version: 1, Beat: time.Now(), Metrics: `{"records":3}`,
				Positions: []model.CheckpointPosition{{Subtopic: "b", TS: 7, Token: "x"}, {Subtopic: "a", TS: 9}}},
			{Component: comps[1], Version: 1, Beat: time.Now()},
		})
		if err != nil || len(fenced) != 0 {
			t.Fatalf("saving progress: %v, fenced %v", err, fenced)
		}
		asked := append(comps, "d-incr_trans-1-0")
		wantCps, err := s.CheckpointsOf(ctx, asked)
		if err != nil {
			t.Fatal(err)
		}
		wantHbs, err := s.Heartbeats(ctx, asked)
		if err != nil {
			t.Fatal(err)
		}
		cps, hbs, err := s.ProgressOf(ctx, asked)
		if err != nil {
			t.Fatal(err)
		}
		if len(wantCps[comps[0]]) != 2 || len(wantHbs) != 2 {
			t.Fatalf("the fixture did not land: %+v %+v", wantCps, wantHbs)
		}
		utc := func(cps map[string][]model.Checkpoint, hbs map[string]model.Heartbeat) (map[string][]model.Checkpoint, map[string]model.Heartbeat) {
			oc, oh := map[string][]model.Checkpoint{}, map[string]model.Heartbeat{}
			for k, list := range cps {
				for _, c := range list {
					c.UpdatedAt = c.UpdatedAt.UTC()
					oc[k] = append(oc[k], c)
				}
			}
			for k, h := range hbs {
				h.At = h.At.UTC()
				oh[k] = h
			}
			return oc, oh
		}
		gc, gh := utc(cps, hbs)
		wc, wh := utc(wantCps, wantHbs)
		if !reflect.DeepEqual(gc, wc) || !reflect.DeepEqual(gh, wh) {
			t.Fatalf("ProgressOf = %+v %+v, want %+v %+v", gc, gh, wc, wh)
		}

		// TaskWithProgress: the task row as GetTask reads it, with the same
		// progress, in one statement.
		for _, c := range comps {
			want, err := s.GetTask(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if c == comps[0] {
				// Text columns set, to read them back.
				want.SetErrors([]model.ErrorDetail{{Code: "X", Message: "m"}})
				want.Journal = `{"op":"pullback"}`
				if err := s.UpdateTask(ctx, want); err != nil {
					t.Fatal(err)
				}
				if want, err = s.GetTask(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			task, cps, hb, err := s.TaskWithProgress(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			want.CreatedAt, want.UpdatedAt = want.CreatedAt.UTC(), want.UpdatedAt.UTC()
			if !reflect.DeepEqual(task, want) {
				t.Errorf("TaskWithProgress(%s) task = %+v, want %+v", c, task, want)
			}
			gc, gh := utc(map[string][]model.Checkpoint{c: cps}, nil)
			if len(cps) == 0 {
				gc = map[string][]model.Checkpoint{}
			}
			if hb != nil {
				_, gh = utc(nil, map[string]model.Heartbeat{c: *hb})
			}
			wantC := map[string][]model.Checkpoint{}
			if l, ok := wc[c]; ok {
				wantC[c] = l
			}
			wantH := map[string]model.Heartbeat{}
			if h, ok := wh[c]; ok {
				wantH[c] = h
			}
			if !reflect.DeepEqual(gc, wantC) || !reflect.DeepEqual(gh, wantH) {
				t.Errorf("TaskWithProgress(%s) progress = %+v %+v, want %+v %+v", c, gc, gh, wantC, wantH)
			}
		}
		if _, _, _, err := s.TaskWithProgress(ctx, "d-incr_trans-1-0"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("TaskWithProgress of no task: %v, want ErrNotFound", err)
		}
	})
}

// TestHeartbeatsInOneStatement: a flush of many tasks' heartbeats is one
// UPDATE per 500 tasks, each row keeps its own metrics, and a report of a
// superseded incarnation (here one among 600) is named in fenced while the
// others land.
func TestHeartbeatsInOneStatement(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s := open(t, url)
		ctx := context.Background()
		const n = 600
		var reports []model.Progress
		at := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
		for i := 0; i < n; i++ {
			c := fmt.Sprintf("t%03d-incr_trans-1-0", i)
			if err := s.CreateTask(ctx, newTask(c)); err != nil {
				t.Fatal(err)
			}
			if err := s.ClaimHeartbeat(ctx, c, 1, "127.0.0.1-8088"); err != nil {
				t.Fatal(err)
			}
			version := int64(1)
			if i == 517 {
				version = 0 // an older incarnation's report
			}
			reports = append(reports, model.Progress{Component: c, Version: version, Beat: at, Metrics: fmt.Sprintf(`{"i":%d}`, i)})
		}
		count := &statements{}
		if err := s.Observe(count); err != nil {
			t.Fatal(err)
		}
		fenced, err := s.SaveProgress(ctx, reports)
		if err != nil || len(fenced) != 1 || fenced[0] != "t517-incr_trans-1-0" {
			t.Fatalf("SaveProgress: %v, fenced %v; want only t517", err, fenced)
		}
		// Two UPDATEs (500 + 100) and, for the chunk with the fenced
		// report, one read of its rows' versions.
		if got := count.n.Load(); got != 3 {
			t.Errorf("SaveProgress of %d heartbeats ran %d statements, want 3", n, got)
		}
		var comps []string
		for _, r := range reports {
			comps = append(comps, r.Component)
		}
		hbs, err := s.Heartbeats(ctx, comps)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reports {
			hb := hbs[r.Component]
			if i == 517 {
				if hb.At.Equal(at) || hb.Metrics != "" {
					t.Errorf("the superseded report landed: %+v", hb)
				}
				continue
			}
			if !hb.At.Equal(at) || hb.Metrics != r.Metrics {
				t.Errorf("%s: heartbeat %+v, want at %s metrics %s", r.Component, hb, at, r.Metrics)
			}
		}
	})
}

// statements counts the statements of a store.
type statements struct{ n atomic.Int64 }

func (c *statements) Query(op, table string, took time.Duration) { c.n.Add(1) }
func (c *statements) Transition(from, to model.State)            {}
