package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Job is a named cluster-wide job. Run must be idempotent: a run may be
// repeated or cut short by a lost lease, and no job is the only path to
// correctness.
type Job struct {
	Name string
	Run  func(ctx context.Context, set params.Set) (summary string, err error)
}

// Scheduler runs the cluster-wide jobs with robfig/cron while this node
// leads (see cluster.Lease). Each job's schedule is the system parameter
// job.<name>.schedule, re-read every Resync, so a change applies without a
// restart. Each job recovers from panics, is skipped while its previous
// run is still going, and records its last run in job_runs.
type Scheduler struct {
	node   model.NodeID
	store  *model.Store
	params *params.Service
	jobs   []Job
	log    *zap.Logger
	// Resync is how often schedules are re-read from the parameters.
	Resync time.Duration
	// recorder hears of every run (SetRecorder); nil records nothing.
	recorder Recorder
}

// Recorder hears how each job run went, for the node's metrics.
type Recorder interface {
	JobRan(job string, took time.Duration, err error)
}

// SetRecorder has every job run reported to r. Call it before Lead.
func (s *Scheduler) SetRecorder(r Recorder) { s.recorder = r }

// NewScheduler builds the scheduler of node's jobs; their schedules are
// re-read every resync.
func NewScheduler(node model.NodeID, resync time.Duration, store *model.Store, ps *params.Service, jobs []Job, log *zap.Logger) *Scheduler {
	return &Scheduler{node: node, store: store, params: ps, jobs: jobs, log: log.Named("cron"), Resync: resync}
}

// Lead runs the jobs until ctx is done, then waits for running jobs to
// return. It is the lead function of the leader lease.
func (s *Scheduler) Lead(ctx context.Context) {
	clog := cronLogger{s.log}
	c := cron.New(cron.WithParser(params.ScheduleParser), cron.WithLogger(clog), cron.WithLocation(time.UTC))
	type entry struct {
		id   cron.EntryID
		spec string
	}
	entries := map[string]entry{}
	// The chain is built once per job, so skip-if-still-running holds
	// across schedule changes. Recover goes inside SkipIfStillRunning: in
	// cron v3.0.1 a panic through SkipIfStillRunning would keep its token
	// and the job would never run again.
	wrapped := map[string]cron.Job{}
	for _, j := range s.jobs {
		wrapped[j.Name] = cron.NewChain(cron.SkipIfStillRunning(clog), cron.Recover(clog)).Then(s.runner(ctx, j))
	}
	sync := func() {
		set, err := s.params.Snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("reading job schedules", zap.Error(err))
			}
			return
		}
		for _, j := range s.jobs {
			spec := set.Schedule(j.Name)
			if e, ok := entries[j.Name]; ok && e.spec == spec {
				continue
			}
			if e, ok := entries[j.Name]; ok {
				c.Remove(e.id)
			}
			id, err := c.AddJob(spec, wrapped[j.Name])
			if err != nil {
				s.log.Warn("bad job schedule", zap.String("job", j.Name), zap.String("schedule", spec), zap.Error(err))
				delete(entries, j.Name)
				continue
			}
			entries[j.Name] = entry{id, spec}
			s.log.Info("job scheduled", zap.String("job", j.Name), zap.String("schedule", spec))
		}
	}
	sync()
	c.Start()
	tick := time.NewTicker(s.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-c.Stop().Done()
			return
		case <-tick.C:
			sync()
		}
	}
}

// runner runs one job and records how it went, even if it panics (the
// panic goes on to cron.Recover).
func (s *Scheduler) runner(ctx context.Context, j Job) cron.Job {
	return cron.FuncJob(func() {
		if ctx.Err() != nil {
			return
		}
		started := time.Now()
		run := &model.JobRun{Name: j.Name, Node: s.node, StartedAt: started.UTC(), Runs: 1}
		defer func() {
			p := recover()
			run.DurationMS = time.Since(started).Milliseconds()
			if p != nil {
				run.Result, run.Error = model.ResultFailure, fmt.Sprintf("panic: %v", p)
			}
			if s.recorder != nil {
				var failed error
				if run.Result == model.ResultFailure {
					failed = errors.New(run.Error)
				}
				s.recorder.JobRan(j.Name, time.Since(started), failed)
			}
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.store.SaveJobRun(wctx, run); err != nil {
				s.log.Warn("recording job run", zap.String("job", j.Name), zap.Error(err))
			}
			cancel()
			if p != nil {
				panic(p)
			}
		}()
		set, err := s.params.Snapshot(ctx)
		if err == nil {
			run.Summary, err = j.Run(ctx, set)
		}
		run.Result = model.ResultSuccess
		if err != nil {
			run.Result, run.Error = model.ResultFailure, err.Error()
			s.log.Warn("job failed", zap.String("job", j.Name), zap.Error(err))
		} else {
			s.log.Debug("job ran", zap.String("job", j.Name), zap.String("summary", run.Summary))
		}
	})
}

// cronLogger sends cron's own logs to zap: its routine chatter at Debug.
type cronLogger struct{ log *zap.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Sugar().Debugw(msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Sugar().Errorw(msg, append(kv, "error", err)...)
}
