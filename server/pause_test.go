package server_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/view"
)

// beatsAfter waits until the task's heartbeat is twice newer than since:
// the paused runner has had a full heartbeat period to move data.
func beatsAfter(t *testing.T, n *cmtest.Node, name string, since time.Time) view.TaskView {
	t.Helper()
	var d view.TaskView
	cmtest.Eventually(t, 10*time.Second, "two heartbeats after "+since.Format(time.RFC3339Nano), func() bool {
		d = n.Detail(t, name)
		return d.Heartbeat != nil && d.Heartbeat.After(since.Add(time.Second))
	})
	return d
}

// TestPauseHoldsAFileTask: a paused task keeps its runner and its position,
// moves nothing, keeps beating, and on resume goes on from where it stood
// with no row lost or repeated. Pause from STOPPED starts it paused; stop
// from PAUSED stops it.
func TestPauseHoldsAFileTask(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{Tune: func(c *app.Config) { c.Runtime.Committer.Heartbeat = 500 * time.Millisecond }})
		body, src, sink := fileTask(t, "p_pause-incr_trans-1-0", 20)
		name := n.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 10*time.Second, "sink has 20 lines", func() bool { return lines(t, sink) >= 20 })

		n.OK(t, "POST", base+"pause?taskName="+q(name), nil)
		d := n.Detail(t, name)
		if d.State != model.StatePaused || d.DesiredState != model.DesiredPaused || d.Checkpoint["src.jsonl"].TS != 119 {
			t.Fatalf("after pause: %s desired %s checkpoint %+v", d.State, d.DesiredState, d.Checkpoint)
		}
		// A second pause is an idempotent success.
		n.OK(t, "POST", base+"pause?taskName="+q(name), nil)

		appendLines(t, src, 20, 30)
		d = beatsAfter(t, n, name, time.Now())
		if got := lines(t, sink); got != 20 || d.State != model.StatePaused || d.Checkpoint["src.jsonl"].TS != 119 {
			t.Fatalf("paused task moved data: sink %d lines, %s, checkpoint %+v", got, d.State, d.Checkpoint)
		}
		// Health does not count a paused task's stale-by-choice delay,
		// but it is watched for heartbeats like a running one.
		if h := string(n.OK(t, "GET", base+"health", nil).Raw); strings.Contains(h, "HEARTBEAT_STALE") {
			t.Fatalf("health of a beating paused task: %s", h)
		}

		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		if d := n.Detail(t, name); d.State != model.StateRunning || d.DesiredState != model.DesiredRunning {
			t.Fatalf("after resume: %s desired %s", d.State, d.DesiredState)
		}
		cmtest.Eventually(t, 10*time.Second, "sink has 30 lines", func() bool { return lines(t, sink) >= 30 })

		// Stop from PAUSED, then pause from STOPPED: it starts paused.
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		if d := n.Detail(t, name); d.State != model.StateStopped || d.Checkpoint["src.jsonl"].TS != 129 {
			t.Fatalf("after stop: %s %+v", d.State, d.Checkpoint)
		}
		appendLines(t, src, 30, 35)
		n.OK(t, "POST", base+"pause?taskName="+q(name), nil)
		d = beatsAfter(t, n, name, time.Now())
		if got := lines(t, sink); got != 30 || d.State != model.StatePaused {
			t.Fatalf("pause from STOPPED moved data: sink %d lines, %s", got, d.State)
		}
		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		cmtest.Eventually(t, 10*time.Second, "sink has 35 lines", func() bool { return lines(t, sink) >= 35 })
		seen := cmtest.SinkIndexes(t, sink)
		for i := 0; i < 35; i++ {
			if seen[i] != 1 {
				t.Fatalf("record %d reached the sink %d times (pause and resume lose and repeat nothing)", i, seen[i])
			}
		}

		ops := string(n.OK(t, "GET", base+"operations?taskName="+q(name)+"&limit=100", nil).Result)
		if strings.Count(ops, `"operation":"pause"`) < 3 || !strings.Contains(ops, `"operation":"runtime:paused"`) {
			t.Fatalf("audit lacks the pauses: %s", ops)
		}
	})
}

// procState reads the state letter of a process (R, S, T, ...).
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		t.Fatalf("stat %q", s)
	}
	return s[i+2 : i+3]
}

