package view

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Health statuses, from best to worst.
const (
	HealthOK       = "healthy"
	HealthWarning  = "warning"
	HealthCritical = "critical"
)

// HealthQuery selects what health looks at. Zero fields select everything;
// MaxDelay overrides task.delay.threshold.
type HealthQuery struct {
	Project  string
	Node     string
	MaxDelay time.Duration
}

// HealthProblem is one reason the selection is not healthy.
type HealthProblem struct {
	Severity string       `json:"severity"` // warning or critical
	Code     string       `json:"code"`
	Task     string       `json:"task,omitempty"`
	Node     model.NodeID `json:"node,omitempty"`
	Message  string       `json:"message"`
}

// HealthReport answers the health endpoint.
type HealthReport struct {
	Status    string          `json:"status"`
	Healthy   bool            `json:"healthy"`
	CheckedAt time.Time       `json:"checkedAt"`
	Tasks     int             `json:"tasks"`
	Problems  []HealthProblem `json:"problems"`
}

// Health checks the selected tasks and their nodes: EXCEPTION, a stale
// heartbeat and a dead node are critical; a delay over the threshold and a
// suspect node are warnings. It reads the store directly, so it is right
// even when no job has run.
func (m *Service) Health(ctx context.Context, q HealthQuery) (*HealthReport, error) {
	f := model.TaskFilter{Project: q.Project}
	if q.Node != "" {
		n, err := model.ParseNodeID(q.Node)
		if err != nil {
			return nil, err
		}
		f.Node = n
	}
	if q.MaxDelay < 0 {
		return nil, fmt.Errorf("%w: maxDelay must not be negative", model.ErrInvalidArgument)
	}
	set, err := m.params.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	threshold := set.Duration(params.DelayThreshold)
	if q.MaxDelay > 0 {
		threshold = q.MaxDelay
	}
	stale := set.Duration(params.HeartbeatStaleAfter)
	states, err := m.nodes.States(ctx, cluster.LivenessOf(set))
	if err != nil {
		return nil, err
	}
	tasks, _, err := m.store.ListTasks(ctx, f)
	if err != nil {
		return nil, err
	}
	comps := model.Components(tasks)
	hbs, err := m.store.Heartbeats(ctx, comps)
	if err != nil {
		return nil, err
	}
	cps, err := m.store.CheckpointsOf(ctx, comps)
	if err != nil {
		return nil, err
	}
	now := m.now()
	r := &HealthReport{CheckedAt: now.UTC(), Tasks: len(tasks), Problems: []HealthProblem{}}
	add := func(sev, code string, t *model.Task, node model.NodeID, msg string) {
		p := HealthProblem{Severity: sev, Code: code, Node: node, Message: msg}
		if t != nil {
			p.Task = t.Name().String()
		}
		r.Problems = append(r.Problems, p)
	}
	nodeTasks := map[model.NodeID]int{}
	for i := range tasks {
		t := &tasks[i]
		wantRun := t.Desired == model.DesiredRunning || t.State.Active()
		if wantRun {
			nodeTasks[t.Node]++
		}
		switch t.State {
		case model.StateException:
			add(HealthCritical, model.CodeTaskException, t, t.Node, "the task is in EXCEPTION: "+t.LastError())
		case model.StateRunning, model.StatePaused:
			if cluster.StateOf(states, t.Node) == cluster.NodeDead {
				break // reported once per node below
			}
			last := t.UpdatedAt
			var hb *model.Heartbeat
			if b, ok := hbs[t.Component]; ok && b.Version == t.Version {
				last, hb = b.At, &b
			}
			if age := now.Sub(last); age > stale {
				add(HealthCritical, model.CodeHeartbeatStale, t, t.Node, fmt.Sprintf("no heartbeat for %s (task.heartbeat.staleAfter %s)",
					model.FormatDuration(age), model.FormatDuration(stale)))
			}
			// A paused task is behind by choice: its delay is not a problem.
			if d, from, ok := model.TaskDelay(t, cps[t.Component], hb, now, stale); ok && d > threshold && t.State == model.StateRunning {
				add(HealthWarning, model.CodeDelay, t, t.Node, fmt.Sprintf("%s exceeds %s", model.DelayWords(d, from), model.FormatDuration(threshold)))
			}
		case model.StateCreated, model.StateStarting, model.StateStopping, model.StateStopped, model.StateFinished, model.StateDeleted:
		}
		if t.State == model.StateRunning || t.State == model.StateStarting {
			// Warnings a running incarnation's connector raised (cleared
			// when the task starts again).
			for _, d := range t.Errors() {
				if d.Level == model.LevelWarning {
					add(HealthWarning, d.Code, t, t.Node, d.Message)
				}
			}
		}
	}
	nodes := make([]model.NodeID, 0, len(nodeTasks))
	for n := range nodeTasks {
		nodes = append(nodes, n)
	}
	if f.Node != "" && nodeTasks[f.Node] == 0 {
		nodes = append(nodes, f.Node)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i] < nodes[j] })
	for _, n := range nodes {
		switch cluster.StateOf(states, n) {
		case cluster.NodeDead:
			add(HealthCritical, model.CodeNodeDead, nil, n, fmt.Sprintf("node %s is dead and owns %d task(s) meant to run", n, nodeTasks[n]))
		case cluster.NodeSuspect:
			add(HealthWarning, model.CodeNodeSuspect, nil, n, fmt.Sprintf("node %s has not been seen for over node.suspectAfter", n))
		case cluster.NodeAlive:
		}
	}
	r.Status = HealthOK
	for _, p := range r.Problems {
		if p.Severity == HealthCritical {
			r.Status = HealthCritical
			break
		}
		r.Status = HealthWarning
	}
	r.Healthy = r.Status == HealthOK
	return r, nil
}

