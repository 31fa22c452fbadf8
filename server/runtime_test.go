package server_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// processTask declares script under /bin/sh as a plugin named after the
// component and creates a task running it.
func processTask(t *testing.T, n *cmtest.Node, component, script string, extra map[string]string) string {
	src := map[string]string{"type": "process", "plugin": n.Plugin(t, component, script)}
	for k, v := range extra {
		src[k] = v
	}
	return n.OK(t, "POST", base+"create", map[string]any{"component": component, "config": map[string]any{"source": src}}).String()
}

// TestProcessKilledFromOutside: a connector that dies puts the task in
// EXCEPTION with its stderr tail, without waiting for a heartbeat timeout.
func TestProcessKilledFromOutside(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{Tune: func(c *app.Config) { c.Runtime.Committer.Heartbeat = time.Second }})
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `read -r hello; echo $$ > ` + pidFile + `; echo "loading the widget" >&2; echo "widget broke: disk on fire" >&2
	while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; echo '{"type":"heartbeat"}'; sleep 0.1; done`
	name := processTask(t, n, "p_9-incr_trans-1-0", script, nil)
	var pid int
	cmtest.Eventually(t, 5*time.Second, "child wrote its pid", func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	cmtest.Eventually(t, 5*time.Second, "checkpoint recorded", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmtest.Eventually(t, time.Second, "EXCEPTION within one heartbeat interval", func() bool {
		return n.Detail(t, name).State == model.StateException
	})
	t.Logf("EXCEPTION %s after the kill", time.Since(killed))
	d := n.Detail(t, name)
	if len(d.ErrorDetails) == 0 {
		t.Fatal("no errorDetails")
	}
	e := d.ErrorDetails[len(d.ErrorDetails)-1]
	if e.Code != "PROCESS_EXITED" || e.Level == "" || !strings.Contains(strings.Join(e.Stderr, "\n"), "disk on fire") {
		t.Fatalf("errorDetails = %+v", e)
	}
	// Resume from EXCEPTION starts it again from the durable checkpoint.
	n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
	if d := n.Detail(t, name); d.State != model.StateRunning || len(d.ErrorDetails) != 0 {
		t.Fatalf("after resume: %s %+v", d.State, d.ErrorDetails)
	}
}

// TestProcessIgnoringSIGTERM: stop escalates to SIGKILL after the grace
// period and the stop call still returns, with the task STOPPED.
func TestProcessIgnoringSIGTERM(t *testing.T) {
	db := dbtest.SQLiteURL(t)
	n := cmtest.Start(t, db, cmtest.Options{})
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `trap '' TERM; read -r hello; echo $$ > ` + pidFile + `
	i=100; while :; do i=$((i+1)); echo "{\"type\":\"checkpoint\",\"subtopic\":\"s\",\"ts\":$i,\"token\":\"$i\"}"; sleep 0.05; done`
	name := processTask(t, n, "p_10-incr_trans-1-0", script, map[string]string{"grace": "500ms"})
	cmtest.Eventually(t, 5*time.Second, "progress", func() bool { return n.Detail(t, name).Checkpoint["s"].TS > 105 })
	start := time.Now()
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	took := time.Since(start)
	if took < 400*time.Millisecond || took > 10*time.Second {
		t.Fatalf("stop took %s; want the grace period then a kill", took)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("child %d still alive after stop", pid)
	}
	d := n.Detail(t, name)
	if d.State != model.StateStopped {
		t.Fatalf("state %s", d.State)
	}
	// The last checkpoint is durable: it does not move after stop returned.
	// Shut the node down, which waits for its runners and for the
	// committer's last flush, so every write the node could still make has
	// landed; a node started on the same store then reads the same one.
	stopped := d.Checkpoint["s"].TS
	n.Stop()
	again := cmtest.Start(t, db, cmtest.Options{NoJobs: true})
	if d := again.Detail(t, name); d.State != model.StateStopped || d.Checkpoint["s"].TS != stopped {
		t.Fatalf("after STOPPED at checkpoint %d and a shutdown: %s at %d", stopped, d.State, d.Checkpoint["s"].TS)
	}
}

// TestStopTimeout: a stop that cannot finish within its wait answers
// STOP_TIMEOUT, retryable, and leaves the task STOPPING until it does.
func TestStopTimeout(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	armed := filepath.Join(t.TempDir(), "armed")
	script := `trap '' TERM; touch ` + armed + `; read -r hello; while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`
	name := processTask(t, n, "p_11-incr_trans-1-0", script, map[string]string{"grace": "3s"})
	// RUNNING can be reported before the shell ran its trap: stop only once
	// the child ignores SIGTERM.
	cmtest.Eventually(t, 10*time.Second, "the child ignores SIGTERM", func() bool { _, err := os.Stat(armed); return err == nil })
	env := n.Do(t, "POST", base+"stop?taskName="+q(name)+"&timeout=1", nil)
	if env.Status != 504 || env.Code() != "STOP_TIMEOUT" || env.Retryable == nil || !*env.Retryable {
		t.Fatalf("stop = %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.State != model.StateStopping {
		t.Fatalf("state after timeout = %s", d.State)
	}
	cmtest.Eventually(t, 10*time.Second, "node finishes the stop", func() bool { return n.Detail(t, name).State == model.StateStopped })
}
