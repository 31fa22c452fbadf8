package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/connector-manager/cm/internal/dbtest"
)

// TestRaiseOpenFiles: with the soft limit below the hard one, raiseOpenFiles
// raises it to the hard limit and logs both and what they leave room for.
func TestRaiseOpenFiles(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lowered := syscall.Rlimit{Cur: lim.Max / 2, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Errorf("restoring the open file limit: %v", err)
		}
	})
	core, logs := observer.New(zap.InfoLevel)
	got := raiseOpenFiles(zap.New(core))
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != lim.Max || got.Soft != lim.Max || got.Hard != lim.Max || got.Was != lowered.Cur {
		t.Fatalf("after raising: limit %+v, reported %+v; want soft = hard = %d, was %d", now, got, lim.Max, lowered.Cur)
	}
	entries := logs.FilterMessageSnippet("open file limit").All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines about the open file limit, want 1: %v", len(entries), logs.All())
	}
	f := entries[0].ContextMap()
	want := map[string]uint64{"soft": lim.Max, "hard": lim.Max, "was": lowered.Cur,
		"file_tasks_moving_data": (lim.Max - fdsReserve) / fdsFileTask, "process_tasks": (lim.Max - fdsReserve) / fdsProcessTask}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("log field %s = %v, want %d (%v)", k, f[k], v, f)
		}
	}
}

// TestServeRaisesOpenFiles: cm serve started with a low soft limit runs
// with the hard one (the Go runtime alone stops one below it), as
// /proc/<pid>/limits shows, and logs it.
func TestServeRaisesOpenFiles(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	// The shell lowers the soft limit and becomes cm serve (same pid).
	cmd := exec.Command("/bin/sh", "-c", `ulimit -S -n 1024 && exec "$0" -test.run=^$`, os.Args[0])
	cmd.Env = append(os.Environ(), "CM_TEST_RUN_AS_CM=1",
		"CM_TEST_ARGS=serve --listen "+addr+" --data-dir "+filepath.Join(dir, "data")+" --file-root "+dir,
		"CM_DB="+dbtest.SQLiteURL(t))
	logs := &outputBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	hard := strconv.FormatUint(lim.Max, 10)
	within(t, 30*time.Second, "cm serve logs its open file limit", func() bool {
		return strings.Contains(logs.String(), `"msg":"open file limit`)
	})
	out := logs.String()
	// The Go runtime raised 1024 to one below the hard limit (the test
	// needs a hard limit above 1025, as every Linux default is).
	for _, want := range []string{`"soft":` + hard, `"hard":` + hard, `"was":` + strconv.FormatUint(lim.Max-1, 10)} {
		if !strings.Contains(out, want) {
			t.Fatalf("the log lacks %s: %s", want, out)
		}
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			if len(f) < 2 || f[0] != hard || f[1] != hard {
				t.Fatalf("cm serve runs with %q, want soft and hard %s", line, hard)
			}
			return
		}
	}
	t.Fatalf("no open file limit in /proc/%d/limits: %s", cmd.Process.Pid, raw)
}
