package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

// TestCheckAudit holds the audit check of the stop/resume benchmark to what
// it claims to find: a change outside the transition table, a change that
// does not start where the task's previous one left it (a lost update), and
// a refusal that changed the state; and that a legal history passes.
func TestCheckAudit(t *testing.T) {
	st := newStoreDB(t, nil)
	dsn, err := model.ParseDSN(st.url)
	if err != nil {
		t.Fatal(err)
	}
	store, err := model.Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Rows before the mark are not read.
	add := func(comp, op, before, after, result string) {
		t.Helper()
		execOn(t, st.db, "INSERT INTO operation_audit_log (at, actor, operation, component, state_before, state_after, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
			time.Now().UTC(), "test", op, comp, before, after, result)
	}
	add("a-incr_trans-1-0", "stop", "STOPPED", "RUNNING", model.ResultSuccess)
	mark := st.int(t, "SELECT MAX(id) FROM operation_audit_log")

	// A legal history, with an idempotent success and a refusal between.
	add("a-incr_trans-1-0", "stop", "RUNNING", "STOPPING", model.ResultAccepted)
	add("a-incr_trans-1-0", "resume", "STOPPING", "STOPPING", model.ResultFailure)
	add("a-incr_trans-1-0", "runtime:stopped", "STOPPING", "STOPPED", model.ResultSuccess)
	add("a-incr_trans-1-0", "stop", "STOPPED", "STOPPED", model.ResultSuccess)
	add("a-incr_trans-1-0", "resume", "STOPPED", "STARTING", model.ResultAccepted)
	add("a-incr_trans-1-0", "runtime:started", "STARTING", "RUNNING", model.ResultSuccess)
	// Not in the table: resume does not move a RUNNING task.
	add("b-incr_trans-1-0", "resume", "RUNNING", "STARTING", model.ResultAccepted)
	// A lost update: the second stop starts from RUNNING, but the task was
	// left STOPPED.
	add("c-incr_trans-1-0", "stop", "RUNNING", "STOPPING", model.ResultAccepted)
	add("c-incr_trans-1-0", "runtime:stopped", "STOPPING", "STOPPED", model.ResultSuccess)
	add("c-incr_trans-1-0", "stop", "RUNNING", "STOPPING", model.ResultAccepted)
	// A refusal that changed the state.
	add("d-incr_trans-1-0", "stop", "RUNNING", "STOPPING", model.ResultFailure)
	// A failure and its automatic restart.
	add("e-incr_trans-1-0", "runtime:failed", "RUNNING", "EXCEPTION", model.ResultSuccess)
	add("e-incr_trans-1-0", model.OpAutoRestart, "EXCEPTION", "STARTING", model.ResultSuccess)

	checked, bad, restarts := checkAudit(t, st, mark)
	if checked != 13 {
		t.Errorf("checked %d rows, want the 13 after the mark", checked)
	}
	if restarts != 2 {
		t.Errorf("%d restarts, want 2 (a failure and an automatic restart)", restarts)
	}
	want := []string{"b-incr_trans-1-0 resume RUNNING -> STARTING", "c-incr_trans-1-0 stop RUNNING -> STOPPING", "d-incr_trans-1-0 stop RUNNING -> STOPPING"}
	if len(bad) != len(want) {
		t.Fatalf("found %d bad rows, want %d: %q", len(bad), len(want), bad)
	}
	for i, w := range want {
		if !strings.Contains(bad[i], w) {
			t.Errorf("bad row %d = %q, want it to name %q", i, bad[i], w)
		}
	}
	for _, l := range bad {
		if strings.Contains(l, "a-incr_trans-1-0") {
			t.Errorf("the legal history was flagged: %s", l)
		}
	}
}
