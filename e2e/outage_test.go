package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestConnectorOutage: the connection to the source server (then, in a
// second run, to the target server) is cut for a few seconds while a
// writer keeps committing on the source: a network partition between cm
// and one side, mid-stream and, for the target, mid-batch. The task fails
// retryably; once the side is reachable again it catches up without help,
// and the target equals the source, value for value (a batch cut halfway
// is applied again). A second task on the node goes on moving all the
// while.
func TestConnectorOutage(t *testing.T) {
	for _, side := range []string{"source", "sink"} {
		t.Run(side, func(t *testing.T) { connectorOutage(t, side) })
	}
}

func connectorOutage(t *testing.T, side string) {
	b := startBehindProxy(t, side, nil)
	e, n, proxy, name, sub := b.e, b.n, b.proxy, b.name, b.sub
	neighbour, src, sink := b.neighbour(t)

	w := startWriter(t, e, "a", 100000)
	w.wrote(t, 50)
	proxy.Cut()
	cut := time.Now()
	w.wrote(t, 200)
	appendJSONLines(t, src, 5, 10)
	cmtest.Eventually(t, 10*time.Second, "the neighbour moves during the outage", func() bool { return countLines(sink) >= 10 })
	time.Sleep(time.Until(cut.Add(5 * time.Second)))
	during := n.Detail(t, name)
	proxy.Restore()
	t.Logf("during the outage the task was %s %+v", during.State, during.ErrorDetails)
	for _, d := range during.ErrorDetails {
		if d.Permanent {
			t.Fatalf("a source outage failed the task permanently: %+v", d)
		}
	}
	w.wrote(t, 100)
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	end := e.binlogEnd(t)
	cmtest.Eventually(t, 120*time.Second, "the task catches up after the outage", func() bool {
		d := n.Detail(t, name)
		at, ok := parseToken(d.Checkpoint[sub].Token)
		return d.State == model.StateRunning && ok && !at.before(end)
	})
	e.same(t, "a")
	if d := n.Detail(t, neighbour); d.State != model.StateRunning {
		t.Fatalf("the neighbour is %s: %+v", d.State, d.ErrorDetails)
	}
}

// appendJSONLines appends records i in [from, to) ({"ts":100+i,"i":i}) to
// a file source.
func appendJSONLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < to; i++ {
		fmt.Fprintf(f, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
	}
}

// countLines is the number of lines of a file; 0 when it is missing.
func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// TestTargetHangs: the target stops answering without closing anything
// (packets dropped: every byte to and from it held) in the middle of a
// stream. A stop of the task still answers within its timeout, the task
// STOPPED, and a file task on the node moves all the while; once the
// target answers again, a resume catches up and the target equals the
// source.
func TestTargetHangs(t *testing.T) {
	b := startBehindProxy(t, "sink", nil)
	e, n, proxy, name, sub := b.e, b.n, b.proxy, b.name, b.sub
	_, src, sink := b.neighbour(t)

	w := startWriter(t, e, "a", 100000)
	cmtest.Eventually(t, 30*time.Second, "the writer writes", func() bool { return w.next.Load() >= 50 || w.err != nil })
	proxy.Freeze()
	frozen := w.next.Load()
	cmtest.Eventually(t, 30*time.Second, "the writer writes while the target hangs", func() bool { return w.next.Load() >= frozen+100 || w.err != nil })
	appendJSONLines(t, src, 5, 10)
	cmtest.Eventually(t, 10*time.Second, "the neighbour moves while the target hangs", func() bool { return countLines(sink) >= 10 })
	// The task is held: its durable checkpoint is behind what the writer
	// committed while the target hung.
	if at, ok := parseToken(n.Detail(t, name).Checkpoint[sub].Token); !ok || !at.before(e.binlogEnd(t)) {
		t.Fatalf("the checkpoint %v reached the binlog end while the target hung", at)
	}

	started := time.Now()
	env := n.Do(t, http.MethodPost, base+"stop?taskName="+q(name)+"&timeout=20", nil)
	took := time.Since(started)
	t.Logf("stop while the target hangs: %d in %s", env.Status, took.Round(time.Millisecond))
	if took > 25*time.Second {
		t.Fatalf("stop took %s", took)
	}
	if env.Status != http.StatusOK || !env.IsSuccess {
		t.Fatalf("stop while the target hangs: %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.State != model.StateStopped {
		t.Fatalf("after the stop: %s %+v", d.State, d.ErrorDetails)
	}
	proxy.Thaw()
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	n.OK(t, http.MethodPost, base+"resume?taskName="+q(name), nil)
	reached(t, n, name, sub, e.binlogEnd(t), 120*time.Second)
	e.same(t, "a")
}

// TestTargetHangsTimesOut: with sink.ioTimeout, a target that hangs fails
// the task retryably once a write has waited that long (instead of leaving
// it RUNNING with nothing moving), and once the target answers again the
// restart policy brings it back and it catches up.
func TestTargetHangsTimesOut(t *testing.T) {
	b := startBehindProxy(t, "sink", map[string]string{"ioTimeout": "2s"})
	e, n, proxy, name, sub := b.e, b.n, b.proxy, b.name, b.sub
	w := startWriter(t, e, "a", 100000)
	cmtest.Eventually(t, 30*time.Second, "the writer writes", func() bool { return w.next.Load() >= 50 || w.err != nil })
	proxy.Freeze()
	var failed model.ErrorDetail
	cmtest.Eventually(t, 30*time.Second, "the task fails while the target hangs", func() bool {
		d := n.Detail(t, name)
		for _, ed := range d.ErrorDetails {
			if ed.Level == model.LevelError {
				failed = ed
			}
		}
		return d.State == model.StateException
	})
	t.Logf("while the target hangs: %+v", failed)
	if failed.Permanent {
		t.Fatalf("a hung target failed the task permanently: %+v", failed)
	}
	proxy.Thaw()
	cmtest.Eventually(t, 30*time.Second, "the writer writes after", func() bool { return w.next.Load() >= 300 || w.err != nil })
	w.stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	end := e.binlogEnd(t)
	cmtest.Eventually(t, 120*time.Second, "the task is restarted and catches up", func() bool {
		d := n.Detail(t, name)
		at, ok := parseToken(d.Checkpoint[sub].Token)
		return d.State == model.StateRunning && ok && !at.before(end)
	})
	e.same(t, "a")
}

// behindProxy is an incremental task over table a of a fresh env on a
// node of its own, whose source or sink (side) reaches the server through
// a proxy the test can cut or freeze; the restart policy retries at once.
type behindProxy struct {
	e     *env
	n     *cmtest.Node
	proxy *dbtest.Proxy
	name  string
	sub   string // the task's binlog subtopic
}

func startBehindProxy(t *testing.T, side string, extra map[string]string) *behindProxy {
	t.Helper()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, name VARCHAR(20), amount INT NOT NULL DEFAULT 0)")
	b := &behindProxy{e: e, proxy: dbtest.StartProxy(t, net.JoinHostPort(e.host, e.port)), sub: e.subtopic()}
	host, port, err := net.SplitHostPort(b.proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	b.n = cmtest.Start(t, dbtest.MySQLURL(t), cmtest.Options{})
	for k, v := range map[string]string{"task.autoRestart.backoff.initial": "1s", "job.auto-restart.schedule": "@every 1s"} {
		b.n.OK(t, http.MethodPost, base+"params/update?key="+q(k)+"&value="+q(v), nil)
	}
	cfg := map[string]string{"host": host, "port": port}
	for k, v := range extra {
		cfg[k] = v
	}
	b.name = b.n.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), map[string]map[string]string{side: cfg})).String()
	if side == "source" {
		b.sub = host + "-" + port
	}
	started(t, b.n, b.name, b.sub)
	return b
}

// neighbour starts a file task on the node with 5 records and returns its
// source and sink files once they moved.
func (b *behindProxy) neighbour(t *testing.T) (name, src, sink string) {
	t.Helper()
	nb := t.TempDir()
	src, sink = nb+"/src.jsonl", nb+"/sink.jsonl"
	appendJSONLines(t, src, 0, 5)
	name = b.n.OK(t, http.MethodPost, base+"create", map[string]any{"component": component("incr_trans"), "config": map[string]map[string]string{
		"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": sink}}}).String()
	cmtest.Eventually(t, 10*time.Second, "the neighbour moves", func() bool { return countLines(sink) >= 5 })
	return name, src, sink
}
