package job_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/job"
	"github.com/connector-manager/cm/taskmgr/params"
)

// TestSchedulerRecoversAndSkips: a job that panics is recorded as failed
// and runs again on schedule; a job still running when its next tick comes
// is skipped, not run twice at once; stopping waits for running jobs.
func TestSchedulerRecoversAndSkips(t *testing.T) {
	ctx := context.Background()
	dsn, _ := model.ParseDSN("sqlite:" + filepath.Join(t.TempDir(), "cm.db"))
	store, err := model.Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ps := params.New(store)
	for _, name := range []string{params.JobAuditRetention, params.JobDelayWatch} {
		if err := ps.Update(ctx, "test", "", params.JobSchedule(name), "@every 1s"); err != nil {
			t.Fatal(err)
		}
	}
	var panics, slowRuns, running, overlap atomic.Int32
	jobs := []job.Job{
		{Name: params.JobAuditRetention, Run: func(context.Context, params.Set) (string, error) {
			panics.Add(1)
			panic("boom")
		}},
		{Name: params.JobDelayWatch, Run: func(ctx context.Context, _ params.Set) (string, error) {
			if running.Add(1) > 1 {
				overlap.Add(1)
			}
			defer running.Add(-1)
			slowRuns.Add(1)
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-ctx.Done():
			}
			return "slow", nil
		}},
	}
	s := job.NewScheduler("127.0.0.1-1", time.Second, store, ps, jobs, zap.NewNop())
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Lead(lctx) }()
	time.Sleep(3200 * time.Millisecond)
	stop()
	wg.Wait()
	if running.Load() != 0 {
		t.Fatal("Lead returned while a job was running")
	}
	// In 3.2 s an @every 1s job ticks at least 3 times.
	if p := panics.Load(); p < 3 {
		t.Fatalf("panicking job ran %d times; want it to run on every tick after a panic", p)
	}
	if overlap.Load() != 0 || slowRuns.Load() < 1 || slowRuns.Load() >= panics.Load() {
		t.Fatalf("slow job: %d runs in %d ticks, %d overlaps; want ticks skipped while it runs", slowRuns.Load(), panics.Load(), overlap.Load())
	}
	runs, err := store.JobRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Name == params.JobAuditRetention && (r.Result != model.ResultFailure || r.Error != "panic: boom") {
			t.Fatalf("panicking job's run: %+v", r)
		}
	}
}
