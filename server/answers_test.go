package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// wantBusy checks an answer is TASK_BUSY: 409, retryable.
func wantBusy(t *testing.T, what string, env cmtest.Envelope) {
	t.Helper()
	if env.Status != http.StatusConflict || env.Code() != "TASK_BUSY" || env.Retryable == nil || !*env.Retryable {
		t.Errorf("%s = %d %s; want 409 TASK_BUSY, retryable", what, env.Status, trim(env.Raw))
	}
}

// TestStoppingAnswersBusy: while a stop is in flight (the child ignores
// SIGTERM until the test releases it), calls that cannot proceed answer
// TASK_BUSY, and a pullback is refused instead of later restarting the task
// the operator is stopping.
func TestStoppingAnswersBusy(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	release := filepath.Join(t.TempDir(), "release")
	script := `trap '' TERM; read -r hello; echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'
	while [ ! -f ` + release + ` ]; do echo '{"type":"heartbeat"}'; sleep 0.05; done`
	name := processTask(t, n, "p_20-incr_trans-1-0", script, map[string]string{"grace": "10m"})
	cmtest.Eventually(t, 10*time.Second, "checkpoint recorded", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })

	env := n.Do(t, "POST", base+"stop?taskName="+q(name)+"&timeout=1", nil)
	if env.Code() != "STOP_TIMEOUT" {
		t.Fatalf("stop = %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.State != model.StateStopping {
		t.Fatalf("state after the stop timed out = %s", d.State)
	}
	wantBusy(t, "update while STOPPING", n.Do(t, "POST", base+"update?taskName="+q(name), `{"source":{"checkpoint":"{\"s\":\"100\"}"}}`))
	wantBusy(t, "pullback while STOPPING", n.Do(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=100&subtopic=s&force=true&timeout=1", nil))
	wantBusy(t, "resume while STOPPING", n.Do(t, "POST", base+"resume?taskName="+q(name)+"&timeout=1", nil))
	wantBusy(t, "resume pullBackFlag while STOPPING", n.Do(t, "POST", base+"resume?taskName="+q(name)+"&pullBackFlag=true&timeout=1", nil))

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmtest.Eventually(t, 20*time.Second, "the stop completes", func() bool { return n.Detail(t, name).State == model.StateStopped })
	// The stop the operator asked for stands: nothing restarts the task.
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	if d := n.Detail(t, name); d.State != model.StateStopped || d.DesiredState != model.DesiredStopped || d.Operation != nil || d.Version != 1 {
		t.Fatalf("after the stop: state %s desired %s operation %v version %d", d.State, d.DesiredState, d.Operation, d.Version)
	}
	rows, err := n.Store.ListAudit(t.Context(), model.AuditFilter{Component: "p_20-incr_trans-1-0", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rows {
		if (a.Operation == "update" || a.Operation == "pullback" || a.Operation == "resume") && (a.Result != model.ResultFailure || a.ErrCode != "TASK_BUSY") {
			t.Errorf("audit row %s: %s %s, want failure TASK_BUSY", a.Operation, a.Result, a.ErrCode)
		}
	}
}

// TestStartingAnswersBusy: a task whose source never answers its handshake
// stays STARTING; update and pullback answer TASK_BUSY meanwhile.
func TestStartingAnswersBusy(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{Tune: func(c *app.Config) { c.Runtime.OpenTimeout = 10 * time.Minute }})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepted []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	closeSilent := func() {
		_ = silent.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			_ = c.Close()
		}
	}
	t.Cleanup(closeSilent)
	_, port, _ := net.SplitHostPort(silent.Addr().String())
	sink := filepath.Join(t.TempDir(), "sink.jsonl")
	name := n.OK(t, "POST", base+"create", map[string]any{"component": "p_21-incr_trans-1-0", "start": false, "config": map[string]any{
		"source": map[string]string{"type": "mysql", "host": "127.0.0.1", "port": port, "username": "root", "tables": "d.t"},
		"sink":   map[string]string{"type": "file", "path": sink},
	}}).String()
	if env := n.Do(t, "POST", base+"resume?taskName="+q(name)+"&timeout=1", nil); env.Code() != "START_TIMEOUT" {
		t.Fatalf("resume = %d %s", env.Status, env.Raw)
	}
	if d := n.Detail(t, name); d.State != model.StateStarting {
		t.Fatalf("state after the resume timed out = %s", d.State)
	}
	wantBusy(t, "update while STARTING", n.Do(t, "POST", base+"update?taskName="+q(name), `{"source":{"subtopic":"x"}}`))
	wantBusy(t, "pullback while STARTING", n.Do(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=100&subtopic=s&force=true&timeout=1", nil))
	wantBusy(t, "resume pullBackFlag while STARTING", n.Do(t, "POST", base+"resume?taskName="+q(name)+"&pullBackFlag=true&timeout=1", nil))
	if d := n.Detail(t, name); d.Operation != nil || d.Version != 1 {
		t.Fatalf("refused calls changed the task: operation %v version %d", d.Operation, d.Version)
	}
	closeSilent()
	cmtest.Eventually(t, 30*time.Second, "the open fails", func() bool { return n.Detail(t, name).State != model.StateStarting })
}

// TestConcurrentCreates: N identical creates race through the real API;
// exactly one wins and every loser answers TASK_EXISTS (409, not
// retryable), both for a new component and for reviving a deleted one.
func TestConcurrentCreates(t *testing.T) {
	const racers = 12
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		race := func(what string, body map[string]any) {
			t.Helper()
			envs := make([]cmtest.Envelope, racers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range envs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					envs[i] = n.Do(t, "POST", base+"create", body)
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for _, env := range envs {
				switch {
				case env.IsSuccess:
					won++
				case env.Status != http.StatusConflict || env.Code() != "TASK_EXISTS" || env.Retryable == nil || *env.Retryable:
					t.Errorf("%s: a loser answered %d %s; want 409 TASK_EXISTS, not retryable", what, env.Status, trim(env.Raw))
				}
			}
			if won != 1 {
				t.Errorf("%s: %d creates succeeded, want exactly 1", what, won)
			}
		}
		for i := 0; i < 3; i++ {
			comp := fmt.Sprintf("p_22-incr_trans-%d-0", i)
			body, _, _ := fileTask(t, comp, 1)
			body["start"] = false
			race("new "+comp, body)
			n.OK(t, "POST", base+"delete?taskName="+q(comp), nil)
			race("revived "+comp, body)
		}
	})
}

// rawCall writes request bytes to the node over a fresh connection (half-
// closing it when closeWrite is set) and reads the answer. The deadline
// only bounds a broken test; what is checked is the answer's code.
func rawCall(t *testing.T, n *cmtest.Node, request string, closeWrite bool) (int, cmtest.Envelope) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env cmtest.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("answer is not an envelope (%d): %s", resp.StatusCode, raw)
	}
	env.Status, env.Raw = resp.StatusCode, string(raw)
	return resp.StatusCode, env
}

// TestUnreadableBodies: a body that cannot be read answers a 4xx envelope,
// not 500: a garbled chunked body and a body cut short by the client at
// once (400 INVALID_BODY), a client that stops sending once the body
// timeout passes (408 REQUEST_TIMEOUT). Raw bytes over a real listener.
func TestUnreadableBodies(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{HTTP: func(c *server.Config) { c.BodyTimeout = 300 * time.Millisecond }})
	body, _, _ := fileTask(t, "p_23-incr_trans-1-0", 1)
	name := n.OK(t, "POST", base+"create", body).String()
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	head := func(path, extra string) string {
		return "POST " + base + path + " HTTP/1.1\r\nHost: cm\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	form := func(path, extra string) string {
		return "POST " + base + path + " HTTP/1.1\r\nHost: cm\r\nContent-Type: application/x-www-form-urlencoded\r\n" + extra + "\r\n"
	}
	cases := []struct {
		what       string
		request    string
		closeWrite bool
		status     int
		code       string
	}{
		{"garbled chunked create", head("create", "Transfer-Encoding: chunked\r\n") + "zz\r\n{}\r\n0\r\n\r\n", false, 400, "INVALID_BODY"},
		{"garbled chunked update", head("update?taskName="+q(name), "Transfer-Encoding: chunked\r\n") + "3\r\n{}xyz\r\n0\r\n\r\n", false, 400, "INVALID_BODY"},
		{"garbled chunked form", form("stop", "Transfer-Encoding: chunked\r\n") + "g\r\ntaskName=x\r\n0\r\n\r\n", false, 400, "INVALID_BODY"},
		{"short create, half-closed", head("create", "Content-Length: 100\r\n") + `{"component":`, true, 400, "INVALID_BODY"},
		{"short update, half-closed", head("update?taskName="+q(name), "Content-Length: 100\r\n") + `{"source":`, true, 400, "INVALID_BODY"},
		{"short create, held open", head("create", "Content-Length: 100\r\n") + `{"component":`, false, 408, "REQUEST_TIMEOUT"},
		{"short form, held open", form("stop", "Content-Length: 100\r\n") + `taskName=`, false, 408, "REQUEST_TIMEOUT"},
	}
	for _, c := range cases {
		status, env := rawCall(t, n, c.request, c.closeWrite)
		if status != c.status || env.IsSuccess || env.Code() != c.code || env.ErrMsg == nil || *env.ErrMsg == "" || env.Retryable == nil || *env.Retryable {
			t.Errorf("%s = %d %s; want %d %s, not retryable", c.what, status, trim(env.Raw), c.status, c.code)
		}
	}
	// A well-formed chunked body is read as before.
	chunk := `{"sink":{"k":"v"}}`
	status, env := rawCall(t, n, head("update?taskName="+q(name), "Transfer-Encoding: chunked\r\nConnection: close\r\n")+
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chunk), chunk), false)
	if status != 200 || !env.IsSuccess {
		t.Errorf("chunked update = %d %s", status, trim(env.Raw))
	}
	if d := n.Detail(t, name); d.Config["sink"]["k"] != "v" {
		t.Errorf("chunked update did not land: %v", d.Config)
	}
}

