package journal

import (
	"testing"

	"github.com/connector-manager/cm/model"
)

const (
	nodeA = model.NodeID("10.0.0.1-8088")
	nodeB = model.NodeID("10.0.0.2-8088")
)

func task(state model.State, desired model.Desired, j *Journal) *model.Task {
	t := &model.Task{Component: "p-incr_trans-1-0", Project: "p", Type: model.TypeIncr, Node: nodeA, Version: 3,
		State: state, Desired: desired, Config: `{"source":{"type":"file","path":"/x","checkpoint":"{\"s\":\"100\"}"}}`}
	t.Journal = j.Encode()
	return t
}

// want is what a step must look like; zero fields are not checked except
// op ("" means no step at all).
type want struct {
	op      string
	state   model.State
	desired model.Desired
	version int64
	node    model.NodeID
	step    string // the journal's next step; "-" means cleared
	code    string // the audit outcome's code; "ok" means success
}

func check(t *testing.T, name string, got Step, w want) {
	t.Helper()
	if w.op == "" {
		if got.Next != nil {
			t.Errorf("%s: want no step, got %s to %s", name, got.Op, got.Next.State)
		}
		return
	}
	if got.Next == nil {
		t.Errorf("%s: want %s, got no step", name, w.op)
		return
	}
	n := got.Next
	if got.Op != w.op {
		t.Errorf("%s: op %s, want %s (cause %v)", name, got.Op, w.op, got.Cause)
	}
	if w.state != "" && n.State != w.state {
		t.Errorf("%s: state %s, want %s", name, n.State, w.state)
	}
	if w.desired != "" && n.Desired != w.desired {
		t.Errorf("%s: desired %s, want %s", name, n.Desired, w.desired)
	}
	if w.version != 0 && n.Version != w.version {
		t.Errorf("%s: version %d, want %d", name, n.Version, w.version)
	}
	if w.node != "" && n.Node != w.node {
		t.Errorf("%s: node %s, want %s", name, n.Node, w.node)
	}
	switch {
	case w.step == "-" && n.Journal != "":
		t.Errorf("%s: journal %s, want it cleared", name, n.Journal)
	case w.step != "" && w.step != "-":
		j, err := Decode(n.Journal)
		if err != nil || j.Step != w.step {
			t.Errorf("%s: journal %q, want step %s", name, n.Journal, w.step)
		}
	}
	switch {
	case w.code == "" && got.Finish != nil:
		t.Errorf("%s: finishes the call (%+v), want it open", name, got.Finish)
	case w.code == "ok" && (got.Finish == nil || got.Finish.Result != model.ResultSuccess):
		t.Errorf("%s: outcome %+v, want success", name, got.Finish)
	case w.code != "" && w.code != "ok" && (got.Finish == nil || got.Finish.Code != w.code || got.Finish.Result != model.ResultFailure):
		t.Errorf("%s: outcome %+v, want failure %s", name, got.Finish, w.code)
	}
}

