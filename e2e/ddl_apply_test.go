package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// ddlOperation is a runtime:ddl entry of a task's operations.
type ddlOperation struct {
	Time   string `json:"time"`
	Actor  string `json:"actor"`
	Detail struct {
		Position  model.StatementPosition `json:"position"`
		Statement string                  `json:"statement"`
		Applied   []string                `json:"applied"`
		Tables    []string                `json:"tables"`
		Replay    bool                    `json:"replay"`
	} `json:"detail"`
}

// ddlOperations lists the runtime:ddl operations of a task, newest first.
func ddlOperations(t *testing.T, n *cmtest.Node, name string) []ddlOperation {
	t.Helper()
	var ops []struct {
		Operation string `json:"operation"`
		ddlOperation
	}
	if err := json.Unmarshal(n.OK(t, http.MethodGet, base+"operations?taskName="+q(name)+"&limit=1000", nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	var out []ddlOperation
	for _, op := range ops {
		if op.Operation == "runtime:ddl" {
			out = append(out, op.ddlOperation)
		}
	}
	return out
}

// startIncrWith is startIncr with extra config.
func startIncrWith(t *testing.T, e *env, extra map[string]map[string]string) (*cmtest.Node, string) {
	t.Helper()
	n := cmtest.Start(t, dbtest.MySQLURL(t), cmtest.Options{})
	name := n.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), extra)).String()
	started(t, n, name, e.subtopic())
	return n, name
}

// writer inserts rows into a table and updates random earlier ones, one
// statement at a time, until stopped (at most limit statements). Pause
// holds it between statements.
type writer struct {
	e      *env
	table  string
	mu     sync.Mutex // held by the writer for each statement; Pause takes it
	next   atomic.Int64
	done   chan struct{}
	cancel context.CancelFunc
	// stopping ends the loop between statements: cancelling one in flight
	// would let the server commit it after the writer returned.
	stopping atomic.Bool
	err      error
}

func startWriter(t *testing.T, e *env, table string, limit int) *writer {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	w := &writer{e: e, table: table, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		for i := 0; i < limit && ctx.Err() == nil && !w.stopping.Load(); i++ {
			w.mu.Lock()
			id := w.next.Add(1)
			_, err := e.admin.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (id, name, amount) VALUES (%d, 'w%d', %d)", e.srcT(table), id, id, id))
			if err == nil && id > 1 {
				k := 1 + rand.Int64N(id-1)
				_, err = e.admin.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET amount = amount + 1, name = CONCAT('u', id, '-', %d) WHERE id = %d",
					e.srcT(table), i, k))
			}
			w.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					w.err = err
				}
				return
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// wrote waits until the writer has written k more rows since the call.
func (w *writer) wrote(t *testing.T, k int64) {
	t.Helper()
	from := w.next.Load()
	cmtest.Eventually(t, 30*time.Second, "the writer writes", func() bool { return w.next.Load() >= from+k || w.err != nil })
	if w.err != nil {
		t.Fatal(w.err)
	}
}

// stop ends the writer after the statement it is running, and waits.
func (w *writer) stop() {
	w.stopping.Store(true)
	<-w.done
	w.cancel()
}

// columns is the definition of a table as information_schema shows it:
// each column's name, type, nullability and default, in order, and its
// indexes.
func (e *env) columns(t testing.TB, db, table string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cols, idx string
	if err := e.admin.QueryRowContext(ctx, `SELECT IFNULL(GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '-'))
		ORDER BY ORDINAL_POSITION SEPARATOR ', '), '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		db, table).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.QueryRowContext(ctx, `SELECT IFNULL(GROUP_CONCAT(CONCAT_WS(' ', INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE)
		ORDER BY INDEX_NAME, SEQ_IN_INDEX SEPARATOR ', '), '') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		db, table).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	return cols + " | " + idx
}

// same checks that the target equals the source: the tables present on
// each side, and for each table its columns, CHECKSUM TABLE and every
// row's values in HEX.
func (e *env) same(t testing.TB, tables ...string) {
	t.Helper()
	for _, tb := range tables {
		if s, d := e.columns(t, e.src, tb), e.columns(t, e.dst, tb); s != d || s == " | " {
			t.Fatalf("table %s: source columns %q, target %q", tb, s, d)
		}
		if d := e.diff(t, tb); d != "" {
			t.Fatalf("CHECKSUM TABLE differs: %s", d)
		}
		if src, dst := e.hexRows(t, e.src, tb), e.hexRows(t, e.dst, tb); !slices.Equal(src, dst) {
			t.Fatalf("table %s: source %d rows, target %d rows; first difference: %s", tb, len(src), len(dst), firstDiff(src, dst))
		}
	}
	if s, d := e.tableList(t, e.src), e.tableList(t, e.dst); s != d {
		t.Fatalf("tables: source %s, target %s", s, d)
	}
}

