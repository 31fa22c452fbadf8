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
			<-ctx.Done() // holds its slot until the scheduler stops
			return "slow", nil
		}},
	}
	s := job.NewScheduler("127.0.0.1-1", time.Second, store, ps, jobs, zap.NewNop())
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Lead(lctx) }()
	// Wait on the recorded runs, not on time: three runs of the panicking
	// job are three ticks, each recorded even though it panicked.
	deadline := time.Now().Add(30 * time.Second)
	for recordedRuns(t, store, params.JobAuditRetention) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the panicking job was not recorded 3 times within 30 s (%d runs started)", panics.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Over those ticks the slow job held its slot: its later ticks were
	// skipped, not run beside it.
	if n := slowRuns.Load(); n != 1 || overlap.Load() != 0 {
		t.Fatalf("slow job: %d runs, %d overlaps while it held its slot; want 1 and 0", n, overlap.Load())
	}
	stop()
	wg.Wait()
	if running.Load() != 0 {
		t.Fatal("Lead returned while a job was running")
	}
	// Stopping waited for the slow job, whose run is recorded.
	if n := recordedRuns(t, store, params.JobDelayWatch); n != 1 {
		t.Fatalf("the slow job's run recorded %d times after Lead returned, want 1", n)
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

// recordedRuns is how many runs of job the store recorded.
func recordedRuns(t *testing.T, store *model.Store, name string) int64 {
	t.Helper()
	runs, err := store.JobRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Name == name {
			return r.Runs
		}
	}
	return 0
}
