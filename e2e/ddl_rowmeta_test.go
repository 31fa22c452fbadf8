package e2e

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestDDLApplyMinimalRowMetadata: without column names in the binlog
// (binlog_row_metadata=MINIMAL, and NO_LOG, MariaDB's default), rows logged
// before and after column reorders, an added and a dropped column decode
// into the right columns with sink.ddl=apply: the task's schema history
// holds the definition of each row's time, worked out from the statements.
// The task is stopped while the first two statements run, so it reads
// them when the server already shows the definition after both; two more
// run while it is running. A pullback to before all of them is accepted
// (the history covers them), and after the target is corrupted the replay
// converges to the source, value for value.
func TestDDLApplyMinimalRowMetadata(t *testing.T) {
	for _, meta := range []string{"MINIMAL", "NO_LOG"} {
		t.Run(meta, func(t *testing.T) { ddlApplyWithoutNames(t, meta) })
	}
}

func ddlApplyWithoutNames(t *testing.T, meta string) {
	srv := dbtest.StartServer(t, "--binlog-row-metadata="+meta)
	srv.Exec(t, "CREATE DATABASE src; CREATE DATABASE dst; CREATE TABLE src.t (id INT PRIMARY KEY, a VARCHAR(20), b INT, c VARCHAR(20))")
	port := strconv.Itoa(srv.Port)
	e := &env{admin: srv.DB, host: "127.0.0.1", port: port, user: "root", src: "src", dst: "dst"}
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	name := n.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), nil)).String()
	sub := "127.0.0.1-" + port
	started(t, n, name, sub)
	// sync waits for the checkpoint to reach the binlog end; the task
	// carries the row metadata warning, and nothing else.
	sync := func(name string) {
		t.Helper()
		end := e.binlogEnd(t)
		cmtest.Eventually(t, 60*time.Second, "checkpoint reaches "+end.String(), func() bool {
			d := n.Detail(t, name)
			for _, ed := range d.ErrorDetails {
				if ed.Level != model.LevelWarning {
					t.Fatalf("task %s is %s: %+v", name, d.State, d.ErrorDetails)
				}
			}
			at, ok := parseToken(d.Checkpoint[sub].Token)
			return d.State == model.StateRunning && ok && !at.before(end)
		})
		e.same(t, "t")
	}

	srv.Exec(t, "INSERT INTO src.t VALUES (1, 'one', 1, 'c1')")
	sync(name)
	at := srv.NextSecond(t)
	srv.Exec(t, "INSERT INTO src.t SELECT seq, CONCAT('a', seq), seq, CONCAT('c', seq) FROM src.seq_2_to_100")
	n.OK(t, http.MethodPost, base+"stop?taskName="+q(name), nil)
	cmtest.Eventually(t, 30*time.Second, "the task stops", func() bool { return n.Detail(t, name).State == model.StateStopped })
	// Same column count, other order: only the definition of the time
	// tells a from c.
	srv.Exec(t, "ALTER TABLE src.t MODIFY c VARCHAR(20) AFTER id")
	srv.Exec(t, "INSERT INTO src.t (id, c, a, b) SELECT seq, CONCAT('c', seq), CONCAT('a', seq), seq FROM src.seq_101_to_200")
	srv.Exec(t, "UPDATE src.t SET a = CONCAT(a, '!') WHERE id % 10 = 0")
	srv.Exec(t, "ALTER TABLE src.t ADD COLUMN d VARCHAR(5) NOT NULL DEFAULT 'dd' AFTER c")
	srv.Exec(t, "INSERT INTO src.t (id, c, d, a, b) SELECT seq, CONCAT('c', seq), 'x', CONCAT('a', seq), seq FROM src.seq_201_to_250")
	srv.Exec(t, "UPDATE src.t SET c = CONCAT(c, '?'), d = 'u' WHERE id % 7 = 0")
	if got := n.OK(t, http.MethodPost, base+"resume?taskName="+q(name), nil).String(); got != name {
		t.Fatalf("resume answered %q, want %s", got, name)
	}
	sync(name)
	// Two more while it runs, with no wait between them.
	srv.Exec(t, "ALTER TABLE src.t MODIFY a VARCHAR(20) AFTER b")
	srv.Exec(t, "INSERT INTO src.t (id, c, d, b, a) SELECT seq, CONCAT('c', seq), 'y', seq, CONCAT('a', seq) FROM src.seq_251_to_300")
	srv.Exec(t, "ALTER TABLE src.t DROP COLUMN d, MODIFY b INT FIRST")
	srv.Exec(t, "INSERT INTO src.t (b, id, c, a) SELECT seq, seq, CONCAT('c', seq), CONCAT('a', seq) FROM src.seq_301_to_350")
	srv.Exec(t, "UPDATE src.t SET a = CONCAT(a, '#'), c = CONCAT(c, '#') WHERE id % 5 = 0")
	// Unsigned columns added by a statement: without signedness in the
	// binlog (NO_LOG) only the definition the statement leaves says how to
	// read their top values.
	srv.Exec(t, "ALTER TABLE src.t ADD COLUMN m MEDIUMINT UNSIGNED, ADD COLUMN u BIGINT UNSIGNED, ADD COLUMN ti TINYINT UNSIGNED FIRST")
	srv.Exec(t, "INSERT INTO src.t (ti, b, id, c, a, m, u) VALUES (255, 1, 1001, 'c', 'a', 16777215, 18446744073709551615), (128, 2, 1002, 'c', 'a', 8388608, 9223372036854775808)")
	srv.Exec(t, "UPDATE src.t SET m = 16777214, u = 18446744073709551614, ti = 254 WHERE id = 1001")
	sync(name)

	srv.Exec(t, "UPDATE dst.t SET a = 'garbage', c = 'garbage' WHERE id % 3 = 0")
	srv.Exec(t, "DELETE FROM dst.t WHERE id % 11 = 0")
	if e.diff(t, "t") == "" {
		t.Fatal("the corruption did not change the target")
	}
	env := n.Do(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(at), nil)
	if env.Status != http.StatusOK {
		t.Fatalf("pullback across the covered statements = %d %s", env.Status, env.Raw)
	}
	v2 := env.String()
	sync(v2)
	warned := false
	for _, d := range n.Detail(t, v2).ErrorDetails {
		warned = warned || d.Code == "MYSQL_ROW_METADATA_MINIMAL"
	}
	if !warned {
		t.Fatal("the row metadata warning is gone")
	}
}
