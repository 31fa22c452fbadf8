package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

// TestDDLSwapAfterDrop: one of two tables is dropped and made again, then
// the two swap names in one RENAME TABLE (as online schema change tools
// do), with rows before, between and after. The target follows; then,
// after it is corrupted, a pullback to before all of it replays the
// statements and rows: the DROP met again must not drop the table that
// has the name now, and the rows of the dropped table must not land in
// it. Tables, columns and rows end equal to the source, with and without
// column names in the binlog.
func TestDDLSwapAfterDrop(t *testing.T) {
	withAndWithoutColumnNames(t, swapAfterDrop)
}

func swapAfterDrop(t *testing.T, e *env) {
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, v INT)")
	e.exec(t, "CREATE TABLE "+e.srcT("b")+" (id INT PRIMARY KEY, w VARCHAR(10))")
	n, name := startIncrWith(t, e, nil)
	sub := e.subtopic()
	at := nextSecond()
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, seq FROM "+e.src+".seq_1_to_50")
	e.exec(t, "INSERT INTO "+e.srcT("b")+" SELECT seq, CONCAT('old', seq) FROM "+e.src+".seq_1_to_50")
	e.exec(t, "DROP TABLE "+e.srcT("b"))
	e.exec(t, "CREATE TABLE "+e.srcT("b")+" (id INT PRIMARY KEY, x VARCHAR(10), y INT)")
	e.exec(t, "INSERT INTO "+e.srcT("b")+" SELECT seq, CONCAT('new', seq), seq FROM "+e.src+".seq_1_to_30")
	e.exec(t, "RENAME TABLE "+e.srcT("a")+" TO "+e.srcT("tmp")+", "+e.srcT("b")+" TO "+e.srcT("a")+", "+e.srcT("tmp")+" TO "+e.srcT("b"))
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('after', seq), -seq FROM "+e.src+".seq_31_to_40")
	e.exec(t, "UPDATE "+e.srcT("b")+" SET v = v * 10 WHERE id % 4 = 0")
	e.exec(t, "DELETE FROM "+e.srcT("b")+" WHERE id % 9 = 0")
	reached(t, n, name, sub, e.binlogEnd(t), 60*time.Second)
	e.same(t, "a", "b")

	e.exec(t, "UPDATE "+e.dstT("a")+" SET x = 'garbage'")
	e.exec(t, "UPDATE "+e.dstT("b")+" SET v = -1 WHERE id < 20")
	if e.diff(t, "a", "b") == "" {
		t.Fatal("the corruption did not change the target")
	}
	v2 := n.OK(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(at), nil).String()
	reached(t, n, v2, sub, e.binlogEnd(t), 60*time.Second)
	if d := n.Detail(t, v2); d.State != model.StateRunning {
		t.Fatalf("after the pullback: %s %+v", d.State, d.ErrorDetails)
	}
	e.same(t, "a", "b")
	if s, d := e.tableList(t, e.src), e.tableList(t, e.dst); s != d {
		t.Fatalf("tables: source %s, target %s", s, d)
	}
}
