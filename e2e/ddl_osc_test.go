package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

// TestOnlineSchemaChange: the statements of an online schema change tool
// (gh-ost, pt-online-schema-change) on a selected database (db.*), while
// a writer inserts and updates: a ghost table made LIKE the table and
// altered, the rows copied into it, the cutover swapping the names in one
// RENAME TABLE, the old table dropped; then a second change of the same
// table the same way. The task stays RUNNING, the target equals the
// source after each; then, after corruption, a pullback to before both
// converges. With and without column names in the binlog.
func TestOnlineSchemaChange(t *testing.T) {
	withAndWithoutColumnNames(t, onlineSchemaChange)
}

func onlineSchemaChange(t *testing.T, e *env) {
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, name VARCHAR(20), amount INT NOT NULL DEFAULT 0)")
	n, name := startIncrWith(t, e, nil)
	sub := e.subtopic()
	at := nextSecond()
	w := startWriter(t, e, "a", 200000)
	quiet := func(what string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		reached(t, n, name, sub, e.binlogEnd(t), 60*time.Second)
		if d := n.Detail(t, name); d.State != model.StateRunning {
			t.Fatalf("after %s: %s %+v", what, d.State, d.ErrorDetails)
		}
		e.same(t, "a")
		if s, d := e.tableList(t, e.src), e.tableList(t, e.dst); s != d {
			t.Fatalf("after %s: tables: source %s, target %s", what, s, d)
		}
	}
	change := func(alter string) {
		t.Helper()
		e.exec(t, "CREATE TABLE "+e.srcT("_a_gho")+" LIKE "+e.srcT("a"))
		e.exec(t, "ALTER TABLE "+e.srcT("_a_gho")+" "+alter)
		w.wrote(t, 20)
		// The copy and the cutover, the writer held meanwhile as the tools
		// hold writes at the cutover.
		w.mu.Lock()
		e.exec(t, "INSERT INTO "+e.srcT("_a_gho")+" (id, name, amount) SELECT id, name, amount FROM "+e.srcT("a"))
		e.exec(t, "RENAME TABLE "+e.srcT("a")+" TO "+e.srcT("_a_del")+", "+e.srcT("_a_gho")+" TO "+e.srcT("a"))
		w.mu.Unlock()
		w.wrote(t, 20)
		e.exec(t, "DROP TABLE "+e.srcT("_a_del"))
		w.wrote(t, 20)
	}
	w.wrote(t, 50)
	change("ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'n' AFTER name")
	quiet("the first change")
	change("MODIFY amount BIGINT NOT NULL DEFAULT 0, ADD INDEX ix_name (name)")
	quiet("the second change")
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	quiet("the writer's last rows")

	e.exec(t, "UPDATE "+e.dstT("a")+" SET name = 'garbage' WHERE id % 3 = 0")
	e.exec(t, "DELETE FROM "+e.dstT("a")+" WHERE id % 7 = 0")
	if e.diff(t, "a") == "" {
		t.Fatal("the corruption did not change the target")
	}
	name = n.OK(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(at), nil).String()
	quiet("the pullback")
}
