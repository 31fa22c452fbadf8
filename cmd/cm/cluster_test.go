package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// envelope is a decoded answer of a cm process.
type envelope struct {
	status  int
	ErrCode *string         `json:"errCode"`
	Success bool            `json:"isSuccess"`
	Result  json.RawMessage `json:"result"`
	raw     string
}

func (p *cmProcess) do(t *testing.T, method, path string) envelope {
	t.Helper()
	req, _ := http.NewRequest(method, p.base+path, nil)
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	env.status, env.raw = resp.StatusCode, string(raw)
	return env
}

type taskDetail struct {
	TaskName   string `json:"taskName"`
	Node       string `json:"node"`
	Version    int64  `json:"version"`
	State      string `json:"state"`
	Checkpoint map[string]struct {
		TS int64 `json:"ts"`
	} `json:"checkpoint"`
	ErrorDetails []struct {
		Code string `json:"code"`
	} `json:"errorDetails"`
}

func (p *cmProcess) detail(t *testing.T, name string) taskDetail {
	t.Helper()
	env := p.call(t, "GET", "/connector/task/v2/detail?taskName="+url.QueryEscape(name), "")
	b, _ := json.Marshal(env["result"])
	var d taskDetail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (p *cmProcess) leader(t *testing.T) string {
	t.Helper()
	env := p.call(t, "GET", "/connector/task/v2/nodes", "")
	leader, _ := env["result"].(map[string]any)["leader"].(string)
	return leader
}

func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// runHealth runs `cm health` in process and returns its exit code and output.
func runHealth(args ...string) (int, string) {
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"health"}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		return exitCode(err), out.String()
	}
	return 0, out.String()
}

func nodeID(addr string) string { return strings.Replace(addr, ":", "-", 1) }