// TestPauseStopsASelfContainedProcess: a process connector that moves data
// itself is held still with SIGSTOP (it keeps its memory and connections),
// its silence while paused does not trip source.heartbeatTimeout, resume
// continues it, and a stop while paused still ends it at once.
func TestPauseStopsASelfContainedProcess(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{Tune: func(c *app.Config) { c.Runtime.Committer.Heartbeat = 300 * time.Millisecond }})
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `read -r hello; echo $$ > ` + pidFile + `; i=100
	while :; do i=$((i+1)); echo "{\"type\":\"checkpoint\",\"subtopic\":\"s\",\"ts\":$i,\"token\":\"t$i\"}"; sleep 0.05; done`
	name := processTask(t, n, "p_pausep-incr_trans-1-0", script, map[string]string{"heartbeatTimeout": "2s"})
	childPid := func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	cmtest.Eventually(t, 5*time.Second, "child wrote its pid", func() bool { return childPid() > 0 })
	cmtest.Eventually(t, 5*time.Second, "checkpoint moving", func() bool { return n.Detail(t, name).Checkpoint["s"].TS > 105 })

	n.OK(t, "POST", base+"pause?taskName="+q(name), nil)
	// SIGSTOP has been sent when the pause answers; the kernel stops a
	// process running on another core when it next enters the kernel, so
	// under load /proc may show it running for a moment longer. The pid
	// is read after the pause: the child the paused runner holds.
	pid := childPid()
	st := procState(t, pid)
	for until := time.Now().Add(2 * time.Second); st != "T" && time.Now().Before(until); st = procState(t, pid) {
		time.Sleep(20 * time.Millisecond)
	}
	if st != "T" {
		d := n.Detail(t, name)
		t.Fatalf("paused connector process %d is in state %s, want T (stopped); task %s, errors %+v, restarts %+v", pid, st, d.State, d.ErrorDetails, d.Restarts)
	}
	at := n.Detail(t, name).Checkpoint["s"].TS
	// Longer than source.heartbeatTimeout (2 s): the pause is no silence.
	cmtest.Eventually(t, 10*time.Second, "paused past the heartbeat timeout", func() bool {
		d := n.Detail(t, name)
		return d.Heartbeat != nil && time.Since(*d.Heartbeat) < time.Second && d.UpdatedAt.Before(time.Now().Add(-2500*time.Millisecond))
	})
	if d := n.Detail(t, name); d.State != model.StatePaused || d.Checkpoint["s"].TS != at {
		t.Fatalf("while paused: %s, checkpoint %d then %d", d.State, at, d.Checkpoint["s"].TS)
	}

	n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
	if st := procState(t, pid); st == "T" {
		t.Fatal("resumed connector process is still stopped")
	}
	cmtest.Eventually(t, 5*time.Second, "checkpoint moving again", func() bool { return n.Detail(t, name).Checkpoint["s"].TS > at+5 })
	if d := n.Detail(t, name); d.State != model.StateRunning {
		t.Fatalf("after resume: %s %+v", d.State, d.ErrorDetails)
	}

	n.OK(t, "POST", base+"pause?taskName="+q(name), nil)
	started := time.Now()
	n.OK(t, "POST", base+"stop?taskName="+q(name)+"&timeout=10", nil)
	if d := n.Detail(t, name); d.State != model.StateStopped {
		t.Fatalf("stop while paused: %s", d.State)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatalf("connector process %d outlived the stop (%s)", pid, time.Since(started))
	}
}

// TestPausedTaskAfterNodeRestart: a node that restarts finds its paused
// task PAUSED and starts its runner paused: it beats, moves nothing, and a
// resume moves it on from where it stood.
func TestPausedTaskAfterNodeRestart(t *testing.T) {
	url := dbtest.SQLiteURL(t)
	tune := func(c *app.Config) { c.Runtime.Committer.Heartbeat = 500 * time.Millisecond }
	a := cmtest.Start(t, url, cmtest.Options{Tune: tune})
	body, src, sink := fileTask(t, "p_pauser-incr_trans-1-0", 10)
	name := a.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 10*time.Second, "sink has 10 lines", func() bool { return lines(t, sink) >= 10 })
	a.OK(t, "POST", base+"pause?taskName="+q(name), nil)
	a.Stop()

	appendLines(t, src, 10, 20)
	b := cmtest.Start(t, url, cmtest.Options{Tune: func(c *app.Config) { tune(c); c.Node = a.ID }})
	d := beatsAfter(t, b, name, time.Now())
	if got := lines(t, sink); got != 10 || d.State != model.StatePaused || d.DesiredState != model.DesiredPaused {
		t.Fatalf("after the restart: sink %d lines, %s desired %s; want 10 lines, PAUSED", got, d.State, d.DesiredState)
	}
	b.OK(t, "POST", base+"resume?taskName="+q(name), nil)
	cmtest.Eventually(t, 10*time.Second, "sink has 20 lines", func() bool { return lines(t, sink) >= 20 })
	seen := cmtest.SinkIndexes(t, sink)
	for i := 0; i < 20; i++ {
		if seen[i] != 1 {
			t.Fatalf("record %d reached the sink %d times", i, seen[i])
		}
	}
}
