package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// TestHealthExitCodes: cm health exits 0 when every task is healthy, 1 on
// a warning (delay over threshold), 2 on a critical problem (EXCEPTION) or
// when cm cannot be reached.
func TestHealthExitCodes(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	const v2 = "/connector/task/v2/"
	if code, out := runHealth("--server", n.URL); code != 0 || !strings.HasPrefix(out, "HEALTHY") {
		t.Fatalf("no tasks: %d %s", code, out)
	}
	script := func(name, s string) map[string]any {
		n.Plugin(t, name, s)
		return map[string]any{"source": map[string]string{"type": "process", "plugin": name}}
	}
	// Checkpoints from 1970: far behind now.
	n.OK(t, "POST", v2+"create", map[string]any{"component": "p_e-incr_trans-1-0",
		"config": script("delayed", `read -r h; while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; sleep 0.1; done`)})
	cmtest.Eventually(t, 5*time.Second, "checkpoint", func() bool { return n.Detail(t, "p_e-incr_trans-1-0").Checkpoint["s"].TS == 100 })
	if code, out := runHealth("--server", n.URL); code != 1 || !strings.Contains(out, "DELAY_OVER_THRESHOLD") {
		t.Fatalf("delayed task: %d %s", code, out)
	}
	if code, out := runHealth("--server", n.URL, "--max-delay", "36500d"); code != 0 {
		t.Fatalf("delayed task under a large --max-delay: %d %s", code, out)
	}
	n.Do(t, "POST", v2+"create", map[string]any{"component": "p_f-incr_trans-1-0",
		"config": script("broken", `read -r h; echo '{"type":"error","code":"BROKEN","message":"broken"}'; sleep 5`)})
	cmtest.Eventually(t, 5*time.Second, "EXCEPTION", func() bool { return n.Detail(t, "p_f-incr_trans-1-0").State == model.StateException })
	if code, out := runHealth("--server", n.URL, "--max-delay", "36500d"); code != 2 || !strings.Contains(out, "TASK_EXCEPTION") {
		t.Fatalf("EXCEPTION task: %d %s", code, out)
	}
	if code, out := runHealth("--server", n.URL, "--project", "p_e", "--max-delay", "36500d"); code != 0 {
		t.Fatalf("healthy project: %d %s", code, out)
	}
	url := n.URL
	n.Stop()
	if code, out := runHealth("--server", url, "--timeout", "2s"); code != 2 || !strings.Contains(out, "unreachable") {
		t.Fatalf("cm down: %d %s", code, out)
	}
}

// TestHealthUsageAndMinTasks: a usage error exits 3 (UNKNOWN), not 2 or 1:
// a bogus --max-delay, an extra argument, an unknown flag; an answer that
// is not a health report (a refused token) is UNKNOWN too. --min-tasks N
// makes fewer matching tasks critical, so a mistyped --project is caught.
func TestHealthUsageAndMinTasks(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	tokens := writeTokens(t, authFile, map[string]server.Role{"monitor": server.RoleViewer, "ops": server.RoleAdmin})
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: authFile})
	n.Token = tokens["ops"]
	t.Setenv("CM_TOKEN", tokens["monitor"])
	for _, args := range [][]string{{"--max-delay", "bogus"}, {"--max-delay", "-5"}, {"extra"}, {"--bogus"}, {"--min-tasks", "-1"}} {
		if code, out := runHealth(append([]string{"--server", n.URL}, args...)...); code != 3 {
			t.Errorf("health %v: exit %d, want 3: %s", args, code, out)
		}
	}
	if code, out := runHealth("--server", n.URL, "--token", "not-a-token"); code != 3 || !strings.HasPrefix(out, "UNKNOWN") || !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("refused token: %d %s", code, out)
	}
	// No task yet: fine without --min-tasks, critical with it.
	if code, out := runHealth("--server", n.URL); code != 0 {
		t.Fatalf("no tasks: %d %s", code, out)
	}
	if code, out := runHealth("--server", n.URL, "--min-tasks", "1"); code != 2 || !strings.Contains(out, "--min-tasks") {
		t.Fatalf("no tasks, --min-tasks 1: %d %s", code, out)
	}
	body := cliFileTask(t, "p_hm-incr_trans-1-0", 100, 1)
	body["start"] = false
	n.OK(t, "POST", v2Path+"create", body)
	if code, out := runHealth("--server", n.URL, "--project", "p_hm", "--min-tasks", "1"); code != 0 {
		t.Fatalf("one task of the project, --min-tasks 1: %d %s", code, out)
	}
	if code, out := runHealth("--server", n.URL, "--project", "p_mh", "--min-tasks", "1"); code != 2 || !strings.Contains(out, "0 task(s) match") {
		t.Fatalf("a mistyped --project, --min-tasks 1: %d %s", code, out)
	}
	t.Setenv("CM_SERVER", n.URL)
	if code, out := runHealth("--project", "p_hm", "--min-tasks", "2"); code != 2 {
		t.Fatalf("CM_SERVER, one task, --min-tasks 2: %d %s", code, out)
	}
}
