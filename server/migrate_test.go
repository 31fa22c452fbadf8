package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/view"
)

// TestMigrate moves a streaming file task between two live nodes: the new
// name carries the target's id and version + 1, no record is lost, and the
// old incarnation's writes are refused.
func TestMigrate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		a := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
		b := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
		body, src, sink := fileTask(t, "p_m-incr_trans-1-0", 200)
		name := a.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 10*time.Second, "first lines", func() bool { return lines(t, sink) >= 50 })
		appendLines(t, src, 200, 400)

		start := time.Now()
		got := a.OK(t, "POST", base+"migrate?taskName="+q(name)+"&node="+q(string(b.ID)), nil).String()
		t.Logf("migrate took %s", time.Since(start))
		want := string(b.ID) + ":connector_v2:p_m-incr_trans-1-0:0000000002"
		if got != want {
			t.Fatalf("migrate answered %s, want %s", got, want)
		}
		if d := b.Detail(t, got); d.State != model.StateRunning || d.Node != b.ID || d.Operation != nil || d.Heartbeat == nil {
			t.Fatalf("after migrate: %+v", d)
		}
		appendLines(t, src, 400, 500)
		cmtest.Eventually(t, 10*time.Second, "all 500 records", func() bool { return b.Detail(t, got).Checkpoint["src.jsonl"].TS == 599 })
		seen := cmtest.SinkIndexes(t, sink)
		for i := 0; i < 500; i++ {
			if seen[i] == 0 {
				t.Fatalf("record %d lost", i)
			}
		}
		// The old incarnation is fenced.
		fenced, err := a.Store.SaveProgress(context.Background(), []model.Progress{{Component: "p_m-incr_trans-1-0", Version: 1,
			Positions: []model.CheckpointPosition{{Subtopic: "src.jsonl", TS: 9999}}, Beat: time.Now()}})
		if err != nil || len(fenced) != 1 {
			t.Fatalf("old incarnation write: fenced %v, %v", fenced, err)
		}
		// Writes naming the old incarnation are refused with the new name.
		env := a.Do(t, "POST", base+"stop?taskName="+q(name), nil)
		if env.Code() != "TASK_SUPERSEDED" || !strings.Contains(env.Raw, got) {
			t.Fatalf("stop of the old name: %s", env.Raw)
		}
		// Neither ip nor node: the least loaded other live node (A).
		back := b.OK(t, "POST", base+"migrate?taskName="+q(got), nil).String()
		if !strings.HasPrefix(back, string(a.ID)+":") || !strings.HasSuffix(back, ":0000000003") {
			t.Fatalf("migrate back answered %s", back)
		}
		// ip picks the live node on that IP (other than the current one).
		again := a.OK(t, "POST", base+"migrate?taskName="+q(back)+"&ip=127.0.0.1", nil).String()
		if !strings.HasPrefix(again, string(b.ID)+":") {
			t.Fatalf("migrate by ip answered %s", again)
		}
		var ops []struct {
			Operation string `json:"operation"`
			Result    string `json:"result"`
		}
		if err := json.Unmarshal(a.OK(t, "GET", base+"operations?taskName=p_m-incr_trans-1-0&limit=100", nil).Result, &ops); err != nil {
			t.Fatal(err)
		}
		steps := map[string]int{}
		for _, o := range ops {
			steps[o.Operation]++
			if o.Operation == "migrate" && o.Result != model.ResultSuccess {
				t.Fatalf("migrate audit row %+v", o)
			}
		}
		if steps["migrate"] != 3 || steps["migrate:rebind"] != 3 || steps["migrate:done"] != 3 {
			t.Fatalf("audit steps %v", steps)
		}
	})
}

