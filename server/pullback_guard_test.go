package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestPullbackForwardWithoutProgress: a task with no durable progress is
// judged against where it would start. A file task that never ran starts at
// its first line (ts 100): a pullback to ts 150 would skip lines, so it is
// refused without force, in the one-call and the three-call form alike.
func TestPullbackForwardWithoutProgress(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, _, _ := fileTask(t, "p_fw-incr_trans-1-0", 100)
		body["start"] = false
		name := n.OK(t, "POST", base+"create", body).String()
		if env := n.Do(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=150", nil); env.Code() != "CHECKPOINT_FORWARD" {
			t.Fatalf("forward pullback of a task that never ran = %s, want CHECKPOINT_FORWARD", env)
		}
		// The three-call form: the configured checkpoint is the target.
		body3, _, _ := fileTask(t, "p_fw-incr_trans-4-0", 100)
		body3["start"] = false
		body3["config"].(map[string]map[string]string)["source"]["checkpoint"] = `{"src.jsonl":"150"}`
		name3 := n.OK(t, "POST", base+"create", body3).String()
		if env := n.Do(t, "POST", base+"resume?taskName="+q(name3)+"&pullBackFlag=true", nil); env.Code() != "CHECKPOINT_FORWARD" {
			t.Fatalf("three-call forward pullback of a task that never ran = %s, want CHECKPOINT_FORWARD", env)
		}
		// Back to where it starts is no skip; force goes forward on purpose.
		n.OK(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=100", nil)
	})
}

// TestPullbackForwardRightAfterPullback: right after a pullback to 1000 the
// new incarnation has no progress yet (its connector reports none); a second
// pullback to 2000 is judged against the configured checkpoint 1000 and
// refused without force.
func TestPullbackForwardRightAfterPullback(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		script := `read -r hello; while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`
		name := processTask(t, n, "p_fw-incr_trans-2-0", script, nil)
		v2 := n.OK(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=1000&subtopic=s", nil).String()
		if env := n.Do(t, "POST", base+"pullback?taskName="+q(v2)+"&timestamp=2000&subtopic=s", nil); env.Code() != "CHECKPOINT_FORWARD" {
			t.Fatalf("pullback from 1000 to 2000 with no progress yet = %s, want CHECKPOINT_FORWARD", env)
		}
		n.OK(t, "POST", base+"pullback?taskName="+q(v2)+"&timestamp=2000&subtopic=s&force=true", nil)
	})
}

// TestPullbackForwardFoundAfterStop: the stop step makes the last progress
// durable; a target past it is refused then, even though the call saw no
// progress. The journal is written as a call would have left it at step
// "stopping" (target 500, progress unknown at the call); the stopped task's
// durable progress is 100. The node rolls the pullback back with
// CHECKPOINT_FORWARD and the task runs again at its old version.
func TestPullbackForwardFoundAfterStop(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		script := `read -r hello; echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`
		name := processTask(t, n, "p_fw-incr_trans-3-0", script, nil)
		cmtest.Eventually(t, 5*time.Second, "progress 100", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)

		ctx := context.Background()
		comp := "p_fw-incr_trans-3-0"
		audit := &model.Audit{At: time.Now().UTC(), Actor: "test", Operation: "pullback", Component: comp, Result: model.ResultAccepted}
		if err := n.Store.InsertAudit(ctx, audit); err != nil {
			t.Fatal(err)
		}
		tk, err := n.Store.GetTask(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(map[string]any{"op": "pullback", "step": "stopping", "target": map[string]int64{"s": 500},
			"checkpointBefore": "", "progressBefore": map[string]int64{}, "versionBefore": 1, "desiredBefore": "RUNNING",
			"auditId": audit.ID, "started": time.Now().UTC()})
		tk.Journal = string(j)
		if err := n.Store.UpdateTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		n.Rec.Nudge()
		cmtest.Eventually(t, 10*time.Second, "the pullback is rolled back", func() bool {
			a, err := n.Store.GetAudit(ctx, audit.ID)
			return err == nil && a.Result == model.ResultFailure
		})
		a, _ := n.Store.GetAudit(ctx, audit.ID)
		if a.ErrCode != model.CodeCheckpointForward || !strings.Contains(a.ErrMsg, "made durable by the stop") {
			t.Fatalf("rollback recorded %q %q, want CHECKPOINT_FORWARD", a.ErrCode, a.ErrMsg)
		}
		cmtest.Eventually(t, 10*time.Second, "the task runs again at version 1", func() bool {
			d := n.Detail(t, name)
			return d.State == model.StateRunning && d.Version == 1 && d.Operation == nil
		})
		if d := n.Detail(t, name); d.Checkpoint["s"].TS != 100 || d.Config["source"]["checkpoint"] != "" {
			t.Fatalf("the rolled back pullback changed the task: %+v", d)
		}
	})
}