// TestThreeNodeCluster runs three `cm serve` processes on loopback ports
// sharing one MariaDB database: a streaming file task migrates from A to B;
// B (the leader) is killed with SIGKILL and its tasks become EXCEPTION
// while the lease moves, then with ha.enable they run again elsewhere; a
// call on C for a task of A converges fast; cm health exit codes follow.
// The nodes require tokens: the test calls as an admin, cm health as a
// viewer, and the nodes wake each other with a token of role node.
func TestThreeNodeCluster(t *testing.T) {
	db := dbtest.MySQLURL(t)
	dir := t.TempDir()
	authFile, nodeTokenFile, viewerTokenFile := filepath.Join(dir, "auth.yaml"), filepath.Join(dir, "node.token"), filepath.Join(dir, "viewer.token")
	tokens := writeTokens(t, authFile, map[string]server.Role{"ops": server.RoleAdmin, "monitor": server.RoleViewer, "nodes": server.RoleNode})
	for path, tok := range map[string]string{nodeTokenFile: tokens["nodes"], viewerTokenFile: tokens["monitor"]} {
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Fast clocks: node heartbeat 300 ms; a 3 s lease renewed every second.
	flags := []string{"--node-heartbeat", "300ms", "--lease-ttl", "3s", "--lease-renew", "1s",
		"--auth-file", authFile, "--node-token-file", nodeTokenFile}
	runHealth := func(args ...string) (int, string) { return runHealth(append(args, "--token-file", viewerTokenFile)...) }
	addrA, addrB, addrC := freePort(t), freePort(t), freePort(t)
	idA, idB, idC := nodeID(addrA), nodeID(addrB), nodeID(addrC)
	// B starts first so it takes the lease.
	b := startCM(t, addrB, db, filepath.Join(dir, "b"), flags...)
	b.token = tokens["ops"]
	within(t, 10*time.Second, "B leads", func() bool { return b.leader(t) == idB })
	a := startCM(t, addrA, db, filepath.Join(dir, "a"), flags...)
	c := startCM(t, addrC, db, filepath.Join(dir, "c"), flags...)
	a.token, c.token = tokens["ops"], tokens["ops"]
	const interval = time.Second // the liveness jobs' period: the health-check interval
	for k, v := range map[string]string{
		"node.suspectAfter": "1s", "node.deadAfter": "2s", "task.heartbeat.staleAfter": "5s",
		"job.node-liveness.schedule": "@every 1s", "job.task-liveness.schedule": "@every 1s",
		"task.autoRestart.enable": "false",
	} {
		c.call(t, "POST", "/connector/task/v2/params/update?key="+url.QueryEscape(k)+"&value="+url.QueryEscape(v), "")
	}

	// A streaming file task on A, fed while it moves.
	src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	app := &appender{path: src}
	app.add(500)
	comp := "p_c-incr_trans-1-0"
	name := a.createFileTask(t, comp, src, sink)
	// Another task on A for the cross-node stop.
	src2, sink2 := filepath.Join(dir, "src2.jsonl"), filepath.Join(dir, "sink2.jsonl")
	(&appender{path: src2}).add(10)
	other := a.createFileTask(t, "p_c-incr_trans-2-0", src2, sink2)

	var last int64 // the durable checkpoint must never move back
	observe := func(p *cmProcess) taskDetail {
		d := p.detail(t, comp)
		ts := d.Checkpoint["src.jsonl"].TS
		if ts < last {
			t.Fatalf("checkpoint moved back: %d -> %d", last, ts)
		}
		last = ts
		return d
	}
	within(t, 10*time.Second, "streaming on A", func() bool { app.add(20); return observe(a).Checkpoint["src.jsonl"].TS > 1000 })

	// Migrate A -> B, asked on C, while lines keep coming.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			app.add(20)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	moved := c.call(t, "POST", "/connector/task/v2/migrate?taskName="+url.QueryEscape(name)+"&node="+idB, "")["result"].(string)
	t.Logf("migrate A -> B answered in %s: %s", time.Since(start), moved)
	<-done
	if want := idB + ":connector_v2:" + comp + ":0000000002"; moved != want {
		t.Fatalf("migrate answered %s, want %s", moved, want)
	}
	within(t, 15*time.Second, "all lines on B", func() bool { return observe(b).Checkpoint["src.jsonl"].TS == int64(1000+app.next-1) })
	seen := cmtest.SinkIndexes(t, sink)
	for i := 0; i < app.next; i++ {
		if seen[i] == 0 {
			t.Fatalf("line %d lost in the migrate", i)
		}
	}
	// The old incarnation's writes are refused.
	dsn, _ := model.ParseDSN(db)
	store, err := model.Open(context.Background(), dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fenced, err := store.SaveProgress(context.Background(), []model.Progress{{Component: comp, Version: 1,
		Positions: []model.CheckpointPosition{{Subtopic: "src.jsonl", TS: 1 << 40}}, Beat: time.Now()}})
	if err != nil || len(fenced) != 1 {
		t.Fatalf("write of the old incarnation: fenced=%v err=%v", fenced, err)
	}

	// A call on C for a task on A converges as fast as a local call.
	start = time.Now()
	c.call(t, "POST", "/connector/task/v2/stop?taskName="+url.QueryEscape(other), "")
	stopTook := time.Since(start)
	t.Logf("stop on C of a task on A: %s", stopTook)
	if stopTook >= time.Second {
		t.Fatalf("stop through C took %s", stopTook)
	}
	if d := a.detail(t, other); d.State != "STOPPED" {
		t.Fatalf("state after stop through C: %s", d.State)
	}
	// It was C's wake, with the node token, that A answered.
	within(t, 5*time.Second, "A logs a wake answered 200", func() bool {
		return strings.Contains(a.logs.String(), `"path":"/internal/v1/wake","status":200`)
	})
	if strings.Contains(c.logs.String(), "wake refused") {
		t.Fatalf("a wake was refused:\n%s", c.logs.String())
	}
	if code, out := runHealth("--server", c.base, "--max-delay", "36500d"); code != 0 {
		t.Fatalf("cm health before the kill = %d:\n%s", code, out)
	}
	// The running task has copied its whole file: however old its lines
	// (1970), it is not behind (docs/connectors.md, "Delay").
	// Its source reports so within a heartbeat (2s) of starting on B.
	within(t, 10*time.Second, "cm health 0 for a task idle at the end of its file", func() bool {
		code, _ := runHealth("--server", c.base)
		return code == 0
	})

	// kill -9 B, the leader, which now runs the migrated task.
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = b.cmd.Process.Wait()
	killed := time.Now()
	app.add(100)
	excTook := within(t, 4*interval+3*time.Second, "B's task EXCEPTION", func() bool {
		d := observe(c)
		return d.State == "EXCEPTION" && len(d.ErrorDetails) > 0 && d.ErrorDetails[len(d.ErrorDetails)-1].Code == "NODE_DEAD"
	})
	t.Logf("B's task EXCEPTION (NODE_DEAD) %s after the kill (node.deadAfter 2s, job every %s, lease TTL 3s)", excTook, interval)
	leader := c.leader(t)
	if leader == idB || (leader != idA && leader != idC) {
		t.Fatalf("leader after the kill: %q", leader)
	}
	t.Logf("lease moved from B to %s", leader)
	if code, out := runHealth("--server", a.base, "--max-delay", "36500d"); code != 2 {
		t.Fatalf("cm health with a dead node = %d, want 2:\n%s", code, out)
	}

	// With ha.enable the dead node's task runs again elsewhere.
	c.call(t, "POST", "/connector/task/v2/params/update?key=ha.enable&value=true", "")
	var where taskDetail
	haTook := within(t, 10*time.Second, "RUNNING on a live node", func() bool {
		where = observe(c)
		return where.State == "RUNNING" && where.Node != idB
	})
	t.Logf("with ha.enable: RUNNING on %s as version %d, %s after enabling", where.Node, where.Version, haTook)
	if where.Version != 3 {
		t.Fatalf("version after the HA move = %d, want 3", where.Version)
	}
	owner := a
	if where.Node == idC {
		owner = c
	}
	within(t, 15*time.Second, "the lines written while B was dead", func() bool {
		return observe(owner).Checkpoint["src.jsonl"].TS == int64(1000+app.next-1)
	})
	seen = cmtest.SinkIndexes(t, sink)
	dups := 0
	for i := 0; i < app.next; i++ {
		if seen[i] == 0 {
			t.Fatalf("line %d lost across the kill", i)
		}
		dups += seen[i] - 1
	}
	t.Logf("%d lines delivered, %d replayed (at-least-once); B killed %s ago", app.next, dups, time.Since(killed).Round(time.Millisecond))
	// B owns nothing meant to run any more: healthy again.
	if env := c.do(t, "GET", "/connector/task/v2/health?maxDelay=36500d"); env.status != 200 {
		t.Fatalf("health after the HA move: %d %s", env.status, env.raw)
	}
	if code, out := runHealth("--server", a.base, "--max-delay", "36500d"); code != 0 {
		t.Fatalf("cm health after the HA move = %d, want 0:\n%s", code, out)
	}
	if code, out := runHealth("--server", "http://"+addrB); code != 2 {
		t.Fatalf("cm health against a dead node = %d, want 2:\n%s", code, out)
	}
}
