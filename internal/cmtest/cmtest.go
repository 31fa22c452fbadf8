// Package cmtest starts a real cm node in a test: the store, the reconciler
// with its runners and the HTTP API over a loopback listener, built by
// internal/app exactly as cm serve builds it, and offers helpers to call the
// API.
package cmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"gopkg.in/yaml.v3"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/connector/process"
	"github.com/connector-manager/cm/taskmgr/supervisor"
	"github.com/connector-manager/cm/taskmgr/view"
)

// GCPercent is the collector target cm serve runs with (its --gc-percent
// default); test nodes run with it too, so benchmarks measure what
// production runs. cmd/cm checks the two agree.
const GCPercent = 400

// Node is a running cm node.
type Node struct {
	URL     string // base URL, http://127.0.0.1:PORT
	ID      model.NodeID
	Store   *model.Store
	Manager *taskmgr.Manager
	Rec     *supervisor.Reconciler
	Lease   *cluster.Lease
	Logs    *observer.ObservedLogs
	// App is the node as internal/app built it (its routes, ReloadAuth).
	App *app.Node
	// Token is the bearer token Do, OK and Detail send; "" sends none.
	Token    string
	stop     func()
	stopOnce sync.Once
	// pluginDir is where Plugin writes manifests.
	pluginDir string
	// counter counts the statements of Store (CountStatements).
	counter *statementCounter
}

// Options tune a test node.
type Options struct {
	// Tune adjusts the node's config before start.
	Tune func(*app.Config)
	// NoJobs keeps the node out of the leader election, so it never runs
	// the cluster-wide jobs.
	NoJobs bool
	// HTTP adjusts the HTTP server config before start.
	HTTP func(*server.Config)
	// AuthFile turns authentication on with this auth file (tokens and
	// roles, docs/security.md); empty leaves it off, as most tests run.
	AuthFile string
	// NodeTokenFile holds the token this node's wakes carry.
	NodeTokenFile string
	// PluginDir is the node's plugin directory (cm serve --plugin-dir);
	// empty gives the node a fresh one, which Node.Plugin writes to.
	// Nodes of a cluster test that run the same plugins share one (write
	// it with WritePlugin before they start).
	PluginDir string
	// FileRoots are the node's file roots (cm serve --file-root); nil
	// means the OS temp dir, where t.TempDir puts the tests' files.
	// cm serve's default (its data dir) is not a test's.
	FileRoots []string
}

