package kafkaconnect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cloudhut "github.com/cloudhut/connect-client"
	gokafka "github.com/go-kafka/connect"
	ricardo "github.com/ricardo-ch/go-kafka-connect/v3/lib/connectors"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/server"
)

// node starts a real cm node (internal/cmtest: the store, the runtime and
// the Echo wiring of cm serve) with the rate limit off: these tests make
// many mutating calls in a row.
func node(t *testing.T, url string) *cmtest.Node {
	t.Helper()
	return cmtest.Start(t, url, cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
}

// fileSource writes a source file of n JSON lines (ts 100+i, i) and
// returns its path and a sink path beside it.
func fileSource(t *testing.T, n int) (src, sink string) {
	t.Helper()
	dir := t.TempDir()
	src, sink = filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return src, sink
}

// appendLines appends lines i in [from, to) to a source file.
func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < to; i++ {
		fmt.Fprintf(f, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
	}
}

// fileConfig is a Kafka Connect config of a file-to-file task.
func fileConfig(src, sink string) map[string]string {
	return map[string]string{
		"connector.class": "incr_trans",
		"source.type":     "file", "source.path": src,
		"sink.type": "file", "sink.path": sink,
		"tasks.max": "1",
	}
}

func anyMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func withName(m map[string]string, name string) map[string]string {
	out := maps.Clone(m)
	out["name"] = name
	return out
}

// sinkHas waits until the sink holds exactly the source's first n lines,
// byte for byte.
func sinkHas(t *testing.T, src, sink string, n int) {
	t.Helper()
	var got []byte
	cmtest.Eventually(t, 15*time.Second, fmt.Sprintf("%s holds the first %d lines of %s", sink, n, src), func() bool {
		got, _ = os.ReadFile(sink)
		return bytes.Count(got, []byte("\n")) >= n
	})
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(want, []byte("\n"))
	if exp := bytes.Join(lines[:n], nil); !bytes.Equal(got, exp) {
		t.Fatalf("sink %s:\n%x\nwant\n%x", sink, got, exp)
	}
}

// kc is a plain HTTP answer of a Kafka Connect path.
type kc struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r kc) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %d %s: %v", r.Status, r.Body, err)
	}
}

// do calls a Kafka Connect path over plain net/http (for what the clients
// under test do not offer).
func do(t *testing.T, n *cmtest.Node, method, path string, body any, header ...string) kc {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			raw, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			b = string(raw)
		}
		r = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return kc{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// wantEmpty checks a 202/204-style answer: the status, no body and no
// content type, as Kafka Connect sends.
func wantEmpty(t *testing.T, what string, r kc, status int) {
	t.Helper()
	if r.Status != status || len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
		t.Fatalf("%s = %d %q (content type %q), want %d with no body and no content type", what, r.Status, r.Body, r.Header.Get("Content-Type"), status)
	}
}

