package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestChildDiesWithCM: when cm is killed with SIGKILL, the connector
// processes it supervised die too, so a restarted cm never runs a second,
// unsupervised copy beside the one it starts.
func TestChildDiesWithCM(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	plugins := t.TempDir()
	cmtest.ShellPlugin(t, plugins, "sleeper", "read -r hello; echo $$ > "+pidFile+"; while :; do sleep 0.1; done")
	p := startCM(t, freePort(t), dbtest.SQLiteURL(t), filepath.Join(dir, "data"), "--plugin-dir", plugins)
	body, _ := json.Marshal(map[string]any{"component": "p_o-incr_trans-1-0",
		"config": map[string]map[string]string{"source": {"type": "process", "plugin": "sleeper"}}})
	p.call(t, "POST", "/connector/task/v2/create", string(body))
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("child never wrote its pid")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = p.cmd.Process.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("connector %d outlived cm", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs; a zombie waiting to be reaped is dead.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