// NodeView is one node as the cluster view shows it.
type NodeView struct {
	ID        model.NodeID          `json:"id"`
	Addr      string                `json:"addr"`
	Version   string                `json:"version"`
	State     cluster.NodeState     `json:"state"`
	Leader    bool                  `json:"leader"`
	StartedAt time.Time             `json:"startedAt"`
	SeenAt    time.Time             `json:"seenAt"`
	Load      map[model.State]int64 `json:"load"`
	Total     int64                 `json:"total"`
	Tasks     []string              `json:"tasks"`
}

// ClusterView answers the nodes endpoint: every registered node with its
// state and load, plus tasks whose node is not registered.
type ClusterView struct {
	Leader       model.NodeID `json:"leader"`
	LeaseExpires *time.Time   `json:"leaseExpires"`
	Nodes        []NodeView   `json:"nodes"`
}

// Nodes lists the nodes, their state, load (tasks per state) and tasks.
func (m *Service) Nodes(ctx context.Context) (*ClusterView, error) {
	set, err := m.params.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	lv := cluster.LivenessOf(set)
	nodes, err := m.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	tasks, _, err := m.store.ListTasks(ctx, model.TaskFilter{})
	if err != nil {
		return nil, err
	}
	out := &ClusterView{Nodes: []NodeView{}}
	if l, err := m.store.GetLease(ctx, cluster.LeaderLease); err == nil && l.Expires().After(m.now()) {
		out.Leader = model.NodeID(l.Holder)
		exp := l.Expires().UTC()
		out.LeaseExpires = &exp
	} else if err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	idx := map[model.NodeID]int{}
	for _, n := range nodes {
		idx[n.ID] = len(out.Nodes)
		out.Nodes = append(out.Nodes, NodeView{ID: n.ID, Addr: n.Addr, Version: n.Version, State: lv.State(n.SeenAt, m.now()),
			Leader: n.ID == out.Leader, StartedAt: n.StartedAt, SeenAt: n.SeenAt, Load: map[model.State]int64{}, Tasks: []string{}})
	}
	for _, t := range tasks {
		i, ok := idx[t.Node]
		if !ok {
			// A task on a node that never registered here counts as dead.
			i = len(out.Nodes)
			idx[t.Node] = i
			out.Nodes = append(out.Nodes, NodeView{ID: t.Node, State: cluster.NodeDead, Load: map[model.State]int64{}, Tasks: []string{}})
		}
		v := &out.Nodes[i]
		v.Load[t.State]++
		v.Total++
		v.Tasks = append(v.Tasks, t.Name().String())
	}
	return out, nil
}

// JobView is one cluster-wide job and its last run.
type JobView struct {
	Name       string       `json:"name"`
	Schedule   string       `json:"schedule"`
	LastRun    *time.Time   `json:"lastRun"`
	Node       model.NodeID `json:"node,omitempty"`
	DurationMS int64        `json:"durationMs"`
	Result     string       `json:"result,omitempty"`
	Summary    string       `json:"summary,omitempty"`
	Error      string       `json:"error,omitempty"`
	Runs       int64        `json:"runs"`
}

// JobsView answers the jobs endpoint.
type JobsView struct {
	Leader model.NodeID `json:"leader"`
	Jobs   []JobView    `json:"jobs"`
}

// JobRuns lists the jobs with their schedule and last run.
func (m *Service) JobRuns(ctx context.Context) (*JobsView, error) {
	set, err := m.params.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	runs, err := m.store.JobRuns(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]model.JobRun{}
	for _, r := range runs {
		byName[r.Name] = r
	}
	out := &JobsView{Jobs: []JobView{}}
	if l, err := m.store.GetLease(ctx, cluster.LeaderLease); err == nil && l.Expires().After(m.now()) {
		out.Leader = model.NodeID(l.Holder)
	}
	for _, name := range params.Jobs() {
		v := JobView{Name: name, Schedule: set.Schedule(name)}
		if r, ok := byName[name]; ok {
			at := r.StartedAt
			v.LastRun, v.Node, v.DurationMS, v.Result, v.Summary, v.Error, v.Runs = &at, r.Node, r.DurationMS, r.Result, r.Summary, r.Error, r.Runs
		}
		out.Jobs = append(out.Jobs, v)
	}
	return out, nil
}
