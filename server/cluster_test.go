package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/view"
)

// setParam sets a system parameter through the API.
func setParam(t *testing.T, n *cmtest.Node, key, value string) {
	t.Helper()
	n.OK(t, "POST", base+"params/update?key="+q(key)+"&value="+q(value), nil)
}

// jobView reads one job's schedule and last recorded run from the jobs
// endpoint; Runs counts the runs recorded so far.
func jobView(t *testing.T, n *cmtest.Node, name string) view.JobView {
	t.Helper()
	var jobs view.JobsView
	if err := json.Unmarshal(n.OK(t, "GET", base+"jobs", nil).Result, &jobs); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("no job %q in %+v", name, jobs.Jobs)
	return view.JobView{}
}

// appendLines appends JSON lines numbered from..to-1 (ts = 100 + i).
func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		fmt.Fprintf(f, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrossNodeCall: a call made on node C for a task owned by node A
// converges as fast as a local call, because C wakes A over HTTP. A's
// periodic pass is 30 s, so only the wake can make it fast.
func TestCrossNodeCall(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		a := cmtest.Start(t, url, cmtest.Options{NoJobs: true, Tune: func(c *app.Config) { c.Runtime.ReconcileInterval = 30 * time.Second }})
		c := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
		body, src, sink := fileTask(t, "p_x-incr_trans-1-0", 20)
		body["node"] = string(a.ID)
		start := time.Now()
		name := c.OK(t, "POST", base+"create", body).String()
		t.Logf("create on C of a task on A: %s", time.Since(start))
		if !strings.HasPrefix(name, string(a.ID)+":") {
			t.Fatalf("created %s, want it on %s", name, a.ID)
		}
		cmtest.Eventually(t, 10*time.Second, "sink has 20 lines", func() bool { return lines(t, sink) >= 20 })
		appendLines(t, src, 20, 40)

		start = time.Now()
		c.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		took := time.Since(start)
		t.Logf("stop on C of a task on A: %s", took)
		if took >= time.Second {
			t.Fatalf("stop through another node took %s, want under 1 s", took)
		}
		if d := a.Detail(t, name); d.State != model.StateStopped {
			t.Fatalf("state %s", d.State)
		}
		start = time.Now()
		c.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		if took := time.Since(start); took >= time.Second {
			t.Fatalf("resume through another node took %s", took)
		}
		cmtest.Eventually(t, 10*time.Second, "sink has 40 lines", func() bool { return lines(t, sink) >= 40 })
	})
}