// TestPullbackSteps: every state at every step of a pullback.
func TestPullbackSteps(t *testing.T) {
	stopping := &Journal{Op: OpPullback, Step: StepStopping, Target: map[string]int64{"s": 50}, DesiredBefore: model.DesiredRunning, AuditID: 7}
	rewrite := want{op: "pullback:rewrite", state: model.StateStarting, desired: model.DesiredRunning, version: 4, step: StepResuming}
	rolledBack := func(code string, state model.State) want {
		return want{op: "pullback:rollback", state: state, desired: model.DesiredRunning, version: 3, step: "-", code: code}
	}
	progress := Facts{Progress: map[string]int64{"s": 90}}
	cases := []struct {
		state model.State
		facts Facts
		j     *Journal
		want  want
	}{
		{model.StateCreated, progress, stopping, rewrite},
		{model.StateStarting, progress, stopping, want{}},
		{model.StateRunning, progress, stopping, want{}},
		{model.StateStopping, progress, stopping, want{}},
		{model.StateStopped, progress, stopping, rewrite},
		{model.StateException, progress, stopping, rewrite},
		{model.StateFinished, progress, stopping, rewrite},
		{model.StateDeleted, progress, stopping, rolledBack(model.CodePullbackRolledBack, model.StateDeleted)},
		// The stop made progress 40 durable: 50 is forward now.
		{model.StateStopped, Facts{Progress: map[string]int64{"s": 40}}, stopping, rolledBack(model.CodeCheckpointForward, model.StateStarting)},
		// No progress: the configured checkpoint (100) is the baseline.
		{model.StateStopped, Facts{}, stopping, rewrite},
		{model.StateStopped, Facts{}, &Journal{Op: OpPullback, Step: StepStopping, Target: map[string]int64{"s": 150}, DesiredBefore: model.DesiredStopped},
			want{op: "pullback:rollback", state: model.StateStopped, desired: model.DesiredStopped, step: "-", code: model.CodeCheckpointForward}},
		// Forced: forward on purpose.
		{model.StateStopped, Facts{Progress: map[string]int64{"s": 40}},
			&Journal{Op: OpPullback, Step: StepStopping, Target: map[string]int64{"s": 50}, DesiredBefore: model.DesiredRunning, Force: true}, rewrite},
	}
	resuming := &Journal{Op: OpPullback, Step: StepResuming, Target: map[string]int64{"s": 50}, DesiredBefore: model.DesiredRunning, AuditID: 7}
	for _, c := range []struct {
		state model.State
		want  want
	}{
		{model.StateCreated, want{}},
		{model.StateStarting, want{}},
		{model.StateRunning, want{op: "pullback:done", state: model.StateRunning, step: "-", code: "ok"}},
		{model.StateStopping, want{}},
		{model.StateStopped, want{}},
		{model.StateException, want{op: "pullback:done", state: model.StateException, step: "-", code: model.CodeTaskException}},
		{model.StateFinished, want{op: "pullback:done", state: model.StateFinished, step: "-", code: "ok"}},
		{model.StateDeleted, want{}},
	} {
		cases = append(cases, struct {
			state model.State
			facts Facts
			j     *Journal
			want  want
		}{c.state, Facts{}, resuming, c.want})
	}
	for _, c := range cases {
		tk := task(c.state, model.DesiredStopped, c.j)
		name := c.j.Step + "/" + string(c.state)
		got := Advance(tk, c.j, c.facts)
		check(t, name, got, c.want)
		if c.want.op == "pullback:rewrite" {
			cfg, _ := got.Next.ParsedConfig()
			if cp := cfg.Get("source", "checkpoint"); cp != `{"s":"50"}` {
				t.Errorf("%s: checkpoint rewritten to %s", name, cp)
			}
			if len(got.Reset) != 1 || got.Reset[0] != "s" || got.Incarnation != OpPullback {
				t.Errorf("%s: effects %+v", name, got)
			}
		}
	}
	// The last version cannot be bumped.
	tk := task(model.StateStopped, model.DesiredStopped, stopping)
	tk.Version = model.MaxVersion
	check(t, "last version", Advance(tk, stopping, progress), want{op: "pullback:rollback", step: "-", code: model.CodePullbackRolledBack})
}

