package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
)

// BenchmarkMySQLSteadyLag writes each rate of CM_BENCH_LAG_RATES
// (5,000 and 20,000 rows/s by default) to the source, a transaction every
// 10 ms, for CM_BENCH_LAG (30 s) while a cm incr_trans task with default
// settings streams them to the second server. Each source row carries its
// source statement time in microseconds; the target table has an extra
// column defaulting to the target statement time, so each row's lag is the
// difference (one clock: both servers run on this machine). Rows of the
// first 2 s are warm-up.
func BenchmarkMySQLSteadyLag(b *testing.B) {
	duration := envDuration(b, "CM_BENCH_LAG", 30*time.Second)
	var rates []int
	for _, f := range strings.Split(envString("CM_BENCH_LAG_RATES", "5000,20000"), ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 100 || v%100 != 0 {
			b.Fatalf("CM_BENCH_LAG_RATES=%q: want rows per second, multiples of 100", f)
		}
		rates = append(rates, v)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var lines []verdict
		for _, rate := range rates {
			p99, line := steadyLag(b, rate, duration)
			b.ReportMetric(p99*1000, "p99_ms_at_"+strconv.Itoa(rate))
			lines = append(lines, verdict{Scenario: fmt.Sprintf("(3) steady-state lag p99 at %s rows/s", thousands(rate)),
				CM: fmt.Sprintf("%.1f ms", p99*1000), Baseline: "-", Ratio: "-", Target: "< 1 s", Met: p99 < 1 && line})
		}
		report(b, lines...)
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// steadyLag runs one rate and returns the p99 lag in seconds, and whether
// the writer kept the rate (no more than 1 % of its ticks late).
func steadyLag(b *testing.B, rate int, duration time.Duration) (float64, bool) {
	const (
		tick   = 10 * time.Millisecond
		warmUp = 2 * time.Second
	)
	perTick := rate / 100
	src, r := newSource(b), replicaServer(b)
	n := node(b)
	const now = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"
	execOn(b, src.admin, "CREATE TABLE "+src.t("lag")+" (id BIGINT PRIMARY KEY, created BIGINT NOT NULL, pad VARCHAR(100))")
	cmDB := src.db + "_cm"
	execOn(b, r.db, "CREATE DATABASE `"+cmDB+"`; CREATE TABLE `"+cmDB+"`.lag (id BIGINT PRIMARY KEY, created BIGINT NOT NULL, pad VARCHAR(100), "+
		"applied BIGINT NOT NULL DEFAULT ("+now+"))")
	b.Cleanup(func() { execOn(b, r.db, "DROP DATABASE IF EXISTS `"+cmDB+"`") })

	_, body := src.task(r, "incr_trans", cmDB, nil)
	name := n.OK(b, http.MethodPost, base+"create", body).String()
	sub := src.host + "-" + src.port
	cmtest.Eventually(b, 30*time.Second, "cm starts streaming", func() bool {
		return n.Detail(b, name).Checkpoint[sub].Token != ""
	})

	ctx, cancel := context.WithTimeout(context.Background(), duration+2*time.Minute)
	defer cancel()
	conn, err := src.admin.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cpu := newCPUMeter(b, src, r)
	cpu.begin()
	b.StartTimer()
	t := time.NewTicker(tick)
	started := time.Now()
	next, behind, ticks := 1, 0, 0
	for time.Since(started) < duration {
		<-t.C
		q := fmt.Sprintf("INSERT INTO %s SELECT seq, %s, REPEAT('p', 60) FROM %s", src.t("lag"), now, src.seq(next, next+perTick-1))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
		next += perTick
		ticks++
		if len(t.C) > 0 {
			behind++
		}
	}
	t.Stop()
	elapsed := time.Since(started)
	conn.Close()
	total := next - 1
	cmtest.Eventually(b, 2*time.Minute, "every row reaches the target", func() bool {
		var c int
		_ = r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+cmDB+"`.lag").Scan(&c)
		return c == total
	})
	b.StopTimer()
	var used [3]float64
	for i, pid := range cpu.pids {
		if pid != 0 {
			used[i] = (cpuTime(pid) - cpu.start[i]).Seconds()
		}
	}
	load := loadAvg()
	skip := int(warmUp / tick * time.Duration(perTick))
	rows, err := r.db.QueryContext(ctx, "SELECT applied - created FROM `"+cmDB+"`.lag WHERE id > ? ORDER BY id", skip)
	if err != nil {
		b.Fatal(err)
	}
	var lags []float64
	for rows.Next() {
		var us int64
		if err := rows.Scan(&us); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, float64(us)/1e6)
	}
	rows.Close()
	if len(lags) == 0 {
		b.Fatalf("no rows after the warm-up (CM_BENCH_LAG=%s is too short)", duration)
	}
	slices.Sort(lags)
	pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	achieved := float64(total) / elapsed.Seconds()
	logf(b, "steady lag at %d rows/s: achieved %.0f rows/s over %s (%d rows measured, %d of %d ticks late): p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 1 s); CPU cm %.2f, source %.2f, target %.2f s; load %s",
		rate, achieved, elapsed.Round(time.Second), len(lags), behind, ticks, pct(0.5)*1000, pct(0.99)*1000, lags[len(lags)-1]*1000,
		used[0], used[1], used[2], load)
	d := n.Detail(b, name)
	raw, _ := json.Marshal(d.Metrics)
	logf(b, "task metrics at %d rows/s: %s", rate, raw)
	n.OK(b, http.MethodPost, base+"stop?taskName="+name, nil)
	return pct(0.99), behind*100 <= ticks
}