// TestParams: list with defaults, validated updates, unknown keys refused,
// every change audited.
func TestParams(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	var list []params.View
	if err := json.Unmarshal(n.OK(t, "GET", base+"params", nil).Result, &list); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]params.View{}
	for _, p := range list {
		byKey[p.Key] = p
	}
	for _, k := range []string{params.AuditRetention, params.AutoRestartEnable, params.AutoRestartMax,
		params.AutoRestartWindow, params.AutoRestartInitial, params.AutoRestartMaxWait, params.DelayThreshold,
		params.HeartbeatStaleAfter, params.HAEnable, params.NodeSuspectAfter, params.NodeDeadAfter,
		params.JobSchedule(params.JobAuditRetention), params.JobSchedule(params.JobTaskLiveness)} {
		if p, ok := byKey[k]; !ok || p.Value != p.Default || p.UpdatedAt != nil {
			t.Errorf("param %s = %+v", k, p)
		}
	}
	if byKey[params.AuditRetention].Default != "7d" {
		t.Errorf("retention default %q", byKey[params.AuditRetention].Default)
	}
	setParam(t, n, params.HAEnable, "true")
	if err := json.Unmarshal(n.OK(t, "GET", base+"params", nil).Result, &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Key == params.HAEnable && (p.Value != "true" || p.UpdatedAt == nil) {
			t.Fatalf("after update: %+v", p)
		}
	}
	for _, c := range []struct{ key, value string }{
		{"no.such.key", "1"}, {params.HAEnable, "yes please"}, {params.NodeDeadAfter, "0s"},
		{params.JobSchedule(params.JobDelayWatch), "sometimes"}, {"", "1"},
	} {
		env := n.Do(t, "POST", base+"params/update?key="+q(c.key)+"&value="+q(c.value), nil)
		if env.Status != http.StatusBadRequest || env.Code() != "INVALID_ARGUMENT" {
			t.Errorf("%s=%s: %d %s", c.key, c.value, env.Status, env.Raw)
		}
	}
	// An empty value resets to the default.
	setParam(t, n, params.HAEnable, "")
	var ops []struct {
		Operation string          `json:"operation"`
		Params    json.RawMessage `json:"params"`
		Detail    json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(n.OK(t, "GET", base+"operations", nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) < 2 || ops[0].Operation != "params:update" || !strings.Contains(string(ops[0].Detail), `"after":"false"`) ||
		!strings.Contains(string(ops[0].Detail), `"before":"true"`) || !strings.Contains(string(ops[1].Detail), `"after":"true"`) {
		t.Fatalf("audit rows: %+v", ops)
	}
}

// TestAuditRetentionJob: rows older than the retention are purged by the
// job, and changing the parameter changes the next run.
func TestAuditRetentionJob(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		ctx := context.Background()
		now := time.Now()
		for _, age := range []time.Duration{72 * time.Hour, 2 * time.Hour, 30 * time.Minute} {
			for i := 0; i < 3; i++ {
				a := &model.Audit{At: now.Add(-age), Actor: "test", Operation: "old-" + age.String(), Result: model.ResultSuccess}
				if err := n.Store.InsertAudit(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
		}
		count := func(op string) int {
			rows, err := n.Store.ListAudit(ctx, model.AuditFilter{Operation: op, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return len(rows)
		}
		setParam(t, n, params.AuditRetention, "1h")
		setParam(t, n, params.JobSchedule(params.JobAuditRetention), "@every 1s")
		cmtest.Eventually(t, 10*time.Second, "rows older than 1h purged", func() bool {
			return count("old-72h0m0s") == 0 && count("old-2h0m0s") == 0
		})
		if c := count("old-30m0s"); c != 3 {
			t.Fatalf("rows within the retention: %d left of 3", c)
		}
		setParam(t, n, params.AuditRetention, "10m")
		cmtest.Eventually(t, 10*time.Second, "rows older than 10m purged after the change", func() bool { return count("old-30m0s") == 0 })
		if c := count("params:update"); c != 3 {
			t.Fatalf("recent audit rows purged: %d params:update rows", c)
		}
		// The job records its run just after the purge commits; read the
		// view once that record names the new retention.
		var jv view.JobView
		cmtest.Eventually(t, 5*time.Second, "job view shows the run with the new retention", func() bool {
			var jobs view.JobsView
			if err := json.Unmarshal(n.OK(t, "GET", base+"jobs", nil).Result, &jobs); err != nil {
				t.Fatal(err)
			}
			if jobs.Leader != n.ID {
				t.Fatalf("leader %q, want %s", jobs.Leader, n.ID)
			}
			for _, j := range jobs.Jobs {
				if j.Name == params.JobAuditRetention {
					jv = j
				}
			}
			return strings.Contains(jv.Summary, "retention 10m")
		})
		if jv.LastRun == nil || jv.Result != model.ResultSuccess || jv.Schedule != "@every 1s" || jv.Runs < 2 {
			t.Fatalf("job view %+v", jv)
		}
	})
}

// TestAutoRestart: a connector that fails twice then works is brought back
// with growing waits; one that fails permanently is left alone.
func TestAutoRestart(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	setParam(t, n, params.AutoRestartInitial, "500ms")
	setParam(t, n, params.AutoRestartMaxWait, "5s")
	setParam(t, n, params.JobSchedule(params.JobAutoRestart), "@every 1s")
	dir := t.TempDir()
	counter := filepath.Join(dir, "count")
	flaky := `read -r hello; n=$(cat ` + counter + ` 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + counter + `
	if [ $n -le 2 ]; then echo '{"type":"error","code":"FLAKY","message":"try again"}'; sleep 5; exit 1; fi
	while :; do echo '{"type":"checkpoint","subtopic":"s","ts":'$(date +%s)',"token":"t"}'; sleep 0.1; done`
	plugin := n.Plugin(t, "p_ar-incr_trans-1-0", flaky)
	n.Do(t, "POST", base+"create", map[string]any{"component": "p_ar-incr_trans-1-0", "config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}})
	name := "p_ar-incr_trans-1-0"
	cmtest.Eventually(t, 20*time.Second, "brought back to RUNNING", func() bool {
		d := n.Detail(t, name)
		return d.State == model.StateRunning && len(d.Restarts) == 2
	})
	d := n.Detail(t, name)
	if d.Restarts[0].Attempt != 2 || d.Restarts[1].Attempt != 1 || !strings.Contains(d.Restarts[0].LastError, "FLAKY") {
		t.Fatalf("restarts %+v", d.Restarts)
	}
	w1, _ := time.ParseDuration(d.Restarts[1].Wait)
	w2, _ := time.ParseDuration(d.Restarts[0].Wait)
	if w1 < 400*time.Millisecond || w2 <= w1 {
		t.Fatalf("waits %s then %s: want backoff from 500ms, growing", w1, w2)
	}
	t.Logf("restart waits %s, %s; restarted at %s and %s", w1, w2, d.Restarts[1].At.Format(time.StampMilli), d.Restarts[0].At.Format(time.StampMilli))

	perm := `read -r hello; echo '{"type":"error","code":"SRC_DENIED","message":"access denied","permanent":true}'; sleep 5`
	plugin = n.Plugin(t, "p_ar-incr_trans-2-0", perm)
	n.Do(t, "POST", base+"create", map[string]any{"component": "p_ar-incr_trans-2-0", "config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}})
	cmtest.Eventually(t, 5*time.Second, "EXCEPTION", func() bool { return n.Detail(t, "p_ar-incr_trans-2-0").State == model.StateException })
	// Three more recorded runs of the job: at least the last two began after
	// the task was seen in EXCEPTION, and the last one looked at it and left
	// it alone (the flaky task is RUNNING by now, so it is the one refused).
	before := jobView(t, n, params.JobAutoRestart).Runs
	var run view.JobView
	cmtest.Eventually(t, 20*time.Second, "three more runs of the auto-restart job", func() bool {
		run = jobView(t, n, params.JobAutoRestart)
		return run.Runs >= before+3
	})
	if run.Result != model.ResultSuccess || run.Summary != "0 restarted, 0 waiting, 1 not retried" {
		t.Fatalf("last auto-restart run %+v, want it to refuse the permanently failed task", run)
	}
	d = n.Detail(t, "p_ar-incr_trans-2-0")
	if d.State != model.StateException || len(d.Restarts) != 0 || !d.ErrorDetails[len(d.ErrorDetails)-1].Permanent {
		t.Fatalf("permanent error retried: %s %+v %+v", d.State, d.Restarts, d.ErrorDetails)
	}
}

// TestHeartbeatStale: a RUNNING task whose heartbeat stops becomes
// EXCEPTION with HEARTBEAT_STALE, and its runner is stopped.
func TestHeartbeatStale(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{Tune: func(c *app.Config) { c.Runtime.Committer.Heartbeat = time.Hour }})
	setParam(t, n, params.AutoRestartEnable, "false")
	setParam(t, n, params.HeartbeatStaleAfter, "1s")
	setParam(t, n, params.JobSchedule(params.JobTaskLiveness), "@every 1s")
	body, _, _ := fileTask(t, "p_hb-incr_trans-1-0", 5)
	name := n.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 10*time.Second, "EXCEPTION for a stale heartbeat", func() bool { return n.Detail(t, name).State == model.StateException })
	d := n.Detail(t, name)
	if e := d.ErrorDetails[len(d.ErrorDetails)-1]; e.Code != model.CodeHeartbeatStale {
		t.Fatalf("errorDetails %+v", d.ErrorDetails)
	}
	cmtest.Eventually(t, 5*time.Second, "runner stopped", func() bool { return n.Rec.Running() == 0 })
	env := n.Do(t, "GET", base+"health", nil)
	if env.Status != http.StatusServiceUnavailable || env.Code() != "UNHEALTHY" || !strings.Contains(env.Raw, `"status":"critical"`) {
		t.Fatalf("health %d %s", env.Status, env.Raw)
	}
}

// TestHealthAndNodes: 200 when all selected tasks are healthy, 503 with the
// problems otherwise; the cluster view shows nodes with their load.
func TestHealthAndNodes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		setParam(t, n, params.AutoRestartEnable, "false")
		if env := n.Do(t, "GET", base+"health", nil); env.Status != 200 || !strings.Contains(env.Raw, `"status":"healthy"`) {
			t.Fatalf("empty cluster: %d %s", env.Status, env.Raw)
		}
		// A connector at ts 100, far behind now, that does not say it is
		// caught up. (An idle file task at the end of its file is not
		// behind, however old its lines: TestIdleCaughtUpHasNoDelay.)
		name := n.OK(t, "POST", base+"create", behindTask(t, n, "p_h-incr_trans-1-0")).String()
		cmtest.Eventually(t, 5*time.Second, "checkpoint", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })
		env := n.Do(t, "GET", base+"health", nil)
		if env.Status != 503 || !strings.Contains(env.Raw, `"status":"warning"`) || !strings.Contains(env.Raw, model.CodeDelay) {
			t.Fatalf("delayed task: %d %s", env.Status, env.Raw)
		}
		if env := n.Do(t, "GET", base+"health?maxDelay=36500d", nil); env.Status != 200 {
			t.Fatalf("with a large maxDelay: %d %s", env.Status, env.Raw)
		}
		if env := n.Do(t, "GET", base+"health?project=other", nil); env.Status != 200 {
			t.Fatalf("other project: %d %s", env.Status, env.Raw)
		}
		script := `read -r hello; echo '{"type":"error","code":"BROKEN","message":"broken"}'; sleep 5`
		plugin := n.Plugin(t, "p_h2-incr_trans-1-0", script)
		n.Do(t, "POST", base+"create", map[string]any{"component": "p_h2-incr_trans-1-0", "config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}})
		cmtest.Eventually(t, 5*time.Second, "EXCEPTION", func() bool { return n.Detail(t, "p_h2-incr_trans-1-0").State == model.StateException })
		env = n.Do(t, "GET", base+"health?maxDelay=36500d", nil)
		if env.Status != 503 || !strings.Contains(env.Raw, `"status":"critical"`) || !strings.Contains(env.Raw, "TASK_EXCEPTION") {
			t.Fatalf("EXCEPTION task: %d %s", env.Status, env.Raw)
		}
		if env := n.Do(t, "GET", base+"health?project=p_h&maxDelay=36500d", nil); env.Status != 200 {
			t.Fatalf("healthy project: %d %s", env.Status, env.Raw)
		}
		if env := n.Do(t, "GET", base+"health?maxDelay=soon", nil); env.Status != 400 {
			t.Fatalf("bad maxDelay: %d %s", env.Status, env.Raw)
		}

		cmtest.Eventually(t, 5*time.Second, "leader elected", func() bool { return n.Lease.Leading() })
		var cv view.ClusterView
		if err := json.Unmarshal(n.OK(t, "GET", base+"nodes", nil).Result, &cv); err != nil {
			t.Fatal(err)
		}
		if cv.Leader != n.ID || len(cv.Nodes) != 1 {
			t.Fatalf("cluster %+v", cv)
		}
		v := cv.Nodes[0]
		if v.ID != n.ID || v.State != cluster.NodeAlive || !v.Leader || v.Total != 2 || v.Load[model.StateRunning] != 1 || v.Load[model.StateException] != 1 || len(v.Tasks) != 2 {
			t.Fatalf("node view %+v", v)
		}
	})
}

// TestLeaderLease: exactly one of two nodes leads; a leader whose lease is
// taken (here by an intruder that saw it expire) stops its jobs, and when
// the leader shuts down the other node takes over.
func TestLeaderLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		a := cmtest.Start(t, url, cmtest.Options{})
		cmtest.Eventually(t, 5*time.Second, "A leads", func() bool { return a.Lease.Leading() })
		b := cmtest.Start(t, url, cmtest.Options{})
		for i := 0; i < 20; i++ {
			if a.Lease.Leading() == b.Lease.Leading() {
				t.Fatalf("leading: A %v, B %v", a.Lease.Leading(), b.Lease.Leading())
			}
			time.Sleep(50 * time.Millisecond)
		}
		// An intruder takes the lease (as if A's had expired): A must stop.
		ctx := context.Background()
		if ok, _, err := a.Store.AcquireLease(ctx, cluster.LeaderLease, "intruder", 0, time.Now().Add(time.Hour), time.Hour); !ok || err != nil {
			t.Fatalf("intruder: %v %v", ok, err)
		}
		cmtest.Eventually(t, 3*time.Second, "A gives up", func() bool { return !a.Lease.Leading() })
		if b.Lease.Leading() {
			t.Fatal("B leads while the intruder holds the lease")
		}
		var jobs view.JobsView
		if err := json.Unmarshal(a.OK(t, "GET", base+"jobs", nil).Result, &jobs); err != nil {
			t.Fatal(err)
		}
		if jobs.Leader != "intruder" {
			t.Fatalf("jobs leader %q", jobs.Leader)
		}
		// Hand it back by expiring it, then shut the leader down: the other takes over.
		l, err := a.Store.GetLease(ctx, cluster.LeaderLease)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Store.ReleaseLease(ctx, cluster.LeaderLease, "intruder", l.ExpiresAt); err != nil {
			t.Fatal(err)
		}
		cmtest.Eventually(t, 3*time.Second, "someone leads again", func() bool { return a.Lease.Leading() || b.Lease.Leading() })
		leader, other := a, b
		if b.Lease.Leading() {
			leader, other = b, a
		}
		start := time.Now()
		leader.Stop()
		cmtest.Eventually(t, 3*time.Second, "the other node takes over", func() bool { return other.Lease.Leading() })
		t.Logf("takeover after a clean shutdown: %s", time.Since(start))
	})
}

// TestDelayWatch: the delay-watch job flags a task behind the threshold in
// its errorDetails (WARNING) and clears the flag once it is within.
func TestDelayWatch(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	setParam(t, n, params.JobSchedule(params.JobDelayWatch), "@every 1s")
	name := n.OK(t, "POST", base+"create", behindTask(t, n, "p_dw-incr_trans-1-0")).String()
	flagged := func() bool {
		d := n.Detail(t, name)
		for _, e := range d.ErrorDetails {
			if e.Code == model.CodeDelay && e.Level == model.LevelWarning {
				return d.State == model.StateRunning
			}
		}
		return false
	}
	cmtest.Eventually(t, 10*time.Second, "delay flagged", flagged)
	setParam(t, n, params.DelayThreshold, "36500d")
	cmtest.Eventually(t, 10*time.Second, "flag cleared", func() bool { return !flagged() })
}
