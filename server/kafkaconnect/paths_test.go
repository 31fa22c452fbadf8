package kafkaconnect_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/server/kafkaconnect"
)

func mustStatus(t *testing.T, what string, r kc, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s = %d %s, want %d", what, r.Status, r.Body, status)
	}
}

// TestInitialStates: POST /connectors with initial_state STOPPED creates a
// connector that runs nothing (no tasks, nothing delivered) until it is
// resumed; PAUSED one whose runner holds still; RUNNING (any case) one
// that runs. No client under test sends initial_state, so this is plain
// net/http.
func TestInitialStates(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	src, sink := fileSource(t, 8)
	stopped := "kc_s-incr_trans-1-0"
	r := do(t, n, "POST", "/connectors", map[string]any{"name": stopped, "config": fileConfig(src, sink), "initial_state": "STOPPED"})
	mustStatus(t, "create STOPPED", r, http.StatusCreated)
	if loc := r.Header.Get("Location"); loc != "/connectors/"+stopped {
		t.Fatalf("Location %q", loc)
	}
	var info struct {
		Name   string            `json:"name"`
		Config map[string]string `json:"config"`
		Tasks  []any             `json:"tasks"`
		Type   string            `json:"type"`
	}
	r.decode(t, &info)
	if info.Name != stopped || len(info.Tasks) != 0 || info.Type != "source" || info.Config["name"] != stopped {
		t.Fatalf("create STOPPED answered %s", r.Body)
	}
	if s := statusOf(t, n, stopped); s.Connector.State != "STOPPED" || len(s.Tasks) != 0 {
		t.Fatalf("status %+v", s)
	}
	if d := n.Detail(t, stopped); d.State != model.StateCreated {
		t.Fatalf("OMS state %s", d.State)
	}
	// Stopping what never ran is a no-op, as Kafka Connect's stop of a stopped connector.
	wantEmpty(t, "stop of a STOPPED connector", do(t, n, "PUT", "/connectors/"+stopped+"/stop", nil), http.StatusNoContent)
	wantEmpty(t, "resume", do(t, n, "PUT", "/connectors/"+stopped+"/resume", nil), http.StatusAccepted)
	sinkHas(t, src, sink, 8)

	src2, sink2 := fileSource(t, 4)
	paused := "kc_p-incr_trans-1-0"
	mustStatus(t, "create PAUSED", do(t, n, "POST", "/connectors", map[string]any{"name": paused, "config": fileConfig(src2, sink2), "initial_state": "PAUSED"}), http.StatusCreated)
	if s := statusOf(t, n, paused); s.Connector.State != "PAUSED" || len(s.Tasks) != 1 || s.Tasks[0].State != "PAUSED" {
		t.Fatalf("status %+v", s)
	}
	wantEmpty(t, "resume", do(t, n, "PUT", "/connectors/"+paused+"/resume", nil), http.StatusAccepted)
	sinkHas(t, src2, sink2, 4)

	src3, sink3 := fileSource(t, 3)
	running := "kc_u-incr_trans-1-0"
	mustStatus(t, "create running", do(t, n, "POST", "/connectors", map[string]any{"name": running, "config": fileConfig(src3, sink3), "initial_state": "running"}), http.StatusCreated)
	sinkHas(t, src3, sink3, 3)
	if s := statusOf(t, n, running); s.Connector.State != "RUNNING" || s.Connector.WorkerID != string(n.ID) {
		t.Fatalf("status %+v", s)
	}

	wantError(t, "create again", do(t, n, "POST", "/connectors", map[string]any{"name": running, "config": fileConfig(src3, sink3)}), http.StatusConflict, "already exists")
	wantError(t, "bad initial_state", do(t, n, "POST", "/connectors", map[string]any{"name": "kc_x-incr_trans-1-0", "config": fileConfig(src3, sink3), "initial_state": "SLEEPING"}), http.StatusBadRequest, "initial_state")
}