// Start opens the store at url and serves a node until the test ends.
func Start(t testing.TB, url string, opt Options) *Node {
	t.Helper()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := model.Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	id, err := model.NodeIDFromAddr(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	cfg := app.DefaultConfig(id, "http://"+ln.Addr().String())
	cfg.Version = "test"
	cfg.Runtime.DataDir = t.TempDir()
	cfg.Runtime.ReconcileInterval = 200 * time.Millisecond
	cfg.Runtime.Committer.Interval = 100 * time.Millisecond
	cfg.Runtime.Committer.Heartbeat = 300 * time.Millisecond
	cfg.NodeHeartbeat = 300 * time.Millisecond
	cfg.Lease = cluster.LeaseConfig{TTL: 2 * time.Second, Renew: 500 * time.Millisecond}
	cfg.ScheduleResync = 200 * time.Millisecond
	cfg.NoJobs = opt.NoJobs
	cfg.HTTP.AuthFile, cfg.NodeTokenFile = opt.AuthFile, opt.NodeTokenFile
	cfg.Connectors.PluginDir, cfg.Connectors.FileRoots, cfg.Connectors.LookupEnv = opt.PluginDir, opt.FileRoots, os.LookupEnv
	if cfg.Connectors.PluginDir == "" {
		cfg.Connectors.PluginDir = t.TempDir()
	}
	if cfg.Connectors.FileRoots == nil {
		cfg.Connectors.FileRoots = []string{os.TempDir()}
	}
	if opt.HTTP != nil {
		opt.HTTP(&cfg.HTTP)
	}
	if opt.Tune != nil {
		opt.Tune(&cfg)
		// A test that names the node (a restart under the same id) names it once.
		id = cfg.Node
		cfg.Tasks.Node, cfg.Runtime.Node = cfg.Node, cfg.Node
	}
	node, err := app.New(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	counter, err := countStatements(store, node.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Register(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- node.Run(runCtx, ln) }()
	n := &Node{URL: "http://" + ln.Addr().String(), ID: id, Store: store, Manager: node.Manager, Rec: node.Reconciler, Lease: node.Lease, Logs: logs, App: node,
		pluginDir: cfg.Connectors.PluginDir, counter: counter}
	n.stop = func() {
		// As cm serve does: app.Node.Run stops in order and gives the node
		// id up, so a node started again with it need not wait.
		stopRun()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", id, err)
		}
		_ = store.Close()
	}
	t.Cleanup(n.Stop)
	return n
}

// WritePlugin writes the manifest of plugin name, running argv, to dir
// (a plugin directory), and returns name. env names variables of the test
// process's environment the program gets.
func WritePlugin(t testing.TB, dir, name string, argv []string, env ...string) string {
	t.Helper()
	b, err := yaml.Marshal(process.Plugin{Name: name, Command: argv, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// ShellPlugin is WritePlugin for a shell script: /bin/sh -c script.
func ShellPlugin(t testing.TB, dir, name, script string, env ...string) string {
	t.Helper()
	return WritePlugin(t, dir, name, []string{"/bin/sh", "-c", script}, env...)
}

// Plugin declares plugin name running script under /bin/sh in the node's
// plugin directory, has the node load it (as an admin adding a manifest
// and reloading would), and returns name for source.plugin.
func (n *Node) Plugin(t testing.TB, name, script string, env ...string) string {
	t.Helper()
	return PluginOn(t, name, script, []*Node{n}, env...)
}

// PluginOn is Plugin on each of nodes, for a task that moves between them.
func PluginOn(t testing.TB, name, script string, nodes []*Node, env ...string) string {
	t.Helper()
	for _, n := range nodes {
		ShellPlugin(t, n.pluginDir, name, script, env...)
		if err := n.App.ReloadPlugins(); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// Stop shuts the node down as cm serve does; safe to call twice.
func (n *Node) Stop() { n.stopOnce.Do(n.stop) }

// Envelope is a decoded OMS answer.
type Envelope struct {
	Status      int             `json:"-"`
	ErrCode     *string         `json:"errCode"`
	ErrMsg      *string         `json:"errMsg"`
	ErrorDetail json.RawMessage `json:"errorDetail"`
	IsSuccess   bool            `json:"isSuccess"`
	Result      json.RawMessage `json:"result"`
	Retryable   *bool           `json:"retryable"`
	Raw         string          `json:"-"`
	Header      http.Header     `json:"-"`
}

// Code is the errCode or "".
func (e Envelope) Code() string {
	if e.ErrCode == nil {
		return ""
	}
	return *e.ErrCode
}

// String is the result as a string (a task name).
func (e Envelope) String() string {
	var s string
	_ = json.Unmarshal(e.Result, &s)
	return s
}

var client = &http.Client{Timeout: 2 * time.Minute}

// Do sends a request with the node's Token and decodes the envelope. body
// is sent as JSON when it is not a string.
func (n *Node) Do(t testing.TB, method, path string, body any) Envelope {
	t.Helper()
	return n.DoWith(t, http.Header{}, method, path, body)
}

// DoWith is Do with more request headers; an Authorization among them
// wins over the node's Token.
func (n *Node) DoWith(t testing.TB, h http.Header, method, path string, body any) Envelope {
	t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, ct = strings.NewReader(b), "application/json"
	case []byte:
		r, ct = bytes.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r, ct = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if n.Token != "" {
		req.Header.Set("Authorization", "Bearer "+n.Token)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env Envelope
	if ct := resp.Header.Get("Content-Type"); (ct != "" && !strings.HasPrefix(ct, "application/json")) || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		// Not an OMS answer (/metrics, /debug/pprof, a Kafka Connect list
		// or empty answer): status and body only.
		env.Status, env.Raw, env.Header = resp.StatusCode, string(raw), resp.Header
		return env
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: answer is not an envelope (%d): %s", method, path, resp.StatusCode, raw)
	}
	env.Status, env.Raw, env.Header = resp.StatusCode, string(raw), resp.Header
	return env
}

// OK calls and fails the test unless the answer is a success.
func (n *Node) OK(t testing.TB, method, path string, body any) Envelope {
	t.Helper()
	env := n.Do(t, method, path, body)
	if env.Status != http.StatusOK || !env.IsSuccess {
		t.Fatalf("%s %s = %d %s", method, path, env.Status, env.Raw)
	}
	return env
}

// Detail fetches a task's detail.
func (n *Node) Detail(t testing.TB, name string) view.TaskView {
	t.Helper()
	env := n.OK(t, http.MethodGet, "/connector/task/v2/detail?taskName="+name, nil)
	var v view.TaskView
	if err := json.Unmarshal(env.Result, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Eventually polls cond every 20 ms until it holds or within passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SinkIndexes counts how often each record index (the "i" field of a JSON
// line) reached a file sink, to check at-least-once delivery with no gap.
func SinkIndexes(t testing.TB, path string) map[int]int {
	t.Helper()
	b, _ := os.ReadFile(path)
	seen := map[int]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		var rec struct{ I int }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("sink line %q: %v", l, err)
		}
		seen[rec.I]++
	}
	return seen
}
