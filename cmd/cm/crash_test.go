package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestMain lets the test binary run as cm itself, so the crash test can
// start real cm processes and kill them with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("CM_TEST_RUN_AS_CM") == "1" {
		os.Args = append([]string{"cm"}, strings.Fields(os.Getenv("CM_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type cmProcess struct {
	cmd  *exec.Cmd
	base string
	logs *outputBuffer
	// token is the bearer token call and do send; "" sends none.
	token string
}

// startCM runs `cm serve` from the test binary and waits for /healthz;
// extra are more flags.
func startCM(t *testing.T, addr, db, dataDir string, extra ...string) *cmProcess {
	t.Helper()
	return startCMEnv(t, nil, addr, db, dataDir, extra...)
}

// startCMEnv is startCM with more environment variables (NAME=value).
func startCMEnv(t *testing.T, env []string, addr, db, dataDir string, extra ...string) *cmProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), "CM_TEST_RUN_AS_CM=1",
		// Test files live under t.TempDir(): the OS temp dir is a file root.
		"CM_TEST_ARGS=serve --listen "+addr+" --data-dir "+dataDir+" --file-root "+os.TempDir()+" --log-level debug "+strings.Join(extra, " "),
		"CM_DB="+db)
	logs := &outputBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cmProcess{cmd: cmd, base: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cm did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *cmProcess) call(t *testing.T, method, path, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil || env["isSuccess"] != true {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	return env
}

// createFileTask creates (and starts) a task copying the file src to the
// file sink, and returns its name.
func (p *cmProcess) createFileTask(t *testing.T, component, src, sink string) string {
	t.Helper()
	return p.call(t, "POST", "/connector/task/v2/create", fmt.Sprintf(
		`{"component":%q,"config":{"source":{"type":"file","path":%q},"sink":{"type":"file","path":%q}}}`, component, src, sink))["result"].(string)
}

func (p *cmProcess) checkpoint(t *testing.T, component, subtopic string) (state string, ts int64) {
	t.Helper()
	env := p.call(t, "GET", "/connector/task/v2/detail?taskName="+url.QueryEscape(component), "")
	res := env["result"].(map[string]any)
	if cp, ok := res["checkpoint"].(map[string]any)[subtopic].(map[string]any); ok {
		ts = int64(cp["ts"].(float64))
	}
	return res["state"].(string), ts
}

// appender appends numbered lines to a source file until stopped; the line
// number doubles as ts so a gap is easy to see.
type appender struct {
	path string
	mu   sync.Mutex
	next int
}

func (a *appender) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "{\"ts\":%d,\"i\":%d}\n", 1000+a.next, a.next)
		a.next++
	}
	w.Flush()
	f.Close()
}

// TestKill9WhileStreaming kills cm with SIGKILL while a task streams, starts
// it again, and checks: every source line reaches the sink at least once, no
// gap, the durable checkpoint never moved backwards, and a task the operator
// had stopped stays stopped.
func TestKill9WhileStreaming(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db string) {
		dir := t.TempDir()
		addr := freePort(t)
		data := filepath.Join(dir, "data")
		src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
		src2, sink2 := filepath.Join(dir, "src2.jsonl"), filepath.Join(dir, "sink2.jsonl")
		app := &appender{path: src}
		app.add(2000)
		(&appender{path: src2}).add(10)

		p := startCM(t, addr, db, data)
		comp, comp2 := "p_k-incr_trans-1-0", "p_k-incr_trans-2-0"
		p.createFileTask(t, comp, src, sink)
		p.createFileTask(t, comp2, src2, sink2)
		p.call(t, "POST", "/connector/task/v2/stop?taskName="+comp2, "")

		var last int64
		observe := func(p *cmProcess) {
			_, ts := p.checkpoint(t, comp, "src.jsonl")
			if ts < last {
				t.Fatalf("durable checkpoint moved back: %d -> %d", last, ts)
			}
			last = ts
		}
		// Stream for a while, appending as we go, then kill mid-flight.
		streamUntil := time.Now().Add(1500 * time.Millisecond)
		for i := 0; i < 400 && (time.Now().Before(streamUntil) || last == 0); i++ {
			app.add(50)
			observe(p)
			time.Sleep(25 * time.Millisecond)
		}
		if last == 0 {
			t.Fatal("no durable checkpoint before the kill")
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = p.cmd.Process.Wait()
		app.add(500) // written while cm is down
		killedAt := last

		p = startCM(t, addr, db, data)
		observe(p)
		if last < killedAt {
			t.Fatalf("checkpoint after restart %d is behind %d seen before the kill", last, killedAt)
		}
		app.add(500)
		total := app.next
		deadline := time.Now().Add(30 * time.Second)
		for {
			observe(p)
			if last == int64(1000+total-1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint %d never reached %d; logs:\n%s", last, 1000+total-1, p.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		seen := cmtest.SinkIndexes(t, sink)
		dups := 0
		for i := 0; i < total; i++ {
			if seen[i] == 0 {
				t.Fatalf("line %d never reached the sink", i)
			}
			dups += seen[i] - 1
		}
		t.Logf("%d lines delivered, %d replayed after the kill (at-least-once)", total, dups)

		if state, _ := p.checkpoint(t, comp2, "src2.jsonl"); state != "STOPPED" {
			t.Fatalf("operator-stopped task is %s after restart", state)
		}
		if n := len(cmtest.SinkIndexes(t, sink2)); n != 10 {
			t.Fatalf("stopped task's sink has %d lines", n)
		}
	})
}
