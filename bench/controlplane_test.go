package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// The control-plane benchmarks run a real `cm serve` child on a MariaDB
// store (a database of the server of scripts/with-mariadb.sh) and drive it
// over loopback HTTP. Each figure of cm is taken beside a bare Go program
// doing the same database work on the same server, with a copy of cm's own
// tables (same shape, same rows), in alternating rounds; figures are the
// medians of the rounds. The knobs (environment):
//
//	CM_BENCH_TASKS         tasks of (a), (c) and (d)        default 10000
//	CM_BENCH_SR_TASKS      tasks of (b)                     default 1000
//	CM_BENCH_ROUNDS        rounds of cm and of the baseline default 3
//	CM_BENCH_ROUND         length of one round              default 10s
//	CM_BENCH_IDLE          steady period of (c)             default 3m
//	CM_BENCH_COLD_LIMIT    how long (c) waits for a cold start default 2m
//	CM_BENCH_PROFILE       directory for CPU profiles of the cm child

// phaseLimit bounds the creates and resumes of a benchmark: calls not
// started by then are counted as not sent.
const phaseLimit = 5 * time.Minute

// storeDB is a fresh database for a cm store: the URL cm takes and a raw
// connection to read its tables. srv is the server it is on; nil is the
// server of scripts/with-mariadb.sh.
type storeDB struct {
	url, name string
	db        *sql.DB
	srv       *server
}

// newStoreDB makes a fresh database on srv, or on the server of
// scripts/with-mariadb.sh when srv is nil, dropped when the benchmark ends.
// The control-plane benchmarks put cm's store on the benchmarks' own second
// server: other packages' tests share the first one, and under `go test`
// outside `make bench` other test runs too, which would both disturb the
// figures and be disturbed by them.
func newStoreDB(b testing.TB, srv *server) *storeDB {
	b.Helper()
	var u, dsn string
	if srv == nil {
		u, dsn = dbtest.NewMySQLDatabase(b)
	} else {
		name := fmt.Sprintf("cp_%08x", rand.Uint32())
		execOn(b, srv.db, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		b.Cleanup(func() { _, _ = srv.db.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
		u = fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", srv.port, name)
		dsn = fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?parseTime=true&multiStatements=true", srv.port, name)
	}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	b.Cleanup(func() { db.Close() })
	return &storeDB{url: u, name: cfg.DBName, db: db, srv: srv}
}

func (s *storeDB) int(b testing.TB, q string, args ...any) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return v.Int64
}

// groups runs a "SELECT key, COUNT(*) ... GROUP BY key" and lists it.
func (s *storeDB) groups(b testing.TB, q string, args ...any) (map[string]int, string) {
	b.Helper()
	rows, err := s.db.Query(q, args...)
	if err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	c := &codes{m: map[string]int{}}
	for rows.Next() {
		var k sql.NullString
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			b.Fatal(err)
		}
		c.m[k.String] += n
	}
	return c.m, c.String()
}

// fileTask is the create body of an idle file task: a source file of one
// line, which the task copies and then waits at the end of.
func fileTask(b testing.TB, dir, component string, start bool) []byte {
	b.Helper()
	src := filepath.Join(dir, component+".src.jsonl")
	if err := os.WriteFile(src, []byte("{\"ts\":100}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"component": component, "start": start, "config": map[string]map[string]string{
		"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": filepath.Join(dir, component+".sink.jsonl")}}})
	return body
}

// fanOut calls fn(i) for i in [0, n) from workers goroutines, starting no
// call after within has passed; it returns how long it took and how many
// calls it did not start.
func fanOut(n, workers int, within time.Duration, fn func(i int)) (time.Duration, int) {
	t0 := time.Now()
	var next atomic.Int64
	var skipped atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if time.Since(t0) > within {
					skipped.Add(1)
					continue
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), int(skipped.Load())
}

// tally counts the answers to many calls: ok, 5xx by code, the other
// refusals by code, and calls that got no answer.
type tally struct {
	ok        atomic.Int64
	fiveXX    codes
	refused   codes
	transport codes
	lat       latencies
}

func (t *tally) record(ans answer, err error, took time.Duration) {
	switch {
	case err != nil:
		t.transport.add(err.Error())
	case ans.status >= 500:
		t.fiveXX.add(ans.code)
	case ans.success:
		t.ok.Add(1)
		t.lat.add(took)
	default:
		t.refused.add(ans.code)
	}
}

func (t *tally) String() string {
	return fmt.Sprintf("%d ok, 5xx: %s, refused: %s, no answer: %s, p50 %.1f ms, p99 %.1f ms",
		t.ok.Load(), t.fiveXX.String(), t.refused.String(), t.transport.String(), ms(t.lat.pct(0.5)), ms(t.lat.pct(0.99)))
}

// round is the result of one timed round of a load: answers per second
// (successes only) and their latencies.
type round struct {
	rate float64
	p50  time.Duration
	p99  time.Duration
	n    int
}

