package server_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestBackwardTimeHurtsOnlyItsTask: a process connector reports ts
// 1700000100 and then 1700000090 beside a file task on the same node. The
// bad report keeps the higher time while its token moves on, the process
// task shows a warning, and the file task's checkpoints and heartbeats go
// on landing: nothing goes EXCEPTION.
func TestBackwardTimeHurtsOnlyItsTask(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		body, src, _ := fileTask(t, "p_nb-incr_trans-1-0", 5)
		file := n.OK(t, "POST", base+"create", body).String()
		script := `read -r hello
echo '{"type":"checkpoint","subtopic":"s","ts":1700000100,"token":"a"}'
sleep 0.5
echo '{"type":"checkpoint","subtopic":"s","ts":1700000090,"token":"b"}'
while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`
		proc := processTask(t, n, "p_nb-incr_trans-2-0", script, nil)

		cmtest.Eventually(t, 10*time.Second, "the backward report lands with its token", func() bool {
			cp := n.Detail(t, proc).Checkpoint["s"]
			return cp.Token == "b"
		})
		if cp := n.Detail(t, proc).Checkpoint["s"]; cp.TS != 1700000100 {
			t.Fatalf("process checkpoint = %+v, want its time held at 1700000100", cp)
		}
		cmtest.Eventually(t, 5*time.Second, "a warning on the process task", func() bool {
			for _, d := range n.Detail(t, proc).ErrorDetails {
				if d.Code == model.CodeCheckpointTimeHeld && d.Level == model.LevelWarning {
					return true
				}
			}
			return false
		})

		// The neighbour keeps moving: new lines reach its checkpoint, and its
		// heartbeat keeps advancing over several heartbeat periods.
		comp := "p_nb-incr_trans-1-0"
		beat := func() time.Time {
			hbs, err := n.Store.Heartbeats(t.Context(), []string{comp})
			if err != nil {
				t.Fatal(err)
			}
			return hbs[comp].At
		}
		before := beat()
		f, err := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 5; i < 10; i++ {
			fmt.Fprintf(f, "{\"ts\":%d,\"i\":%d}\n", 100+i, i)
		}
		f.Close()
		cmtest.Eventually(t, 10*time.Second, "the file task's checkpoint moves", func() bool {
			return n.Detail(t, file).Checkpoint["src.jsonl"].TS == 109
		})
		cmtest.Eventually(t, 10*time.Second, "the file task's heartbeat moves", func() bool { return beat().After(before) })
		for _, name := range []string{file, proc} {
			if d := n.Detail(t, name); d.State != model.StateRunning {
				t.Fatalf("%s is %s, want RUNNING: %+v", name, d.State, d.ErrorDetails)
			}
		}
		for _, d := range n.Detail(t, file).ErrorDetails {
			t.Fatalf("the file task shows %+v; the warning belongs to the process task only", d)
		}
	})
}
