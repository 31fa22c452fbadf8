package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

var testTask = func() model.TaskName {
	n, err := model.ParseTaskName("127.0.0.1-9000:connector_v2:p1-incr_trans-1-0:0000000001")
	if err != nil {
		panic(err)
	}
	return n
}()

// setup is a source's config with the one plugin it names.
type setup struct {
	connector.Config
	plugins *Plugins
}

func (u setup) build() (*source, error) { return newSource(u.Config, u.plugins) }

// testConfig declares argv as plugin "test" and configures a task naming
// it. GORACE passes through (see TestMain).
func testConfig(t *testing.T, argv []string, kv ...string) setup {
	t.Helper()
	return pluginConfig(t, Plugin{Name: "test", Command: argv, Env: []string{"GORACE"}}, kv...)
}

func pluginConfig(t *testing.T, pl Plugin, kv ...string) setup {
	t.Helper()
	plugins, err := NewPlugins(os.LookupEnv, pl)
	if err != nil {
		t.Fatal(err)
	}
	c := model.Config{}
	c.Set("source", "type", typeName)
	c.Set("source", "plugin", pl.Name)
	c.Set("source", "password", "s3cret")
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set("source", kv[i], kv[i+1])
	}
	return setup{connector.Config{Task: testTask, Type: model.TypeIncr, Scopes: c, Dir: t.TempDir()}, plugins}
}

func fakeConfig(t *testing.T, mode string, kv ...string) setup {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return testConfig(t, []string{exe, fakeArg, mode}, kv...)
}

func open(t *testing.T, c setup, from map[string]checkpoint.Position) *source {
	t.Helper()
	s, err := c.build()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(timeout(t, 10*time.Second), from); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code string, permanent bool) model.ErrorDetail {
	t.Helper()
	var ce *connector.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *connector.Error", err)
	}
	if ce.Detail.Code != code || ce.Permanent != permanent || ce.Detail.Level != model.LevelError {
		t.Fatalf("got %s permanent=%v level %s (%v), want %s permanent=%v", ce.Detail.Code, ce.Permanent, ce.Detail.Level, err, code, permanent)
	}
	return ce.Detail
}

// readPositions reads until a batch with positions arrives.
func readPositions(t *testing.T, s *source) []checkpoint.Position {
	t.Helper()
	ctx := timeout(t, 10*time.Second)
	for {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Records) > 0 {
			t.Fatalf("a process source returned records: %+v", b)
		}
		if len(b.Positions) > 0 {
			return b.Positions
		}
	}
}

