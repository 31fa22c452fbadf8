package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// sinkTS returns the ts of every line in the sink, in order.
func sinkTS(t *testing.T, path string) []int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var rec struct{ TS int64 }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("sink line %q: %v", l, err)
		}
		out = append(out, rec.TS)
	}
	return out
}

// streamed starts a file task over ts 100..199 and waits until all 100 lines
// are in the sink and checkpointed.
func streamed(t *testing.T, n *cmtest.Node, component string) (name, src, sink string) {
	body, src, sink := fileTask(t, component, 100)
	name = n.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 10*time.Second, "100 lines delivered and checkpointed", func() bool {
		return len(sinkTS(t, sink)) == 100 && n.Detail(t, name).Checkpoint["src.jsonl"].TS == 199
	})
	return name, src, sink
}

// replayedFrom checks the sink holds 100..199 and then a replay from `from`.
func replayedFrom(t *testing.T, sink string, from int64) {
	t.Helper()
	want := 100 + int(200-from)
	cmtest.Eventually(t, 10*time.Second, fmt.Sprintf("sink has %d lines", want), func() bool { return len(sinkTS(t, sink)) >= want })
	got := sinkTS(t, sink)
	if len(got) != want {
		t.Fatalf("sink has %d lines, want %d", len(got), want)
	}
	for i, ts := range got[100:] {
		if ts != from+int64(i) {
			t.Fatalf("replayed line %d has ts %d, want %d", i, ts, from+int64(i))
		}
	}
}

func TestPullbackSingleCall(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		name, src, sink := streamed(t, n, "p_5-incr_trans-1-0")
		started := time.Now()
		v2 := n.OK(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp=150", nil).String()
		if want := strings.Replace(name, ":0000000001", ":0000000002", 1); v2 != want {
			t.Fatalf("pullback answered %q, want %q", v2, want)
		}
		replayedFrom(t, sink, 150)
		t.Logf("pullback round trip to the last replayed record: %s", time.Since(started))
		d := n.Detail(t, v2)
		if d.Version != 2 || d.State != model.StateRunning || d.Config["source"]["checkpoint"] != `{"src.jsonl":"150"}` || d.Operation != nil {
			t.Fatalf("detail after pullback: %+v", d)
		}
		cmtest.Eventually(t, 5*time.Second, "progress moves forward again", func() bool {
			return n.Detail(t, v2).Checkpoint["src.jsonl"].TS == 199
		})

		// A late write from the old incarnation is refused; the rewound
		// checkpoint stands.
		fenced, err := n.Store.SaveProgress(t.Context(), []model.Progress{{Component: "p_5-incr_trans-1-0", Version: 1,
			Positions: []model.CheckpointPosition{{Subtopic: "src.jsonl", TS: 120, Token: "0"}}}})
		if err != nil || len(fenced) != 1 {
			t.Fatalf("stale write: fenced %v, %v", fenced, err)
		}
		if got := n.Detail(t, v2).Checkpoint["src.jsonl"].TS; got != 199 {
			t.Fatalf("checkpoint after stale write = %d", got)
		}

		// Appending keeps streaming under the new name.
		f, _ := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintln(f, `{"ts":200,"i":100}`)
		f.Close()
		cmtest.Eventually(t, 5*time.Second, "new line delivered", func() bool { return n.Detail(t, v2).Checkpoint["src.jsonl"].TS == 200 })

		// The audit row keeps before and after, to undo it.
		rows, _ := n.Store.ListAudit(t.Context(), model.AuditFilter{Component: "p_5-incr_trans-1-0", Limit: 100})
		var pb *model.Audit
		for i := range rows {
			if rows[i].Operation == "pullback" {
				pb = &rows[i]
			}
		}
		if pb == nil || pb.Result != model.ResultSuccess || !strings.Contains(pb.Detail, `"progressBefore":{"src.jsonl":199}`) ||
			!strings.Contains(pb.Detail, `"target":{"src.jsonl":150}`) || pb.TaskBefore != name {
			t.Fatalf("pullback audit row = %+v", pb)
		}
	})
}

func TestPullbackThreeCalls(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	name, _, sink := streamed(t, n, "p_6-incr_trans-1-0")
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	n.OK(t, "POST", base+"update?taskName="+q(name)+"&deleteParams=source.checkpoint",
		`{"source":{"checkpoint":"{\"src.jsonl\":\"150\"}"}}`)
	v2 := n.OK(t, "POST", base+"resume?taskName="+q(name)+"&pullBackFlag=true", nil).String()
	if !strings.HasSuffix(v2, ":0000000002") {
		t.Fatalf("resume answered %q", v2)
	}
	replayedFrom(t, sink, 150)
	if d := n.Detail(t, name); d.TaskName != v2 {
		t.Fatalf("detail by old name answers %s", d.TaskName)
	}
}