// TestMigrateSteps: every state at every step of a migrate.
func TestMigrateSteps(t *testing.T) {
	stopping := &Journal{Op: OpMigrate, Step: StepStopping, From: nodeA, To: nodeB, DesiredBefore: model.DesiredRunning, AuditID: 9}
	alive := Facts{FromAlive: true, ToAlive: true, ToState: "alive"}
	rebound := want{op: "migrate:rebind", state: model.StateStarting, desired: model.DesiredRunning, version: 4, node: nodeB, step: StepStarting}
	cases := []struct {
		name  string
		state model.State
		facts Facts
		j     *Journal
		want  want
	}{
		{"stopping", model.StateCreated, alive, stopping, rebound},
		{"stopping", model.StateStarting, alive, stopping, want{}},
		{"stopping", model.StateRunning, alive, stopping, want{}},
		{"stopping", model.StateStopping, alive, stopping, want{}},
		{"stopping", model.StateStopped, alive, stopping, rebound},
		{"stopping", model.StateException, alive, stopping, rebound},
		{"stopping", model.StateFinished, alive, stopping, want{op: "migrate:rebind", state: model.StateFinished, version: 4, node: nodeB, step: "-", code: "ok"}},
		{"stopping", model.StateDeleted, alive, stopping, want{op: "migrate:rollback", state: model.StateDeleted, version: 3, node: nodeA, step: "-", code: model.CodeMigrateRolledBack}},
		{"stopping, target dead", model.StateStopped, Facts{FromAlive: true, ToState: "dead"}, stopping,
			want{op: "migrate:rollback", state: model.StateStarting, desired: model.DesiredRunning, version: 3, node: nodeA, step: "-", code: model.CodeMigrateRolledBack}},
		{"stopping, was stopped", model.StateStopped, alive, &Journal{Op: OpMigrate, Step: StepStopping, From: nodeA, To: nodeB, DesiredBefore: model.DesiredStopped},
			want{op: "migrate:rebind", state: model.StateStopped, desired: model.DesiredStopped, version: 4, node: nodeB, step: "-", code: "ok"}},
	}
	starting := &Journal{Op: OpMigrate, Step: StepStarting, From: nodeA, To: nodeB, DesiredBefore: model.DesiredRunning, AuditID: 9}
	back := want{op: "migrate:rollback", state: model.StateStarting, desired: model.DesiredRunning, version: 4, node: nodeA, step: "-", code: model.CodeMigrateRolledBack}
	for _, c := range []struct {
		state model.State
		facts Facts
		want  want
	}{
		{model.StateCreated, alive, want{op: "migrate:done", step: "-", code: "ok"}},
		{model.StateStarting, alive, want{}},
		{model.StateRunning, alive, want{}}, // no heartbeat after RUNNING yet
		{model.StateRunning, Facts{FromAlive: true, ToAlive: true, Beat: true}, want{op: "migrate:done", state: model.StateRunning, version: 3, step: "-", code: "ok"}},
		{model.StateStopping, alive, want{}},
		{model.StateStopped, alive, want{op: "migrate:done", state: model.StateStopped, step: "-", code: "ok"}},
		{model.StateException, alive, back},
		{model.StateException, Facts{ToAlive: true}, want{op: "migrate:rollback", state: model.StateException, version: 3, node: nodeA, step: "-", code: model.CodeMigrateRolledBack}},
		{model.StateFinished, alive, want{op: "migrate:done", state: model.StateFinished, step: "-", code: "ok"}},
		{model.StateDeleted, alive, want{op: "migrate:done", state: model.StateDeleted, step: "-", code: "ok"}},
	} {
		cases = append(cases, struct {
			name  string
			state model.State
			facts Facts
			j     *Journal
			want  want
		}{"starting", c.state, c.facts, starting, c.want})
	}
	for _, c := range cases {
		tk := task(c.state, model.DesiredStopped, c.j)
		got := Advance(tk, c.j, c.facts)
		check(t, c.name+"/"+string(c.state), got, c.want)
		if got.Op == "migrate:rebind" && (!got.Rebind || got.Incarnation != OpMigrate || got.Wake != nodeB) {
			t.Errorf("%s/%s: effects %+v", c.name, c.state, got)
		}
	}
	// A target that died while starting the task: back to a live old node.
	tk := task(model.StateStarting, model.DesiredRunning, starting)
	tk.Node = nodeB
	check(t, "target died while starting", RollbackMigrate(tk, starting, Facts{FromAlive: true}, errDied), back)
}

var errDied = errString("target died")

type errString string

func (e errString) Error() string { return string(e) }

// TestUnknownJournal: an unknown operation is left alone; an unreadable
// journal is dropped.
func TestUnknownJournal(t *testing.T) {
	j := &Journal{Op: "resize", Step: StepStopping}
	if got := Advance(task(model.StateStopped, model.DesiredStopped, j), j, Facts{}); got.Next != nil {
		t.Fatalf("an unknown operation advanced: %+v", got)
	}
	if _, err := Decode("{"); err == nil {
		t.Fatal("an unreadable journal decoded")
	}
	got := drop(task(model.StateStopped, model.DesiredStopped, j))
	if got.Next == nil || got.Next.Journal != "" || got.Op != "journal:dropped" {
		t.Fatalf("drop = %+v", got)
	}
}
