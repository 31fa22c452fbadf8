package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
)

// TestKill9BetweenDDLAndRows: cm is killed with SIGKILL at the exact step
// after its sink ran an ALTER on the target and before the statement was
// recorded or its position checkpointed (failpoint mysql:ddl-applied),
// while a writer keeps inserting and updating the table. Started again,
// the task meets the statement again, finds the target already has its
// effect and runs nothing, then applies the rows after it: the target
// equals the source, and the statement is in the task's operations once.
func TestKill9BetweenDDLAndRows(t *testing.T) {
	bin := buildCM(t)
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, name VARCHAR(20), amount INT NOT NULL DEFAULT 0)")
	dir, addr, store := t.TempDir(), freeAddr(t), dbtest.MySQLURL(t)

	t.Setenv("CM_FAILPOINT", failpoint.DDLApplied)
	p := startCM(t, bin, addr, store, dir)
	name := p.node.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), nil)).String()
	sub := e.subtopic()
	started(t, p.node, name, sub)
	w := startWriter(t, e, "a", 200000)
	w.wrote(t, 100)
	e.exec(t, "ALTER TABLE "+e.srcT("a")+" ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'd' AFTER name")
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("cm did not reach the failpoint:\n%s", p.tail())
	}
	if !strings.Contains(e.columns(t, e.dst, "a"), "extra varchar(10)") {
		t.Fatalf("killed before the ALTER ran on the target: %s", e.columns(t, e.dst, "a"))
	}
	w.wrote(t, 100) // the writer goes on while cm is down

	os.Unsetenv("CM_FAILPOINT")
	p = startCM(t, bin, addr, store, dir)
	w.wrote(t, 100)
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	reached(t, p.node, name, sub, e.binlogEnd(t), 120*time.Second)
	if d := p.node.Detail(t, name); d.State != model.StateRunning {
		t.Fatalf("after the restart: %s %+v", d.State, d.ErrorDetails)
	}
	e.same(t, "a")

	var ops []struct {
		Operation string          `json:"operation"`
		Detail    json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(p.node.OK(t, http.MethodGet, base+"operations?taskName="+q(name)+"&limit=1000", nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	var ddl []string
	for _, op := range ops {
		if op.Operation == "runtime:ddl" {
			ddl = append(ddl, string(op.Detail))
		}
	}
	if len(ddl) != 1 || !strings.Contains(ddl[0], "ADD COLUMN extra") || !strings.Contains(ddl[0], `"applied":[]`) {
		t.Fatalf("runtime:ddl operations %v: want the statement once, found applied on the target (nothing run)", ddl)
	}
	t.Logf("after the restart: %s; %s", e.checksum(t, e.dstT("a")), ddl[0])
}
