package server_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// rssMB reads this process's resident set size.
func rssMB(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func medianPass(n *cmtest.Node, passes int) time.Duration {
	var ds []time.Duration
	for i := 0; i < passes; i++ {
		n.Rec.Nudge()
		time.Sleep(250 * time.Millisecond)
		ds = append(ds, n.Rec.LastPass())
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkIdleTasks: how one node carries 1,000 idle file tasks: resident
// memory and the time of a reconcile pass over all of them, beside the same
// node with no tasks. Targets: under 200 MB RSS, pass under 200 ms.
func BenchmarkIdleTasks(b *testing.B) {
	const tasks = 1000
	for i := 0; i < b.N; i++ {
		// A thousand creates from one client in a few seconds: more than
		// the per-client rate limit lets through, and not what is measured.
		n := cmtest.Start(b, dbtest.SQLiteURL(b), cmtest.Options{HTTP: func(c *server.Config) { c.RateLimit = 0 }})
		runtime.GC()
		baseRSS := rssMB(b)
		basePass := medianPass(n, 5)
		dir := b.TempDir()
		for k := 0; k < tasks; k++ {
			src := filepath.Join(dir, fmt.Sprintf("src%d.jsonl", k))
			if err := os.WriteFile(src, []byte("{\"ts\":100}\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			body := map[string]any{"component": fmt.Sprintf("idle-incr_trans-%d-0", k), "config": map[string]map[string]string{
				"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": filepath.Join(dir, fmt.Sprintf("sink%d.jsonl", k))}}}
			n.OK(b, "POST", base+"create", body)
		}
		if got := n.Rec.Running(); got != tasks {
			b.Fatalf("%d runners, want %d", got, tasks)
		}
		time.Sleep(2 * time.Second) // let checkpoints and heartbeats settle
		runtime.GC()
		rss := rssMB(b)
		pass := medianPass(n, 9)
		b.ReportMetric(rss, "rss_MB")
		b.ReportMetric(rss-baseRSS, "rss_delta_MB")
		b.ReportMetric(float64(pass.Microseconds())/1000, "pass_ms")
		b.ReportMetric(float64(basePass.Microseconds())/1000, "baseline_pass_ms")
		b.Logf("%d idle tasks: RSS %.0f MB (node alone %.0f MB, target < 200 MB: %v); reconcile pass %s (empty node %s, target < 200ms: %v)",
			tasks, rss, baseRSS, rss < 200, pass, basePass, pass < 200*time.Millisecond)
	}
}

// writeLines writes n JSON lines with ts from..from+n-1.
func writeLines(b *testing.B, path string, from, n int) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "{\"ts\":%d,\"payload\":\"%064d\"}\n", from+i, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// BenchmarkStopLatency: stop call to durable STOPPED while a task streams a
// large file at full speed, beside the latency of a detail call on the same
// node. Target: p99 under 1 s.
func BenchmarkStopLatency(b *testing.B) {
	for i := 0; i < b.N; i++ {
		n := cmtest.Start(b, dbtest.SQLiteURL(b), cmtest.Options{})
		dir := b.TempDir()
		src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
		writeLines(b, src, 1_000_000_000, 3_000_000)
		name := n.OK(b, "POST", base+"create", map[string]any{"component": "stopbench-incr_trans-1-0", "config": map[string]map[string]string{
			"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": sink}}}).String()
		var stops, details []time.Duration
		for r := 0; r < 20; r++ {
			// Let it stream; make sure it is mid-file.
			before := fileSize(sink)
			cmtest.Eventually(b, 10*time.Second, "streaming", func() bool { return fileSize(sink) > before+1<<20 })
			if fileSize(sink) >= fileSize(src) {
				b.Fatal("source exhausted; make it larger")
			}
			t0 := time.Now()
			n.OK(b, "GET", base+"detail?taskName="+q(name), nil)
			details = append(details, time.Since(t0))
			t0 = time.Now()
			n.OK(b, "POST", base+"stop?taskName="+q(name), nil)
			stops = append(stops, time.Since(t0))
			if d := n.Detail(b, name); d.State != model.StateStopped {
				b.Fatalf("state %s after stop", d.State)
			}
			n.OK(b, "POST", base+"resume?taskName="+q(name), nil)
		}
		p50, p99 := percentile(stops, 0.5), percentile(stops, 0.99)
		d99 := percentile(details, 0.99)
		b.ReportMetric(float64(p50.Microseconds())/1000, "stop_p50_ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "stop_p99_ms")
		b.ReportMetric(float64(d99.Microseconds())/1000, "baseline_detail_p99_ms")
		b.Logf("stop while streaming: p50 %s p99 %s (target p99 < 1s: %v); detail call p99 %s", p50, p99, p99 < time.Second, d99)
	}
}

// BenchmarkPullbackRoundTrip: from the pullback call to the first replayed
// record in the sink, beside a plain stop+resume round trip on the same task.
// Target: under 2 s.
func BenchmarkPullbackRoundTrip(b *testing.B) {
	for i := 0; i < b.N; i++ {
		n := cmtest.Start(b, dbtest.SQLiteURL(b), cmtest.Options{})
		dir := b.TempDir()
		src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
		writeLines(b, src, 1_000_000, 100_000)
		name := n.OK(b, "POST", base+"create", map[string]any{"component": "pbbench-incr_trans-1-0", "config": map[string]map[string]string{
			"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": sink}}}).String()
		cmtest.Eventually(b, 60*time.Second, "all delivered", func() bool { return fileSize(sink) == fileSize(src) })
		cmtest.Eventually(b, 5*time.Second, "checkpointed", func() bool { return n.Detail(b, name).Checkpoint["src.jsonl"].TS == 1_099_999 })

		t0 := time.Now()
		n.OK(b, "POST", base+"stop?taskName="+q(name), nil)
		n.OK(b, "POST", base+"resume?taskName="+q(name), nil)
		plain := time.Since(t0)

		var trips []time.Duration
		for r := 0; r < 5; r++ {
			size := fileSize(sink)
			t0 = time.Now()
			n.OK(b, "POST", base+"pullback?taskName=pbbench-incr_trans-1-0&timestamp=1050000", nil)
			cmtest.Eventually(b, 30*time.Second, "first replayed record", func() bool { return fileSize(sink) > size })
			trips = append(trips, time.Since(t0))
			cmtest.Eventually(b, 60*time.Second, "replay done", func() bool {
				return n.Detail(b, "pbbench-incr_trans-1-0").Checkpoint["src.jsonl"].TS == 1_099_999
			})
		}
		worst := percentile(trips, 1)
		b.ReportMetric(float64(percentile(trips, 0.5).Microseconds())/1000, "pullback_p50_ms")
		b.ReportMetric(float64(worst.Microseconds())/1000, "pullback_max_ms")
		b.ReportMetric(float64(plain.Microseconds())/1000, "baseline_stop_resume_ms")
		b.Logf("pullback call to first replayed record: max %s over %d (target < 2s: %v); plain stop+resume %s", worst, len(trips), worst < 2*time.Second, plain)
	}
}
