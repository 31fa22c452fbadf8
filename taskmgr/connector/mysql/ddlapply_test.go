package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func TestParseStatement(t *testing.T) {
	for _, c := range []struct {
		q       string
		ok      bool
		replace bool
	}{
		{"ALTER TABLE t ADD COLUMN c INT", true, false},
		{"  alter\tonline table t add column c int", true, false},
		{"ALTER IGNORE TABLE t ADD UNIQUE KEY (c)", true, false},
		{"create or replace table t (id int primary key)", true, true},
		{"CREATE ORDINARY TABLE t (id INT)", false, false},
		{"RENAME TABLE a TO b, c TO d", true, false},
		{"ALTER TABLE t ADD COLUMN c INET6", false, false},
		{"ALTER TABLE", false, false},
	} {
		p, err := parseStatement(c.q)
		if (err == nil) != c.ok || (err == nil && p.Replace != c.replace) {
			t.Errorf("parseStatement(%q) = replace %v, %v; want ok %v, replace %v", c.q, p.Replace, err, c.ok, c.replace)
		}
	}
	if _, ok := cutWords("CREATE ORx REPLACE", "CREATE", "OR"); ok {
		t.Error("cutWords matched a word prefix")
	}
	if rest, ok := cutWords("create  or\nreplace table t", "CREATE", "OR", "REPLACE"); !ok || rest != " table t" {
		t.Errorf("cutWords = %q %v", rest, ok)
	}
}

// openSinkWithHistory opens a mysql sink of e whose DDL history is a
// historyRecorder; it closes when the test ends.
func openSinkWithHistory(t *testing.T, ctx context.Context, e *env) (connector.Sink, *historyRecorder) {
	t.Helper()
	_, snk := build(t, e.config(t, model.TypeIncr, nil))
	hist := &historyRecorder{}
	snk.(*sink).history = hist
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snk.Close() })
	return snk, hist
}

// historyRecorder is a connector.SchemaHistory in memory: events are the
// calls, rows the DDL history as the store keeps it (a replay updates its
// statement's row).
type historyRecorder struct {
	events   []connector.SchemaEvent
	rows     []model.AppliedDDL
	versions []model.SchemaVersion
}

func (h *historyRecorder) AppliedDDL(_ context.Context, e connector.SchemaEvent) error {
	h.events = append(h.events, e)
	applied, _ := json.Marshal(append([]string{}, e.Applied...))
	tables, _ := json.Marshal(append([]string{}, e.Tables...))
	row := model.AppliedDDL{Subtopic: e.Subtopic, Before: e.Before, After: e.After, Database: e.Database,
		Statement: e.Statement, At: time.Now(), Applied: string(applied), Tables: string(tables)}
	if i := slices.IndexFunc(h.rows, func(r model.AppliedDDL) bool { return r.Subtopic == e.Subtopic && r.After == e.After }); i >= 0 {
		row.Replays = h.rows[i].Replays + 1
		h.rows[i] = row
	} else {
		h.rows = append(h.rows, row)
	}
	return nil
}

func (h *historyRecorder) DDLHistory(context.Context, model.TaskName) ([]model.AppliedDDL, error) {
	return slices.Clone(h.rows), nil
}

func (h *historyRecorder) SchemaVersions(context.Context, model.TaskName) ([]model.SchemaVersion, error) {
	return slices.Clone(h.versions), nil
}

func (h *historyRecorder) AddSchemaVersions(_ context.Context, _ model.TaskName, v []model.SchemaVersion) error {
	for _, n := range v {
		if !slices.ContainsFunc(h.versions, func(o model.SchemaVersion) bool {
			return o.Subtopic == n.Subtopic && o.Token == n.Token && o.Tbl == n.Tbl
		}) {
			h.versions = append(h.versions, n)
		}
	}
	return nil
}

