package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

const base = "/connector/task/v2/"

// source is the throwaway server of scripts/with-mariadb.sh (binlog on)
// and one database of it that a benchmark owns.
type source struct {
	admin          *sql.DB
	host, port     string
	user, password string
	db             string
}

func newSource(b testing.TB) *source {
	b.Helper()
	dsn := dbtest.ServerDSN(b)
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		b.Fatal(err)
	}
	_, goDSN := dbtest.NewMySQLDatabase(b)
	dc, _ := driver.ParseDSN(goDSN)
	s := &source{host: host, port: port, user: cfg.User, password: cfg.Passwd, db: dc.DBName}
	if s.admin, err = sql.Open("mysql", dsn); err != nil {
		b.Fatal(err)
	}
	s.admin.SetMaxOpenConns(8)
	b.Cleanup(func() { s.admin.Close() })
	return s
}

func (s *source) t(table string) string { return "`" + s.db + "`.`" + table + "`" }

func (s *source) seq(from, to int) string { return fmt.Sprintf("`%s`.seq_%d_to_%d", s.db, from, to) }

func execOn(b testing.TB, db *sql.DB, q string, args ...any) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		b.Fatalf("%.300s: %v", q, err)
	}
}

// showCreate is SHOW CREATE TABLE.
func showCreate(b testing.TB, db *sql.DB, table string) string {
	b.Helper()
	var name, stmt string
	if err := db.QueryRow("SHOW CREATE TABLE "+table).Scan(&name, &stmt); err != nil {
		b.Fatal(err)
	}
	return stmt
}

func checksum(b testing.TB, db *sql.DB, table string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var name string
	var sum sql.NullInt64
	if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("checksum %d, %d rows", sum.Int64, n)
}

