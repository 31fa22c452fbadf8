package supervisor

import "time"

// Recorder hears what the runtime does, for the node's metrics
// (internal/metrics). Its methods must be cheap and must not block.
type Recorder interface {
	// RecordsApplied counts records a task's sink wrote.
	RecordsApplied(component string, n int)
	// RunnerStarted counts a runner start of a task.
	RunnerStarted(component string)
	// Pullback counts a pullback that rewound a task's checkpoint.
	Pullback(component string)
	// Flushed records one committer flush that wrote reports.
	Flushed(reports int, took time.Duration, err error)
}

// pullbackRewriteStep is the journal step of a pullback that rewinds the
// checkpoint (journal.Advance names it so in its audit row).
const pullbackRewriteStep = "pullback:rewrite"

// nopRecorder records nothing: the runtime without metrics.
type nopRecorder struct{}

func (nopRecorder) RecordsApplied(string, int)        {}
func (nopRecorder) RunnerStarted(string)              {}
func (nopRecorder) Pullback(string)                   {}
func (nopRecorder) Flushed(int, time.Duration, error) {}

// SetRecorder has the runtime report to rec. Call it before Run.
func (r *Reconciler) SetRecorder(rec Recorder) { r.recorder = rec }