// TestOperationsSinceRange: a since beyond what the stores can compare
// (after 9999-12-31 23:59:59 UTC) is INVALID_ARGUMENT on both backends; the
// last representable second and times before 1970 are answered.
func TestOperationsSinceRange(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, _, _ := fileTask(t, "p_24-incr_trans-1-0", 1)
		body["start"] = false
		n.OK(t, "POST", base+"create", body)
		for _, since := range []string{"253402300800", "99999999999999", "9999-12-31T23:59:59-01:00"} {
			env := n.Do(t, "GET", base+"operations?since="+q(since), nil)
			if env.Status != 400 || env.Code() != "INVALID_ARGUMENT" || env.Retryable == nil || *env.Retryable {
				t.Errorf("since=%s = %d %s; want 400 INVALID_ARGUMENT", since, env.Status, trim(env.Raw))
			}
		}
		for since, want := range map[string]int{"253402300799": 0, "9999-12-31T23:59:59Z": 0, "0": 1, "0001-01-01T00:00:00Z": 1, "1000-01-01T00:00:00+01:00": 1} {
			env := n.OK(t, "GET", base+"operations?since="+q(since), nil)
			var rows []server.Operation
			if err := json.Unmarshal(env.Result, &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != want {
				t.Errorf("since=%s: %d rows, want %d", since, len(rows), want)
			}
		}
	})
}
