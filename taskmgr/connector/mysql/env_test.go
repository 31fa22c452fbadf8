package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"
	"go.uber.org/zap/zaptest"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// env is a source and a target database on the test MariaDB server.
type env struct {
	admin            *sql.DB // no database selected; multiStatements
	host, port       string
	user, password   string
	srcName, dstName string
	component        model.Component
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
	e := &env{host: host, port: port, user: cfg.User, password: cfg.Passwd,
		srcName: dbtest.NewMySQLDatabaseName(t), dstName: dbtest.NewMySQLDatabaseName(t),
		// A component of its own gives each test its own replica server id.
		component: model.Component{Project: "p_mysqltest", Type: model.TypeIncr, N: rand.IntN(1 << 30), M: 0}}
	if e.admin, err = sql.Open("mysql", dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.admin.Close() })
	return e
}

// exec runs statements on the server (several per call are fine).
func (e *env) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.admin.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", clip(q, 200), err)
	}
}

// src and dst qualify a table name with the source or target database.
func (e *env) src(table string) string { return "`" + e.srcName + "`.`" + table + "`" }
func (e *env) dst(table string) string { return "`" + e.dstName + "`.`" + table + "`" }

// config is a task config: mysql source on srcName.*, mysql sink mapping
// srcName to dstName.
func (e *env) config(t testing.TB, typ model.TaskType, extra map[string]map[string]string) connector.Config {
	comp := e.component
	comp.Type = typ
	scopes := model.Config{
		"source": {"type": "mysql", "host": e.host, "port": e.port, "username": e.user, "password": e.password,
			"tables": e.srcName + ".*"},
		"sink": {"type": "mysql", "host": e.host, "port": e.port, "username": e.user, "password": e.password,
			"databaseMap": e.srcName + ":" + e.dstName},
	}
	for scope, kv := range extra {
		for k, v := range kv {
			scopes.Set(scope, k, v)
		}
	}
	return connector.Config{
		Task:   model.TaskName{Node: "127.0.0.1-9000", Component: comp, Version: 1},
		Type:   typ,
		Scopes: scopes,
		Logger: zaptest.NewLogger(t),
	}
}

// build builds source and sink through the registry, as the runtime does.
func build(t testing.TB, cfg connector.Config) (connector.Source, connector.Sink) {
	t.Helper()
	r := connector.NewRegistry()
	Register(r, Options{})
	src, snk, err := r.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src, snk
}

// binlogEndNow is the server's current binlog end.
func (e *env) binlogEndNow(t testing.TB) gomysql.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := binlogEnd(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pipe is the runtime's loop over one source and sink, recording positions
// after each write.
// openPipe builds the connectors of cfg, opens the sink and then the
// source from the start, and closes both when the test ends.
func openPipe(t testing.TB, ctx context.Context, cfg connector.Config) *pipe {
	t.Helper()
	src, snk := build(t, cfg)
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snk.Close() })
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return &pipe{src: src, snk: snk, positions: map[string]checkpoint.Position{}}
}

type pipe struct {
	src       connector.Source
	snk       connector.Sink
	positions map[string]checkpoint.Position
	batches   []connector.Batch
}

// step reads one batch and writes it; it returns the batch.
func (p *pipe) step(t testing.TB, ctx context.Context) (connector.Batch, error) {
	t.Helper()
	b, err := p.src.Read(ctx)
	if err != nil {
		return b, err
	}
	if err := p.snk.Write(ctx, b); err != nil {
		t.Fatalf("write: %v", err)
	}
	p.batches = append(p.batches, b)
	for _, pos := range b.Positions {
		p.positions[pos.Subtopic] = pos
	}
	return b, nil
}

// syncTo runs the loop until the binlog position reaches target.
func (p *pipe) syncTo(t testing.TB, sub string, target gomysql.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if pos, ok := p.positions[sub]; ok {
			if at, err := parseToken(pos.Token); err == nil && !before(at, target) {
				return
			}
		}
		if _, err := p.step(t, ctx); err != nil {
			t.Fatalf("syncing to %s: %v", formatToken(target), err)
		}
	}
}

// records counts the row changes of the pipe's batches.
func (p *pipe) records() int {
	n := 0
	for _, b := range p.batches {
		n += len(b.Records)
	}
	return n
}

// sameTables fails unless each table has the same checksum and row count in
// the source and target databases.
func (e *env) sameTables(t testing.TB, tables ...string) {
	t.Helper()
	for _, tb := range tables {
		s, d := e.checksum(t, e.src(tb)), e.checksum(t, e.dst(tb))
		if s != d {
			t.Errorf("table %s: source %s, target %s", tb, s, d)
		}
	}
}

func (e *env) checksum(t testing.TB, table string) string {
	t.Helper()
	var name string
	var sum sql.NullInt64
	if err := e.admin.QueryRow("CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("checksum %d, %d rows", sum.Int64, e.count(t, table))
}

func (e *env) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := e.admin.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// errCode is the connector error code in err, or "".
func errCode(err error) string {
	var ce *connector.Error
	if errors.As(err, &ce) {
		return ce.Detail.Code
	}
	return ""
}

func (e *env) endpoint() endpoint {
	port, _ := strconv.Atoi(e.port)
	return endpoint{Host: e.host, Port: port, User: e.user, Password: e.password}
}

// seq is MariaDB's sequence table of the integers from..to.
func (e *env) seq(from, to int) string {
	return fmt.Sprintf("`%s`.`seq_%d_to_%d`", e.srcName, from, to)
}

func itoa(n int) string { return strconv.Itoa(n) }