// TestSinkDDLReplay: each schema statement, given to the sink as the
// source sends it, changes the target (names mapped through
// sink.databaseMap); given again, as after a crash or a pullback, it runs
// nothing and leaves the target as it was. Every one is recorded.
func TestSinkDDLReplay(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, a VARCHAR(10), b INT, x INT)")
	e.exec(t, "CREATE TABLE "+e.src("r")+" (id INT PRIMARY KEY)")
	// OTHER is a database the task does not read: statements naming it
	// with selected tables leave it alone on the target.
	other := e.srcName + "_o"
	e.exec(t, "CREATE DATABASE `"+other+"`; CREATE TABLE `"+other+"`.x (id INT PRIMARY KEY)")
	t.Cleanup(func() { e.exec(t, "DROP DATABASE IF EXISTS `"+other+"`") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snk, hist := openSinkWithHistory(t, ctx, e)

	stmts := []string{
		"ALTER TABLE t ADD COLUMN c VARCHAR(5) NOT NULL DEFAULT 'z' AFTER a, ADD INDEX ix_b (b)",
		"ALTER TABLE t DROP COLUMN x, MODIFY b BIGINT",
		"ALTER TABLE t RENAME COLUMN a TO a2",
		"ALTER TABLE t CHANGE c c2 VARCHAR(8) NOT NULL DEFAULT 'y'",
		"CREATE INDEX ix_c2 ON t (c2)",
		"DROP INDEX ix_b ON t",
		"ALTER TABLE t ADD KEY (a2, b)",
		"ALTER TABLE t CONVERT TO CHARACTER SET latin1",
		"RENAME TABLE r TO r2, OTHER.x TO OTHER.y",
		"CREATE TABLE n (id INT PRIMARY KEY, v JSON)",
		"CREATE OR REPLACE TABLE n (id BIGINT PRIMARY KEY, w TEXT)",
		"TRUNCATE TABLE t",
		"DROP TABLE IF EXISTS OTHER.y, n",
		"ALTER TABLE r2 RENAME TO r3",
	}
	shapes := func() string {
		var out []string
		for _, tb := range []string{"t", "r", "r2", "r3", "n"} {
			var def string
			if err := e.admin.QueryRow("SELECT IFNULL(GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE, ' ', IFNULL(COLUMN_DEFAULT, '-')) "+
				"ORDER BY ORDINAL_POSITION), '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", e.dstName, tb).Scan(&def); err != nil {
				t.Fatal(err)
			}
			var idx string
			if err := e.admin.QueryRow("SELECT IFNULL(GROUP_CONCAT(CONCAT(INDEX_NAME, ':', COLUMN_NAME) ORDER BY INDEX_NAME, SEQ_IN_INDEX), '') "+
				"FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", e.dstName, tb).Scan(&idx); err != nil {
				t.Fatal(err)
			}
			out = append(out, tb+"("+def+" | "+idx+")")
		}
		return strings.Join(out, "; ")
	}
	source := func() string {
		var out []string
		for _, tb := range []string{"t", "r", "r2", "r3", "n"} {
			var def string
			if err := e.admin.QueryRow("SELECT IFNULL(GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE, ' ', IFNULL(COLUMN_DEFAULT, '-')) "+
				"ORDER BY ORDINAL_POSITION), '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", e.srcName, tb).Scan(&def); err != nil {
				t.Fatal(err)
			}
			var idx string
			if err := e.admin.QueryRow("SELECT IFNULL(GROUP_CONCAT(CONCAT(INDEX_NAME, ':', COLUMN_NAME) ORDER BY INDEX_NAME, SEQ_IN_INDEX), '') "+
				"FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", e.srcName, tb).Scan(&idx); err != nil {
				t.Fatal(err)
			}
			out = append(out, tb+"("+def+" | "+idx+")")
		}
		return strings.Join(out, "; ")
	}
	write := func(i int, q string) {
		t.Helper()
		c := &connector.SchemaChange{Database: e.srcName, Statement: q, Before: fmt.Sprintf("binlog.000001:%d", 100*i), After: fmt.Sprintf("binlog.000001:%d", 100*i+50)}
		if err := snk.Write(ctx, connector.Batch{Records: []connector.Record{{Subtopic: "s", TS: 1, DDL: c}}}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := range stmts {
		stmts[i] = strings.ReplaceAll(stmts[i], "OTHER", "`"+other+"`")
	}
	for i, q := range stmts {
		e.exec(t, "USE "+quoteIdent(e.srcName)+"; "+q)
		write(i, q)
		if s, d := source(), shapes(); s != d {
			t.Fatalf("after %s:\nsource %s\ntarget %s", q, s, d)
		}
	}
	if len(hist.events) != len(stmts) {
		t.Fatalf("%d statements recorded, want %d", len(hist.events), len(stmts))
	}
	for i, ev := range hist.events {
		if len(ev.Applied) == 0 || ev.Statement != stmts[i] || ev.After == "" || ev.Task.Component.String() == "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if a := strings.Join(ev.Applied, ";"); strings.Contains(a, "`"+e.srcName+"`") || strings.Contains(a, other) {
			t.Fatalf("event %d applied on the source database or one the task does not read: %v", i, ev.Applied)
		}
	}

	// A replay of all of them against the target that has them: nothing
	// to run but TRUNCATE, DROP and CREATE OR REPLACE (which come back to
	// the same table) and CONVERT, its own repetition; MODIFY and CHANGE
	// of a statement recorded as applied are not run again (the next
	// test); the target ends as it was.
	want := shapes()
	hist.events = nil
	for i, q := range stmts {
		write(i, q)
	}
	if got := shapes(); got != want {
		t.Fatalf("the replay changed the target:\n%s\nwant %s", got, want)
	}
	for i, ev := range hist.events {
		switch {
		case strings.HasPrefix(stmts[i], "RENAME"), strings.HasPrefix(stmts[i], "ALTER TABLE r2 RENAME"),
			strings.Contains(stmts[i], "RENAME COLUMN"), strings.HasPrefix(stmts[i], "CREATE INDEX"), strings.HasPrefix(stmts[i], "DROP INDEX"),
			strings.Contains(stmts[i], "ADD KEY"):
			if len(ev.Applied) != 0 {
				t.Errorf("replayed %q ran %v", stmts[i], ev.Applied)
			}
		}
	}
	if !slices.ContainsFunc(hist.events, func(ev connector.SchemaEvent) bool {
		return strings.HasPrefix(ev.Statement, "TRUNCATE") && len(ev.Applied) == 1
	}) {
		t.Error("a replayed TRUNCATE did not run")
	}

	// A statement the target cannot take stops the task at it.
	err := snk.Write(ctx, connector.Batch{Records: []connector.Record{{DDL: &connector.SchemaChange{Database: e.srcName,
		Statement: "ALTER TABLE t ADD COLUMN z INT AFTER nosuch", After: "binlog.000009:4"}}}})
	if errCode(err) != codeDDLApply {
		t.Fatalf("a statement the target refuses: %v", err)
	}
	err = snk.Write(ctx, connector.Batch{Records: []connector.Record{{DDL: &connector.SchemaChange{Database: e.srcName,
		Statement: "ALTER TABLE t ADD COLUMN q INET6"}}}})
	if errCode(err) != codeDDLApply || !strings.Contains(err.Error(), "INET6") {
		t.Fatalf("a statement not understood: %v", err)
	}
}

// TestSinkDDLReplayKeepsLaterShape: a replay of statements that moved
// columns and changed their types, against a target that went through
// them and the ones after, leaves the target's columns where the last
// statements put them, and does not narrow a column back to a type its
// data no longer fits; a table dropped and made again in the replay gets
// every later statement again; a swap of two tables by one RENAME TABLE
// is applied (the names freed by its first pairs taken by the next) and
// not undone by its replay.
func TestSinkDDLReplayKeepsLaterShape(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, a VARCHAR(10), b INT, c INT, d VARCHAR(30))")
	e.exec(t, "CREATE TABLE "+e.src("u")+" (id INT PRIMARY KEY)")
	e.exec(t, "CREATE TABLE "+e.dst("t")+" LIKE "+e.src("t")+"; CREATE TABLE "+e.dst("u")+" LIKE "+e.src("u"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snk, _ := openSinkWithHistory(t, ctx, e)
	stmts := []string{
		"ALTER TABLE t MODIFY c INT AFTER id",
		"ALTER TABLE t ADD COLUMN e INT AFTER c",
		"ALTER TABLE t MODIFY a VARCHAR(10) AFTER b",
		"ALTER TABLE t DROP COLUMN e, MODIFY b INT FIRST",
		"ALTER TABLE t MODIFY d VARCHAR(3)",
		"ALTER TABLE t MODIFY d VARCHAR(30)",
		"DROP TABLE u",
		"CREATE TABLE u (id INT PRIMARY KEY, x INT, y INT)",
		"ALTER TABLE u MODIFY y INT AFTER id, CHANGE x x2 BIGINT",
		// A swap: replayed against the target that has it, it must not
		// swap the tables back.
		"CREATE TABLE g (id INT PRIMARY KEY, z INT)",
		"RENAME TABLE t TO tmp, g TO t, tmp TO g",
		// And a swap that gives the name of the u dropped above to another
		// table: replayed, that DROP must not drop the table under the
		// name now, nor the statements of u's next table run on the one
		// called u now.
		"RENAME TABLE t TO tmp, u TO t, tmp TO u",
		"ALTER TABLE t ADD COLUMN w INT FIRST",
	}
	columns := func(db string) string {
		var out string
		if err := e.admin.QueryRow("SELECT IFNULL(GROUP_CONCAT(CONCAT(TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE) "+
			"ORDER BY TABLE_NAME, ORDINAL_POSITION), '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?", db).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	write := func(i int, q string) {
		t.Helper()
		c := &connector.SchemaChange{Database: e.srcName, Statement: q, Before: fmt.Sprintf("binlog.000001:%d", 100*i+4), After: fmt.Sprintf("binlog.000001:%d", 100*i+54)}
		if err := snk.Write(ctx, connector.Batch{Records: []connector.Record{{Subtopic: "s", TS: 1, DDL: c}}}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, q := range stmts {
		e.exec(t, "USE "+quoteIdent(e.srcName)+"; "+q)
		write(i, q)
	}
	want := columns(e.srcName)
	if got := columns(e.dstName); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
	// Data the first type of d does not fit.
	e.exec(t, "INSERT INTO "+e.dst("g")+" (id, d) VALUES (1, 'longer than three')") // t before the swap
	for round := range 2 {
		for i, q := range stmts {
			write(i, q)
		}
		if got := columns(e.dstName); got != want {
			t.Fatalf("replay %d: target %s\nwant %s", round+1, got, want)
		}
		var d string
		if err := e.admin.QueryRow("SELECT d FROM " + e.dst("g") + " WHERE id = 1").Scan(&d); err != nil || d != "longer than three" {
			t.Fatalf("replay %d: the value of d is %q (%v)", round+1, d, err)
		}
	}
}

// TestBinlogDDLApplyOrder: rows before a schema statement, the statement
// and rows after it come in three batches, the statement alone, each with
// the position after its last part; the target ends equal to the source.
func TestBinlogDDLApplyOrder(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, v VARCHAR(20))")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := openPipe(t, ctx, e.config(t, model.TypeIncr, nil))
	sub := p.src.(connector.Subtopicer).Subtopics()[0]
	e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (0, 'first')")
	p.syncTo(t, sub, e.binlogEndNow(t))
	p.batches = nil

	var q strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&q, "INSERT INTO %s VALUES (%d, 'before');", e.src("t"), i)
	}
	fmt.Fprintf(&q, "ALTER TABLE %s ADD COLUMN w INT NOT NULL DEFAULT 5 AFTER id;", e.src("t"))
	for i := 11; i <= 20; i++ {
		fmt.Fprintf(&q, "INSERT INTO %s VALUES (%d, %d, 'after');", e.src("t"), i, i)
	}
	e.exec(t, q.String())
	p.syncTo(t, sub, e.binlogEndNow(t))
	e.sameTables(t, "t")

	var ddl int
	for i, b := range p.batches {
		for _, r := range b.Records {
			if r.DDL == nil {
				continue
			}
			ddl++
			if len(b.Records) != 1 || len(b.Positions) != 1 || b.Positions[0].Token != r.DDL.After || r.DDL.Before == "" {
				t.Fatalf("the DDL batch: %+v", b)
			}
			for _, prev := range p.batches[:i] {
				for _, pr := range prev.Records {
					if pr.Change != nil && len(pr.Change.Columns) != 2 {
						t.Fatalf("a row after the statement came before it: %+v", pr.Change)
					}
				}
			}
			for _, next := range p.batches[i+1:] {
				for _, nr := range next.Records {
					if nr.Change != nil && len(nr.Change.Columns) != 3 {
						t.Fatalf("a row before the statement came after it: %+v", nr.Change)
					}
				}
			}
		}
	}
	if ddl != 1 {
		t.Fatalf("%d DDL records, want 1", ddl)
	}
}

// TestBinlogDDLApplyRefuses: with sink.ddl=apply, statements the sink does
// not apply stop the source as with stop, at their exact place: one the
// parser does not understand, a rename out of the selection, DROP
// DATABASE.
func TestBinlogDDLApplyRefuses(t *testing.T) {
	for _, c := range []struct{ name, stmt string }{
		{"not understood", "ALTER TABLE %s ADD COLUMN ip INET6"},
		{"renamed out of the selection", "RENAME TABLE %s TO `%s_elsewhere`.`t`"},
		{"DROP DATABASE", "DROP DATABASE `%s`"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY)")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := openPipe(t, ctx, e.config(t, model.TypeIncr, nil))
			sub := p.src.(connector.Subtopicer).Subtopics()[0]
			e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (1)")
			p.syncTo(t, sub, e.binlogEndNow(t))
			stmt := c.stmt
			switch c.name {
			case "renamed out of the selection":
				e.exec(t, "CREATE DATABASE `"+e.srcName+"_elsewhere`")
				t.Cleanup(func() { e.exec(t, "DROP DATABASE IF EXISTS `"+e.srcName+"_elsewhere`") })
				stmt = fmt.Sprintf(stmt, e.src("t"), e.srcName)
			case "DROP DATABASE":
				stmt = fmt.Sprintf(stmt, e.srcName)
			default:
				stmt = fmt.Sprintf(stmt, e.src("t"))
			}
			e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (2); "+stmt)
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				_, err = p.step(t, ctx)
			}
			if errCode(err) != codeDDLUnsupported || stoppedAt(err) == nil || !strings.Contains(err.Error(), strings.SplitN(stmt, " ", 2)[0]) {
				t.Fatalf("after %s: %v; want MYSQL_DDL_UNSUPPORTED with its position", stmt, err)
			}
			if got := p.positions[sub].Token; got != stoppedAt(err).Before {
				t.Fatalf("delivered up to %s, want %s just before the statement", got, stoppedAt(err).Before)
			}
			if e.count(t, e.dst("t")) != 2 {
				t.Fatalf("the rows before the statement did not all arrive: %d", e.count(t, e.dst("t")))
			}
		})
	}
}
