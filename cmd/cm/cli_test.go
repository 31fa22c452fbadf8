package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// runCLI runs cm with args in process, stdin empty (not a terminal), and
// returns the exit code, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		var e *exitError
		if !errors.As(err, &e) || !e.quiet {
			fmt.Fprintln(&errOut, "cm:", err)
		}
		return exitCode(err), out.String(), errOut.String()
	}
	return 0, out.String(), errOut.String()
}

// sameJSON fails unless a and b are the same JSON value.
func sameJSON(t *testing.T, what, a string, b []byte) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: cm printed no JSON: %v\n%s", what, err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("%s: cm printed\n%s\nthe API's result is\n%s", what, a, b)
	}
}

// cliFileTask is a create body for a file task over n lines from ts first.
func cliFileTask(t *testing.T, component string, first int64, n int) map[string]any {
	dir := t.TempDir()
	src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"ts\":%d,\"i\":%d}\n", first+int64(i), i)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"component": component, "config": map[string]map[string]string{
		"source": {"type": "file", "path": src, "password": "hunter2-secret"},
		"sink":   {"type": "file", "path": sink},
	}}
}

// TestCLIListAndDetailJSON: -o json of list and detail (and the default
// when stdout is not a terminal) is exactly the API's result, for a task
// named by its component or its full name; -o yaml holds the same value;
// a table names the task.
func TestCLIListAndDetailJSON(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	// Not started: nothing in it changes between the two reads.
	body := cliFileTask(t, "p_cli-incr_trans-1-0", 100, 10)
	body["start"] = false
	name := n.OK(t, "POST", v2Path+"create", body).String()
	n.OK(t, "POST", v2Path+"create", map[string]any{"component": "p_cli-incr_trans-2-0", "start": false, "config": cliFileTask(t, "x", 100, 1)["config"]})

	api := n.OK(t, "GET", v2Path+"batchDetail?project=p_cli", nil).Result
	for _, args := range [][]string{{"-o", "json"}, {}} {
		code, out, errOut := runCLI(append([]string{"task", "list", "--server", n.URL, "--project", "p_cli"}, args...)...)
		if code != 0 {
			t.Fatalf("list %v: %d %s", args, code, errOut)
		}
		sameJSON(t, fmt.Sprintf("list %v", args), out, api)
	}
	api = n.OK(t, "GET", v2Path+"detail?taskName="+url.QueryEscape(name), nil).Result
	for _, ref := range []string{"p_cli-incr_trans-1-0", name} {
		code, out, errOut := runCLI("task", "detail", ref, "--server", n.URL, "-o", "json")
		if code != 0 {
			t.Fatalf("detail %s: %d %s", ref, code, errOut)
		}
		sameJSON(t, "detail "+ref, out, api)
		if strings.Contains(out, "hunter2") {
			t.Fatalf("detail printed a secret: %s", out)
		}
	}
	code, out, _ := runCLI("task", "detail", "p_cli-incr_trans-1-0", "--server", n.URL, "-o", "yaml")
	var fromYAML map[string]any
	if code != 0 || yaml.Unmarshal([]byte(out), &fromYAML) != nil || fromYAML["taskName"] != name || fromYAML["version"] != 1 {
		t.Fatalf("detail -o yaml: %d %v\n%s", code, fromYAML, out)
	}
	code, out, _ = runCLI("task", "list", "--server", n.URL, "-o", "table")
	if code != 0 || !strings.Contains(out, "p_cli-incr_trans-2-0") || !strings.Contains(out, "2 of 2 task(s)") {
		t.Fatalf("list -o table: %d\n%s", code, out)
	}
	for _, args := range [][]string{{"node", "list"}, {"job", "list"}, {"params", "get"}, {"task", "operations", "p_cli-incr_trans-1-0"}} {
		route := map[string]string{"node": "nodes", "job": "jobs", "params": "params", "task": "operations?taskName=p_cli-incr_trans-1-0"}[args[0]]
		api := n.OK(t, "GET", v2Path+route, nil).Result
		code, out, errOut := runCLI(append(args, "--server", n.URL, "-o", "json")...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
		if args[0] != "node" { // a node's seenAt moves with its heartbeat
			sameJSON(t, strings.Join(args, " "), out, api)
		} else if !strings.Contains(out, string(n.ID)) {
			t.Fatalf("node list does not name the node %s: %s", n.ID, out)
		}
		if code, out, _ := runCLI(append(args, "--server", n.URL, "-o", "table")...); code != 0 || out == "" {
			t.Fatalf("%v -o table: %d %q", args, code, out)
		}
	}
}

// TestCLIExitCodes: 0 done, 1 refused by cm (errCode and errMsg printed),
// 2 cm unreachable, 3 usage (bad flag, argument count, output format, a
// confirmation that cannot be asked).
func TestCLIExitCodes(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	body := cliFileTask(t, "p_ex-incr_trans-1-0", 100, 10)
	body["start"] = false
	n.OK(t, "POST", v2Path+"create", body)
	s := "--server=" + n.URL

	if code, out, errOut := runCLI("task", "resume", "p_ex-incr_trans-1-0", s, "-o", "table"); code != 0 || !strings.Contains(out, "resumed: ") {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI("task", "pause", "p_ex-incr_trans-1-0", s, "-o", "table"); code != 0 || !strings.Contains(out, "paused: ") {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	if d := n.Detail(t, "p_ex-incr_trans-1-0"); d.State != model.StatePaused {
		t.Fatalf("after cm task pause: %s", d.State)
	}
	if code, out, errOut := runCLI("task", "resume", "p_ex-incr_trans-1-0", s, "-o", "table"); code != 0 || !strings.Contains(out, "resumed: ") {
		t.Fatalf("resume after pause: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI("task", "stop", "p_ex-incr_trans-1-0", s, "-o", "table", "--timeout", "20s"); code != 0 || !strings.Contains(out, "stopped: ") {
		t.Fatalf("stop: %d %s %s", code, out, errOut)
	}
	code, _, errOut := runCLI("task", "detail", "p_nope-incr_trans-1-0", s)
	if code != 1 || !strings.Contains(errOut, "TASK_NOT_FOUND: ") {
		t.Fatalf("detail of a missing task: %d %s", code, errOut)
	}
	code, _, errOut = runCLI("task", "update", "p_ex-incr_trans-1-0", s, "--set", "source.checkpoint=soon")
	if code != 1 || !strings.Contains(errOut, "INVALID") {
		t.Fatalf("update with a bad checkpoint: %d %s", code, errOut)
	}
	code, _, errOut = runCLI("params", "set", "no.such.key", "1", s)
	if code != 1 || !strings.Contains(errOut, "cm: ") {
		t.Fatalf("params set of an unknown key: %d %s", code, errOut)
	}

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	if code, _, errOut := runCLI("task", "list", "--server", dead); code != 2 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("list against a closed port: %d %s", code, errOut)
	}
	t.Setenv("CM_SERVER", dead)
	if code, _, errOut := runCLI("node", "list"); code != 2 {
		t.Fatalf("CM_SERVER of a closed port: %d %s", code, errOut)
	}

	for _, args := range [][]string{
		{"task", "list", "--bogus"},
		{"task", "detail"},
		{"task", "detail", "a", "b"},
		{"task", "list", "-o", "xml"},
		{"task", "frobnicate"},
		{"task"},
		{"frobnicate"},
		{"task", "update", "p_ex-incr_trans-1-0"},
		{"task", "pullback", "p_ex-incr_trans-1-0"},
		{"task", "pullback", "p_ex-incr_trans-1-0", "--to", "yesterday"},
		{"task", "pullback", "p_ex-incr_trans-1-0", "--to", "100", "--ago", "1h"},
		{"task", "pullback", "p_ex-incr_trans-1-0", "--to", "100", "--tz", "Mars/Olympus"},
		{"version", "extra"},
	} {
		if code, _, errOut := runCLI(append(args, s)...); code != 3 {
			t.Errorf("%v: exit %d, want 3 (%s)", args, code, errOut)
		}
	}
	if code, _, errOut := runCLI("task", "list", "--server", "127.0.0.1:8088"); code != 3 || !strings.Contains(errOut, "not an http(s) URL") {
		t.Errorf("--server without a scheme: exit %d, want 3 (%s)", code, errOut)
	}
	// delete and migrate confirm; with no terminal and no --yes they say
	// why and do nothing.
	for _, cmd := range []string{"delete", "migrate"} {
		code, _, errOut := runCLI("task", cmd, "p_ex-incr_trans-1-0", s)
		if code != 3 || !strings.Contains(errOut, "--yes") {
			t.Fatalf("%s without --yes: %d %s", cmd, code, errOut)
		}
	}
	if d := n.Detail(t, "p_ex-incr_trans-1-0"); d.State != "STOPPED" || d.Version != 1 {
		t.Fatalf("refused delete or migrate changed the task: %s v%d", d.State, d.Version)
	}
	if code, out, errOut := runCLI("task", "delete", "p_ex-incr_trans-1-0", s, "--yes", "-o", "json"); code != 0 || strings.TrimSpace(out) != `"`+string(n.ID)+`:connector_v2:p_ex-incr_trans-1-0:0000000001"` {
		t.Fatalf("delete --yes: %d %s %s", code, out, errOut)
	}
}

// TestCLIPullbackSameAsHTTP: cm task pullback --to "2023-02-13 19:00:00"
// --tz Asia/Shanghai --yes makes the rewind the HTTP call makes: the audit
// rows hold the same target. Before acting it prints the time in UTC and
// in the zone and what will be replayed; without --yes and a terminal it
// refuses and nothing happens.
func TestCLIPullbackSameAsHTTP(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	const first, last, target = 1676285900, 1676286099, 1676286000 // target: 2023-02-13 11:00:00 UTC
	const comp = "p_pb-incr_trans-1-0"
	n.OK(t, "POST", v2Path+"create", cliFileTask(t, comp, first, last-first+1))
	caughtUp := func(version int64) {
		cmtest.Eventually(t, 10*time.Second, fmt.Sprintf("version %d checkpointed at the last line", version), func() bool {
			d := n.Detail(t, comp)
			return d.Version == version && d.Checkpoint["src.jsonl"].TS == last
		})
	}
	caughtUp(1)
	n.OK(t, "POST", v2Path+"pullback?taskName="+comp+"&timestamp="+url.QueryEscape("2023-02-13 19:00:00")+"&tz=Asia/Shanghai", nil)
	caughtUp(2)

	s := "--server=" + n.URL
	code, out, plan := runCLI("task", "pullback", comp, s, "--to", "2023-02-13 19:00:00", "--tz", "Asia/Shanghai")
	if code != 3 || !strings.Contains(plan, "--yes") {
		t.Fatalf("pullback without --yes: %d %s %s", code, out, plan)
	}
	for _, want := range []string{"2023-02-13 11:00:00 UTC (unix 1676286000)", "2023-02-13 19:00:00 +08:00 Asia/Shanghai",
		"src.jsonl: checkpoint 2023-02-13 11:01:39 UTC -> replays 1m39s"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan)
		}
	}
	if d := n.Detail(t, comp); d.Version != 2 {
		t.Fatalf("a refused pullback acted: version %d", d.Version)
	}
	code, out, plan = runCLI("task", "pullback", comp, s, "--to", "2023-02-13 19:00:00", "--tz", "Asia/Shanghai", "--yes", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != `"`+string(n.ID)+":connector_v2:"+comp+`:0000000003"` {
		t.Fatalf("pullback --yes: %d %s %s", code, out, plan)
	}
	t.Logf("cm task pullback printed:\n%s", plan)
	caughtUp(3)

	var rows []struct {
		Operation string          `json:"operation"`
		Result    string          `json:"result"`
		Detail    json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(n.OK(t, "GET", v2Path+"operations?taskName="+comp, nil).Result, &rows); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, r := range rows {
		if r.Operation != "pullback" || r.Result == "failure" {
			continue
		}
		var d struct {
			Target map[string]int64 `json:"target"`
		}
		if err := json.Unmarshal(r.Detail, &d); err != nil {
			t.Fatalf("pullback audit detail %q: %v", r.Detail, err)
		}
		targets = append(targets, fmt.Sprint(d.Target))
	}
	want := fmt.Sprint(map[string]int64{"src.jsonl": target})
	if len(targets) != 2 || targets[0] != want || targets[1] != want {
		t.Fatalf("pullback audit targets %v, want two of %s (rows %+v)", targets, want, rows)
	}

	// The other spellings of the same time plan the same target.
	for _, to := range [][]string{{"--to", "2023-02-13T19:00:00+08:00"}, {"--to", "1676286000"}, {"--to", "2023-02-13 11:00:00"}, {"--to", "2023-02-13 19:00:00", "--tz", "+08:00"}} {
		code, _, plan := runCLI(append([]string{"task", "pullback", comp, s, "--dry-run"}, to...)...)
		if code != 0 || !strings.Contains(plan, "(unix 1676286000)") {
			t.Fatalf("pullback %v --dry-run: %d\n%s", to, code, plan)
		}
	}
	// A target after the checkpoint is forward: said in the plan, refused by cm.
	code, _, plan = runCLI("task", "pullback", comp, s, "--ago", "1m", "--yes")
	if code != 1 || !strings.Contains(plan, "BEFORE the target") || !strings.Contains(plan, "CHECKPOINT_FORWARD") {
		t.Fatalf("forward pullback: %d\n%s", code, plan)
	}
}

// TestResolvePullbackTime: every form of --to and --ago resolves to the
// unix seconds the server would compute.
func TestResolvePullbackTime(t *testing.T) {
	now := time.Unix(1676290000, 0)
	for _, c := range []struct{ to, ago, tz string }{
		{"1676286000", "", ""},
		{"2023-02-13T19:00:00+08:00", "", ""},
		{"2023-02-13T11:00:00Z", "", "Asia/Shanghai"},
		{"2023-02-13 19:00:00", "", "Asia/Shanghai"},
		{"2023-02-13 19:00:00", "", "+08:00"},
		{"2023-02-13 06:00:00", "", "-05:00"},
		{"2023-02-13 11:00:00", "", ""},
		{"2023-02-13T19:00:00", "", "Asia/Shanghai"},
		{"", "4000s", ""},
		{"", "1h6m40s", "UTC"},
	} {
		got, err := resolvePullbackTime(c.to, c.ago, c.tz, now)
		if err != nil || got.unix != 1676286000 {
			t.Errorf("%+v: %d %v", c, got.unix, err)
		}
	}
	for _, c := range []struct{ to, ago, tz string }{
		{"", "", ""}, {"1", "1h", ""}, {"", "-1h", ""}, {"", "soon", ""}, {"13/02/2023", "", ""},
		{"2023-02-13 19:00:00", "", "Asia/Nowhere"}, {"2023-02-13 19:00:00", "", "+8"}, {"2023-02-13 19:00:00", "", "Local"},
	} {
		if _, err := resolvePullbackTime(c.to, c.ago, c.tz, now); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

// TestCLIToken: --token and CM_TOKEN are sent as a bearer token; without
// one an authenticated node refuses with exit 1 and says UNAUTHENTICATED.
func TestCLIToken(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	tokens := writeTokens(t, authFile, map[string]server.Role{"viewer": server.RoleViewer})
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: authFile})
	s := "--server=" + n.URL
	if code, _, errOut := runCLI("task", "list", s); code != 1 || !strings.Contains(errOut, "UNAUTHENTICATED") {
		t.Fatalf("no token: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI("task", "list", s, "--token", tokens["viewer"]); code != 0 {
		t.Fatalf("--token: %d %s", code, errOut)
	}
	t.Setenv("CM_TOKEN", tokens["viewer"])
	if code, _, errOut := runCLI("task", "list", s); code != 0 {
		t.Fatalf("CM_TOKEN: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI("params", "set", "task.delay.threshold", "5m", s); code != 1 || !strings.Contains(errOut, "FORBIDDEN") {
		t.Fatalf("a viewer setting a param: %d %s", code, errOut)
	}
}