// TestConfigRoundTrip: GET config after PUT equals the submitted map plus
// name, value for value (numbers given as JSON numbers come back as the
// text they were written as); a secret comes back masked, and a PUT that
// sends the mask back keeps it; PATCH merges, a null removes a key, and an
// absent connector is 404 (no upsert); a PUT of an absent connector
// creates it (201).
func TestConfigRoundTrip(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	src, sink := fileSource(t, 3)
	name := "kc_t-incr_trans-1-0"
	cfg := fileConfig(src, sink)
	r := do(t, n, "PUT", "/connectors/"+name+"/config", cfg)
	mustStatus(t, "PUT config of an absent connector", r, http.StatusCreated)
	sinkHas(t, src, sink, 3)
	var got map[string]string
	got = nil
	do(t, n, "GET", "/connectors/"+name+"/config", nil).decode(t, &got)
	if want := withName(cfg, name); !mapsEqual(got, want) {
		t.Fatalf("config %v, want %v", got, want)
	}
	// The same config again: nothing to change, nothing restarted.
	mustStatus(t, "PUT of the same config", do(t, n, "PUT", "/connectors/"+name+"/config", withName(cfg, name)), http.StatusOK)
	if env := n.OK(t, "GET", "/connector/task/v2/operations?taskName="+name, nil); strings.Contains(string(env.Result), `"operation":"stop"`) {
		t.Fatalf("an unchanged config restarted the task: %s", env.Result)
	}

	// A number and a secret; the task is running: it is stopped, updated and resumed.
	raw := `{"connector.class":"incr_trans","source.type":"file","source.path":` + quote(src) + `,"sink.type":"file","sink.path":` + quote(sink) +
		`,"tasks.max":2,"source.password":"hunter2-secret","name":"` + name + `"}`
	mustStatus(t, "PUT config", do(t, n, "PUT", "/connectors/"+name+"/config", raw), http.StatusOK)
	got = nil
	do(t, n, "GET", "/connectors/"+name+"/config", nil).decode(t, &got)
	want := withName(cfg, name)
	want["tasks.max"], want["source.password"] = "2", model.Masked
	if !mapsEqual(got, want) {
		t.Fatalf("config %v, want %v", got, want)
	}
	if s := statusOf(t, n, name); s.Connector.State != "RUNNING" {
		t.Fatalf("after a config change the connector is %s", s.Connector.State)
	}
	// What GET showed, sent back: the mask keeps the secret.
	mustStatus(t, "PUT the shown config back", do(t, n, "PUT", "/connectors/"+name+"/config", got), http.StatusOK)
	if stored := storedConfig(t, n, name); stored.Get("source", "password") != "hunter2-secret" {
		t.Fatalf("stored secret %q", stored.Get("source", "password"))
	}
	if b, _ := json.Marshal(n.Detail(t, name)); strings.Contains(string(b), "hunter2") {
		t.Fatalf("detail shows the secret: %s", b)
	}

	patch := `{"tasks.max":null,"source.pollInterval":"1s"}`
	r = do(t, n, "PATCH", "/connectors/"+name+"/config", patch)
	mustStatus(t, "PATCH config", r, http.StatusOK)
	got = nil
	do(t, n, "GET", "/connectors/"+name+"/config", nil).decode(t, &got)
	delete(want, "tasks.max")
	want["source.pollInterval"] = "1s"
	if !mapsEqual(got, want) {
		t.Fatalf("config after PATCH %v, want %v", got, want)
	}
	wantError(t, "PATCH of an absent connector", do(t, n, "PATCH", "/connectors/kc_none-incr_trans-1-0/config", patch), http.StatusNotFound, "Connector kc_none-incr_trans-1-0 not found")
	wantError(t, "PUT with another name", do(t, n, "PUT", "/connectors/"+name+"/config", withName(cfg, "other")), http.StatusBadRequest, "doesn't match")
	wantError(t, "PUT without connector.class", do(t, n, "PUT", "/connectors/"+name+"/config", map[string]string{"source.type": "file"}), http.StatusBadRequest, "connector.class")
	wantError(t, "PUT with a key that is not scope.key", do(t, n, "PUT", "/connectors/"+name+"/config", map[string]string{"connector.class": "incr_trans", "topics": "x"}), http.StatusBadRequest, "scope.key")
	bad := cloneMap(cfg)
	bad["sink.type"] = "nope"
	r = do(t, n, "PUT", "/connectors/"+name+"/config", bad)
	wantError(t, "PUT of a config that does not build", r, http.StatusBadRequest, "sink")
	if s := statusOf(t, n, name); s.Connector.State != "RUNNING" {
		t.Fatalf("a refused config change left the connector %s", s.Connector.State)
	}
	wantError(t, "create by PUT of a name that is no component", do(t, n, "PUT", "/connectors/my-connector/config", cfg), http.StatusBadRequest, "PROJECT-TYPE-N-M")
	wantError(t, "GET of a name that is no component", do(t, n, "GET", "/connectors/my-connector", nil), http.StatusNotFound, "Connector my-connector not found")
}

func cloneMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func storedConfig(t *testing.T, n *cmtest.Node, name string) model.Config {
	t.Helper()
	task, err := n.Store.GetTask(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := task.ParsedConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOffsets (KIP-875): GET shows each subtopic's position; PATCH and
// DELETE are refused while the connector runs, with Kafka Connect's
// message; once stopped, PATCH rewinds a subtopic (the resumed task
// delivers from there again, byte for byte) and DELETE starts it over;
// a forward move needs force=true; both are audited.
func TestOffsets(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := node(t, url)
		src, sink := fileSource(t, 20)
		name := "kc_o-incr_trans-1-0"
		mustStatus(t, "create", do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": fileConfig(src, sink)}), http.StatusCreated)
		sinkHas(t, src, sink, 20)
		type offsets struct {
			Offsets []struct {
				Partition map[string]string `json:"partition"`
				Offset    map[string]any    `json:"offset"`
			} `json:"offsets"`
		}
		read := func() offsets {
			var o offsets
			r := do(t, n, "GET", "/connectors/"+name+"/offsets", nil)
			mustStatus(t, "GET offsets", r, http.StatusOK)
			r.decode(t, &o)
			return o
		}
		cmtest.Eventually(t, 10*time.Second, "the checkpoint reaches the last line", func() bool {
			o := read()
			return len(o.Offsets) == 1 && o.Offsets[0].Offset["ts"] == float64(119)
		})
		if o := read(); o.Offsets[0].Partition["subtopic"] != "src.jsonl" {
			t.Fatalf("offsets %+v", o)
		}
		alter := map[string]any{"offsets": []any{map[string]any{"partition": map[string]string{"subtopic": "src.jsonl"}, "offset": map[string]any{"ts": 110}}}}
		const running = "Connectors must be in the STOPPED state before their offsets can be modified"
		wantError(t, "PATCH offsets while running", do(t, n, "PATCH", "/connectors/"+name+"/offsets", alter), http.StatusBadRequest, running)
		wantError(t, "DELETE offsets while running", do(t, n, "DELETE", "/connectors/"+name+"/offsets", nil), http.StatusBadRequest, running)
		wantEmpty(t, "stop", do(t, n, "PUT", "/connectors/"+name+"/stop", nil), http.StatusNoContent)
		wantError(t, "PATCH without a body", do(t, n, "PATCH", "/connectors/"+name+"/offsets", nil), http.StatusBadRequest, "Offsets must be specified")
		forward := map[string]any{"offsets": []any{map[string]any{"partition": map[string]string{"subtopic": "src.jsonl"}, "offset": map[string]any{"ts": 500}}}}
		if r := do(t, n, "PATCH", "/connectors/"+name+"/offsets", forward); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "CHECKPOINT_FORWARD") {
			t.Fatalf("a forward PATCH = %d %s", r.Status, r.Body)
		}
		mustStatus(t, "a forward PATCH with force=true", do(t, n, "PATCH", "/connectors/"+name+"/offsets?force=true", forward), http.StatusOK)
		if o := read(); len(o.Offsets) != 1 || o.Offsets[0].Offset["ts"] != float64(500) {
			t.Fatalf("offsets after the forced PATCH %+v", o)
		}

		r := do(t, n, "PATCH", "/connectors/"+name+"/offsets", alter)
		mustStatus(t, "PATCH offsets", r, http.StatusOK)
		if !strings.Contains(string(r.Body), "The offsets for this connector have been altered successfully") {
			t.Fatalf("PATCH answered %s", r.Body)
		}
		if o := read(); len(o.Offsets) != 1 || o.Offsets[0].Offset["ts"] != float64(110) {
			t.Fatalf("offsets after PATCH %+v", o)
		}
		if err := os.Remove(sink); err != nil {
			t.Fatal(err)
		}
		wantEmpty(t, "resume", do(t, n, "PUT", "/connectors/"+name+"/resume", nil), http.StatusAccepted)
		// From ts 110 on: lines 10..19 again, as the source has them.
		wantTail(t, src, sink, 10)

		wantEmpty(t, "stop", do(t, n, "PUT", "/connectors/"+name+"/stop", nil), http.StatusNoContent)
		r = do(t, n, "DELETE", "/connectors/"+name+"/offsets", nil)
		mustStatus(t, "DELETE offsets", r, http.StatusOK)
		if !strings.Contains(string(r.Body), "The offsets for this connector have been reset successfully") {
			t.Fatalf("DELETE answered %s", r.Body)
		}
		if o := read(); len(o.Offsets) != 0 {
			t.Fatalf("offsets after DELETE %+v", o)
		}
		if err := os.Remove(sink); err != nil {
			t.Fatal(err)
		}
		wantEmpty(t, "resume", do(t, n, "PUT", "/connectors/"+name+"/resume", nil), http.StatusAccepted)
		sinkHas(t, src, sink, 20)

		var ops []struct {
			Operation string          `json:"operation"`
			Result    string          `json:"result"`
			Params    json.RawMessage `json:"params"`
		}
		env := n.OK(t, "GET", "/connector/task/v2/operations?taskName="+name, nil)
		if err := json.Unmarshal(env.Result, &ops); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, o := range ops {
			if strings.HasPrefix(o.Operation, "offsets:") && o.Result == "success" && strings.Contains(string(o.Params), `"api":"kafka-connect"`) {
				seen[o.Operation] = true
			}
		}
		if !seen["offsets:alter"] || !seen["offsets:reset"] {
			t.Fatalf("audit %s", env.Result)
		}
	})
}

