package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
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
// cm node) for one timed phase when CM_BENCH_PROFILE names a directory, and
// returns what stops it. The profile goes to
// <dir>/<benchmark>-<phase>.cpu.pprof; read it with go tool pprof.
func profileCM(b testing.TB, phase string) func() {
	dir := os.Getenv("CM_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+"-"+phase+".cpu.pprof"))
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

// sourceClock is the source server's clock in unix seconds.
func (s *source) clock(b testing.TB) int64 {
	return globalInt(b, s.admin, "SELECT UNIX_TIMESTAMP()")
}

// phase is one timed run of one applier: its wall time and the CPU seconds
// each process used meanwhile (clients: the child processes of a
// pipeline, when there are any).
type phase struct {
	wall                  time.Duration
	cm, src, tgt, clients float64
	load                  string
}

// limit is the two-core limit of the phase: the CPU seconds of every
// process, over the 2 cores.
func (p phase) limit() float64 { return (p.cm + p.src + p.tgt + p.clients) / 2 }

func (p phase) String() string {
	s := fmt.Sprintf("%.2f s; CPU cm %.2f, source %.2f, target %.2f", p.wall.Seconds(), p.cm, p.src, p.tgt)
	if p.clients > 0 {
		s += fmt.Sprintf(", clients %.2f", p.clients)
	}
	s += fmt.Sprintf(" s (two-core limit %.2f s)", p.limit())
	if p.load != "" {
		s += "; load " + p.load
	}
	return s
}

// measure runs fn as one timed phase: the kernel's dirty pages are
// written out and both servers brought to rest first, and the CPU of every
// process is read around it. fn returns the CPU seconds of child processes
// it ran (0 when none). The sync keeps a phase from paying for the
// writeback of the one before: SELECT ... INTO OUTFILE leaves 100 MB in the
// page cache right before LOAD DATA reads it.
func measure(b testing.TB, cpu *cpuMeter, src *source, r *server, fn func() float64) phase {
	b.Helper()
	syscall.Sync()
	quiesce(b, src.admin, r.db)
	cpu.begin()
	t0 := time.Now()
	clients := fn()
	p := phase{wall: time.Since(t0), clients: clients, load: loadAvg()}
	var used [3]float64
	for i, pid := range cpu.pids {
		if pid != 0 {
			used[i] = (cpuTime(pid) - cpu.start[i]).Seconds()
		}
	}
	p.cm, p.src, p.tgt = used[0], used[1], used[2]
	return p
}

// medianPhase is the median of each figure of ps on its own.
func medianPhase(ps []phase) phase {
	pick := func(f func(phase) float64) float64 {
		xs := make([]float64, len(ps))
		for i, p := range ps {
			xs[i] = f(p)
		}
		return median(xs)
	}
	return phase{
		wall:    time.Duration(pick(func(p phase) float64 { return float64(p.wall) })),
		cm:      pick(func(p phase) float64 { return p.cm }),
		src:     pick(func(p phase) float64 { return p.src }),
		tgt:     pick(func(p phase) float64 { return p.tgt }),
		clients: pick(func(p phase) float64 { return p.clients }),
	}
}

// medianOf is the median of f over ps.
func medianOf(ps []phase, f func(phase) float64) float64 {
	xs := make([]float64, len(ps))
	for i, p := range ps {
		xs[i] = f(p)
	}
	return median(xs)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// pollEvery is how often a timed phase looks whether it is done: a detail
// call costs the node about half a millisecond of CPU (the HTTP handler and
// three store statements), so polling every 20 ms, as the first version of
// these benchmarks did, charged cm up to 0.3 s of CPU per 6 s phase; every
// 50 ms it is a fifth of that, for at most 50 ms of resolution.
const pollEvery = 50 * time.Millisecond

// poll calls cond every pollEvery until it holds, or fails after within.
func poll(b testing.TB, within time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(pollEvery)
	}
}

// waitPos waits until the durable checkpoint of task name reaches end
// (failing on an EXCEPTION), and returns how long after t0 it was first
// seen at a position other than from.
func waitPos(b testing.TB, n *cmtest.Node, name, sub string, from, end pos, t0 time.Time) (moved time.Duration) {
	b.Helper()
	poll(b, 20*time.Minute, name+" reaches "+end.String(), func() bool {
		d := n.Detail(b, name)
		if d.State == model.StateException {
			b.Fatalf("cm task failed: %+v", d.ErrorDetails)
		}
		p, ok := parsePos(d.Checkpoint[sub].Token)
		if ok && moved == 0 && p != from {
			moved = time.Since(t0)
		}
		return ok && !p.before(end)
	})
	return moved
}

// catchUpTable is the schema of the catch-up workload.
const catchUpTable = "CREATE TABLE %s (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME(3), note VARCHAR(200))"

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

// thousands prints n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