func (e *env) tableList(t testing.TB, db string) string {
	t.Helper()
	var s string
	if err := e.admin.QueryRow(`SELECT IFNULL(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), '') FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'seq%'`, db).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// ddlStep is one schema change of the acceptance run, and the tables to
// compare after it.
type ddlStep struct {
	name, sql string
	tables    []string
}

func ddlSteps(e *env) []ddlStep {
	all := func(extra ...string) []string { return append([]string{"a", "tr", "dc"}, extra...) }
	return []ddlStep{
		{"ADD COLUMN", "ALTER TABLE " + e.srcT("a") + " ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'd' AFTER name", all("r")},
		{"DROP COLUMN", "ALTER TABLE " + e.srcT("a") + " DROP COLUMN x", all("r")},
		{"MODIFY (widening)", "ALTER TABLE " + e.srcT("a") + " MODIFY amount BIGINT NOT NULL DEFAULT 0", all("r")},
		{"ADD INDEX", "ALTER TABLE " + e.srcT("a") + " ADD INDEX ix_name (name, amount)", all("r")},
		{"RENAME COLUMN", "UPDATE " + e.srcT("a") + " SET note = CONCAT('n', id) WHERE id % 3 = 0; ALTER TABLE " + e.srcT("a") +
			" RENAME COLUMN note TO memo", all("r")},
		{"RENAME TABLE", "RENAME TABLE " + e.srcT("r") + " TO " + e.srcT("r2") + "; INSERT INTO " + e.srcT("r2") +
			" SELECT seq, CONCAT('after ', seq) FROM " + e.src + ".seq_101_to_150", all("r2")},
		{"TRUNCATE", "TRUNCATE TABLE " + e.srcT("tr") + "; INSERT INTO " + e.srcT("tr") + " SELECT seq, -seq FROM " + e.src + ".seq_1_to_20", all("r2")},
		{"DROP then CREATE", "DROP TABLE " + e.srcT("dc") + "; CREATE TABLE " + e.srcT("dc") +
			" (id BIGINT PRIMARY KEY, w VARCHAR(5) CHARACTER SET latin1, v INT) DEFAULT CHARSET=utf8mb4; INSERT INTO " + e.srcT("dc") +
			" SELECT seq, CONCAT('w', seq), seq * 3 FROM " + e.src + ".seq_1_to_40", all("r2")},
		{"CREATE TABLE", "CREATE TABLE " + e.srcT("n") + " (id INT PRIMARY KEY, s VARCHAR(8) COLLATE utf8mb4_bin, t DATETIME(3)); INSERT INTO " +
			e.srcT("n") + " SELECT seq, CONCAT('n', seq), NOW(3) FROM " + e.src + ".seq_1_to_30", all("r2", "n")},
	}
}

// TestDDLApply: with sink.ddl=apply (the default), while a writer keeps
// inserting and updating, each of ADD COLUMN, DROP COLUMN, MODIFY
// (widening), ADD INDEX, RENAME COLUMN, RENAME TABLE within the selection,
// TRUNCATE, DROP then CREATE and CREATE TABLE of a new selected table is
// applied on the target at its place: the task stays RUNNING, and after
// each the target equals the source in tables, columns (names, types,
// order, indexes) and rows (CHECKSUM TABLE and the HEX of every value).
// Then the target is corrupted (in renamed columns and tables too) and the
// task pulled back to before all of them: replaying the statements and
// rows converges to the source again, rows from before a rename going to
// the names the target has.
func TestDDLApply(t *testing.T) { ddlApply(t, newEnv(t)) }

// TestDDLApplyWithoutColumnNames is TestDDLApply on a source server with
// binlog_row_metadata=NO_LOG (MariaDB's default): rows carry no column
// names, so the schema history alone maps values to columns, before and
// after each statement and in the replay of the pullback.
func TestDDLApplyWithoutColumnNames(t *testing.T) { ddlApply(t, noLogEnv(t)) }

func ddlApply(t *testing.T, e *env) {
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, name VARCHAR(20), amount INT NOT NULL DEFAULT 0, note VARCHAR(20), x INT)")
	e.exec(t, "CREATE TABLE "+e.srcT("r")+" (id INT PRIMARY KEY, v VARCHAR(20))")
	e.exec(t, "CREATE TABLE "+e.srcT("tr")+" (id INT PRIMARY KEY, v INT)")
	e.exec(t, "CREATE TABLE "+e.srcT("dc")+" (id INT PRIMARY KEY, v INT)")
	n, name := startIncrWith(t, e, nil)
	sub := e.subtopic()

	at := nextSecond() // every change below is logged at or after it
	e.exec(t, "INSERT INTO "+e.srcT("r")+" SELECT seq, CONCAT('r', seq) FROM "+e.src+".seq_1_to_100")
	e.exec(t, "INSERT INTO "+e.srcT("tr")+" SELECT seq, seq FROM "+e.src+".seq_1_to_100")
	e.exec(t, "INSERT INTO "+e.srcT("dc")+" SELECT seq, seq FROM "+e.src+".seq_1_to_100")
	w := startWriter(t, e, "a", 200000)
	quiet := func(what string, tables []string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		reached(t, n, name, sub, e.binlogEnd(t), 60*time.Second)
		if d := n.Detail(t, name); d.State != model.StateRunning {
			t.Fatalf("after %s: %s %+v", what, d.State, d.ErrorDetails)
		}
		e.same(t, tables...)
	}
	w.wrote(t, 50)
	quiet("the first rows", []string{"a", "r", "tr", "dc"})
	for _, st := range ddlSteps(e) {
		e.exec(t, st.sql)
		w.wrote(t, 30)
		quiet(st.name, st.tables)
		t.Logf("%s: converged (a: %s)", st.name, e.checksum(t, e.dstT("a")))
	}
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	final := ddlSteps(e)[len(ddlSteps(e))-1].tables
	quiet("the writer's last rows", final)

	// Every applied statement is in the task's history, counted in detail.
	// Ten statements: DROP then CREATE is two.
	cmtest.Eventually(t, 30*time.Second, "detail counts the applied statements", func() bool {
		return n.Detail(t, name).Metrics["ddlApplied"] == 10
	})
	ops := ddlOperations(t, n, name)
	if len(ops) != 10 {
		t.Fatalf("%d runtime:ddl operations, want 10: %+v", len(ops), ops)
	}
	for _, op := range ops {
		d := op.Detail
		if op.Actor == "" || op.Time == "" || d.Position.Subtopic != sub || d.Position.Before == "" || d.Position.After == "" ||
			d.Position.TS < at || d.Statement == "" || len(d.Applied) == 0 || strings.Contains(strings.Join(d.Applied, ";"), "`"+e.src+"`") {
			t.Fatalf("runtime:ddl operation: %+v", op)
		}
	}
	// The task's own DDL history: the same ten statements, oldest first,
	// each with its position, the statement and what ran on the target.
	var hist []model.AppliedDDL
	if err := json.Unmarshal(n.OK(t, http.MethodGet, base+"ddlHistory?taskName="+q(name), nil).Result, &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 10 {
		t.Fatalf("ddlHistory has %d statements, want 10: %+v", len(hist), hist)
	}
	for i, h := range hist {
		if h.Subtopic != sub || h.Before == "" || h.After == "" || h.TS < at || h.Statement == "" || h.Applied == "" ||
			h.Statement != ops[len(ops)-1-i].Detail.Statement {
			t.Fatalf("ddlHistory[%d] = %+v; operations (newest first) %+v", i, h, ops)
		}
	}

	// The incident: the target is corrupted; a pullback to before every
	// statement replays them and the rows around them.
	e.exec(t, "UPDATE "+e.dstT("a")+" SET name = 'garbage', amount = -1 WHERE id % 5 = 0")
	e.exec(t, "UPDATE "+e.dstT("a")+" SET memo = 'garbage' WHERE id % 2 = 0")
	e.exec(t, "UPDATE "+e.dstT("r2")+" SET v = 'garbage' WHERE id <= 120")
	e.exec(t, "DELETE FROM "+e.dstT("a")+" WHERE id % 7 = 0")
	e.exec(t, "INSERT INTO "+e.dstT("tr")+" SELECT seq, 0 FROM "+e.src+".seq_500_to_520")
	e.exec(t, "UPDATE "+e.dstT("dc")+" SET v = -1")
	e.exec(t, "DELETE FROM "+e.dstT("n")+" WHERE id <= 10")
	if d := e.diff(t, final...); d == "" {
		t.Fatal("the corruption did not change the target")
	}
	started := time.Now()
	v2 := n.OK(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(at), nil).String()
	reached(t, n, v2, sub, e.binlogEnd(t), 120*time.Second)
	if d := n.Detail(t, v2); d.State != model.StateRunning || slices.ContainsFunc(d.ErrorDetails, func(ed model.ErrorDetail) bool {
		return ed.Code != "MYSQL_ROW_METADATA_MINIMAL" // the warning of a NO_LOG source
	}) {
		t.Fatalf("after the pullback: %s %+v", d.State, d.ErrorDetails)
	}
	e.same(t, final...)
	t.Logf("converged %s after the pullback", time.Since(started).Round(time.Millisecond))

	// Still applying statements after the pullback.
	e.exec(t, "ALTER TABLE "+e.srcT("a")+" ADD COLUMN later INT NOT NULL DEFAULT 7 FIRST")
	e.exec(t, "UPDATE "+e.srcT("a")+" SET later = id WHERE id <= 20")
	reached(t, n, v2, sub, e.binlogEnd(t), 60*time.Second)
	e.same(t, final...)
	if !strings.HasPrefix(e.columns(t, e.dst, "a"), "later int(11) NO 7") {
		t.Fatalf("target columns %s", e.columns(t, e.dst, "a"))
	}
}
