package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/model"
)

// TestDDLSkipResume: with sink.ddl=stop, an ALTER of a selected table in the middle of a
// second, with transactions on two tables before and after it in that
// same second (the session clock is frozen at one second, so no recovery
// by time could tell them apart). The task stops at the ALTER with the
// statement's position in its error details and its durable checkpoint
// just before it. resume?skipDdl=true is refused while the task runs and
// while the checkpoint is elsewhere; once the operator has changed the
// target, it continues right after the statement: every row of both
// tables arrives, byte for byte, and the audit log shows the skip.
func TestDDLSkipResume(t *testing.T) {
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	e.exec(t, sprintf(tableB, e.srcT("b")))
	// sink.ddl=stop: the task stops at a schema statement (the default,
	// apply, is TestDDLApply's).
	n, name := startIncrWith(t, e, map[string]map[string]string{"sink": {"ddl": "stop"}})
	sub := e.subtopic()
	skip := base + "resume?taskName=" + q(name) + "&skipDdl=true"

	env := n.Do(t, http.MethodPost, skip, nil)
	if env.Status != http.StatusConflict || env.Code() != "DDL_SKIP_REFUSED" || env.Retryable == nil || *env.Retryable {
		t.Fatalf("skipDdl on a running task = %d %s", env.Status, env.Raw)
	}

	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('row ', seq), seq * 1.25, NOW(3), NULL FROM "+e.src+".seq_1_to_200")
	e.exec(t, "INSERT INTO "+e.srcT("b")+" SELECT CONCAT('k', seq % 7), seq, seq, seq % 8, JSON_OBJECT('n', seq) FROM "+e.src+".seq_1_to_200")
	e.converged(t, 60*time.Second, "a", "b")

	var s strings.Builder
	s.WriteString("SET timestamp = UNIX_TIMESTAMP();")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&s, "INSERT INTO %s VALUES (%d, 'before', %d.50, NOW(3), 'x');", e.srcT("a"), 1000+i, i)
		fmt.Fprintf(&s, "INSERT INTO %s VALUES ('before', %d, %d, 1, NULL);", e.srcT("b"), i, i)
	}
	fmt.Fprintf(&s, "ALTER TABLE %s ADD COLUMN extra VARCHAR(10) NULL AFTER name;", e.srcT("a"))
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&s, "INSERT INTO %s VALUES (%d, 'after', 'e%d', %d.75, NOW(3), 'y');", e.srcT("a"), 2000+i, i, i)
		fmt.Fprintf(&s, "INSERT INTO %s VALUES ('after', %d, %d, 2, JSON_ARRAY(%d));", e.srcT("b"), i, i, i)
	}
	fmt.Fprintf(&s, "UPDATE %s SET extra = 'upd' WHERE id <= 10; DELETE FROM %s WHERE k2 <= 5;", e.srcT("a"), e.srcT("b"))
	s.WriteString("SET timestamp = DEFAULT")
	e.exec(t, s.String())

	var d model.ErrorDetail
	cmtest.Eventually(t, 60*time.Second, "the task stops at the ALTER", func() bool {
		v := n.Detail(t, name)
		if v.State != model.StateException {
			return false
		}
		d = v.ErrorDetails[len(v.ErrorDetails)-1]
		return true
	})
	if d.Code != "MYSQL_DDL_UNSUPPORTED" || d.Position == nil || d.Position.Subtopic != sub || !strings.Contains(d.Message, "ADD COLUMN extra") {
		t.Fatalf("the error does not name the statement and its position: %+v", d)
	}
	t.Logf("stopped at %s: before %s, after %s, ts %d", d.Code, d.Position.Before, d.Position.After, d.Position.TS)
	v := n.Detail(t, name)
	if v.Checkpoint[sub].Token != d.Position.Before {
		t.Fatalf("durable checkpoint %q, want %q just before the statement", v.Checkpoint[sub].Token, d.Position.Before)
	}

	// A durable checkpoint elsewhere (as after a lost flush) is refused:
	// the skip would then lose or repeat what lies between.
	comp := v.Component
	moveCheckpoint(t, n, comp, v.Version, sub, v.Checkpoint[sub].TS, "binlog.999999:4")
	env = n.Do(t, http.MethodPost, skip, nil)
	if env.Status != http.StatusConflict || env.Code() != "DDL_SKIP_REFUSED" || env.Retryable == nil || *env.Retryable ||
		env.ErrMsg == nil || !strings.Contains(*env.ErrMsg, d.Position.Before) {
		t.Fatalf("skipDdl with the checkpoint elsewhere = %d %s", env.Status, env.Raw)
	}
	moveCheckpoint(t, n, comp, v.Version, sub, v.Checkpoint[sub].TS, d.Position.Before)
	if v := n.Detail(t, name); v.State != model.StateException || v.Checkpoint[sub].Token != d.Position.Before {
		t.Fatalf("a refused skip changed the task: %s %+v", v.State, v.Checkpoint[sub])
	}

	// The runbook: stop (the task stays at the statement), change the
	// target by hand, resume with skipDdl=true.
	n.OK(t, http.MethodPost, base+"stop?taskName="+q(name), nil)
	e.exec(t, "ALTER TABLE "+e.dstT("a")+" ADD COLUMN extra VARCHAR(10) NULL AFTER name")
	if got := n.OK(t, http.MethodPost, skip, nil).String(); got != name {
		t.Fatalf("resume?skipDdl=true answered %q, want the same incarnation %s", got, name)
	}
	reached(t, n, name, sub, e.binlogEnd(t), 60*time.Second)
	for _, tb := range []string{"a", "b"} {
		src, dst := e.hexRows(t, e.src, tb), e.hexRows(t, e.dst, tb)
		if !slices.Equal(src, dst) {
			t.Errorf("table %s: source %d rows, target %d rows; first difference: %s", tb, len(src), len(dst), firstDiff(src, dst))
		}
	}
	if v := n.Detail(t, name); v.State != model.StateRunning || len(v.ErrorDetails) != 0 {
		t.Fatalf("after the skip: %s %+v", v.State, v.ErrorDetails)
	}

	// The audit log shows the skip: the flag and the positions.
	var ops []struct {
		Operation string          `json:"operation"`
		Params    json.RawMessage `json:"params"`
		Detail    json.RawMessage `json:"detail"`
		Result    string          `json:"result"`
		ErrCode   string          `json:"errCode"`
	}
	if err := json.Unmarshal(n.OK(t, http.MethodGet, base+"operations?taskName="+q(name)+"&limit=100", nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	var refused, skipped int
	for _, op := range ops {
		if op.Operation != "resume" || !strings.Contains(string(op.Params), `"skipDdl":"true"`) {
			continue
		}
		switch {
		case op.Result == model.ResultFailure && op.ErrCode == "DDL_SKIP_REFUSED":
			refused++
		case op.Result == model.ResultSuccess && strings.Contains(string(op.Detail), d.Position.After):
			skipped++
		default:
			t.Errorf("unexpected audit row of a skip: %+v", op)
		}
	}
	// The two refusals are of one actor, operation, task and code: the
	// first has its row at once, the second is counted in the summary row
	// the refusal window writes when it closes (docs/security.md).
	if refused != 1 || skipped != 1 {
		t.Fatalf("audit rows of skipDdl: %d refused, %d done; want 1 and 1: %+v", refused, skipped, ops)
	}

	// Still streaming.
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (5000, 'later', 'z', 1, NULL, NULL)")
	e.converged(t, 30*time.Second, "a", "b")
}

// moveCheckpoint writes a task's durable checkpoint for one subtopic
// through the store, as its runner would.
func moveCheckpoint(t *testing.T, n *cmtest.Node, component string, version int64, sub string, ts int64, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fenced, err := n.Store.SaveProgress(ctx, []model.Progress{{Component: component, Version: version,
		Positions: []model.CheckpointPosition{{Subtopic: sub, TS: ts, Token: token}}}})
	if err != nil || len(fenced) > 0 {
		t.Fatalf("writing the checkpoint: %v (fenced %v)", err, fenced)
	}
}

// hexRows is every row of db.table as the HEX of each value (NULL kept
// apart from the empty string), sorted.
func (e *env) hexRows(t testing.TB, db, table string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := e.admin.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", db, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, "IFNULL(HEX(`"+c+"`), 'NULL')")
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatalf("table %s.%s has no columns", db, table)
	}
	rows, err = e.admin.QueryContext(ctx, "SELECT CONCAT_WS(',', "+strings.Join(cols, ", ")+") FROM `"+db+"`.`"+table+"`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: source %s, target %s", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d rows in common, then only one side has rows", min(len(a), len(b)))
}