// wantError checks Kafka Connect's error body.
func wantError(t *testing.T, what string, r kc, status int, msg string) {
	t.Helper()
	var e struct {
		ErrorCode *int    `json:"error_code"`
		Message   *string `json:"message"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || r.Status != status || e.ErrorCode == nil || *e.ErrorCode != status || e.Message == nil || !strings.Contains(*e.Message, msg) {
		t.Fatalf("%s = %d %s, want %d {\"error_code\":%d,\"message\":\"...%s...\"}", what, r.Status, r.Body, status, status, msg)
	}
}

type status struct {
	Name      string `json:"name"`
	Connector struct {
		State    string `json:"state"`
		WorkerID string `json:"worker_id"`
		Trace    string `json:"trace"`
	} `json:"connector"`
	Tasks []struct {
		ID       int    `json:"id"`
		State    string `json:"state"`
		WorkerID string `json:"worker_id"`
	} `json:"tasks"`
	Type string `json:"type"`
}

func statusOf(t *testing.T, n *cmtest.Node, name string) status {
	t.Helper()
	r := do(t, n, "GET", "/connectors/"+name+"/status", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status of %s = %d %s", name, r.Status, r.Body)
	}
	var s status
	r.decode(t, &s)
	return s
}

func waitState(t *testing.T, n *cmtest.Node, name, state string) {
	t.Helper()
	cmtest.Eventually(t, 15*time.Second, name+" is "+state, func() bool { return statusOf(t, n, name).Connector.State == state })
}

// TestRicardoClient drives a node with github.com/ricardo-ch/go-kafka-connect/v3
// (the client of the Terraform provider), unmodified: create (synchronous:
// it polls GET /connectors/{c} until 200), list, config get, update
// (synchronous: it polls GET config until it equals the submitted map plus
// name, value for value), status, pause, resume (each polled to its
// state), tasks, task status, task restart, restart, delete (polled to 404).
func TestRicardoClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := node(t, url)
		src, sink := fileSource(t, 20)
		name := "kc_r-incr_trans-1-0"
		cl := ricardo.NewClient(n.URL)
		cfg := fileConfig(src, sink)
		if _, err := cl.CreateConnector(ricardo.CreateConnectorRequest{ConnectorRequest: ricardo.ConnectorRequest{Name: name}, Config: anyMap(cfg)}, true); err != nil {
			t.Fatal(err)
		}
		sinkHas(t, src, sink, 20)
		all, err := cl.GetAll()
		if err != nil || !slices.Contains(all.Connectors, name) {
			t.Fatalf("GetAll = %v, %v", all.Connectors, err)
		}
		got, err := cl.GetConnectorConfig(ricardo.ConnectorRequest{Name: name})
		if err != nil || got.Code != http.StatusOK {
			t.Fatal(err, got.Code)
		}
		if want := anyMap(withName(cfg, name)); !maps.Equal(got.Config, want) {
			t.Fatalf("config %v, want %v", got.Config, want)
		}

		// A config change of a running connector: the task restarts with
		// it and goes on from its checkpoint into the new sink.
		sink2 := filepath.Join(filepath.Dir(sink), "sink2.jsonl")
		cfg2 := fileConfig(src, sink2)
		cfg2["source.pollInterval"] = "100ms"
		if _, err := cl.UpdateConnector(ricardo.CreateConnectorRequest{ConnectorRequest: ricardo.ConnectorRequest{Name: name}, Config: anyMap(cfg2)}, true); err != nil {
			t.Fatal(err)
		}
		if up, err := cl.IsUpToDate(name, anyMap(cfg2)); err != nil || !up {
			t.Fatalf("IsUpToDate after the update = %v, %v", up, err)
		}
		waitState(t, n, name, "RUNNING")
		appendLines(t, src, 20, 25)
		cmtest.Eventually(t, 15*time.Second, "the new sink gets the appended lines", func() bool {
			b, _ := os.ReadFile(sink2)
			return bytes.Count(b, []byte("\n")) >= 5
		})
		if b, _ := os.ReadFile(sink2); !bytes.Equal(b, []byte(strings.Join([]string{`{"ts":120,"i":20}`, `{"ts":121,"i":21}`, `{"ts":122,"i":22}`, `{"ts":123,"i":23}`, `{"ts":124,"i":24}`}, "\n")+"\n")) {
			t.Fatalf("new sink:\n%s", b)
		}

		st, err := cl.GetConnectorStatus(ricardo.ConnectorRequest{Name: name})
		if err != nil || st.ConnectorStatus["state"] != "RUNNING" || st.ConnectorStatus["worker_id"] != string(n.ID) ||
			len(st.TasksStatus) != 1 || st.TasksStatus[0].State != "RUNNING" || st.TasksStatus[0].WorkerID != string(n.ID) {
			t.Fatalf("status %+v, %v", st, err)
		}
		if _, err := cl.PauseConnector(ricardo.ConnectorRequest{Name: name}, true); err != nil {
			t.Fatal(err)
		}
		if d := n.Detail(t, name); d.State != "PAUSED" {
			t.Fatalf("OMS detail after the Kafka Connect pause: %s", d.State)
		}
		if _, err := cl.ResumeConnector(ricardo.ConnectorRequest{Name: name}, true); err != nil {
			t.Fatal(err)
		}
		tasks, err := cl.GetAllTasks(ricardo.ConnectorRequest{Name: name})
		if err != nil || len(tasks.Tasks) != 1 || tasks.Tasks[0].ID.Connector != name || tasks.Tasks[0].ID.TaskID != 0 {
			t.Fatalf("tasks %+v, %v", tasks, err)
		}
		// This client decodes the task status into its wrapper struct, so
		// it keeps only the status code, from real Kafka Connect too; the
		// body is checked over plain HTTP.
		ts, err := cl.GetTaskStatus(ricardo.TaskRequest{Connector: name, TaskID: 0})
		if err != nil || ts.Code != http.StatusOK {
			t.Fatalf("task status %+v, %v", ts, err)
		}
		var task struct {
			ID       *int   `json:"id"`
			State    string `json:"state"`
			WorkerID string `json:"worker_id"`
		}
		do(t, n, "GET", "/connectors/"+name+"/tasks/0/status", nil).decode(t, &task)
		if task.ID == nil || *task.ID != 0 || task.State != "RUNNING" || task.WorkerID != string(n.ID) {
			t.Fatalf("task status %+v", task)
		}
		if r, err := cl.GetTaskStatus(ricardo.TaskRequest{Connector: name, TaskID: 1}); err != nil || r.Code != http.StatusNotFound {
			t.Fatalf("status of task 1: %+v, %v", r, err)
		}
		if r, err := cl.RestartTask(ricardo.TaskRequest{Connector: name, TaskID: 0}); err != nil || r.Code != http.StatusNoContent {
			t.Fatalf("task restart %+v, %v", r, err)
		}
		if r, err := cl.RestartConnector(ricardo.ConnectorRequest{Name: name}); err != nil || r.Code != http.StatusOK {
			t.Fatalf("restart %+v, %v", r, err)
		}
		waitState(t, n, name, "RUNNING")
		if _, err := cl.DeleteConnector(ricardo.ConnectorRequest{Name: name}, true); err != nil {
			t.Fatal(err)
		}
		if r, err := cl.GetConnector(ricardo.ConnectorRequest{Name: name}); err != nil || r.Code != http.StatusNotFound {
			t.Fatalf("after delete: %+v, %v", r, err)
		}
	})
}

// TestGoKafkaClient drives a node with github.com/go-kafka/connect,
// unmodified: create, list, get, config get and update, tasks, status,
// pause, resume, restart, delete, then 404 in Kafka Connect's error body.
func TestGoKafkaClient(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	src, sink := fileSource(t, 10)
	name := "kc_g-incr_trans-1-0"
	cl := gokafka.NewClient(n.URL)
	cfg := fileConfig(src, sink)
	resp, err := cl.CreateConnector(&gokafka.Connector{Name: name, Config: cfg})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatal(resp, err)
	}
	sinkHas(t, src, sink, 10)
	names, _, err := cl.ListConnectors()
	if err != nil || !slices.Equal(names, []string{name}) {
		t.Fatalf("list %v, %v", names, err)
	}
	c, _, err := cl.GetConnector(name)
	if err != nil || c.Name != name || len(c.Tasks) != 1 || c.Tasks[0].ConnectorName != name || !maps.Equal(c.Config, withName(cfg, name)) {
		t.Fatalf("get %+v, %v", c, err)
	}
	got, _, err := cl.GetConnectorConfig(name)
	if err != nil || !maps.Equal(got, withName(cfg, name)) {
		t.Fatalf("config %v, %v", got, err)
	}
	cfg["source.pollInterval"] = "200ms"
	updated, resp, err := cl.UpdateConnectorConfig(name, cfg)
	if err != nil || resp.StatusCode != http.StatusOK || !maps.Equal(updated.Config, withName(cfg, name)) {
		t.Fatalf("update %+v, %v", updated, err)
	}
	if got, _, err := cl.GetConnectorConfig(name); err != nil || !maps.Equal(got, withName(cfg, name)) {
		t.Fatalf("config after the update %v, %v", got, err)
	}
	tasks, _, err := cl.GetConnectorTasks(name)
	if err != nil || len(tasks) != 1 || tasks[0].ID.ConnectorName != name || tasks[0].Config["source.type"] != "file" {
		t.Fatalf("tasks %+v, %v", tasks, err)
	}
	st, _, err := cl.GetConnectorStatus(name)
	if err != nil || st.Connector.State != "RUNNING" || st.Connector.WorkerID != string(n.ID) || len(st.Tasks) != 1 || st.Tasks[0].State != "RUNNING" {
		t.Fatalf("status %+v, %v", st, err)
	}
	if resp, err := cl.PauseConnector(name); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatal(resp, err)
	}
	if st, _, err := cl.GetConnectorStatus(name); err != nil || st.Connector.State != "PAUSED" || st.Tasks[0].State != "PAUSED" {
		t.Fatalf("status after pause %+v, %v", st, err)
	}
	if resp, err := cl.ResumeConnector(name); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatal(resp, err)
	}
	if st, _, err := cl.GetConnectorStatus(name); err != nil || st.Connector.State != "RUNNING" {
		t.Fatalf("status after resume %+v, %v", st, err)
	}
	if resp, err := cl.RestartConnector(name); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(resp, err)
	}
	if resp, err := cl.DeleteConnector(name); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatal(resp, err)
	}
	_, resp, err = cl.GetConnector(name)
	var apiErr gokafka.APIError
	if ok := asAPIError(err, &apiErr); !ok || resp.StatusCode != http.StatusNotFound || apiErr.Code != http.StatusNotFound || apiErr.Message != "Connector "+name+" not found" {
		t.Fatalf("after delete: %v %v", resp, err)
	}
	if names, _, err := cl.ListConnectors(); err != nil || len(names) != 0 {
		t.Fatalf("list after delete %v, %v", names, err)
	}
}

func asAPIError(err error, target *gokafka.APIError) bool {
	switch e := err.(type) { //nolint:errorlint // the client returns its error unwrapped, by value or pointer
	case gokafka.APIError:
		*target = e
		return true
	case *gokafka.APIError:
		*target = *e
		return true
	}
	return false
}

// TestCloudhutClient drives a node with github.com/cloudhut/connect-client
// (Redpanda Console's), unmodified: GET /, create, the expanded list
// (?expand=info&expand=status), stop, restart with includeTasks and
// onlyFailed, task restart, topics and their reset, plugins, validate,
// delete.
func TestCloudhutClient(t *testing.T) {
	n := node(t, dbtest.SQLiteURL(t))
	ctx := context.Background()
	cl := cloudhut.NewClient(cloudhut.WithHost(n.URL), cloudhut.WithTimeout(time.Minute))
	root, err := cl.GetRoot(ctx)
	if err != nil || root.Version == "" || root.KafkaClusterID == "" {
		t.Fatalf("root %+v, %v", root, err)
	}
	src, sink := fileSource(t, 5)
	name := "kc_c-incr_trans-1-0"
	cfg := fileConfig(src, sink)
	info, err := cl.CreateConnector(ctx, cloudhut.CreateConnectorRequest{Name: name, Config: anyMap(cfg)})
	if err != nil || info.Name != name || info.Type != "source" {
		t.Fatalf("create %+v, %v", info, err)
	}
	sinkHas(t, src, sink, 5)
	list, err := cl.ListConnectorsExpanded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := list[name]
	if !ok || e.Info.Name != name || e.Info.Config["connector.class"] != "incr_trans" || len(e.Info.Tasks) != 1 ||
		e.Status.Connector.State != "RUNNING" || e.Status.Connector.WorkerID != string(n.ID) || len(e.Status.Tasks) != 1 || e.Status.Tasks[0].State != "RUNNING" {
		t.Fatalf("expanded list %+v", list)
	}
	if err := cl.RestartConnector(ctx, name, cloudhut.RestartConnectorOptions{IncludeTasks: true}); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, name, "RUNNING")
	if err := cl.RestartConnector(ctx, name, cloudhut.RestartConnectorOptions{IncludeTasks: true, OnlyFailed: true}); err != nil {
		t.Fatal(err)
	}
	if err := cl.RestartConnectorTask(ctx, name, 0); err != nil {
		t.Fatal(err)
	}
	if err := cl.RestartConnectorTask(ctx, name, 1); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("restart of task 1: %v", err)
	}
	topics, err := cl.GetConnectorTopics(ctx, name)
	if err != nil || topics[name].Topics == nil || len(topics[name].Topics) != 0 {
		t.Fatalf("topics %+v, %v", topics, err)
	}
	if err := cl.ResetConnectorTopics(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := cl.StopConnector(ctx, name); err != nil {
		t.Fatal(err)
	}
	if s, err := cl.GetConnectorStatus(ctx, name); err != nil || s.Connector.State != "STOPPED" || len(s.Tasks) != 0 {
		t.Fatalf("status after stop %+v, %v", s, err)
	}
	if d := n.Detail(t, name); d.State != "STOPPED" {
		t.Fatalf("OMS detail after the Kafka Connect stop: %s", d.State)
	}
	plugins, err := cl.GetConnectorPlugins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, p := range plugins {
		classes = append(classes, p.Class)
		if p.Type != "source" {
			t.Errorf("plugin %+v: type", p)
		}
	}
	if !slices.Contains(classes, "incr_trans") || !slices.Contains(classes, "full_trans") {
		t.Fatalf("plugins %v", classes)
	}
	good, err := cl.PutValidateConnectorConfig(ctx, "incr_trans", cloudhut.ValidateConnectorConfigOptions{Config: anyMap(withName(cfg, name))})
	if err != nil || good.Name != "incr_trans" || good.ErrorCount != 0 || len(good.Configs) == 0 {
		t.Fatalf("validate %+v, %v", good, err)
	}
	bad := withName(cfg, name)
	bad["sink.type"] = "nope"
	delete(bad, "source.type")
	res, err := cl.PutValidateConnectorConfig(ctx, "incr_trans", cloudhut.ValidateConnectorConfigOptions{Config: anyMap(bad)})
	if err != nil || res.ErrorCount == 0 {
		t.Fatalf("validate of a bad config %+v, %v", res, err)
	}
	var flagged []string
	for _, c := range res.Configs {
		if errs, _ := c.Value["errors"].([]any); len(errs) > 0 {
			flagged = append(flagged, c.Definition["name"].(string))
		}
	}
	if !slices.Contains(flagged, "source.type") {
		t.Fatalf("validate flagged %v", flagged)
	}
	if err := cl.DeleteConnector(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetConnector(ctx, name); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("after delete: %v", err)
	}
}