// TestMigrateFullAndStopped: a full_trans task migrates mid-import and
// resumes on the target; a stopped task is rebound at once and stays stopped.
func TestMigrateFullAndStopped(t *testing.T) {
	url := dbtest.SQLiteURL(t)
	a := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	b := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	script := `read -r hello; i=100; while :; do i=$((i+1)); echo "{\"type\":\"checkpoint\",\"subtopic\":\"s\",\"ts\":$i,\"token\":\"$i\"}"; sleep 0.05; done`
	plugin := cmtest.PluginOn(t, "p_f-full_trans-1-0", script, []*cmtest.Node{a, b})
	name := a.OK(t, "POST", base+"create", map[string]any{"component": "p_f-full_trans-1-0",
		"config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}}).String()
	cmtest.Eventually(t, 5*time.Second, "progress", func() bool { return a.Detail(t, name).Checkpoint["s"].TS > 105 })
	got := a.OK(t, "POST", base+"migrate?taskName="+q(name)+"&node="+q(string(b.ID)), nil).String()
	if d := b.Detail(t, got); d.State != model.StateRunning || d.Version != 2 || d.Type != model.TypeFull {
		t.Fatalf("full_trans after migrate: %+v", d)
	}

	body, _, _ := fileTask(t, "p_s-incr_trans-1-0", 5)
	s := a.OK(t, "POST", base+"create", body).String()
	a.OK(t, "POST", base+"stop?taskName="+q(s), nil)
	moved := a.OK(t, "POST", base+"migrate?taskName="+q(s)+"&node="+q(string(b.ID)), nil).String()
	if d := b.Detail(t, moved); d.State != model.StateStopped || d.Node != b.ID || d.Version != 2 || d.Checkpoint["src.jsonl"].TS != 104 {
		t.Fatalf("stopped task after migrate: %+v", d)
	}
}

// TestMigrateFromDeadNode: a task whose node died is migrated without a
// stop (the version bump fences the dead node) and resumes from its
// durable checkpoint on the target.
func TestMigrateFromDeadNode(t *testing.T) {
	url := dbtest.SQLiteURL(t)
	a := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	b := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	setParam(t, b, params.NodeSuspectAfter, "1s")
	setParam(t, b, params.NodeDeadAfter, "1s")
	body, src, sink := fileTask(t, "p_d-incr_trans-1-0", 50)
	name := a.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 5*time.Second, "streamed", func() bool { return a.Detail(t, name).Checkpoint["src.jsonl"].TS == 149 })
	a.Stop() // leaves the task RUNNING for a restart, as a crash would
	cmtest.Eventually(t, 5*time.Second, "A dead", func() bool {
		env := b.Do(t, "GET", base+"health", nil)
		return strings.Contains(env.Raw, model.CodeNodeDead)
	})
	appendLines(t, src, 50, 60)
	got := b.OK(t, "POST", base+"migrate?taskName="+q(name), nil).String()
	if !strings.HasPrefix(got, string(b.ID)+":") {
		t.Fatalf("migrate off a dead node answered %s", got)
	}
	cmtest.Eventually(t, 5*time.Second, "resumed from the checkpoint", func() bool { return b.Detail(t, got).Checkpoint["src.jsonl"].TS == 159 })
	if seen := cmtest.SinkIndexes(t, sink); len(seen) != 60 {
		t.Fatalf("sink has %d distinct records, want 60", len(seen))
	}
}

// TestMigrateRollback: when the new incarnation fails on the target, the
// migrate rolls back to the old node as a further incarnation, the call
// answers OPERATION_ROLLED_BACK and the audit row says why.
func TestMigrateRollback(t *testing.T) {
	url := dbtest.SQLiteURL(t)
	a := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	b := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
	// The connector refuses to run on B.
	script := `read -r hello; case "$CM_TASK" in ` + string(b.ID) + `:*) echo '{"type":"error","code":"NO_ROUTE","message":"cannot reach the source from here"}'; sleep 5;; esac
	i=100; while :; do i=$((i+1)); echo "{\"type\":\"checkpoint\",\"subtopic\":\"s\",\"ts\":$i,\"token\":\"$i\"}"; sleep 0.05; done`
	plugin := cmtest.PluginOn(t, "p_rb-incr_trans-1-0", script, []*cmtest.Node{a, b})
	name := a.OK(t, "POST", base+"create", map[string]any{"component": "p_rb-incr_trans-1-0",
		"config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}}).String()
	env := a.Do(t, "POST", base+"migrate?taskName="+q(name)+"&node="+q(string(b.ID)), nil)
	if env.Status != 409 || env.Code() != "OPERATION_ROLLED_BACK" || !strings.Contains(env.Raw, "NO_ROUTE") {
		t.Fatalf("migrate to a failing target: %d %s", env.Status, env.Raw)
	}
	cmtest.Eventually(t, 5*time.Second, "running again on A", func() bool {
		d := a.Detail(t, "p_rb-incr_trans-1-0")
		return d.State == model.StateRunning && d.Node == a.ID && d.Version == 3 && d.Operation == nil
	})
	var ops []struct {
		Operation string `json:"operation"`
		Result    string `json:"result"`
		ErrCode   string `json:"errCode"`
	}
	if err := json.Unmarshal(a.OK(t, "GET", base+"operations?taskName=p_rb-incr_trans-1-0", nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.Operation == "migrate" {
			if o.Result != model.ResultFailure || o.ErrCode != "MIGRATE_ROLLED_BACK" {
				t.Fatalf("migrate audit row %+v", o)
			}
			return
		}
	}
	t.Fatalf("no migrate audit row in %+v", ops)
}

// TestHAFailover: with ha.enable on, the tasks of a node that dies are
// migrated by the node-liveness job and run again on a live node from
// their durable checkpoint, as a new incarnation.
func TestHAFailover(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		a := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
		b := cmtest.Start(t, url, cmtest.Options{})
		for k, v := range map[string]string{params.NodeSuspectAfter: "1s", params.NodeDeadAfter: "1s", params.HAEnable: "true",
			params.JobSchedule(params.JobNodeLiveness): "@every 1s"} {
			setParam(t, b, k, v)
		}
		body, src, sink := fileTask(t, "p_ha-incr_trans-1-0", 50)
		name := a.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 5*time.Second, "streamed on A", func() bool { return a.Detail(t, name).Checkpoint["src.jsonl"].TS == 149 })
		a.Stop()
		died := time.Now()
		appendLines(t, src, 50, 80)
		var d view.TaskView
		cmtest.Eventually(t, 10*time.Second, "RUNNING on B", func() bool {
			d = b.Detail(t, "p_ha-incr_trans-1-0")
			return d.State == model.StateRunning && d.Node == b.ID && d.Operation == nil
		})
		t.Logf("RUNNING on B %s after A stopped (node.deadAfter 1s, job every 1s)", time.Since(died).Round(10*time.Millisecond))
		if d.Version != 2 {
			t.Fatalf("version %d, want 2", d.Version)
		}
		cmtest.Eventually(t, 5*time.Second, "caught up", func() bool { return b.Detail(t, d.TaskName).Checkpoint["src.jsonl"].TS == 179 })
		if seen := cmtest.SinkIndexes(t, sink); len(seen) != 80 {
			t.Fatalf("sink has %d distinct records, want 80", len(seen))
		}
	})
}
