package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/view"
)

// behindTask is the create body of a process task whose connector reports
// a checkpoint at ts 100, far behind now, and plain heartbeats: it never
// says it is caught up, so its delay is its checkpoint's age.
func behindTask(t *testing.T, n *cmtest.Node, component string) map[string]any {
	t.Helper()
	plugin := n.Plugin(t, component, `read -r hello; echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; `+
		`while :; do echo '{"type":"heartbeat"}'; sleep 0.2; done`)
	return map[string]any{"component": component, "config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}}
}

// caughtUpTask is the same connector saying in its heartbeats that it
// has delivered everything.
func caughtUpTask(t *testing.T, n *cmtest.Node, component string) map[string]any {
	t.Helper()
	plugin := n.Plugin(t, component, `read -r hello; echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; `+
		`while :; do echo '{"type":"heartbeat","caughtUp":true}'; sleep 0.2; done`)
	return map[string]any{"component": component, "config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}}
}

func health(t *testing.T, n *cmtest.Node, project string) (int, view.HealthReport) {
	t.Helper()
	env := n.Do(t, "GET", base+"health?project="+project, nil)
	var r view.HealthReport
	if err := json.Unmarshal(env.Result, &r); err != nil {
		t.Fatalf("health: %d %s", env.Status, env.Raw)
	}
	return env.Status, r
}

// TestIdleCaughtUpHasNoDelay: a file task that has copied its whole file
// (lines from 1970) and a process task whose connector says it is caught
// up report delay 0, from the source, and health has no DELAY warning for
// them well past a 1s threshold; a process task that is really behind
// warns, with its delay readable.
func TestIdleCaughtUpHasNoDelay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		setParam(t, n, params.DelayThreshold, "1s")
		body, _, sink := fileTask(t, "p_idle-incr_trans-1-0", 5) // ts 100..104
		file := n.OK(t, "POST", base+"create", body).String()
		proc := n.OK(t, "POST", base+"create", caughtUpTask(t, n, "p_idle-incr_trans-2-0")).String()
		behind := n.OK(t, "POST", base+"create", behindTask(t, n, "p_late-incr_trans-1-0")).String()
		cmtest.Eventually(t, 10*time.Second, "the file copied", func() bool { return lines(t, sink) == 5 })
		started := time.Now()
		for _, name := range []string{file, proc} {
			cmtest.Eventually(t, 10*time.Second, name+" reports delay 0 from its source", func() bool {
				d := n.Detail(t, name)
				return d.Delay != nil && *d.Delay == 0 && d.DelaySource == model.DelayFromSource
			})
		}
		// Well past the threshold, and past a few heartbeats of the node
		// (300ms) and of the file source's reports (1s).
		time.Sleep(max(0, 2500*time.Millisecond-time.Since(started)))
		for _, name := range []string{file, proc} {
			d := n.Detail(t, name)
			if d.Delay == nil || *d.Delay != 0 || d.DelaySource != model.DelayFromSource {
				t.Fatalf("%s idle at its source's head: delay %v from %q", name, d.Delay, d.DelaySource)
			}
			for sub, p := range d.Checkpoint {
				if p.Delay != 0 {
					t.Fatalf("%s: subtopic %s delay %d, want 0 (the checkpoint is at ts %d, but nothing is left to read)", name, sub, p.Delay, p.TS)
				}
			}
		}
		if status, r := health(t, n, "p_idle"); status != 200 || !r.Healthy || len(r.Problems) != 0 {
			t.Fatalf("health of the caught-up tasks: %d %+v", status, r)
		}
		status, r := health(t, n, "p_late")
		if status != 503 || r.Status != "warning" || len(r.Problems) != 1 || r.Problems[0].Code != model.CodeDelay || r.Problems[0].Task != behind {
			t.Fatalf("health of the task behind: %d %+v", status, r)
		}
		// Rounded and readable: "checkpoint delay 20425d12h exceeds 1s", or
		// "20426d" when the hours round up to a whole day (near midnight).
		msg := r.Problems[0].Message
		rounded := strings.HasSuffix(msg, "h exceeds 1s") || strings.HasSuffix(msg, "d exceeds 1s")
		if !strings.HasPrefix(msg, "checkpoint delay ") || !rounded || strings.Contains(msg, "m0s") {
			t.Fatalf("delay message %q", msg)
		}
		if d := n.Detail(t, behind); d.DelaySource != model.DelayFromCheckpoint || d.Delay == nil || *d.Delay < time.Now().Unix()-101 {
			t.Fatalf("task behind: delay %v from %q", d.Delay, d.DelaySource)
		}
	})
}