// gone reports whether pid no longer exists (it was reaped).
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func TestCheckpointsAndMetrics(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	s := open(t, fakeConfig(t, "echo"), map[string]checkpoint.Position{
		"orders": {Subtopic: "orders", TS: 100, Token: "abc"},
		"users":  {Subtopic: "users", TS: 7},
	})
	ctx := timeout(t, 10*time.Second)
	got := map[string]checkpoint.Position{}
	var metrics map[string]float64
	for len(got) < 2 || metrics == nil {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range b.Positions {
			got[p.Subtopic] = p
		}
		if b.Metrics != nil {
			metrics = b.Metrics
		}
	}
	want := map[string]checkpoint.Position{
		"orders": {Subtopic: "orders", TS: 101, Token: "abc+1"},
		"users":  {Subtopic: "users", TS: 8, Token: "+1"},
	}
	if !reflect.DeepEqual(got, want) || metrics["rows"] != 10 {
		t.Fatalf("got %v and metrics %v, want %v and rows=10", got, metrics, want)
	}

	pid := s.pid
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close of a cooperative process took %s", d)
	}
	if !gone(pid) {
		t.Fatal("the process still exists after Close")
	}
	// Close waited for its goroutines; the testing package's own may take a
	// moment to go.
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > goroutines; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines left after Close:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestKilledProcessFailsRead(t *testing.T) {
	c := fakeConfig(t, "crash")
	s := open(t, c, nil)
	readPositions(t, s)

	if err := syscall.Kill(s.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := s.Read(timeout(t, 10*time.Second))
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the death was noticed after %s", d)
	}
	detail := wantCode(t, err, codeExited, false)
	if !strings.Contains(detail.Message, "signal 9") {
		t.Fatalf("message %q does not name the signal", detail.Message)
	}
	var want []string
	for i := 6; i <= 25; i++ {
		want = append(want, fmt.Sprintf("stderr line %d", i))
	}
	if !reflect.DeepEqual(detail.Stderr, want) {
		t.Fatalf("stderr tail %q, want %q", detail.Stderr, want)
	}
	if _, again := s.Read(timeout(t, time.Second)); !errors.Is(again, err) {
		t.Fatalf("second Read returned %v, want the same error", again)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(c.Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "stderr line 1\n") || !strings.Contains(string(log), "stderr line 25\n") {
		t.Fatalf("stderr.log lacks lines:\n%s", log)
	}
}

func TestExitStatusFailsRead(t *testing.T) {
	s := open(t, fakeConfig(t, "exit3"), nil)
	_, err := s.Read(timeout(t, 10*time.Second))
	detail := wantCode(t, err, codeExited, false)
	if !strings.Contains(detail.Message, "status 3") || len(detail.Stderr) != tailLines || detail.Stderr[tailLines-1] != "stderr line 25" {
		t.Fatalf("got %q with stderr %q", detail.Message, detail.Stderr)
	}
}

func TestExitZeroEndsRead(t *testing.T) {
	s := open(t, fakeConfig(t, "done"), nil)
	ctx := timeout(t, 10*time.Second)
	got := map[string]checkpoint.Position{}
	for {
		b, err := s.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range b.Positions {
			got[p.Subtopic] = p
		}
	}
	want := map[string]checkpoint.Position{"a": {Subtopic: "a", TS: 6, Token: "t6"}, "b": {Subtopic: "b", TS: 7, Token: "t7"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("positions before io.EOF: %v, want %v", got, want)
	}
	if _, err := s.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the end: %v, want io.EOF", err)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestErrorMessageFailsRead(t *testing.T) {
	s := open(t, fakeConfig(t, "error"), nil)
	_, err := s.Read(timeout(t, 10*time.Second))
	d := wantCode(t, err, "SRC_DENIED", true)
	if d.Message != "access denied" || d.Reason != "no SELECT privilege" || d.Proposal != "grant it" {
		t.Fatalf("detail %+v", d)
	}
}

func TestCloseKillsProcessIgnoringSIGTERM(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := open(t, fakeConfig(t, "ignoreterm", "grace", grace.String()), nil)
	readPositions(t, s) // SIGTERM is ignored from here on

	pid := s.pid
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace || d > grace+5*time.Second {
		t.Fatalf("Close took %s with a grace of %s", d, grace)
	}
	if !gone(pid) {
		t.Fatal("the process still exists after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	s := open(t, fakeConfig(t, "silent", "heartbeatTimeout", "300ms"), nil)
	_, err := s.Read(timeout(t, 10*time.Second))
	wantCode(t, err, codeHeartbeatTimeout, false)
}

func TestMalformedLines(t *testing.T) {
	s := open(t, fakeConfig(t, "garbage"), nil)
	// Fewer than maxGarbage in a row are ignored.
	if got := readPositions(t, s); len(got) != 1 || got[0].Token != "b" {
		t.Fatalf("positions %v", got)
	}
	_, err := s.Read(timeout(t, 10*time.Second))
	wantCode(t, err, codeProtocol, true)
}

func TestReadHonoursContext(t *testing.T) {
	s := open(t, fakeConfig(t, "silent"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v, want deadline exceeded", err)
	}
}

func TestStartFailure(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pl   Plugin
	}{
		{"missing program", Plugin{Name: "p", Command: []string{filepath.Join(t.TempDir(), "nope")}}},
		{"not executable", Plugin{Name: "p", Command: []string{notExec}}},
		{"missing workdir", Plugin{Name: "p", Command: []string{"/bin/sh", "-c", "exit 0"}, Workdir: filepath.Join(t.TempDir(), "nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := pluginConfig(t, tc.pl).build()
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, s.Open(timeout(t, 10*time.Second), nil), codeStartFailed, true)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTemporaryLogDir(t *testing.T) {
	c := testConfig(t, []string{"/bin/sh", "-c", "echo oops >&2; exit 1"})
	c.Dir = ""
	s := open(t, c, nil)
	_, err := s.Read(timeout(t, 10*time.Second))
	if detail := wantCode(t, err, codeExited, false); !reflect.DeepEqual(detail.Stderr, []string{"oops"}) {
		t.Fatalf("stderr %q", detail.Stderr)
	}
	dir := s.tmpDir
	if _, err := os.Stat(filepath.Join(dir, "stderr.log")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was not removed: %v", dir, err)
	}
}

func TestCounterExample(t *testing.T) {
	script, err := filepath.Abs("../../../testdata/connectors/counter.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, testConfig(t, []string{"/bin/sh", script}), map[string]checkpoint.Position{
		"counter": {Subtopic: "counter", TS: 100, Token: "100"},
	})
	want := []checkpoint.Position{{Subtopic: "counter", TS: 101, Token: "101"}}
	if got := readPositions(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("first checkpoint %v, want %v", got, want)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("counter.sh took %s to stop on SIGTERM", d)
	}
	log, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "counter: stopped at ts") {
		t.Fatalf("counter.sh did not log its stop:\n%s", log)
	}
}

// TestNewSource: a task names a declared plugin and never says what runs
// or where: source.command and source.workdir are refused with
// ErrCommandRefused, an undeclared plugin with ErrUnknownPlugin.
func TestNewSource(t *testing.T) {
	plugins, err := NewPlugins(nil, Plugin{Name: "counter", Command: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want error // nil: accepted
	}{
		{"plugin", []string{"plugin", "counter"}, nil},
		{"options", []string{"plugin", "counter", "grace", "300ms", "heartbeatTimeout", "1m"}, nil},
		{"no plugin", nil, connector.ErrUnknownPlugin},
		{"undeclared plugin", []string{"plugin", "nope"}, connector.ErrUnknownPlugin},
		{"command", []string{"command", `["/bin/sh","-c","touch /tmp/x"]`}, connector.ErrCommandRefused},
		{"command beside a plugin", []string{"plugin", "counter", "command", `["/bin/true"]`}, connector.ErrCommandRefused},
		{"empty command", []string{"plugin", "counter", "command", ""}, connector.ErrCommandRefused},
		{"workdir", []string{"plugin", "counter", "workdir", "/"}, connector.ErrCommandRefused},
		{"bad grace", []string{"plugin", "counter", "grace", "10"}, connector.ErrConfig},
		{"zero heartbeat", []string{"plugin", "counter", "heartbeatTimeout", "0s"}, connector.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := model.Config{"source": {"type": typeName}}
			for i := 0; i+1 < len(tc.kv); i += 2 {
				c.Set("source", tc.kv[i], tc.kv[i+1])
			}
			r := connector.NewRegistry()
			Register(r, plugins)
			_, _, err := r.Build(connector.Config{Scopes: c})
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Build = %v, want it accepted", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Build = %v, want %v", err, tc.want)
			case (errors.Is(tc.want, connector.ErrCommandRefused) || errors.Is(tc.want, connector.ErrUnknownPlugin)) && !strings.Contains(err.Error(), "--plugin-dir"):
				t.Fatalf("Build = %v: the message does not say how to declare a plugin", err)
			}
		})
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"empty", nil, []string{}},
		{"split writes", []string{"a", "b\nc", "\r\n", "d"}, []string{"ab", "c", "d"}},
		{"keeps the last", []string{"1\n2\n3\n4\n"}, []string{"2", "3", "4"}},
		{"partial counts", []string{"1\n2\n3\n4"}, []string{"2", "3", "4"}},
		{"long line", []string{strings.Repeat("x", maxTailLine+10) + "\n"}, []string{strings.Repeat("x", maxTailLine)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTail(3)
			for _, w := range tc.writes {
				tl.add([]byte(w))
			}
			if got := tl.Lines(); !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Fatalf("lines %q, want %q", got, tc.want)
			}
		})
	}
}

// TestChildEnvironment: the program gets CM_TASK, PATH and the variables
// its manifest passes through, and nothing else of cm's environment.
func TestChildEnvironment(t *testing.T) {
	t.Setenv("CM_TEST_SECRET", "marker-secret-8f2c")
	t.Setenv("CM_DB", "mysql://cm:marker-password-77@127.0.0.1:3306/cm")
	t.Setenv("CM_TEST_PASSED", "passed-through")
	out := filepath.Join(t.TempDir(), "env")
	pl := Plugin{Name: "envdump", Command: []string{"/bin/sh", "-c",
		"env > " + out + `; read -r hello; echo '{"type":"checkpoint","subtopic":"s","ts":1,"token":"a"}'; cat >/dev/null`},
		Env: []string{"CM_TEST_PASSED", "CM_TEST_UNSET"}}
	s := open(t, pluginConfig(t, pl), nil)
	readPositions(t, s) // written after the environment
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimSpace(string(b)), "\n")
	if !slices.Contains(env, "CM_TEST_PASSED=passed-through") {
		t.Errorf("the variable the manifest passes through is missing: %q", env)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		name, _, _ := strings.Cut(e, "=")
		switch name {
		case "CM_TASK":
			if e != "CM_TASK="+testTask.String() {
				t.Errorf("%s, want the task's name", e)
			}
		case "PATH":
			if e != "PATH="+defaultPath {
				t.Errorf("%s, want the default PATH", e)
			}
		case "CM_TEST_PASSED":
		case "PWD", "SHLVL", "_", "OLDPWD": // the shell's own
		default:
			t.Errorf("the program's environment has %s", e)
		}
		if strings.Contains(e, "marker-") {
			t.Errorf("a secret of cm's environment reached the program: %s", e)
		}
	}
}
