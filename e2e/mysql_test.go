package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/model"
)

const (
	tableA = "CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME(3), note TEXT)"
	tableB = "CREATE TABLE %s (k1 VARCHAR(20), k2 INT, v BIGINT UNSIGNED, flag BIT(3), doc JSON, PRIMARY KEY (k1, k2))"
)

// startIncr starts a node with its store on MariaDB, creates an incr_trans
// task over the env's source database and waits until it has recorded its
// starting binlog position. It returns the node and the task name.
func startIncr(t *testing.T, e *env) (*cmtest.Node, string) {
	t.Helper()
	return startIncrWith(t, e, nil)
}

// TestIncrementalStream: inserts, updates (one moving the primary key),
// deletes, a multi-row transaction, a rolled-back transaction and a table
// created while the task runs all reach the target; once the durable
// checkpoint is past the last change, the target equals the source.
func TestIncrementalStream(t *testing.T) {
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	e.exec(t, sprintf(tableB, e.srcT("b")))
	n, name := startIncr(t, e)

	// Inserts: one multi-row statement, single rows, and another table.
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('row ', seq), seq * 1.25, NOW(3), REPEAT('x', seq % 50) FROM "+e.src+".seq_1_to_500")
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (1001, 'single', 1.00, '2024-02-29 12:00:00.123', NULL)")
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (1002, 'ünïcödé ✓', -3.50, NULL, '')")
	e.exec(t, "INSERT INTO "+e.srcT("b")+" SELECT CONCAT('k', seq % 7), seq, 18446744073709551615 - seq, seq % 8, JSON_OBJECT('n', seq) FROM "+e.src+".seq_1_to_300")
	// Updates: many rows, one row twice, and one moving its primary key.
	e.exec(t, "UPDATE "+e.srcT("a")+" SET amount = amount * 2, name = CONCAT(name, ' upd') WHERE id % 3 = 0")
	e.exec(t, "UPDATE "+e.srcT("a")+" SET note = 'first' WHERE id = 10")
	e.exec(t, "UPDATE "+e.srcT("a")+" SET note = 'second' WHERE id = 10")
	e.exec(t, "UPDATE "+e.srcT("a")+" SET id = 5005 WHERE id = 5")
	e.exec(t, "UPDATE "+e.srcT("b")+" SET v = 7, doc = NULL WHERE k1 = 'k3'")
	// Deletes.
	e.exec(t, "DELETE FROM "+e.srcT("a")+" WHERE id % 7 = 0")
	e.exec(t, "DELETE FROM "+e.srcT("b")+" WHERE k2 BETWEEN 100 AND 150")
	// A multi-row transaction touching both tables, with a row inserted,
	// changed and deleted inside it, and a key moved back and forth.
	e.exec(t, "BEGIN; "+
		"INSERT INTO "+e.srcT("a")+" SELECT seq, 'txn', seq, NOW(3), 'in txn' FROM "+e.src+".seq_2000_to_2099; "+
		"UPDATE "+e.srcT("a")+" SET amount = 0 WHERE id BETWEEN 2000 AND 2049; "+
		"DELETE FROM "+e.srcT("a")+" WHERE id BETWEEN 2090 AND 2099; "+
		"INSERT INTO "+e.srcT("a")+" VALUES (3000, 'short-lived', 1, NULL, NULL); "+
		"DELETE FROM "+e.srcT("a")+" WHERE id = 3000; "+
		"UPDATE "+e.srcT("a")+" SET id = 3001 WHERE id = 11; "+
		"UPDATE "+e.srcT("a")+" SET id = 11 WHERE id = 3001; "+
		"UPDATE "+e.srcT("b")+" SET v = v + 1 WHERE k1 = 'k1'; "+
		"DELETE FROM "+e.srcT("b")+" WHERE k1 = 'k2' AND k2 < 50; "+
		"COMMIT")
	// A rolled-back transaction leaves nothing in the binlog.
	e.exec(t, "BEGIN; DELETE FROM "+e.srcT("a")+"; ROLLBACK")
	// A table created while the task runs (source.tables is db.*).
	e.exec(t, sprintf("CREATE TABLE %s (id BIGINT PRIMARY KEY, v VARCHAR(10))", e.srcT("c")))
	e.exec(t, "INSERT INTO "+e.srcT("c")+" SELECT seq, seq FROM "+e.src+".seq_1_to_100")

	end := e.binlogEnd(t)
	reached(t, n, name, e.subtopic(), end, 60*time.Second)
	// The checkpoint only covers what the sink applied: no waiting here.
	if d := e.diff(t, "a", "b", "c"); d != "" {
		t.Fatalf("checkpoint at %s but the target differs: %s", end, d)
	}
	t.Logf("a: %s; b: %s; c: %s", e.checksum(t, e.dstT("a")), e.checksum(t, e.dstT("b")), e.checksum(t, e.dstT("c")))
	if d := n.Detail(t, name); d.State != model.StateRunning || len(d.ErrorDetails) != 0 {
		t.Fatalf("task after sync: %s %+v", d.State, d.ErrorDetails)
	}
}