// wantTail waits until the sink holds exactly the source's lines from
// index from on, byte for byte.
func wantTail(t *testing.T, src, sink string, from int) {
	t.Helper()
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(want), "\n")
	exp := strings.Join(lines[from:], "")
	var got []byte
	cmtest.Eventually(t, 15*time.Second, "the sink holds the replayed lines", func() bool {
		got, _ = os.ReadFile(sink)
		return len(got) >= len(exp)
	})
	if string(got) != exp {
		t.Fatalf("sink:\n%x\nwant\n%x", got, exp)
	}
}

// TestAcrossAPIs: a connector created on the Kafka Connect API is stopped
// on the OMS API, and a task created on the OMS API is stopped (and
// restarted) on the Kafka Connect API; the audit shows each call, with
// the API it came through.
func TestAcrossAPIs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := node(t, url)
		src, sink := fileSource(t, 5)
		kcName := "kc_x-incr_trans-1-0"
		mustStatus(t, "create", do(t, n, "POST", "/connectors", map[string]any{"name": kcName, "config": fileConfig(src, sink)}), http.StatusCreated)
		sinkHas(t, src, sink, 5)
		n.OK(t, "POST", "/connector/task/v2/stop?taskName="+kcName, nil)
		if s := statusOf(t, n, kcName); s.Connector.State != "STOPPED" {
			t.Fatalf("Kafka Connect status after the OMS stop: %+v", s)
		}

		src2, sink2 := fileSource(t, 5)
		omsName := "kc_y-incr_trans-1-0"
		n.OK(t, "POST", "/connector/task/v2/create", map[string]any{"component": omsName, "config": map[string]map[string]string{
			"source": {"type": "file", "path": src2}, "sink": {"type": "file", "path": sink2}}})
		sinkHas(t, src2, sink2, 5)
		var list map[string]struct {
			Status status `json:"status"`
		}
		do(t, n, "GET", "/connectors?expand=status", nil).decode(t, &list)
		if list[omsName].Status.Connector.State != "RUNNING" || list[kcName].Status.Connector.State != "STOPPED" {
			t.Fatalf("expanded list %+v", list)
		}
		// worker_id is the owner's id as GET nodes lists it.
		var cluster struct {
			Nodes []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(n.OK(t, "GET", "/connector/task/v2/nodes", nil).Result, &cluster); err != nil {
			t.Fatal(err)
		}
		if w := list[omsName].Status.Connector.WorkerID; len(cluster.Nodes) != 1 || cluster.Nodes[0].ID != w || list[omsName].Status.Tasks[0].WorkerID != w {
			t.Fatalf("worker_id %q, nodes %+v", w, cluster.Nodes)
		}
		wantEmpty(t, "stop", do(t, n, "PUT", "/connectors/"+omsName+"/stop", nil), http.StatusNoContent)
		if d := n.Detail(t, omsName); d.State != model.StateStopped {
			t.Fatalf("OMS detail after the Kafka Connect stop: %s", d.State)
		}

		audit := func(name string) []map[string]any {
			var ops []map[string]any
			if err := json.Unmarshal(n.OK(t, "GET", "/connector/task/v2/operations?taskName="+name, nil).Result, &ops); err != nil {
				t.Fatal(err)
			}
			return ops
		}
		find := func(ops []map[string]any, op string, viaKC bool) bool {
			for _, o := range ops {
				params, _ := json.Marshal(o["params"])
				if o["operation"] == op && o["result"] == "success" && strings.Contains(string(params), `"api":"kafka-connect"`) == viaKC {
					return true
				}
			}
			return false
		}
		if ops := audit(kcName); !find(ops, "create", true) || !find(ops, "stop", false) {
			t.Fatalf("audit of %s: %v", kcName, ops)
		}
		if ops := audit(omsName); !find(ops, "create", false) || !find(ops, "stop", true) {
			t.Fatalf("audit of %s: %v", omsName, ops)
		}
	})
}

