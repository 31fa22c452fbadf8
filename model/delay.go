package model

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// The delay a source reports in its batches' metrics, which the committer
// writes with the heartbeat (Heartbeat.Metrics): how far the task is behind
// the source's head, and when the source measured it. A source idle at its
// head (a file at its end, a binlog at the server's end, a process
// connector that says it is caught up) reports 0.
const (
	// MetricDelaySeconds is the reported delay in seconds.
	MetricDelaySeconds = "delaySeconds"
	// MetricDelayAt is when it was measured, in unix seconds.
	MetricDelayAt = "delayAt"
)

// DelayMetrics are the metrics a source reports for a delay measured at.
func DelayMetrics(delay time.Duration, at time.Time) map[string]float64 {
	return map[string]float64{MetricDelaySeconds: math.Max(0, math.Round(delay.Seconds())), MetricDelayAt: float64(at.Unix())}
}

// NoDelayReport withdraws a source's last report (delayAt 0): the task's
// delay is its checkpoint's age again.
func NoDelayReport() map[string]float64 {
	return map[string]float64{MetricDelaySeconds: 0, MetricDelayAt: 0}
}

// Where a task's delay comes from.
const (
	DelayFromSource     = "source"     // reported by the running source
	DelayFromCheckpoint = "checkpoint" // now minus the oldest checkpoint
)

// TaskDelay is how far t's current incarnation is behind its source. It is
// the delay its source reported with the heartbeat hb while the task is
// RUNNING, when that report is of this incarnation and no older than fresh
// (from says DelayFromSource); otherwise now minus the oldest checkpoint
// (CheckpointDelay, from says DelayFromCheckpoint). ok is false when there
// is neither.
func TaskDelay(t *Task, cps []Checkpoint, hb *Heartbeat, now time.Time, fresh time.Duration) (delay time.Duration, from string, ok bool) {
	if d, ok := ReportedDelay(t, hb, now, fresh); ok {
		return d, DelayFromSource, true
	}
	d, ok := CheckpointDelay(t, cps, now)
	return d, DelayFromCheckpoint, ok
}

// ReportedDelay is the delay the source of t's current incarnation
// reported with its heartbeat, when the task is RUNNING and the report is
// no older than fresh.
func ReportedDelay(t *Task, hb *Heartbeat, now time.Time, fresh time.Duration) (time.Duration, bool) {
	// A runner reports only while it runs: a stopped task's last report
	// says nothing of now.
	if hb == nil || hb.Version != t.Version || hb.Metrics == "" || t.State != StateRunning {
		return 0, false
	}
	var m map[string]float64
	if json.Unmarshal([]byte(hb.Metrics), &m) != nil {
		return 0, false
	}
	d, hasD := m[MetricDelaySeconds]
	at, hasAt := m[MetricDelayAt]
	if !hasD || !hasAt || at <= 0 || d < 0 || math.IsNaN(d) || d > float64(math.MaxInt64/int64(time.Second)) {
		return 0, false
	}
	if age := now.Sub(time.Unix(int64(at), 0)); age > fresh {
		return 0, false
	}
	return time.Duration(d) * time.Second, true
}

// DelayWords names a delay and where it came from, for messages:
// "delay 12s (reported by the source)", "checkpoint delay 3d4h".
func DelayWords(d time.Duration, from string) string {
	if from == DelayFromSource {
		return "delay " + FormatDuration(d) + " (reported by the source)"
	}
	return "checkpoint delay " + FormatDuration(d)
}

// FormatDuration renders d rounded to its two largest units, for
// messages: "3d4h", "1h30m", "5m", "12s", "250ms", "0s".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		if d == math.MinInt64 {
			d++
		}
		return "-" + FormatDuration(-d)
	}
	if d < time.Second {
		if r := d.Round(time.Millisecond); r > 0 {
			return strconv.FormatInt(int64(r/time.Millisecond), 10) + "ms"
		}
		return "0s"
	}
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	// Round to the unit below the largest one, then print those two; a
	// rounding that carries (59m59.6s -> 1h) moves the largest unit up.
	largest := func() int {
		for i, u := range units {
			if d >= u.size {
				return i
			}
		}
		return len(units) - 1
	}
	top := largest()
	d = d.Round(units[min(top+1, len(units)-1)].size)
	top = largest()
	var b strings.Builder
	for i := top; i < len(units) && i <= top+1; i++ {
		n := d / units[i].size
		d -= n * units[i].size
		if n > 0 || i == top {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(units[i].name)
		}
	}
	return b.String()
}