// task is a create body: mysql source on the source database, mysql sink
// on the replica server, the source database renamed to dst there.
func (s *source) task(r *server, typ, dst string, extra map[string]map[string]string) (string, map[string]any) {
	comp := fmt.Sprintf("p_bench-%s-%d-0", typ, 1+rand.IntN(1<<28))
	cfg := map[string]map[string]string{
		"source": {"type": "mysql", "host": s.host, "port": s.port, "username": s.user, "password": s.password,
			"tables": s.db + ".*"},
		"sink": {"type": "mysql", "host": "127.0.0.1", "port": strconv.Itoa(r.port), "username": "root",
			"databaseMap": s.db + ":" + dst},
	}
	for scope, kv := range extra {
		if cfg[scope] == nil {
			cfg[scope] = map[string]string{}
		}
		for k, v := range kv {
			cfg[scope][k] = v
		}
	}
	// CM_BENCH_CONFIG=scope.key=value,... overrides settings of every task
	// the benchmarks create, to compare tunings.
	for _, kv := range strings.Split(os.Getenv("CM_BENCH_CONFIG"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		scope, key, dotted := strings.Cut(k, ".")
		if !ok || !dotted {
			continue
		}
		if cfg[scope] == nil {
			cfg[scope] = map[string]string{}
		}
		cfg[scope][key] = v
	}
	return comp, map[string]any{"component": comp, "config": cfg}
}

// twoCores is the tuning the throughput benchmarks give their tasks, as an
// operator would for a target of two cores: two parallel target
// transactions instead of four (on two cores the extra two only add lock
// contention, 15-25 % more server CPU for the same rows), and incremental
// batches of up to 20,000 rows (fewer, larger target commits).
var twoCores = map[string]map[string]string{
	"sink":   {"parallelism": "2"},
	"source": {"maxBatchRows": "20000"},
}

// node starts a cm node in process (the real reconciler, runners and API),
// its store on SQLite so that the only writes to the source server are the
// benchmark's own.
func node(b testing.TB) *cmtest.Node {
	return cmtest.Start(b, dbtest.SQLiteURL(b), cmtest.Options{})
}

// profileCM starts a CPU profile of the benchmark process (that is, of the
// cm node) for the timed part of a benchmark when CM_BENCH_PROFILE names a
// directory, and returns what stops it. The profile goes to
// <dir>/<benchmark>.cpu.pprof; read it with go tool pprof.
func profileCM(b testing.TB) func() {
	dir := os.Getenv("CM_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+".cpu.pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// pos is a binlog position.
type pos struct {
	file string
	off  uint64
}

func (p pos) before(o pos) bool { return p.file < o.file || (p.file == o.file && p.off < o.off) }
func (p pos) String() string    { return p.file + ":" + strconv.FormatUint(p.off, 10) }

func parsePos(tok string) (pos, bool) {
	i := strings.LastIndexByte(tok, ':')
	if i <= 0 {
		return pos{}, false
	}
	n, err := strconv.ParseUint(tok[i+1:], 10, 64)
	return pos{tok[:i], n}, err == nil
}

// row reads one row of a SHOW statement into a map by column name.
func showRow(b testing.TB, db *sql.DB, q string) map[string]string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return nil
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out
}

func (s *source) binlogEnd(b testing.TB) pos {
	m := showRow(b, s.admin, "SHOW MASTER STATUS")
	n, _ := strconv.ParseUint(m["Position"], 10, 64)
	return pos{m["File"], n}
}

// catchUpTable is the schema of the catch-up workload.
const catchUpTable = "CREATE TABLE %s (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME(3), note VARCHAR(200))"

// BenchmarkCatchUpVsNativeReplica writes a binlog of at least 500k row
// changes in many small transactions (each: 8 inserts, 3 updates, 1
// delete, over two tables, from 4 writers), then replays the same binlog
// range twice on the second server: once by a MariaDB native replica with
// one applier thread (CHANGE MASTER TO the same start position, timed until
// its executed position reaches the end), once by a cm incr_trans task
// resumed at that position (timed from the resume call until its durable
// checkpoint reaches the end). Both results are checked by checksum.
func BenchmarkCatchUpVsNativeReplica(b *testing.B) {
	const (
		writers       = 4
		txnsPerWriter = 11_250 // 4 * 11,250 * 12 = 540,000 row changes
		rowsPerTxn    = 12
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, r := newSource(b), replicaServer(b)
		n := node(b)
		tables := []string{"t1", "t2"}
		for _, tb := range tables {
			execOn(b, src.admin, fmt.Sprintf(catchUpTable, src.t(tb)))
		}
		// The native replica needs the tables before it replays rows.
		nativeDB, cmDB := src.db, src.db+"_cm"
		execOn(b, r.db, "CREATE DATABASE `"+nativeDB+"`")
		b.Cleanup(func() { execOn(b, r.db, "DROP DATABASE IF EXISTS `"+nativeDB+"`; DROP DATABASE IF EXISTS `"+cmDB+"`") })
		for _, tb := range tables {
			execOn(b, r.db, "USE `"+nativeDB+"`; "+showCreate(b, src.admin, src.t(tb)))
		}

		// cm's task records its start (the binlog end) and is stopped: that
		// position is where both appliers start.
		_, body := src.task(r, "incr_trans", cmDB, twoCores)
		name := n.OK(b, http.MethodPost, base+"create", body).String()
		sub := src.host + "-" + src.port
		var start pos
		cmtest.Eventually(b, 30*time.Second, "cm records its start position", func() bool {
			var ok bool
			start, ok = parsePos(n.Detail(b, name).Checkpoint[sub].Token)
			return ok
		})
		n.OK(b, http.MethodPost, base+"stop?taskName="+name, nil)
		if p, _ := parsePos(n.Detail(b, name).Checkpoint[sub].Token); p != start {
			b.Fatalf("stopped task moved from %s to %s", start, p)
		}

		genStart := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- catchUpWriter(src, tables[w%2], int64(w)*10_000_000, txnsPerWriter)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		end := src.binlogEnd(b)
		changes := writers * txnsPerWriter * rowsPerTxn
		b.Logf("workload: %d row changes in %d transactions, binlog %s..%s, written in %s",
			changes, writers*txnsPerWriter, start, end, time.Since(genStart).Round(time.Millisecond))

		// Native replica, single applier thread.
		execOn(b, r.db, "SET GLOBAL replicate_wild_do_table = '"+nativeDB+".%'")
		execOn(b, r.db, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d, MASTER_USE_GTID=no", src.port, src.user, src.password, start.file, start.off))
		cpu := newCPUMeter(b, src, r)
		quiesce(b, src.admin, r.db)
		cpu.begin()
		t0 := time.Now()
		execOn(b, r.db, "START SLAVE")
		cmtest.Eventually(b, 20*time.Minute, "the native replica reaches "+end.String(), func() bool {
			st := showRow(b, r.db, "SHOW SLAVE STATUS")
			if st["Last_SQL_Error"] != "" || st["Last_IO_Error"] != "" {
				b.Fatalf("native replica: %s %s", st["Last_SQL_Error"], st["Last_IO_Error"])
			}
			off, _ := strconv.ParseUint(st["Exec_Master_Log_Pos"], 10, 64)
			return !(pos{st["Relay_Master_Log_File"], off}).before(end)
		})
		native := time.Since(t0)
		nativeCPU := cpu.report(b, "native")
		execOn(b, r.db, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL replicate_wild_do_table = ''")

		// cm, resumed at the same position.
		quiesce(b, src.admin, r.db)
		stopProfile := profileCM(b)
		cpu.begin()
		b.StartTimer()
		t0 = time.Now()
		n.OK(b, http.MethodPost, base+"resume?taskName="+name, nil)
		resumed := time.Since(t0)
		var moved time.Duration
		cmtest.Eventually(b, 20*time.Minute, "cm reaches "+end.String(), func() bool {
			d := n.Detail(b, name)
			if d.State == model.StateException {
				b.Fatalf("cm task failed: %+v", d.ErrorDetails)
			}
			p, ok := parsePos(d.Checkpoint[sub].Token)
			if moved == 0 && ok && p != start {
				moved = time.Since(t0)
			}
			return ok && !p.before(end)
		})
		b.Logf("cm: resume answered after %s, first checkpoint move after %s", resumed, moved)
		cm := time.Since(t0)
		b.StopTimer()
		stopProfile()
		b.Log(nativeCPU)
		b.Log(cpu.report(b, "cm"))
		n.OK(b, http.MethodPost, base+"stop?taskName="+name, nil)

		for _, tb := range tables {
			want := checksum(b, src.admin, src.t(tb))
			if got := checksum(b, r.db, "`"+nativeDB+"`.`"+tb+"`"); got != want {
				b.Fatalf("native replica %s: %s, source %s", tb, got, want)
			}
			if got := checksum(b, r.db, "`"+cmDB+"`.`"+tb+"`"); got != want {
				b.Fatalf("cm %s: %s, source %s", tb, got, want)
			}
		}
		ratio := native.Seconds() / cm.Seconds()
		b.ReportMetric(native.Seconds(), "native_s")
		b.ReportMetric(cm.Seconds(), "cm_s")
		b.ReportMetric(float64(changes)/native.Seconds(), "native_rows/s")
		b.ReportMetric(float64(changes)/cm.Seconds(), "cm_rows/s")
		b.ReportMetric(ratio, "x_faster")
		b.Logf("catch-up over %d row changes: native replica (1 applier thread) %s, cm %s: cm %.2fx faster (target 1.3x)",
			changes, native.Round(time.Millisecond), cm.Round(time.Millisecond), ratio)
	}
}

// catchUpWriter commits txns transactions on table, ids from idBase: each
// inserts 8 new rows, updates 3 rows of an earlier transaction and deletes
// one row of an earlier one.
func catchUpWriter(src *source, table string, idBase int64, txns int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := src.admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	t := src.t(table)
	for i := 0; i < txns; i++ {
		lo := idBase + int64(i)*8 + 1
		q := fmt.Sprintf("BEGIN; INSERT INTO %[1]s SELECT %[2]d + seq, CONCAT('name ', seq), seq * 1.5, NOW(3), REPEAT('x', 40 + seq) FROM `%[3]s`.seq_0_to_7; ",
			t, lo, src.db)
		if i >= 4 {
			old := lo - 32
			q += fmt.Sprintf("UPDATE %s SET amount = amount + 1, note = 'updated %d' WHERE id BETWEEN %d AND %d; ", t, i, old, old+2)
			q += fmt.Sprintf("DELETE FROM %s WHERE id = %d; ", t, old+7)
		} else {
			// The first transactions have nothing to change yet: touch
			// their own rows so every transaction has 12 row changes.
			q += fmt.Sprintf("UPDATE %s SET amount = amount + 1 WHERE id BETWEEN %d AND %d; ", t, lo, lo+2)
			q += fmt.Sprintf("DELETE FROM %s WHERE id = %d; ", t, lo+7)
		}
		q += "COMMIT"
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("writer on %s: %w", table, err)
		}
	}
	return nil
}

// BenchmarkFullImportVsDump copies a table of 1M rows from the source
// server to the second server twice: by `mariadb-dump --single-transaction
// | mariadb` (timed from start to exit of the pipeline), and by a cm
// full_trans task with its default chunk size and parallelism (timed from
// the create call until the task is FINISHED). Both copies are checked by
// checksum.
func BenchmarkFullImportVsDump(b *testing.B) {
	const rows = 1_000_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, r := newSource(b), replicaServer(b)
		n := node(b)
		execOn(b, src.admin, fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME, note VARCHAR(100))", src.t("big")))
		for lo := 1; lo <= rows; lo += 100_000 {
			execOn(b, src.admin, "INSERT INTO "+src.t("big")+" SELECT seq, CONCAT('name ', seq), seq / 7, '2024-01-01' + INTERVAL seq SECOND, REPEAT('n', 20 + seq % 60) FROM "+src.seq(lo, lo+99_999))
		}
		dumpDB, cmDB := src.db+"_dump", src.db+"_cm"
		execOn(b, r.db, "CREATE DATABASE `"+dumpDB+"`")
		b.Cleanup(func() { execOn(b, r.db, "DROP DATABASE IF EXISTS `"+dumpDB+"`; DROP DATABASE IF EXISTS `"+cmDB+"`") })
		want := checksum(b, src.admin, src.t("big"))

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		pass := ""
		if src.password != "" {
			pass = " -p'" + src.password + "'"
		}
		pipeline := fmt.Sprintf("set -o pipefail; mariadb-dump --no-defaults -h %s -P %s -u %s%s --single-transaction %s big | mariadb --no-defaults -h 127.0.0.1 -P %d -u root %s",
			src.host, src.port, src.user, pass, src.db, r.port, dumpDB)
		cpu := newCPUMeter(b, src, r)
		quiesce(b, src.admin, r.db)
		cpu.begin()
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, "bash", "-c", pipeline).CombinedOutput(); err != nil {
			cancel()
			b.Fatalf("mariadb-dump | mariadb: %v\n%s", err, out)
		}
		dump := time.Since(t0)
		cancel()
		// The dump's own processes are children of the benchmark and are
		// not in these figures; only the servers are.
		b.Log(cpu.report(b, "dump"))
		if got := checksum(b, r.db, "`"+dumpDB+"`.big"); got != want {
			b.Fatalf("dump copy: %s, source %s", got, want)
		}

		_, body := src.task(r, "full_trans", cmDB, twoCores)
		quiesce(b, src.admin, r.db)
		stopProfile := profileCM(b)
		cpu.begin()
		b.StartTimer()
		t0 = time.Now()
		name := n.OK(b, http.MethodPost, base+"create", body).String()
		cmtest.Eventually(b, 20*time.Minute, "the full import finishes", func() bool {
			d := n.Detail(b, name)
			if d.State == model.StateException {
				b.Fatalf("cm task failed: %+v", d.ErrorDetails)
			}
			return d.State == model.StateFinished
		})
		cm := time.Since(t0)
		b.StopTimer()
		stopProfile()
		b.Log(cpu.report(b, "cm"))
		if got := checksum(b, r.db, "`"+cmDB+"`.big"); got != want {
			b.Fatalf("cm copy: %s, source %s", got, want)
		}
		ratio := dump.Seconds() / cm.Seconds()
		b.ReportMetric(dump.Seconds(), "dump_s")
		b.ReportMetric(cm.Seconds(), "cm_s")
		b.ReportMetric(rows/dump.Seconds(), "dump_rows/s")
		b.ReportMetric(rows/cm.Seconds(), "cm_rows/s")
		b.ReportMetric(ratio, "x_faster")
		b.Logf("full import of %d rows: mariadb-dump | mariadb %s, cm %s: cm %.2fx faster (target 1.5x)",
			rows, dump.Round(time.Millisecond), cm.Round(time.Millisecond), ratio)
	}
}

// BenchmarkSteadyLag writes 5,000 rows/s to the source (a transaction of 50
// inserts every 10 ms) for 30 s while a cm incr_trans task streams them to
// the second server. Each source row carries its source statement time in
// microseconds; the target table has an extra column defaulting to the
// target statement time, so each row's lag is the difference (one clock:
// both servers run on this machine). Rows of the first 2 s are warm-up.
func BenchmarkSteadyLag(b *testing.B) {
	const (
		rate     = 5000 // rows per second
		tick     = 10 * time.Millisecond
		perTick  = rate / 100
		duration = 30 * time.Second
		warmUp   = 2 * time.Second
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
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

		ctx, cancel := context.WithTimeout(context.Background(), duration+time.Minute)
		conn, err := src.admin.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t := time.NewTicker(tick)
		started := time.Now()
		next, behind := 1, 0
		for time.Since(started) < duration {
			<-t.C
			q := fmt.Sprintf("INSERT INTO %s SELECT seq, %s, REPEAT('p', 60) FROM %s", src.t("lag"), now, src.seq(next, next+perTick-1))
			if _, err := conn.ExecContext(ctx, q); err != nil {
				b.Fatal(err)
			}
			next += perTick
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
		skip := int(warmUp / tick * perTick)
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
		cancel()
		slices.Sort(lags)
		pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
		achieved := float64(total) / elapsed.Seconds()
		b.ReportMetric(achieved, "source_rows/s")
		b.ReportMetric(pct(0.50)*1000, "p50_ms")
		b.ReportMetric(pct(0.99)*1000, "p99_ms")
		b.ReportMetric(lags[len(lags)-1]*1000, "max_ms")
		b.Logf("steady lag at %.0f rows/s over %s (%d rows measured, %d late ticks): p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 1 s)",
			achieved, elapsed.Round(time.Second), len(lags), behind, pct(0.5)*1000, pct(0.99)*1000, lags[len(lags)-1]*1000)
		d := n.Detail(b, name)
		raw, _ := json.Marshal(d.Metrics)
		b.Logf("task metrics: %s", raw)
	}
}
