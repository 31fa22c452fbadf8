package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/internal/failpoint"
)

// TestPullbackKill9AtEachStep arms a failpoint so that a real cm process
// kills itself with SIGKILL right after one step of a pullback commits (the
// call's journal, the stop, the rewrite), starts cm again on the same
// store, and checks that the pullback completes: the task runs as version
// 2, the sink received every line from the requested time again and none
// before it twice, and the operator's pullback call is recorded as a
// success.
func TestPullbackKill9AtEachStep(t *testing.T) {
	for _, point := range failpoint.All {
		t.Run(point, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db string) {
				dir := t.TempDir()
				addr, data := freePort(t), filepath.Join(dir, "data")
				src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
				(&appender{path: src}).add(300) // ts 1000..1299
				comp := "p_f-incr_trans-1-0"

				p := startCMEnv(t, []string{"CM_FAILPOINT=" + point}, addr, db, data)
				p.createFileTask(t, comp, src, sink)
				cmtest.Eventually(t, 20*time.Second, "all lines delivered", func() bool {
					_, ts := p.checkpoint(t, comp, "src.jsonl")
					return ts == 1299
				})

				// The call dies with the process (or answers first, when the
				// process dies later): either way it must not matter.
				req, _ := http.NewRequest("POST", p.base+"/connector/task/v2/pullback?taskName="+comp+"&timestamp=1150", nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				exited := make(chan error, 1)
				go func() { exited <- p.cmd.Wait() }()
				select {
				case err := <-exited:
					// Killed at the failpoint: the wait reports the signal,
					// checked below from the process state.
					_ = err
				case <-time.After(20 * time.Second):
					t.Fatalf("cm did not reach failpoint %s; logs:\n%s", point, p.logs.String())
				}
				if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("cm ended with %v, want SIGKILL at the failpoint; logs:\n%s", p.cmd.ProcessState, p.logs.String())
				}
				if !strings.Contains(p.logs.String(), "failpoint reached") {
					t.Fatalf("killed, but not at the failpoint; logs:\n%s", p.logs.String())
				}

				p = startCM(t, addr, db, data)
				cmtest.Eventually(t, 20*time.Second, "the pullback completes after the restart", func() bool {
					res := p.call(t, "GET", "/connector/task/v2/detail?taskName="+comp, "")["result"].(map[string]any)
					return res["operation"] == nil && res["state"] == "RUNNING" && res["version"] == float64(2)
				})
				cmtest.Eventually(t, 20*time.Second, "the replay reaches the end", func() bool {
					_, ts := p.checkpoint(t, comp, "src.jsonl")
					return ts == 1299
				})
				seen := cmtest.SinkIndexes(t, sink)
				for i := 0; i < 300; i++ {
					// Before the target: once. From it: again (at least once
					// more; a replay cut by the kill may add a third copy).
					if (i < 150 && seen[i] != 1) || (i >= 150 && seen[i] < 2) {
						t.Fatalf("line %d (ts %d) reached the sink %d times", i, 1000+i, seen[i])
					}
				}
				ops := p.call(t, "GET", "/connector/task/v2/operations?taskName="+comp, "")["result"].([]any)
				var story []string
				for i := len(ops) - 1; i >= 0; i-- {
					op := ops[i].(map[string]any)
					if name := op["operation"].(string); strings.HasPrefix(name, "pullback") {
						story = append(story, name+"="+op["result"].(string))
					}
				}
				if len(story) == 0 || story[0] != "pullback=success" || story[len(story)-1] != "pullback:done=success" {
					t.Fatalf("pullback audit story %v: want the call recorded as a success and the journal closed", story)
				}
				t.Logf("killed at %s; audit: %s", point, strings.Join(story, ", "))
			})
		})
	}
}