// runRound runs do from clients goroutines for d; do returns whether the
// call counts (a success). A call that started before d ran out is waited
// for and counted.
func runRound(clients int, d time.Duration, do func(r *rand.Rand) bool) round {
	var lat latencies
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for time.Now().Before(end) {
				s := time.Now()
				if do(r) {
					lat.add(time.Since(s))
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	return round{rate: float64(lat.n()) / el.Seconds(), p50: lat.pct(0.5), p99: lat.pct(0.99), n: lat.n()}
}

// alternate runs rounds of the baseline and of cm in turns (the baseline
// first in even rounds, cm first in odd ones) and returns the medians of
// their rates and of their p99s. profile is called before the last round
// of cm and returns what waits for its profile.
//
// statements reads cm's statement counts before and after each cm round,
// outside its CPU figures, and logs them per successful call as what.
func alternate(b testing.TB, rounds int, name string, cpu procs, base, cm func() round, profile func() func(),
	statements func() map[string]float64, what string) (baseRate, cmRate float64, baseP99, cmP99 time.Duration) {
	var br, cr, bp, cp []float64
	runCM := func(last bool) {
		s0 := statements()
		wait := func() {}
		if last {
			wait = profile()
		}
		c0 := cpu.snapshot()
		r := cm()
		used := cpu.since(c0)
		wait()
		logf(b, "%s: %s", what, perOp(s0, statements(), r.n))
		cr, cp = append(cr, r.rate), append(cp, ms(r.p99))
		logf(b, "%s round: cm %.0f/s (%d), p50 %.2f ms, p99 %.2f ms; CPU s: %s; load %s", name, r.rate, r.n, ms(r.p50), ms(r.p99), used, loadAvg())
	}
	runBase := func() {
		c0 := cpu.snapshot()
		r := base()
		used := cpu.since(c0)
		br, bp = append(br, r.rate), append(bp, ms(r.p99))
		logf(b, "%s round: baseline %.0f/s (%d), p50 %.2f ms, p99 %.2f ms; CPU s: %s; load %s", name, r.rate, r.n, ms(r.p50), ms(r.p99), used, loadAvg())
	}
	for i := range rounds {
		if i%2 == 0 {
			runBase()
			runCM(i == rounds-1)
		} else {
			runCM(i == rounds-1)
			runBase()
		}
	}
	return median(br), median(cr), time.Duration(median(bp) * float64(time.Millisecond)), time.Duration(median(cp) * float64(time.Millisecond))
}

// procs are the processes whose CPU a round reports: the cm child, the
// database server and the benchmark process (the load generator and the
// baselines).
type procs struct {
	names []string
	pids  []int
}

func newProcs(b testing.TB, p *cmServe, st *storeDB) procs {
	return procs{names: []string{"cm", "mariadb", "bench"}, pids: []int{p.pid(), serverPID(b, st.db), os.Getpid()}}
}

func (c procs) snapshot() []time.Duration {
	out := make([]time.Duration, len(c.pids))
	for i, pid := range c.pids {
		if pid != 0 {
			out[i] = cpuTime(pid)
		}
	}
	return out
}

func (c procs) since(start []time.Duration) string {
	now := c.snapshot()
	parts := make([]string, 0, len(now))
	for i := range now {
		if c.pids[i] != 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", c.names[i], (now[i]-start[i]).Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// copyTables makes a fresh database on the same server with tables of the
// same shape and rows as cm's, for a baseline.
func copyTables(b testing.TB, st *storeDB, tables ...string) *sql.DB {
	b.Helper()
	cp := newStoreDB(b, st.srv)
	db := cp.db
	// cm's store pool (model.Open).
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(3 * time.Minute)
	for _, t := range tables {
		execOn(b, db, fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", cp.name, t, st.name, t))
		execOn(b, db, fmt.Sprintf("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`", cp.name, t, st.name, t))
	}
	return db
}

// BenchmarkControlPlaneNode drives one cm node through the life of 10,000
// tasks: (d) creates 8 at a time, (a) detail at concurrency 32 beside an
// Echo handler doing one primary-key SELECT, (c) all of them RUNNING and
// idle for a steady period, then killed with SIGKILL and started again.
func BenchmarkControlPlaneNode(b *testing.B) {
	n := envInt(b, "CM_BENCH_TASKS", 10_000)
	rounds := envInt(b, "CM_BENCH_ROUNDS", 3)
	roundLen := envDuration(b, "CM_BENCH_ROUND", 10*time.Second)
	idle := envDuration(b, "CM_BENCH_IDLE", 3*time.Minute)
	coldLimit := envDuration(b, "CM_BENCH_COLD_LIMIT", 2*time.Minute)
	for range b.N {
		b.StopTimer()
		bin := buildCM(b)
		st := newStoreDB(b, replicaServer(b))
		dir, addr := b.TempDir(), cmtest.ReservePort(b)
		p := startServe(b, bin, addr, st.url, dir)
		a := newAPI(p.url)
		logf(b, "cm %d on %s, store %s, open files limit %s; load %s", p.pid(), addr, st.name, fileLimit(p.pid()), loadAvg())
		// The same node with no task: (c)'s baseline for CPU and RSS.
		empty := measureEmpty(p, 15*time.Second)
		logf(b, "the node with no task, over %s: CPU %.1f %% of a core, RSS %.0f MB, %d open files", empty.over, empty.cpuPct, empty.rss, empty.files)

		comps := make([]string, n)
		bodies := make([][]byte, n)
		for i := range n {
			comps[i] = fmt.Sprintf("cpn-incr_trans-%d-0", i+1)
			bodies[i] = fileTask(b, dir, comps[i], false)
		}

		// (d) creates, 8 at a time.
		ctx := context.Background()
		var creates tally
		took, skipped := fanOut(n, 8, phaseLimit, func(i int) {
			t0 := time.Now()
			ans, err := a.call(ctx, http.MethodPost, base+"create", bodies[i])
			creates.record(ans, err, time.Since(t0))
		})
		stored := st.int(b, "SELECT COUNT(*) FROM tasks")
		logf(b, "(d) %d creates in %s (%.0f/s): %s; %d not sent within %s; %d tasks in the store; load %s",
			n, took.Round(time.Millisecond), float64(n-skipped)/took.Seconds(), &creates, skipped, phaseLimit, stored, loadAvg())
		report(b, verdict{
			Scenario: fmt.Sprintf("(d) %d creates, 8 at a time, MariaDB store: 5xx answers", n),
			CM: fmt.Sprintf("%d 5xx (%s); %d created in %.1f s, %.0f creates/s, p99 %.1f ms", creates.fiveXX.total(), creates.fiveXX.String(),
				creates.ok.Load(), took.Seconds(), float64(n-skipped)/took.Seconds(), ms(creates.lat.pct(0.99))),
			Baseline: "-", Ratio: "-", Target: "0 5xx",
			Met: creates.fiveXX.total() == 0 && creates.transport.total() == 0 && creates.ok.Load() == int64(n) && stored == int64(n),
		})
		if stored == 0 {
			b.Fatal("no task was created")
		}
		if creates.fiveXX.total() > 0 {
			// A 5xx to a create is a bug (a deadlock that was not retried,
			// say), not a slow figure.
			b.Errorf("(d) creates answered 5xx: %s", creates.fiveXX.String())
		}

		// (a) detail of random tasks, 32 clients, beside an Echo handler
		// doing one primary-key SELECT of the same table shape and rows.
		benchDetail(b, st, p, a, bin, rounds, roundLen)

		// (c) every task RUNNING, idle, then a cold start.
		benchIdle(b, st, p, a, bin, comps, idle, coldLimit, empty, func() *cmServe { return startServe(b, bin, addr, st.url, dir) })
	}
}

// pkRow is the task row the baseline handler answers with.
type pkRow struct {
	ID           int64     `json:"id"`
	Component    string    `json:"component"`
	Project      string    `json:"project"`
	Type         string    `json:"type"`
	Node         string    `json:"node"`
	Version      int64     `json:"version"`
	Revision     int64     `json:"revision"`
	Desired      string    `json:"desiredState"`
	State        string    `json:"state"`
	Config       string    `json:"config"`
	ErrorDetails string    `json:"errorDetails"`
	Journal      string    `json:"journal"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// pkServer is the baseline of (a): Echo with one handler that reads a task
// row by primary key with a prepared statement and answers it as JSON in
// an envelope, as cm's handlers do.
func pkServer(b testing.TB, db *sql.DB) string {
	b.Helper()
	stmt, err := db.Prepare("SELECT id, component, project, type, node, version, revision, desired_state, state, config, " +
		"COALESCE(error_details, ''), COALESCE(journal, ''), created_at, updated_at FROM tasks WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/task", func(c echo.Context) error {
		id, err := strconv.ParseInt(c.QueryParam("id"), 10, 64)
		if err != nil {
			return c.JSON(http.StatusBadRequest, map[string]any{"isSuccess": false, "errCode": "INVALID_ARGUMENT"})
		}
		var r pkRow
		if err := stmt.QueryRowContext(c.Request().Context(), id).Scan(&r.ID, &r.Component, &r.Project, &r.Type, &r.Node, &r.Version,
			&r.Revision, &r.Desired, &r.State, &r.Config, &r.ErrorDetails, &r.Journal, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return c.JSON(http.StatusInternalServerError, map[string]any{"isSuccess": false, "errCode": "INTERNAL_ERROR"})
		}
		return c.JSON(http.StatusOK, map[string]any{"isSuccess": true, "result": r})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close(); stmt.Close() })
	return "http://" + ln.Addr().String()
}

func benchDetail(b *testing.B, st *storeDB, p *cmServe, a *api, bin string, rounds int, roundLen time.Duration) {
	const clients = 32
	baseDB := copyTables(b, st, "tasks")
	type ref struct {
		id   int64
		comp string
	}
	rows, err := st.db.Query("SELECT id, component FROM tasks ORDER BY id")
	if err != nil {
		b.Fatal(err)
	}
	var refs []ref
	for rows.Next() {
		var r ref
		if err := rows.Scan(&r.id, &r.comp); err != nil {
			b.Fatal(err)
		}
		refs = append(refs, r)
	}
	rows.Close()
	ba := newAPI(pkServer(b, baseDB))
	ctx := context.Background()
	var failed codes
	get := func(c *api, path string) bool {
		ans, err := c.call(ctx, http.MethodGet, path, nil)
		switch {
		case err != nil:
			failed.add(err.Error())
		case !ans.success:
			failed.add(ans.code)
		}
		if err != nil || !ans.success {
			// A node or store that fails every call is not hammered.
			time.Sleep(10 * time.Millisecond)
			return false
		}
		return true
	}
	// Warm both: connections, prepared statements, the buffer pool.
	for i := range min(len(refs), 500) {
		get(a, base+"detail?taskName="+url.QueryEscape(refs[i].comp))
		get(ba, "/task?id="+strconv.FormatInt(refs[i].id, 10))
	}
	baseRate, cmRate, baseP99, cmP99 := alternate(b, rounds, "(a) detail", newProcs(b, p, st),
		func() round {
			return runRound(clients, roundLen, func(r *rand.Rand) bool {
				return get(ba, "/task?id="+strconv.FormatInt(refs[r.IntN(len(refs))].id, 10))
			})
		},
		func() round {
			return runRound(clients, roundLen, func(r *rand.Rand) bool {
				return get(a, base+"detail?taskName="+url.QueryEscape(refs[r.IntN(len(refs))].comp))
			})
		},
		func() func() {
			w1, w2 := profileServe(b, p, bin, "controlplane-a-detail", roundLen), profileStore(b, st, "(a) detail", roundLen)
			return func() { w1(); w2() }
		},
		func() map[string]float64 { return a.statements(ctx) }, "(a) statements per detail")
	if failed.total() > 0 {
		b.Errorf("(a) failed calls: %s", failed.String())
	}
	b.ReportMetric(cmRate, "detail_req/s")
	b.ReportMetric(baseRate, "baseline_pk_req/s")
	b.ReportMetric(ms(cmP99), "detail_p99_ms")
	report(b,
		verdict{Scenario: fmt.Sprintf("(a) detail, %d clients, random among %d tasks: requests/s", clients, len(refs)),
			CM: fmt.Sprintf("%.0f/s", cmRate), Baseline: fmt.Sprintf("%.0f/s (Echo, 1 PK SELECT)", baseRate),
			Ratio: ratio(cmRate, baseRate), Target: "≥ 0.70x", Met: cmRate >= 0.7*baseRate},
		verdict{Scenario: "(a) detail p99", CM: fmt.Sprintf("%.2f ms", ms(cmP99)), Baseline: fmt.Sprintf("%.2f ms", ms(baseP99)),
			Ratio: ratio(ms(cmP99), ms(baseP99)), Target: "< 10 ms", Met: cmP99 < 10*time.Millisecond})
}

// heartbeatAge is how old the oldest heartbeat of a RUNNING task is, and
// how many RUNNING tasks have none of their current version.
func heartbeatAge(b testing.TB, st *storeDB) (time.Duration, int64) {
	b.Helper()
	var us sql.NullInt64
	var with, running int64
	q := "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(h.at), UTC_TIMESTAMP(6)), COUNT(h.component), COUNT(*) FROM tasks t " +
		"LEFT JOIN task_heartbeats h ON h.component = t.component AND h.version = t.version WHERE t.state = 'RUNNING'"
	if err := st.db.QueryRow(q).Scan(&us, &with, &running); err != nil {
		b.Fatal(err)
	}
	return time.Duration(us.Int64) * time.Microsecond, running - with
}

// emptyNode is what a node with no task uses while it idles.
type emptyNode struct {
	over   time.Duration
	cpuPct float64
	rss    float64
	files  int
}

func measureEmpty(p *cmServe, over time.Duration) emptyNode {
	c0, t0 := cpuTime(p.pid()), time.Now()
	// The node idles; this is the period measured.
	time.Sleep(over)
	el := time.Since(t0)
	return emptyNode{over: el.Round(time.Second), cpuPct: (cpuTime(p.pid()) - c0).Seconds() / el.Seconds() * 100, rss: rssMB(p.pid()), files: openFiles(p.pid())}
}

func benchIdle(b *testing.B, st *storeDB, p *cmServe, a *api, bin string, comps []string, idle, coldLimit time.Duration, empty emptyNode, restart func() *cmServe) {
	n := len(comps)
	ctx := context.Background()
	var resumes tally
	took, skipped := fanOut(n, 8, phaseLimit, func(i int) {
		t0 := time.Now()
		ans, err := a.call(ctx, http.MethodPost, base+"resume?taskName="+url.QueryEscape(comps[i]), nil)
		resumes.record(ans, err, time.Since(t0))
	})
	logf(b, "(c) %d resumes, 8 at a time, in %s (%.0f/s): %s; %d not sent within %s; RSS %.0f MB, %d open files; load %s",
		n, took.Round(time.Millisecond), float64(n-skipped)/took.Seconds(), &resumes, skipped, phaseLimit, rssMB(p.pid()), openFiles(p.pid()), loadAvg())
	// The steady period starts once no task is STARTING or STOPPING, or
	// after a minute: a node that cannot hold them all never settles, and
	// the period shows it.
	settled := func() bool {
		return st.int(b, "SELECT COUNT(*) FROM tasks WHERE state IN ('STARTING', 'STOPPING')") == 0
	}
	deadline := time.Now().Add(time.Minute)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	_, states := st.groups(b, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
	logf(b, "(c) states before the steady period: %s; RSS %.0f MB, %d open files", states, rssMB(p.pid()), openFiles(p.pid()))

	// The steady period: nothing but a health call, a batchDetail page and
	// a look at the store every sample period.
	mark := st.int(b, "SELECT COALESCE(MAX(id), 0) FROM operation_audit_log")
	every := min(15*time.Second, max(time.Second, idle/8))
	waitCM, waitStore := profileServe(b, p, bin, "controlplane-c-idle", idle), profileStore(b, st, "(c) idle", idle)
	wait := func() { waitCM(); waitStore() }
	stmts0 := a.statements(ctx)
	cpu0, t0 := cpuTime(p.pid()), time.Now()
	var maxHealth, maxPage, maxAge time.Duration
	var maxRSS float64
	var maxFiles int
	var missing int64
	var healthCodes, pageCodes codes
	var unhealthy string
	pages := (n + 49) / 50
	for k := 0; time.Since(t0) < idle; k++ {
		next := t0.Add(time.Duration(k+1) * every)
		s := time.Now()
		ans, err := a.call(ctx, http.MethodGet, base+"health", nil)
		maxHealth = max(maxHealth, time.Since(s))
		if err != nil {
			healthCodes.add(err.Error())
		} else {
			healthCodes.add(strconv.Itoa(ans.status) + " " + ans.code)
			if !ans.success && unhealthy == "" {
				unhealthy = string(ans.raw[:min(len(ans.raw), 600)])
			}
		}
		s = time.Now()
		ans, err = a.call(ctx, http.MethodGet, base+"batchDetail?size=50&page="+strconv.Itoa(1+rand.IntN(pages)), nil)
		maxPage = max(maxPage, time.Since(s))
		if err != nil {
			pageCodes.add(err.Error())
		} else if !ans.success {
			pageCodes.add(ans.code)
		}
		age, miss := heartbeatAge(b, st)
		maxAge, missing = max(maxAge, age), max(missing, miss)
		maxRSS, maxFiles = max(maxRSS, rssMB(p.pid())), max(maxFiles, openFiles(p.pid()))
		time.Sleep(time.Until(next))
	}
	elapsed := time.Since(t0)
	cpuPct := (cpuTime(p.pid()) - cpu0).Seconds() / elapsed.Seconds() * 100
	heapServe(b, p, bin, "controlplane-c-idle")
	// The period's health and batchDetail calls are among these.
	logf(b, "(c) statements per second of the idle node: %s", perOp(stmts0, a.statements(ctx), int(elapsed.Seconds())))
	wait()
	_, audits := st.groups(b, "SELECT operation, COUNT(*) FROM operation_audit_log WHERE id > ? GROUP BY operation", mark)
	// Any start, failure or automatic restart in the period is a restart
	// of an idle task.
	restarts := st.int(b, "SELECT COUNT(*) FROM operation_audit_log WHERE id > ? AND operation = ?", mark, model.OpAutoRestart)
	failures := st.int(b, "SELECT COUNT(*) FROM operation_audit_log WHERE id > ? AND operation = 'runtime:failed'", mark)
	starts := st.int(b, "SELECT COUNT(*) FROM operation_audit_log WHERE id > ? AND operation = 'runtime:started'", mark)
	_, states = st.groups(b, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
	logf(b, "(c) steady %s: CPU %.1f %% of a core, RSS max %.0f MB, open files max %d (limit %s), oldest heartbeat %s, %d RUNNING without one; "+
		"health max %s (%s), batchDetail page max %s (failures: %s); audit rows in the period: %s; states: %s; load %s",
		elapsed.Round(time.Second), cpuPct, maxRSS, maxFiles, fileLimit(p.pid()), maxAge.Round(time.Millisecond), missing,
		maxHealth.Round(time.Millisecond), healthCodes.String(), maxPage.Round(time.Millisecond), pageCodes.String(), audits, states, loadAvg())
	running := st.int(b, "SELECT COUNT(*) FROM tasks WHERE state = 'RUNNING'")
	if unhealthy != "" {
		logf(b, "(c) first unhealthy health answer: %s", unhealthy)
	}
	if running != int64(n) {
		logf(b, "(c) errors of EXCEPTION tasks: %s", exceptions(b, st))
	}

	// Cold start: SIGKILL, start again, until every task has heartbeat
	// again (a heartbeat newer than the newest before the kill).
	var before time.Time
	if err := st.db.QueryRow("SELECT MAX(at) FROM task_heartbeats").Scan(&before); err != nil {
		b.Fatal(err)
	}
	killMark := st.int(b, "SELECT COALESCE(MAX(id), 0) FROM operation_audit_log")
	p.kill(b)
	k0 := time.Now()
	p = restart()
	healthz := time.Since(k0)
	coldWait := profileServe(b, p, bin, "controlplane-c-coldstart", min(coldLimit, time.Minute))
	fresh := func() int64 {
		return st.int(b, "SELECT COUNT(*) FROM task_heartbeats h JOIN tasks t ON t.component = h.component AND t.version = h.version "+
			"WHERE h.at > ? AND t.state = 'RUNNING'", before)
	}
	var cold time.Duration
	var got int64
	var half, ninety time.Duration
	for {
		got = fresh()
		el := time.Since(k0)
		if half == 0 && got*2 >= int64(n) {
			half = el
		}
		if ninety == 0 && got*10 >= int64(n)*9 {
			ninety = el
		}
		if got == int64(n) {
			cold = el
			break
		}
		if el > coldLimit {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	coldWait()
	// Hold a while longer: a task that heartbeats once and then fails is
	// not recovered.
	hold := 15 * time.Second
	time.Sleep(hold)
	_, coldAudits := st.groups(b, "SELECT operation, COUNT(*) FROM operation_audit_log WHERE id > ? GROUP BY operation", killMark)
	_, states = st.groups(b, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
	coldRunning := st.int(b, "SELECT COUNT(*) FROM tasks WHERE state = 'RUNNING'")
	coldFig := fmt.Sprintf("%.1f s (healthz after %.1f s, half after %.1f s, 90 %% after %.1f s); %d RUNNING %s later",
		cold.Seconds(), healthz.Seconds(), half.Seconds(), ninety.Seconds(), coldRunning, hold)
	if cold == 0 {
		coldFig = fmt.Sprintf("not within %s: %d of %d (healthz after %.1f s); %d RUNNING %s later", coldLimit, got, n, healthz.Seconds(), coldRunning, hold)
	}
	logf(b, "(c) cold start: %s; audit rows since the kill: %s; states: %s; errors of EXCEPTION tasks: %s; RSS %.0f MB, %d open files; load %s",
		coldFig, coldAudits, states, exceptions(b, st), rssMB(p.pid()), openFiles(p.pid()), loadAvg())

	b.ReportMetric(cpuPct, "idle_cpu_%")
	b.ReportMetric(maxRSS, "idle_rss_MB")
	b.ReportMetric(cold.Seconds(), "cold_start_s")
	stale := maxAge > 30*time.Second || missing > 0
	report(b,
		verdict{Scenario: fmt.Sprintf("(c) %d idle RUNNING file tasks, %s: steady", n, elapsed.Round(time.Second)),
			CM: fmt.Sprintf("%d RUNNING at the end, oldest heartbeat %.1f s, %d without one; %d automatic restarts, %d failures, %d starts; %d open files",
				running, maxAge.Seconds(), missing, restarts, failures, starts, maxFiles),
			Baseline: "-", Ratio: "-", Target: "no stale heartbeat (30 s), no restart",
			Met: !stale && restarts == 0 && failures == 0 && starts == 0 && running == int64(n)},
		verdict{Scenario: "(c) idle CPU", CM: fmt.Sprintf("%.1f %% of a core", cpuPct), Baseline: fmt.Sprintf("%.1f %% (the node with no task)", empty.cpuPct),
			Ratio: "-", Target: "< 10 %", Met: cpuPct < 10},
		verdict{Scenario: "(c) RSS", CM: fmt.Sprintf("%.0f MB", maxRSS), Baseline: fmt.Sprintf("%.0f MB (the node with no task)", empty.rss),
			Ratio: "-", Target: "< 300 MB", Met: maxRSS < 300},
		verdict{Scenario: "(c) health", CM: fmt.Sprintf("max %.0f ms", ms(maxHealth)), Baseline: "-", Ratio: "-", Target: "< 2 s", Met: maxHealth < 2*time.Second},
		verdict{Scenario: "(c) batchDetail page of 50", CM: fmt.Sprintf("max %.1f ms", ms(maxPage)), Baseline: "-", Ratio: "-", Target: "< 50 ms",
			Met: maxPage < 50*time.Millisecond && pageCodes.total() == 0},
		verdict{Scenario: "(c) cold start after kill -9, until every task heartbeats", CM: coldFig, Baseline: "-", Ratio: "-", Target: "< 60 s",
			Met: cold > 0 && cold < 60*time.Second && coldRunning == int64(n)})
}

// BenchmarkControlPlaneStopResume: 16 clients stop and resume random tasks
// among 1,000 RUNNING file tasks, beside a database/sql loop doing one
// compare-and-swap of the task row and one audit insert per operation, in
// one transaction, on copies of cm's tables. Afterwards the audit log is
// read back and every state change checked against the transition table.
func BenchmarkControlPlaneStopResume(b *testing.B) {
	const clients = 16
	n := envInt(b, "CM_BENCH_SR_TASKS", 1000)
	rounds := envInt(b, "CM_BENCH_ROUNDS", 3)
	roundLen := envDuration(b, "CM_BENCH_ROUND", 10*time.Second)
	for range b.N {
		b.StopTimer()
		bin := buildCM(b)
		st := newStoreDB(b, replicaServer(b))
		dir, addr := b.TempDir(), cmtest.ReservePort(b)
		p := startServe(b, bin, addr, st.url, dir)
		a := newAPI(p.url)
		ctx := context.Background()
		comps := make([]string, n)
		var creates tally
		for i := range n {
			comps[i] = fmt.Sprintf("cps-incr_trans-%d-0", i+1)
		}
		bodies := make([][]byte, n)
		for i := range n {
			bodies[i] = fileTask(b, dir, comps[i], true)
		}
		took, _ := fanOut(n, 8, phaseLimit, func(i int) {
			t0 := time.Now()
			ans, err := a.call(ctx, http.MethodPost, base+"create", bodies[i])
			creates.record(ans, err, time.Since(t0))
		})
		logf(b, "(b) %d creates (started), 8 at a time, in %s: %s", n, took.Round(time.Millisecond), &creates)
		if got := st.int(b, "SELECT COUNT(*) FROM tasks WHERE state = 'RUNNING'"); got != int64(n) {
			_, states := st.groups(b, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
			b.Fatalf("(b) %d of %d tasks RUNNING after the creates: %s", got, n, states)
		}
		mark := st.int(b, "SELECT COALESCE(MAX(id), 0) FROM operation_audit_log")

		// The baseline: the same tables, one CAS + audit transaction per
		// operation.
		baseDB := copyTables(b, st, "tasks", "operation_audit_log")
		var ids []int64
		rows, err := baseDB.Query("SELECT id FROM tasks ORDER BY id")
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		revs := make([]atomic.Int64, len(ids))
		baseRunning := make([]atomic.Bool, len(ids))
		for i := range ids {
			revs[i].Store(st.int(b, "SELECT revision FROM tasks WHERE component = ?", comps[i]))
			baseRunning[i].Store(true)
		}
		var baseConflicts, baseErrors atomic.Int64
		baseOp := func(r *rand.Rand) bool {
			k := r.IntN(len(ids))
			rev := revs[k].Load()
			from, to, desired, op := "RUNNING", "STOPPED", "STOPPED", "stop"
			if !baseRunning[k].Load() {
				from, to, desired, op = "STOPPED", "RUNNING", "RUNNING", "resume"
			}
			tx, err := baseDB.BeginTx(ctx, nil)
			if err != nil {
				baseErrors.Add(1)
				return false
			}
			res, err := tx.ExecContext(ctx, "UPDATE tasks SET state = ?, desired_state = ?, revision = revision + 1, updated_at = ? WHERE id = ? AND revision = ?",
				to, desired, time.Now().UTC(), ids[k], rev)
			if err != nil {
				_ = tx.Rollback()
				baseErrors.Add(1)
				return false
			}
			if hit, _ := res.RowsAffected(); hit != 1 {
				_ = tx.Rollback()
				baseConflicts.Add(1)
				var cur int64
				_ = baseDB.QueryRowContext(ctx, "SELECT revision FROM tasks WHERE id = ?", ids[k]).Scan(&cur)
				revs[k].Store(cur)
				return false
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO operation_audit_log (at, actor, operation, component, task_before, task_after, state_before, state_after, params, detail, result, request_id) "+
				"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", time.Now().UTC(), "bench@127.0.0.1", op, comps[k], comps[k], comps[k], from, to, "{}", "", "success", ""); err != nil {
				_ = tx.Rollback()
				baseErrors.Add(1)
				return false
			}
			if err := tx.Commit(); err != nil {
				baseErrors.Add(1)
				return false
			}
			revs[k].Store(rev + 1)
			baseRunning[k].Store(to == "RUNNING")
			return true
		}

		// cm: each client stops a task it believes runs and resumes one it
		// believes stopped. A belief can be wrong (two clients on one task):
		// then the call is an idempotent success or TASK_BUSY. Anything else
		// is an illegal answer.
		running := make([]atomic.Bool, n)
		for i := range running {
			running[i].Store(true)
		}
		var busy atomic.Int64
		var illegal codes
		var examples sync.Map
		cmOp := func(r *rand.Rand) bool {
			k := r.IntN(n)
			stop := running[k].Load()
			op := "resume"
			if stop {
				op = "stop"
			}
			ans, err := a.call(ctx, http.MethodPost, base+op+"?taskName="+url.QueryEscape(comps[k]), nil)
			switch {
			case err != nil:
				illegal.add(op + " " + err.Error())
				time.Sleep(10 * time.Millisecond)
				return false
			case ans.success:
				running[k].Store(!stop)
				return true
			case ans.code == "TASK_BUSY":
				busy.Add(1)
				return false
			default:
				illegal.add(op + " " + ans.code)
				examples.LoadOrStore(op+" "+ans.code, string(ans.raw))
				time.Sleep(10 * time.Millisecond)
				return false
			}
		}
		baseRate, cmRate, baseP99, cmP99 := alternate(b, rounds, "(b) stop/resume", newProcs(b, p, st),
			func() round { return runRound(clients, roundLen, baseOp) },
			func() round { return runRound(clients, roundLen, cmOp) },
			func() func() {
				w1, w2 := profileServe(b, p, bin, "controlplane-b-stopresume", roundLen), profileStore(b, st, "(b) stop/resume", roundLen)
				return func() { w1(); w2() }
			},
			func() map[string]float64 { return a.statements(ctx) },
			"(b) statements per successful stop or resume (the runner's, the committer's and the reconciler's included)")
		examples.Range(func(k, v any) bool {
			logf(b, "(b) unexpected answer %s: %s", k, v)
			return true
		})
		logf(b, "(b) cm: %d TASK_BUSY, unexpected: %s; baseline: %d CAS conflicts, %d errors", busy.Load(), illegal.String(), baseConflicts.Load(), baseErrors.Load())

		// Let every task settle, then read the audit back.
		cmtest.Eventually(b, 2*time.Minute, "no task STARTING or STOPPING", func() bool {
			return st.int(b, "SELECT COUNT(*) FROM tasks WHERE state IN ('STARTING', 'STOPPING')") == 0
		})
		checked, bad, restarts := checkAudit(b, st, mark)
		_, audits := st.groups(b, "SELECT operation, COUNT(*) FROM operation_audit_log WHERE id > ? GROUP BY operation", mark)
		_, states := st.groups(b, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
		logf(b, "(b) audit since the creates: %s; states now: %s", audits, states)
		b.ReportMetric(cmRate, "stop_resume_ops/s")
		b.ReportMetric(baseRate, "baseline_cas_ops/s")
		b.ReportMetric(ms(cmP99), "stop_resume_p99_ms")
		wrong := illegal.total() + len(bad)
		report(b,
			verdict{Scenario: fmt.Sprintf("(b) stop/resume, %d clients over %d file tasks: operations/s", clients, n),
				CM: fmt.Sprintf("%.0f/s", cmRate), Baseline: fmt.Sprintf("%.0f/s (1 CAS+audit transaction)", baseRate),
				Ratio: ratio(cmRate, baseRate), Target: "≥ 0.25x", Met: cmRate >= 0.25*baseRate},
			verdict{Scenario: "(b) stop/resume p99", CM: fmt.Sprintf("%.1f ms", ms(cmP99)), Baseline: fmt.Sprintf("%.2f ms", ms(baseP99)),
				Ratio: ratio(ms(cmP99), ms(baseP99)), Target: "< 50 ms", Met: cmP99 < 50*time.Millisecond},
			verdict{Scenario: "(b) illegal transitions",
				CM: fmt.Sprintf("%d (unexpected answers: %s; %d of %d audit rows break the table or the chain; %d restarts; %d TASK_BUSY)",
					wrong, illegal.String(), len(bad), checked, restarts, busy.Load()),
				Baseline: "-", Ratio: "-", Target: "0", Met: wrong == 0 && restarts == 0})
		for i, l := range bad {
			if i == 10 {
				logf(b, "(b) ... %d more", len(bad)-10)
				break
			}
			logf(b, "(b) audit: %s", l)
		}
		if wrong > 0 {
			// An illegal transition is a bug, not a slow figure.
			b.Errorf("(b) %d illegal transitions: unexpected answers %s, %d audit rows out of the table or the chain", wrong, illegal.String(), len(bad))
		}
	}
}

// exceptions lists the newest error code of each EXCEPTION task, with one
// message of each.
func exceptions(b testing.TB, st *storeDB) string {
	b.Helper()
	rows, err := st.db.Query("SELECT COALESCE(error_details, '') FROM tasks WHERE state = 'EXCEPTION'")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var c codes
	msgs := map[string]string{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			b.Fatal(err)
		}
		var errs []model.ErrorDetail
		_ = json.Unmarshal([]byte(raw), &errs)
		code := "(none)"
		if len(errs) > 0 {
			e := errs[len(errs)-1]
			code = e.Code
			if _, ok := msgs[code]; !ok {
				msgs[code] = e.Message
			}
		}
		c.add(code)
	}
	out := c.String()
	for code, m := range msgs {
		out += fmt.Sprintf("; %s: %.300s", code, m)
	}
	return out
}

// auditEvents maps audit operations to the events of the transition table.
var auditEvents = map[string]model.Event{
	"stop": model.EventStop, "resume": model.EventResume, "create": model.EventResume,
	"runtime:started": model.EventStarted, "runtime:stopped": model.EventStopped,
	"runtime:failed": model.EventFailed, "runtime:done": model.EventDone,
}

// checkAudit reads the audit rows after mark, task by task in the order
// they were written, and returns the rows that change a state the
// transition table does not allow, or that start from a state other than
// the one the task's previous change left it in (a lost update). Rows that
// change nothing (refusals, idempotent successes) are checked not to claim
// a change. restarts counts automatic restarts and failures.
func checkAudit(b testing.TB, st *storeDB, mark int64) (checked int, bad []string, restarts int) {
	b.Helper()
	rows, err := st.db.Query("SELECT id, component, operation, COALESCE(state_before, ''), COALESCE(state_after, ''), result "+
		"FROM operation_audit_log WHERE id > ? ORDER BY component, id", mark)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	last := map[string]model.State{}
	for rows.Next() {
		var id int64
		var comp, op, before, after, result string
		if err := rows.Scan(&id, &comp, &op, &before, &after, &result); err != nil {
			b.Fatal(err)
		}
		checked++
		if op == model.OpAutoRestart || op == "runtime:failed" {
			restarts++
		}
		if before == "" || after == "" || before == after {
			continue
		}
		line := fmt.Sprintf("row %d %s %s %s -> %s (%s)", id, comp, op, before, after, result)
		if result == model.ResultFailure {
			bad = append(bad, line+": a refusal that changed the state")
			continue
		}
		ev, ok := auditEvents[op]
		if !ok {
			continue
		}
		if to, err := model.Next(model.State(before), ev, ""); err != nil || to != model.State(after) {
			bad = append(bad, line+": not in the transition table")
		}
		if prev, seen := last[comp]; seen && prev != model.State(before) {
			bad = append(bad, line+fmt.Sprintf(": the previous change left %s", prev))
		}
		last[comp] = model.State(after)
	}
	return checked, bad, restarts
}

var (
	quoted = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	number = regexp.MustCompile(`\b[0-9]+\b`)
	spaces = regexp.MustCompile(`\s+`)
)

// profileStore samples, every 20 ms for d, the statements MariaDB is
// running for cm's store (information_schema.PROCESSLIST) when
// CM_BENCH_PROFILE is set: where the server's time goes, as a CPU profile
// says where cm's goes. The returned wait logs the most frequent statement
// shapes (literals replaced by ?).
func profileStore(b testing.TB, st *storeDB, name string, d time.Duration) (wait func()) {
	if os.Getenv("CM_BENCH_PROFILE") == "" {
		return func() {}
	}
	var samples codes
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			rows, err := st.db.Query("SELECT info FROM information_schema.PROCESSLIST WHERE db = ? AND command <> 'Sleep' AND info IS NOT NULL AND id <> CONNECTION_ID()", st.name)
			if err != nil {
				return
			}
			n++
			for rows.Next() {
				var q string
				if rows.Scan(&q) == nil {
					q = spaces.ReplaceAllString(number.ReplaceAllString(quoted.ReplaceAllString(q, "?"), "?"), " ")
					samples.add(fmt.Sprintf("%.160s", q))
				}
			}
			rows.Close()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() {
		<-done
		samples.mu.Lock()
		type kv struct {
			q string
			c int
		}
		var list []kv
		for q, c := range samples.m {
			list = append(list, kv{q, c})
		}
		samples.mu.Unlock()
		slices.SortFunc(list, func(x, y kv) int { return y.c - x.c })
		var sb strings.Builder
		for i, e := range list {
			if i == 12 {
				break
			}
			fmt.Fprintf(&sb, "\n%6d  %s", e.c, e.q)
		}
		logf(b, "statements MariaDB was running for cm, %s, sampled %d times (each sample counts every connection running a statement):%s", name, n, sb.String())
	}
}
