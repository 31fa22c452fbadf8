package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// TestSameCallTwiceAtOnce: an OMS call sent twice at once (a retrying
// client, a double click, two operators following one runbook) succeeds
// for both when both ask the same: stop, update, resume, pause, delete.
// Each is audited.
func TestSameCallTwiceAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
		body, _, sink := fileTask(t, "p_twice-incr_trans-1-0", 5)
		name := n.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 10*time.Second, "sink has 5 lines", func() bool { return lines(t, sink) >= 5 })
		twice := func(what, path string, body any) {
			t.Helper()
			out := make(chan cmtest.Envelope, 2)
			for range 2 {
				go func() { out <- n.Do(t, "POST", base+path, body) }()
			}
			for range 2 {
				if env := <-out; env.Status != http.StatusOK || !env.IsSuccess {
					t.Fatalf("%s twice at once: %d %s", what, env.Status, env.Raw)
				}
			}
		}
		state := func(want model.State) {
			t.Helper()
			if d := n.Detail(t, name); d.State != want {
				t.Fatalf("state %s, want %s", d.State, want)
			}
		}
		twice("stop", "stop?taskName="+q(name), nil)
		state(model.StateStopped)
		twice("update", "update?taskName="+q(name), map[string]map[string]string{"source": {"pollInterval": "1s"}})
		if d := n.Detail(t, name); d.Config.Get("source", "pollInterval") != "1s" {
			t.Fatalf("config after the updates: %v", d.Config)
		}
		// Two different updates at once: no lost update. Each that
		// answers success is in the config; a loser answers TASK_BUSY.
		out := make(chan [2]string, 2)
		for _, k := range []string{"a1", "a2"} {
			go func() {
				env := n.Do(t, "POST", base+"update?taskName="+q(name), map[string]map[string]string{"sink": {k: "v"}})
				out <- [2]string{k, env.Raw}
			}()
		}
		cfg := map[string]string{}
		var answers [][2]string
		for range 2 {
			answers = append(answers, <-out)
		}
		for k, v := range n.Detail(t, name).Config["sink"] {
			cfg[k] = v
		}
		for _, a := range answers {
			ok := strings.Contains(a[1], `"isSuccess":true`)
			if ok && cfg[a[0]] != "v" || !ok && !strings.Contains(a[1], "TASK_BUSY") {
				t.Fatalf("two different updates: %s answered %s; sink config %v", a[0], a[1], cfg)
			}
		}
		twice("resume", "resume?taskName="+q(name), nil)
		state(model.StateRunning)
		twice("pause", "pause?taskName="+q(name), nil)
		state(model.StatePaused)
		twice("delete", "delete?taskName="+q(name), nil)
		state(model.StateDeleted)
	})
}
