package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

const base = "/connector/task/v2/"

// fileTask writes a source file with n lines and returns a create body.
func fileTask(t *testing.T, component string, n int) (map[string]any, string, string) {
	dir := t.TempDir()
	src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"component": component, "config": map[string]map[string]string{
		"source": {"type": "file", "path": src, "password": "hunter2-secret"},
		"sink":   {"type": "file", "path": sink},
	}}
	return body, src, sink
}

func q(name string) string { return url.QueryEscape(name) }

func lines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestRunbook is the seed's runbook against a real node: create, stop, the
// exact update call, resume, delete.
func TestRunbook(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, _, sink := fileTask(t, "p_493po-incr_trans-1-0", 20)
		name := n.OK(t, "POST", base+"create", body).String()
		if want := string(n.ID) + ":connector_v2:p_493po-incr_trans-1-0:0000000001"; name != want {
			t.Fatalf("created %q, want %q", name, want)
		}
		cmtest.Eventually(t, 10*time.Second, "sink has 20 lines", func() bool { return lines(t, sink) >= 20 })

		if got := n.OK(t, "POST", base+"stop?taskName="+q(name), nil).String(); got != name {
			t.Fatalf("stop result %q", got)
		}
		if d := n.Detail(t, name); d.State != model.StateStopped || d.Checkpoint["src.jsonl"].TS != 119 {
			t.Fatalf("after stop: %s %+v", d.State, d.Checkpoint)
		}
		n.OK(t, "POST", base+"update?taskName="+q(name)+"&deleteParams=source.checkpoint",
			`{"source":{"checkpoint":"{\"subtopic\":\"1676286000\"}"}}`)
		d := n.Detail(t, name)
		if got := d.Config["source"]["checkpoint"]; got != `{"subtopic":"1676286000"}` {
			t.Fatalf("checkpoint after update = %q", got)
		}
		if d.Config["source"]["password"] != model.Masked {
			t.Fatalf("password shown: %q", d.Config["source"]["password"])
		}
		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		if d := n.Detail(t, name); d.State != model.StateRunning {
			t.Fatalf("after resume: %s", d.State)
		}
		n.OK(t, "POST", base+"delete?taskName="+q(name), nil)
		if d := n.Detail(t, name); d.State != model.StateDeleted {
			t.Fatalf("after delete: %s", d.State)
		}

		ops := n.OK(t, "GET", base+"operations?taskName="+q(name)+"&limit=100", nil)
		if strings.Contains(ops.Raw, "hunter2") {
			t.Fatal("audit log shows a secret")
		}
		for _, e := range n.Logs.All() {
			if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "hunter2") {
				t.Fatalf("log shows a secret: %v", e)
			}
		}
		var rows []server.Operation
		if err := json.Unmarshal(ops.Result, &rows); err != nil {
			t.Fatal(err)
		}
		var got []string
		for i := len(rows) - 1; i >= 0; i-- {
			if !strings.HasPrefix(rows[i].Operation, "runtime:") {
				got = append(got, rows[i].Operation+"="+rows[i].Result)
			}
		}
		if want := "create=success stop=success update=success resume=success delete=success"; strings.Join(got, " ") != want {
			t.Fatalf("audit = %v, want %s", got, want)
		}
	})
}

