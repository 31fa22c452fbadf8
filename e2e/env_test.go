// Package e2e runs the MySQL connectors through the real runtime: a cm node
// (internal/cmtest) or a real cm process, tasks created and operated over
// the HTTP API, source and target being two databases of the throwaway
// MariaDB server that scripts/with-mariadb.sh starts.
package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

const base = "/connector/task/v2/"

// env is a source and a target database on the test MariaDB server.
type env struct {
	admin          *sql.DB // no database selected; multiStatements
	host, port     string
	user, password string
	src, dst       string // database names
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dsn := dbtest.ServerDSN(t)
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{host: host, port: port, user: cfg.User, password: cfg.Passwd, src: dbtest.NewMySQLDatabaseName(t), dst: dbtest.NewMySQLDatabaseName(t)}
	if e.admin, err = sql.Open("mysql", dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.admin.Close() })
	return e
}

// noLogEnv is an env on a throwaway server of its own with
// binlog_row_metadata=NO_LOG (MariaDB's default): row events carry no
// column names.
func noLogEnv(t *testing.T) *env {
	t.Helper()
	srv := dbtest.StartServer(t, "--binlog-row-metadata=NO_LOG")
	srv.Exec(t, "CREATE DATABASE src; CREATE DATABASE dst")
	return &env{admin: srv.DB, host: "127.0.0.1", port: strconv.Itoa(srv.Port), user: "root", src: "src", dst: "dst"}
}

// withAndWithoutColumnNames runs a test on the shared server (FULL row
// metadata) and on a NO_LOG one.
func withAndWithoutColumnNames(t *testing.T, run func(t *testing.T, e *env)) {
	t.Run("FULL", func(t *testing.T) { run(t, newEnv(t)) })
	t.Run("NO_LOG", func(t *testing.T) { run(t, noLogEnv(t)) })
}

// subtopic is the binlog subtopic the source reports by default, HOST-PORT.
func (e *env) subtopic() string { return e.host + "-" + e.port }

// exec runs statements on the server (several per call are fine), bounded.
func (e *env) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.admin.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", clip(q, 300), err)
	}
}

// srcT and dstT qualify a table with the source or target database.
func (e *env) srcT(table string) string { return "`" + e.src + "`.`" + table + "`" }
func (e *env) dstT(table string) string { return "`" + e.dst + "`.`" + table + "`" }

// task is the create body of a task reading every table of the source
// database into the target database.
func (e *env) task(component string, extra map[string]map[string]string) map[string]any {
	cfg := map[string]map[string]string{
		"source": {"type": "mysql", "host": e.host, "port": e.port, "username": e.user, "password": e.password,
			"tables": e.src + ".*"},
		"sink": {"type": "mysql", "host": e.host, "port": e.port, "username": e.user, "password": e.password,
			"databaseMap": e.src + ":" + e.dst},
	}
	for scope, kv := range extra {
		if cfg[scope] == nil {
			cfg[scope] = map[string]string{}
		}
		for k, v := range kv {
			cfg[scope][k] = v
		}
	}
	return map[string]any{"component": component, "config": cfg}
}

// component is a fresh component name of the given type; a random N also
// gives the task its own replica server id.
func component(typ string) string {
	return fmt.Sprintf("p_e2e-%s-%d-0", typ, 1+rand.IntN(1<<28))
}

// checksum is CHECKSUM TABLE and the row count of a qualified table; a
// missing table reads as "missing".
func (e *env) checksum(t testing.TB, table string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var name string
	var sum sql.NullInt64
	if err := e.admin.QueryRowContext(ctx, "CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Valid {
		return "missing"
	}
	var n int
	if err := e.admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("checksum %d, %d rows", sum.Int64, n)
}

// diff describes how the target differs from the source for tables, or "".
func (e *env) diff(t testing.TB, tables ...string) string {
	t.Helper()
	var out []string
	for _, tb := range tables {
		if s, d := e.checksum(t, e.srcT(tb)), e.checksum(t, e.dstT(tb)); s != d {
			out = append(out, fmt.Sprintf("%s: source %s, target %s", tb, s, d))
		}
	}
	return strings.Join(out, "; ")
}

// converged waits until every table has the same checksum and row count
// on both sides.
func (e *env) converged(t testing.TB, within time.Duration, tables ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d := e.diff(t, tables...)
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("target did not converge within %s: %s", within, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// binlogPos is a binlog file and offset; files compare by name, which the
// server numbers with a fixed-width suffix.
type binlogPos struct {
	file string
	pos  uint64
}

func (p binlogPos) before(o binlogPos) bool {
	return p.file < o.file || (p.file == o.file && p.pos < o.pos)
}

func (p binlogPos) String() string { return p.file + ":" + strconv.FormatUint(p.pos, 10) }

func parseToken(s string) (binlogPos, bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return binlogPos{}, false
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return binlogPos{}, false
	}
	return binlogPos{s[:i], n}, true
}

// binlogEnd is SHOW MASTER STATUS.
func (e *env) binlogEnd(t testing.TB) binlogPos {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.admin.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatal("SHOW MASTER STATUS: no row (binary log off?)")
	}
	vals := make([]any, len(cols))
	var p binlogPos
	vals[0], vals[1] = &p.file, &p.pos
	for i := 2; i < len(cols); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		t.Fatal(err)
	}
	return p
}

// reached waits until the task's durable checkpoint of the binlog subtopic
// is at or past p; any error detail but the warning of a source without
// column names in its binlog fails the test.
func reached(t testing.TB, n *cmtest.Node, name, sub string, p binlogPos, within time.Duration) {
	t.Helper()
	cmtest.Eventually(t, within, "checkpoint reaches "+p.String(), func() bool {
		d := n.Detail(t, name)
		if slices.ContainsFunc(d.ErrorDetails, func(ed model.ErrorDetail) bool { return ed.Code != "MYSQL_ROW_METADATA_MINIMAL" }) {
			t.Fatalf("task %s is %s: %+v", name, d.State, d.ErrorDetails)
		}
		at, ok := parseToken(d.Checkpoint[sub].Token)
		return ok && !at.before(p)
	})
}

// started waits until the task is RUNNING with a durable position of
// subtopic sub (its start, made durable before it moves anything); a task
// that fails meanwhile fails the test.
func started(t testing.TB, n *cmtest.Node, name, sub string) {
	t.Helper()
	cmtest.Eventually(t, 30*time.Second, "the task records its starting position", func() bool {
		d := n.Detail(t, name)
		if d.State == model.StateException {
			t.Fatalf("task failed: %+v", d.ErrorDetails)
		}
		return d.State == model.StateRunning && d.Checkpoint[sub].Token != ""
	})
}

// nextSecond sleeps until just after the next whole second, so that
// changes made after it are in a later binlog second than those before.
func nextSecond() int64 {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
	return time.Now().Unix()
}

func q(s string) string { return url.QueryEscape(s) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