// incident syncs a table, changes the source after a second boundary T,
// lets those changes reach the target, then corrupts exactly the target
// rows that changed after T (deleted, altered, resurrected). rewind must
// pull the task back to T; the target must then converge to the source.
func incident(t *testing.T, rewind func(n *cmtest.Node, name, sub string, ts int64) string) {
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	e.exec(t, "CREATE TABLE "+e.srcT("mark")+" (id INT PRIMARY KEY)")
	n, name := startIncr(t, e)

	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('row ', seq), seq, NOW(3), NULL FROM "+e.src+".seq_1_to_400")
	e.converged(t, 60*time.Second, "a")

	at := nextSecond() // every change below is logged at or after it
	e.exec(t, "UPDATE "+e.srcT("a")+" SET name = CONCAT('v2 ', id), amount = amount + 1 WHERE id <= 100")
	e.exec(t, "DELETE FROM "+e.srcT("a")+" WHERE id BETWEEN 201 AND 250")
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('new ', seq), seq, NOW(3), 'after' FROM "+e.src+".seq_401_to_500")
	end := e.binlogEnd(t)
	reached(t, n, name, e.subtopic(), end, 60*time.Second)
	if d := e.diff(t, "a"); d != "" {
		t.Fatalf("not in sync before the incident: %s", d)
	}

	// The incident: a bad deploy writes to the target.
	e.exec(t, "DELETE FROM "+e.dstT("a")+" WHERE id BETWEEN 1 AND 30")
	e.exec(t, "UPDATE "+e.dstT("a")+" SET name = 'garbage', amount = -1 WHERE id BETWEEN 31 AND 100")
	e.exec(t, "INSERT INTO "+e.dstT("a")+" SELECT seq, 'zombie', 0, NULL, NULL FROM "+e.src+".seq_201_to_220")
	e.exec(t, "UPDATE "+e.dstT("a")+" SET note = 'garbage' WHERE id BETWEEN 401 AND 450")
	e.exec(t, "DELETE FROM "+e.dstT("a")+" WHERE id > 480")
	if e.diff(t, "a") == "" {
		t.Fatal("the corruption did not change the target")
	}
	// Only the stream could repair it: let it carry a later change (to
	// another table) to the target, then look again.
	e.exec(t, "INSERT INTO "+e.srcT("mark")+" VALUES (1)")
	reached(t, n, name, e.subtopic(), e.binlogEnd(t), 30*time.Second)
	if e.diff(t, "a") == "" {
		t.Fatal("the target repaired itself without a pullback")
	}

	started := time.Now()
	v2 := rewind(n, name, e.subtopic(), at)
	if !strings.HasSuffix(v2, ":0000000002") {
		t.Fatalf("the rewound task is %q, want version 2", v2)
	}
	e.converged(t, 60*time.Second, "a")
	t.Logf("target converged %s after the pullback call", time.Since(started).Round(time.Millisecond))
	reached(t, n, v2, e.subtopic(), e.binlogEnd(t), 30*time.Second)
	d := n.Detail(t, v2)
	if d.State != model.StateRunning || d.Version != 2 || len(d.ErrorDetails) != 0 {
		t.Fatalf("after the pullback: %s v%d %+v", d.State, d.Version, d.ErrorDetails)
	}
	// Still streaming under the new name.
	e.exec(t, "UPDATE "+e.srcT("a")+" SET note = 'later' WHERE id = 300")
	e.converged(t, 30*time.Second, "a")
}