func TestPullbackGuardRails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		name, _, _ := streamed(t, n, "p_7-incr_trans-1-0")
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
		before := n.Detail(t, name)
		future := fmt.Sprint(time.Now().Add(time.Hour).Unix())
		cases := []struct {
			path   string
			status int
			code   string
		}{
			{"pullback?taskName=" + q(name) + "&timestamp=" + future, 400, "CHECKPOINT_IN_FUTURE"},
			{"pullback?taskName=" + q(name) + "&timestamp=150000", 409, "CHECKPOINT_FORWARD"},
			{"pullback?taskName=" + q(name) + "&timestamp=1676286000000", 400, "CHECKPOINT_TIME_UNIT"},
			{"pullback?taskName=" + q(name) + "&timestamp=50", 409, "CHECKPOINT_OUT_OF_RANGE"},
			{"pullback?taskName=" + q(name) + "&timestamp=150&subtopic=nope", 400, "UNKNOWN_SUBTOPIC"},
			{"pullback?taskName=" + q(name) + "&timestamp=abc", 400, "INVALID_CHECKPOINT"},
			{"pullback?taskName=" + q(name), 400, "INVALID_CHECKPOINT"},
			{"pullback?taskName=" + q(name) + "&timestamp=150&tz=Mars/Base", 400, "INVALID_CHECKPOINT"},
		}
		for _, c := range cases {
			env := n.Do(t, "POST", base+c.path, nil)
			if env.Status != c.status || env.Code() != c.code || env.IsSuccess {
				t.Errorf("%s = %d %s; want %d %s", c.path, env.Status, env.Raw, c.status, c.code)
			}
		}
		after := n.Detail(t, name)
		if after.Version != before.Version || after.State != model.StateRunning || after.Operation != nil ||
			after.Config["source"]["checkpoint"] != before.Config["source"]["checkpoint"] {
			t.Fatalf("refused pullbacks changed the task: %+v", after)
		}
		// A full import takes restartFlag, not pullBackFlag.
		body, _, _ := fileTask(t, "p_7-full_trans-1-0", 3)
		full := n.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 5*time.Second, "full import finishes", func() bool { return n.Detail(t, full).State == model.StateFinished })
		for _, p := range []string{"resume?pullBackFlag=true&taskName=", "pullback?timestamp=100&taskName="} {
			if env := n.Do(t, "POST", base+p+q(full), nil); env.Status != 400 || env.Code() != "INVALID_ARGUMENT" {
				t.Errorf("%s on full_trans = %d %s", p, env.Status, env.Raw)
			}
		}
		if v := n.OK(t, "POST", base+"resume?restartFlag=true&taskName="+q(full), nil).String(); !strings.HasSuffix(v, ":0000000002") {
			t.Errorf("restartFlag answered %q", v)
		}
	})
}

// TestPullbackRecovery: whatever step a node died at, the next start
// finishes the pullback and the task runs from the requested time.
func TestPullbackRecovery(t *testing.T) {
	for _, step := range []string{"stopping", "stopped", "rewritten"} {
		t.Run(step, func(t *testing.T) {
			url := dbtest.SQLiteURL(t)
			a := cmtest.Start(t, url, cmtest.Options{})
			name, _, sink := streamed(t, a, "p_8-incr_trans-1-0")
			comp := "p_8-incr_trans-1-0"
			// Write the journal as the pullback call would, then stop the node
			// before its reconciler acts (as if it died right after).
			a.Stop()
			dsn, _ := model.ParseDSN(url)
			store, err := model.Open(t.Context(), dsn, false)
			if err != nil {
				t.Fatal(err)
			}
			tk, _ := store.GetTask(t.Context(), comp)
			tk.Desired = model.DesiredStopped
			tk.Journal = `{"op":"pullback","step":"stopping","target":{"src.jsonl":150},"progressBefore":{"src.jsonl":199},"versionBefore":1,"desiredBefore":"RUNNING"}`
			switch step {
			case "stopping":
				tk.State = model.StateStopping
			case "stopped", "rewritten":
				tk.State = model.StateStopped
			}
			if step == "rewritten" {
				tk.Version = 2
				tk.Desired, tk.State = model.DesiredRunning, model.StateStarting
				tk.Journal = strings.Replace(tk.Journal, `"step":"stopping"`, `"step":"resuming"`, 1)
				cfg, _ := tk.ParsedConfig()
				cfg.Set("source", "checkpoint", `{"src.jsonl":"150"}`)
				tk.SetConfig(cfg)
			}
			if err := store.UpdateTask(t.Context(), tk); err != nil {
				t.Fatal(err)
			}
			if step == "rewritten" {
				if err := store.ResetSubtopics(t.Context(), comp, []string{"src.jsonl"}, 2); err != nil {
					t.Fatal(err)
				}
			}
			store.Close()

			b := cmtest.Start(t, url, cmtest.Options{Tune: func(c *app.Config) { c.Node = a.ID }})
			cmtest.Eventually(t, 10*time.Second, "pullback completes", func() bool {
				d := b.Detail(t, comp)
				return d.Operation == nil && d.State == model.StateRunning && d.Version == 2
			})
			replayedFrom(t, sink, 150)
			rows, _ := b.Store.ListAudit(t.Context(), model.AuditFilter{Component: comp, Limit: 100})
			var story []string
			for i := len(rows) - 1; i >= 0; i-- {
				if strings.HasPrefix(rows[i].Operation, "pullback:") {
					story = append(story, rows[i].Operation)
				}
			}
			want := "pullback:rewrite pullback:done"
			if step == "rewritten" {
				want = "pullback:done"
			}
			if strings.Join(story, " ") != want {
				t.Fatalf("audit story %v, want %s", story, want)
			}
			if d := b.Detail(t, name); d.TaskName == name {
				t.Fatalf("old name still current")
			}
		})
	}
}