// TestAnswers: Kafka Connect's shapes where its clients look closely.
// 202 and 204 carry no body and no content type; errors (a missing
// connector, a route that does not exist, a malformed body) are
// {"error_code","message"}; GET /, /health, plugins, plugin config,
// plugin reload, loggers.
func TestAnswers(t *testing.T) {
	plugins := t.TempDir()
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, PluginDir: plugins, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
	src, sink := fileSource(t, 2)
	name := "kc_a-incr_trans-1-0"
	mustStatus(t, "create", do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": fileConfig(src, sink)}), http.StatusCreated)
	sinkHas(t, src, sink, 2)
	wantEmpty(t, "pause", do(t, n, "PUT", "/connectors/"+name+"/pause", nil), http.StatusAccepted)
	wantEmpty(t, "resume", do(t, n, "PUT", "/connectors/"+name+"/resume", nil), http.StatusAccepted)
	wantEmpty(t, "restart", do(t, n, "POST", "/connectors/"+name+"/restart", nil), http.StatusOK)
	r := do(t, n, "POST", "/connectors/"+name+"/restart?includeTasks=true&onlyFailed=false", nil)
	mustStatus(t, "restart includeTasks", r, http.StatusAccepted)
	var st status
	r.decode(t, &st)
	if st.Name != name || st.Type != "source" || len(st.Tasks) != 1 {
		t.Fatalf("restart answered %s", r.Body)
	}
	wantError(t, "restart includeTasks=maybe", do(t, n, "POST", "/connectors/"+name+"/restart?includeTasks=maybe", nil), http.StatusBadRequest, "includeTasks")
	wantEmpty(t, "task restart", do(t, n, "POST", "/connectors/"+name+"/tasks/0/restart", nil), http.StatusNoContent)
	wantEmpty(t, "topics reset", do(t, n, "PUT", "/connectors/"+name+"/topics/reset", nil), http.StatusAccepted)

	missing := "kc_m-incr_trans-1-0"
	for _, c := range []struct{ method, path string }{
		{"GET", "/connectors/" + missing}, {"GET", "/connectors/" + missing + "/config"}, {"GET", "/connectors/" + missing + "/status"},
		{"GET", "/connectors/" + missing + "/tasks"}, {"PUT", "/connectors/" + missing + "/pause"}, {"PUT", "/connectors/" + missing + "/stop"},
		{"DELETE", "/connectors/" + missing}, {"GET", "/connectors/" + missing + "/offsets"}, {"GET", "/connectors/" + missing + "/topics"},
	} {
		wantError(t, c.method+" "+c.path, do(t, n, c.method, c.path, nil), http.StatusNotFound, "Connector "+missing+" not found")
	}
	wantError(t, "no such route", do(t, n, "GET", "/connectors/"+name+"/frobnicate", nil), http.StatusNotFound, "no route")
	wantError(t, "malformed body", do(t, n, "POST", "/connectors", `{"name":`), http.StatusBadRequest, "deserialize")
	wantError(t, "unknown plugin", do(t, n, "GET", "/connector-plugins/nope/config", nil), http.StatusNotFound, "nope")

	var root map[string]string
	do(t, n, "GET", "/", nil).decode(t, &root)
	if root["version"] != kafkaconnect.APIVersion || root["kafka_cluster_id"] == "" {
		t.Fatalf("GET / = %v", root)
	}
	var health map[string]string
	r = do(t, n, "GET", "/health", nil)
	mustStatus(t, "health", r, http.StatusOK)
	r.decode(t, &health)
	if health["status"] != "healthy" {
		t.Fatalf("health %v", health)
	}
	var defs []map[string]any
	do(t, n, "GET", "/connector-plugins/incr_trans/config", nil).decode(t, &defs)
	if len(defs) == 0 || defs[0]["name"] == nil || defs[0]["required"] == nil {
		t.Fatalf("plugin config %v", defs)
	}

	// A plugin declared after start: listed once the admin reloads.
	cmtest.ShellPlugin(t, plugins, "echoer", "cat")
	var classes []map[string]string
	do(t, n, "GET", "/connector-plugins?connectorsOnly=true", nil).decode(t, &classes)
	if hasClass(classes, "echoer") {
		t.Fatalf("listed before the reload: %v", classes)
	}
	mustStatus(t, "reload", do(t, n, "POST", "/connector-plugins/reload", nil), http.StatusOK)
	do(t, n, "GET", "/connector-plugins", nil).decode(t, &classes)
	if !hasClass(classes, "echoer") {
		t.Fatalf("not listed after the reload: %v", classes)
	}

	var loggers map[string]map[string]any
	do(t, n, "GET", "/admin/loggers", nil).decode(t, &loggers)
	if loggers["root"]["level"] == nil {
		t.Fatalf("loggers %v", loggers)
	}
	wantError(t, "an unknown logger", do(t, n, "GET", "/admin/loggers/org.nope", nil), http.StatusNotFound, "org.nope")
	wantError(t, "PUT without a level", do(t, n, "PUT", "/admin/loggers/root", `{}`), http.StatusBadRequest, "level")
	wantError(t, "PUT of an invalid level", do(t, n, "PUT", "/admin/loggers/root", `{"level":"LOUD"}`), http.StatusNotFound, "LOUD")
}

func hasClass(plugins []map[string]string, class string) bool {
	for _, p := range plugins {
		if p["class"] == class {
			return true
		}
	}
	return false
}

// TestPathsDocumented: docs/kafka-connect.md names every Kafka Connect
// path the server registers (docs/openapi.yaml leaves them to it).
func TestPathsDocumented(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "kafka-connect.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	param := regexp.MustCompile(`:([^/]+)`)
	count := 0
	for _, rt := range n.App.HTTP().Routes() {
		if !kafkaconnect.Owns(rt.Path) || strings.HasPrefix(rt.Method, "echo_") {
			continue
		}
		count++
		key := "`" + rt.Method + " " + param.ReplaceAllString(rt.Path, "{$1}") + "`"
		if !strings.Contains(doc, key) {
			t.Errorf("docs/kafka-connect.md does not name %s", key)
		}
	}
	if count < 25 {
		t.Fatalf("%d Kafka Connect routes", count)
	}
}

// TestFailedRestart: a connector whose task failed shows FAILED with the
// task's error as trace; restart with onlyFailed=true restarts it once
// the cause is gone, and leaves a running one alone.
func TestFailedRestart(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	dir := t.TempDir()
	src, sink := filepath.Join(dir, "later.jsonl"), filepath.Join(dir, "sink.jsonl")
	name := "kc_f-incr_trans-1-0"
	r := do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": fileConfig(src, sink), "initial_state": "STOPPED"})
	mustStatus(t, "create", r, http.StatusCreated)
	// The source file does not exist yet: the task fails as it starts.
	wantError(t, "resume", do(t, n, "PUT", "/connectors/"+name+"/resume", nil), http.StatusConflict, "does not exist")
	s := statusOf(t, n, name)
	if s.Connector.State != "FAILED" || len(s.Tasks) != 1 || s.Tasks[0].State != "FAILED" || !strings.Contains(s.Connector.Trace, "does not exist") {
		t.Fatalf("status %+v", s)
	}
	if err := os.WriteFile(src, []byte("{\"ts\":100,\"i\":0}\n{\"ts\":101,\"i\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = do(t, n, "POST", "/connectors/"+name+"/restart?onlyFailed=true&includeTasks=true", nil)
	mustStatus(t, "restart onlyFailed", r, http.StatusAccepted)
	var st status
	r.decode(t, &st)
	if st.Connector.State != "RUNNING" {
		t.Fatalf("restart answered %s", r.Body)
	}
	sinkHas(t, src, sink, 2)
	mustStatus(t, "restart onlyFailed of a running connector", do(t, n, "POST", "/connectors/"+name+"/restart?onlyFailed=true", nil), http.StatusAccepted)
	// Left alone: no stop in its audit.
	env := n.OK(t, "GET", "/connector/task/v2/operations?taskName="+name, nil)
	if strings.Contains(string(env.Result), `"operation":"stop"`) {
		t.Fatalf("a running connector was restarted by onlyFailed: %s", env.Result)
	}
}

// TestConfigOfPaused: a config change of a paused connector restarts its
// task with the new config and leaves it paused, as Kafka Connect does.
func TestConfigOfPaused(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	src, sink := fileSource(t, 3)
	name := "kc_q-incr_trans-1-0"
	mustStatus(t, "create", do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": fileConfig(src, sink)}), http.StatusCreated)
	sinkHas(t, src, sink, 3)
	wantEmpty(t, "pause", do(t, n, "PUT", "/connectors/"+name+"/pause", nil), http.StatusAccepted)
	cfg := fileConfig(src, sink)
	cfg["source.pollInterval"] = "1s"
	mustStatus(t, "PUT config", do(t, n, "PUT", "/connectors/"+name+"/config", cfg), http.StatusOK)
	if s := statusOf(t, n, name); s.Connector.State != "PAUSED" || s.Tasks[0].State != "PAUSED" {
		t.Fatalf("status %+v", s)
	}
	if got := storedConfig(t, n, name); got.Get("source", "pollInterval") != "1s" {
		t.Fatalf("stored %v", got)
	}
	var ops []map[string]any
	if err := json.Unmarshal(n.OK(t, "GET", "/connector/task/v2/operations?taskName="+name, nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for i := len(ops) - 1; i >= 0; i-- {
		if op, _ := ops[i]["operation"].(string); !strings.HasPrefix(op, "runtime:") {
			seq = append(seq, op)
		}
	}
	if got := strings.Join(seq, ","); got != "create,pause,stop,update,pause" {
		t.Fatalf("operations %s", got)
	}
}

// TestFailedFixedByConfig: a config change of a failed connector starts
// it again with the new config, as Kafka Connect does.
func TestFailedFixedByConfig(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	dir := t.TempDir()
	name := "kc_h-incr_trans-1-0"
	missing := fileConfig(filepath.Join(dir, "missing.jsonl"), filepath.Join(dir, "sink.jsonl"))
	mustStatus(t, "create", do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": missing, "initial_state": "STOPPED"}), http.StatusCreated)
	wantError(t, "resume", do(t, n, "PUT", "/connectors/"+name+"/resume", nil), http.StatusConflict, "does not exist")
	if s := statusOf(t, n, name); s.Connector.State != "FAILED" {
		t.Fatalf("status %+v", s)
	}
	src, sink := fileSource(t, 4)
	mustStatus(t, "PUT a config that works", do(t, n, "PUT", "/connectors/"+name+"/config", fileConfig(src, sink)), http.StatusOK)
	if s := statusOf(t, n, name); s.Connector.State != "RUNNING" {
		t.Fatalf("status after the fix %+v", s)
	}
	sinkHas(t, src, sink, 4)
}