// TestIncidentPullback: the single call,
// POST /connector/task/v2/pullback?taskName=...&timestamp=T.
func TestIncidentPullback(t *testing.T) {
	incident(t, func(n *cmtest.Node, name, _ string, ts int64) string {
		return n.OK(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(ts), nil).String()
	})
}

// TestIncidentRunbook: the seed's three calls: stop; update deleting
// source.checkpoint and setting it to T; resume with pullBackFlag=true.
func TestIncidentRunbook(t *testing.T) {
	incident(t, func(n *cmtest.Node, name, sub string, ts int64) string {
		n.OK(t, http.MethodPost, base+"stop?taskName="+q(name), nil)
		n.OK(t, http.MethodPost, base+"update?taskName="+q(name)+"&deleteParams=source.checkpoint",
			`{"source":{"checkpoint":"{\"`+sub+`\":\"`+itoa(ts)+`\"}"}}`)
		return n.OK(t, http.MethodPost, base+"resume?taskName="+q(name)+"&pullBackFlag=true", nil).String()
	})
}

// TestPullbackBeforeOldestBinlog: a time years before the oldest binlog
// file the server still has is refused with CHECKPOINT_OUT_OF_RANGE (409)
// naming the oldest time, by the single call and by the runbook's resume;
// the task keeps running untouched.
func TestPullbackBeforeOldestBinlog(t *testing.T) {
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	n, name := startIncr(t, e)
	const longAgo = "1577836800" // 2020-01-01, long before this server was installed

	env := n.Do(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+longAgo, nil)
	if env.Status != http.StatusConflict || env.Code() != "CHECKPOINT_OUT_OF_RANGE" {
		t.Fatalf("pullback before the oldest binlog = %d %s", env.Status, env.Raw)
	}
	if env.ErrMsg == nil || !strings.Contains(*env.ErrMsg, "oldest") {
		t.Fatalf("the answer does not name the oldest time: %s", env.Raw)
	}
	t.Logf("answer: %d %s: %s", env.Status, env.Code(), *env.ErrMsg)
	if d := n.Detail(t, name); d.State != model.StateRunning || d.Version != 1 || d.Operation != nil {
		t.Fatalf("after the refused pullback: %s v%d %+v", d.State, d.Version, d.Operation)
	}

	n.OK(t, http.MethodPost, base+"stop?taskName="+q(name), nil)
	n.OK(t, http.MethodPost, base+"update?taskName="+q(name)+"&deleteParams=source.checkpoint",
		`{"source":{"checkpoint":"{\"`+e.subtopic()+`\":\"`+longAgo+`\"}"}}`)
	env = n.Do(t, http.MethodPost, base+"resume?taskName="+q(name)+"&pullBackFlag=true", nil)
	if env.Status != http.StatusConflict || env.Code() != "CHECKPOINT_OUT_OF_RANGE" {
		t.Fatalf("resume with pullBackFlag before the oldest binlog = %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.State != model.StateStopped || d.Version != 1 {
		t.Fatalf("after the refused resume: %s v%d", d.State, d.Version)
	}

	// The task still works once the operator resumes it without rewinding.
	n.OK(t, http.MethodPost, base+"update?taskName="+q(name)+"&deleteParams=source.checkpoint", nil)
	n.OK(t, http.MethodPost, base+"resume?taskName="+q(name), nil)
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (1, 'after', 1, NULL, NULL)")
	e.converged(t, 30*time.Second, "a")
}

// TestIncrementalBulkMix streams large transactions (so batches go through
// compaction and are split into parallel parts) over three kinds of table:
// an integer key (compacted), a string key, and an integer key with a
// unique secondary key whose values are swapped between rows (both kept in
// source order, in one part). Keys move, rows are inserted, changed and
// deleted in the same transaction. The target must equal the source.
func TestIncrementalBulkMix(t *testing.T) {
	e := newEnv(t)
	e.exec(t, sprintf("CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(40), n INT)", e.srcT("ints")))
	e.exec(t, sprintf("CREATE TABLE %s (k VARCHAR(20) PRIMARY KEY, v VARCHAR(40))", e.srcT("strs")))
	e.exec(t, sprintf("CREATE TABLE %s (id INT PRIMARY KEY, u INT NOT NULL, v VARCHAR(40), UNIQUE KEY (u))", e.srcT("uniq")))
	n, name := startIncr(t, e)

	for round := 0; round < 3; round++ {
		lo, hi := round*4000+1, round*4000+4000
		e.exec(t, sprintf("BEGIN; "+
			"INSERT INTO %[1]s SELECT seq, CONCAT('r', seq), seq FROM %[4]s.seq_%[5]d_to_%[6]d; "+
			"UPDATE %[1]s SET v = CONCAT(v, '+'), n = n + 1 WHERE id BETWEEN %[5]d AND %[6]d AND id %% 3 = 0; "+
			"DELETE FROM %[1]s WHERE id BETWEEN %[5]d AND %[6]d AND id %% 5 = 0; "+
			"UPDATE %[1]s SET id = id + 100000 WHERE id BETWEEN %[5]d AND %[6]d AND id %% 7 = 0; "+
			"INSERT INTO %[1]s SELECT seq, 'back', 0 FROM %[4]s.seq_%[5]d_to_%[6]d WHERE seq %% 5 = 0 AND seq %% 7 <> 0; "+
			"INSERT INTO %[2]s SELECT CONCAT('k', seq), CONCAT('s', seq) FROM %[4]s.seq_%[5]d_to_%[6]d; "+
			"UPDATE %[2]s SET k = CONCAT('K', SUBSTRING(k, 2)) WHERE k LIKE 'k%%1'; "+
			"DELETE FROM %[2]s WHERE k LIKE 'k%%2'; "+
			"INSERT INTO %[3]s SELECT seq, seq, 'u' FROM %[4]s.seq_%[5]d_to_%[6]d; "+
			"COMMIT", e.srcT("ints"), e.srcT("strs"), e.srcT("uniq"), e.src, lo, hi))
		// Swap unique values between neighbouring rows, through a free value.
		e.exec(t, sprintf("BEGIN; "+
			"UPDATE %[1]s SET u = -u WHERE id BETWEEN %[2]d AND %[3]d AND id %% 2 = 1; "+
			"UPDATE %[1]s SET u = u - 1 WHERE id BETWEEN %[2]d AND %[3]d AND id %% 2 = 0; "+
			"UPDATE %[1]s SET u = -u + 1 WHERE id BETWEEN %[2]d AND %[3]d AND id %% 2 = 1; "+
			"DELETE FROM %[1]s WHERE id BETWEEN %[2]d AND %[3]d AND id %% 11 = 0; "+
			"COMMIT", e.srcT("uniq"), lo, hi))
	}
	end := e.binlogEnd(t)
	reached(t, n, name, e.subtopic(), end, 2*time.Minute)
	if d := e.diff(t, "ints", "strs", "uniq"); d != "" {
		t.Fatalf("checkpoint at %s but the target differs: %s", end, d)
	}
	t.Logf("ints: %s; strs: %s; uniq: %s", e.checksum(t, e.dstT("ints")), e.checksum(t, e.dstT("strs")), e.checksum(t, e.dstT("uniq")))
}