// TestMalformedInput: every endpoint refuses bad input with a non-2xx
// envelope that has an errCode and errMsg, and leaves the task unchanged.
func TestMalformedInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, _, _ := fileTask(t, "p_1-incr_trans-1-0", 3)
		name := n.OK(t, "POST", base+"create", body).String()
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		before := n.Detail(t, name)
		unknown := strings.Replace(name, "p_1-", "p_9-", 1)
		future := strings.Replace(name, "0000000001", "0000000002", 1)
		big := `{"source":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`

		cases := []struct {
			method, path string
			body         any
			status       int
			code         string
		}{
			{"POST", "resume", nil, 400, "INVALID_TASK_NAME"},
			{"POST", "resume?taskName=garbage", nil, 400, "INVALID_TASK_NAME"},
			{"POST", "resume?taskName=" + q(unknown), nil, 404, "TASK_NOT_FOUND"},
			{"POST", "resume?taskName=" + q(future), nil, 404, "TASK_NOT_FOUND"},
			{"POST", "resume?taskName=" + q(name) + "&pullBackFlag=maybe", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "resume?taskName=" + q(name) + "&pullBackFlag=true&restartFlag=true", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "resume?taskName=" + q(name) + "&restartFlag=true", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "resume?taskName=" + q(name) + "&timeout=-1", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "stop?taskName=" + q("10.0.0.1-9000:connector_v2:x:0000000001"), nil, 400, "INVALID_TASK_NAME"},
			{"POST", "stop", nil, 400, "INVALID_TASK_NAME"},
			{"POST", "update?taskName=" + q(name), `{"source":`, 400, "INVALID_JSON"},
			{"POST", "update?taskName=" + q(name), `["a"]`, 400, "INVALID_JSON"},
			{"POST", "update?taskName=" + q(name), `{"source":{"k":1}}`, 400, "INVALID_JSON"},
			{"POST", "update?taskName=" + q(name), nil, 400, "INVALID_ARGUMENT"},
			{"POST", "update?taskName=" + q(name) + "&deleteParams=nodot", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "update?taskName=" + q(name) + "&deleteParams=source.", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "update?taskName=" + q(name), `{"bad scope":{"k":"v"}}`, 400, "INVALID_ARGUMENT"},
			{"POST", "update?taskName=" + q(name), `{"source":{"type":"nope"}}`, 400, "INVALID_CONFIG"},
			{"POST", "update?taskName=" + q(name), `{"source":{"checkpoint":"{\"s\":\"1676286000000\"}"}}`, 400, "CHECKPOINT_TIME_UNIT"},
			{"POST", "update?taskName=" + q(name), `{"source":{"checkpoint":"not json"}}`, 400, "INVALID_CHECKPOINT"},
			{"POST", "update?taskName=" + q(name), `{"source":{"checkpoint":"{\"s\":\"9999999999\"}"}}`, 400, "CHECKPOINT_IN_FUTURE"},
			{"POST", "update?taskName=" + q(name), big, 413, "REQUEST_TOO_LARGE"},
			{"POST", "migrate?taskName=" + q(name), nil, 404, "NODE_NOT_FOUND"}, // no other live node
			{"POST", "migrate?taskName=" + q(name) + "&node=" + string(n.ID), nil, 400, "INVALID_ARGUMENT"},
			{"POST", "migrate?taskName=" + q(name) + "&ip=10.9.9.9", nil, 404, "NODE_NOT_FOUND"},
			{"POST", "migrate?taskName=" + q(name) + "&node=10.9.9.9-1", nil, 404, "NODE_NOT_FOUND"},
			{"POST", "delete?taskName=" + q(unknown), nil, 404, "TASK_NOT_FOUND"},
			{"POST", "create", nil, 400, "INVALID_ARGUMENT"},
			{"POST", "create", `{"component":"nope"}`, 400, "INVALID_TASK_NAME"},
			{"POST", "create", `{"component":"p_1-incr_trans-1-0","config":{"source":{"type":"file"}}}`, 400, "INVALID_CONFIG"},
			{"POST", "create", body, 409, "TASK_EXISTS"},
			{"POST", "create", `{"component":"p_2-incr_trans-1-0","extra":1}`, 400, "INVALID_JSON"},
			{"GET", "detail", nil, 400, "INVALID_TASK_NAME"},
			{"GET", "detail?taskName=" + q(unknown), nil, 404, "TASK_NOT_FOUND"},
			{"GET", "batchDetail?state=weird", nil, 400, "INVALID_ARGUMENT"},
			{"GET", "batchDetail?size=100000", nil, 400, "INVALID_ARGUMENT"},
			{"GET", "batchDetail?taskNames=a,b", nil, 400, "INVALID_TASK_NAME"},
			{"GET", "operations?since=yesterday", nil, 400, "INVALID_ARGUMENT"},
			{"GET", "operations?limit=0", nil, 400, "INVALID_ARGUMENT"},
			{"GET", "stop?taskName=" + q(name), nil, 405, "METHOD_NOT_ALLOWED"},
			{"POST", "nope", nil, 404, "NOT_FOUND"},
		}
		for _, c := range cases {
			env := n.Do(t, c.method, base+c.path, c.body)
			label := c.method + " " + c.path
			if len(label) > 120 {
				label = label[:120]
			}
			if env.Status != c.status || env.IsSuccess || env.Code() != c.code || env.ErrMsg == nil || *env.ErrMsg == "" || env.Retryable == nil {
				t.Errorf("%s = %d %s; want %d %s", label, env.Status, trim(env.Raw), c.status, c.code)
			}
			var detail server.ErrorDetail
			if err := json.Unmarshal(env.ErrorDetail, &detail); err != nil || detail.RequestID == "" {
				t.Errorf("%s: errorDetail has no request id: %s", label, env.ErrorDetail)
			}
		}
		// Wrong state: update of a running task.
		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		env := n.Do(t, "POST", base+"update?taskName="+q(name), `{"source":{"k":"v"}}`)
		if env.Status != 409 || env.Code() != "ILLEGAL_STATE" || !strings.Contains(*env.ErrMsg, "RUNNING") {
			t.Errorf("update while running = %d %s", env.Status, env.Raw)
		}
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		after := n.Detail(t, name)
		if fmt.Sprint(after.Config) != fmt.Sprint(before.Config) || after.Version != before.Version || after.State != before.State {
			t.Errorf("task changed by refused calls:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// TestSupersededAndBareNames: writes naming an old incarnation are refused
// with the current name; reads and bare components answer for the current one.
func TestSupersededAndBareNames(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	body, src, _ := fileTask(t, "p_3-incr_trans-1-0", 3)
	name := n.OK(t, "POST", base+"create", body).String()
	// A pullback to 101 is a rewind only once the task is past it.
	cmtest.Eventually(t, 10*time.Second, "the 3 lines checkpointed", func() bool { return n.Detail(t, name).Checkpoint["src.jsonl"].TS == 102 })
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	_ = src
	n.OK(t, "POST", base+"update?taskName="+q("p_3-incr_trans-1-0"), `{"source":{"checkpoint":"{\"src.jsonl\":\"101\"}"}}`)
	v2 := n.OK(t, "POST", base+"resume?taskName="+q("connector_v2:p_3-incr_trans-1-0")+"&pullBackFlag=true", nil).String()
	if !strings.HasSuffix(v2, ":0000000002") {
		t.Fatalf("pullback resume answered %q, want version 2", v2)
	}
	env := n.Do(t, "POST", base+"stop?taskName="+q(name), nil)
	var detail server.ErrorDetail
	_ = json.Unmarshal(env.ErrorDetail, &detail)
	if env.Status != 409 || env.Code() != "TASK_SUPERSEDED" || detail.CurrentTaskName != v2 {
		t.Fatalf("stop of old name = %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.TaskName != v2 || d.State != model.StateRunning {
		t.Fatalf("detail of old name = %s %s", d.TaskName, d.State)
	}
}

// TestConcurrentCalls: 50 concurrent stop/resume/update calls on one task.
// Only legal transitions appear in the audit log, and the final state is
// what the last successful operation asked for.
func TestConcurrentCalls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, _, _ := fileTask(t, "p_4-incr_trans-1-0", 5)
		name := n.OK(t, "POST", base+"create", body).String()
		var wg sync.WaitGroup
		statuses := make(chan int, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var env cmtest.Envelope
				switch i % 3 {
				case 0:
					env = n.Do(t, "POST", base+"stop?taskName="+q(name), nil)
				case 1:
					env = n.Do(t, "POST", base+"resume?taskName="+q(name), nil)
				default:
					env = n.Do(t, "POST", base+"update?taskName="+q(name), fmt.Sprintf(`{"coordinator":{"n":"%d"}}`, i))
				}
				if !env.IsSuccess && env.Code() != "TASK_BUSY" && env.Code() != "ILLEGAL_STATE" {
					t.Errorf("call %d: %d %s", i, env.Status, env.Raw)
				}
				statuses <- env.Status
			}(i)
		}
		wg.Wait()
		close(statuses)
		ok := 0
		for s := range statuses {
			if s == http.StatusOK {
				ok++
			}
		}
		if ok == 0 {
			t.Fatal("no call succeeded")
		}
		// Let the node settle.
		cmtest.Eventually(t, 15*time.Second, "task settles", func() bool {
			return !n.Detail(t, name).State.Transitional()
		})
		rows, err := n.Store.ListAudit(t.Context(), model.AuditFilter{Component: "p_4-incr_trans-1-0", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
		var last string
		for _, a := range rows {
			if a.Result == model.ResultFailure || a.StateBefore == "" {
				continue
			}
			if !legal(a.StateBefore, a.StateAfter, a.Operation) {
				t.Errorf("illegal transition in audit: %s %s -> %s", a.Operation, a.StateBefore, a.StateAfter)
			}
			if a.Operation == "stop" || a.Operation == "resume" {
				last = a.Operation
			}
		}
		final := n.Detail(t, name)
		want := map[string]model.State{"stop": model.StateStopped, "resume": model.StateRunning}[last]
		if last != "" && final.State != want {
			t.Fatalf("last successful operation %s, final state %s", last, final.State)
		}
	})
}

// legal checks an audit row's transition against the state table.
func legal(from, to model.State, op string) bool {
	if op == "update" {
		return from == to
	}
	ev := model.Event(strings.TrimPrefix(op, "runtime:"))
	for _, d := range []model.Desired{model.DesiredRunning, model.DesiredStopped, model.DesiredDeleted} {
		if got, err := model.Next(from, ev, d); err == nil && got == to {
			return true
		}
	}
	return false
}
