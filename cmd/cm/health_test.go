package main

import (
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
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
