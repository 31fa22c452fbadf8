// Package view is the read side of the task manager: task details and lists
// (with progress, heartbeats and the restart history), the audit log,
// health for cron and monitoring, and the cluster and job views. It reads
// the store and writes nothing.
package view

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/params"
)

// TaskView is what detail answers: the task as an operator sees it, secrets masked.
type TaskView struct {
	TaskName     string              `json:"taskName"`
	Component    string              `json:"component"`
	Project      string              `json:"project"`
	Type         model.TaskType      `json:"type"`
	Node         model.NodeID        `json:"node"`
	Version      int64               `json:"version"`
	State        model.State         `json:"state"`
	DesiredState model.Desired       `json:"desiredState"`
	Config       model.Config        `json:"config"`
	Checkpoint   map[string]Progress `json:"checkpoint"`
	// Delay is how far the task is behind its source, in seconds: what
	// its running source reported (0 when idle at the source's head) while
	// that report is fresh, else now minus the oldest checkpoint;
	// DelaySource says which (model.DelayFromSource, DelayFromCheckpoint).
	Delay        *int64              `json:"delay"`
	DelaySource  string              `json:"delaySource,omitempty"`
	Heartbeat    *time.Time          `json:"heartbeat"`
	Metrics      map[string]float64  `json:"metrics,omitempty"`
	ErrorDetails []model.ErrorDetail `json:"errorDetails"`
	Operation    *JournalView        `json:"operation,omitempty"`
	// Restarts are the automatic restarts of the task, newest first.
	Restarts  []Restart `json:"restarts"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Progress is the durable checkpoint of one subtopic.
type Progress struct {
	TS int64 `json:"ts"`
	// Time is TS in RFC 3339, UTC: "2023-02-13T11:00:00Z".
	Time  string `json:"time"`
	Token string `json:"token,omitempty"`
	// Delay is now minus TS in seconds, but at most the delay the running
	// source reported for the task.
	Delay     int64     `json:"delay"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Restart is one automatic restart, from the audit log.
type Restart struct {
	At        time.Time `json:"at"`
	Task      string    `json:"task"`
	Attempt   int       `json:"attempt"`
	Wait      string    `json:"wait"`
	LastError string    `json:"lastError,omitempty"`
}

// maxRestartsShown bounds the restart history in a view.
const maxRestartsShown = 20

// Service answers the read side of the API: task details and lists, the
// audit log, health, and the cluster and job views. It writes nothing.
type Service struct {
	store  *model.Store
	params *params.Service
	nodes  *cluster.Nodes
	now    func() time.Time
}

// New builds the read service.
func New(store *model.Store, ps *params.Service, nodes *cluster.Nodes) *Service {
	return &Service{store: store, params: ps, nodes: nodes, now: time.Now}
}

// JournalView shows an operation in flight.
type JournalView struct {
	Op   string `json:"op"`
	Step string `json:"step"`
}

// Detail answers for the current incarnation of what ref names.
func (m *Service) Detail(ctx context.Context, ref string) (*TaskView, error) {
	r, err := model.ParseTaskRef(ref)
	if err != nil {
		return nil, err
	}
	// The task, its checkpoints and its heartbeat in one read.
	t, cps, hb, err := m.store.TaskWithProgress(ctx, r.Component.String())
	if err := taskmgr.CheckRef(r, t, err, false); err != nil {
		return nil, err
	}
	hbs := map[string]model.Heartbeat{}
	if hb != nil {
		hbs[t.Component] = *hb
	}
	views, err := m.viewsOf(ctx, []model.Task{*t}, map[string][]model.Checkpoint{t.Component: cps}, hbs)
	if err != nil {
		return nil, err
	}
	return &views[0], nil
}

// ListQuery selects tasks for batchDetail.
type ListQuery struct {
	Refs    []string
	State   string
	Node    string
	Project string
	Page    int // from 1
	Size    int
}

// parseState reads batchDetail's state filter. A value that is no state is
// refused with the list of states, spelled as the API spells them, so the
// caller sees what to send (state=running is refused: the states are upper
// case, as detail shows them).
func parseState(v string) (model.State, error) {
	s, err := model.ParseState(v)
	if err == nil {
		return s, nil
	}
	names := make([]string, len(model.States))
	for i, st := range model.States {
		names[i] = string(st)
	}
	hint := ""
	if st := model.State(strings.ToUpper(v)); st.Valid() {
		hint = fmt.Sprintf(" (states are upper case: state=%s)", st)
	}
	return "", fmt.Errorf("%w: state=%q is not a state; use one of %s%s", model.ErrInvalidArgument, v, strings.Join(names, ", "), hint)
}

// MaxPageSize bounds batchDetail pages.
const MaxPageSize = 500

// List answers batchDetail.
func (m *Service) List(ctx context.Context, q ListQuery) ([]TaskView, int64, error) {
	f := model.TaskFilter{Project: q.Project}
	for _, ref := range q.Refs {
		r, err := model.ParseTaskRef(ref)
		if err != nil {
			return nil, 0, err
		}
		f.Components = append(f.Components, r.Component.String())
		f.IncludeDeleted = true
	}
	if q.State != "" {
		s, err := parseState(q.State)
		if err != nil {
			return nil, 0, err
		}
		f.States = []model.State{s}
	}
	if q.Node != "" {
		n, err := model.ParseNodeID(q.Node)
		if err != nil {
			return nil, 0, err
		}
		f.Node = n
	}
	if q.Size <= 0 {
		q.Size = 50
	}
	if q.Size > MaxPageSize {
		return nil, 0, fmt.Errorf("%w: size must be at most %d", model.ErrInvalidArgument, MaxPageSize)
	}
	if q.Page <= 0 {
		q.Page = 1
	}
	f.Offset, f.Limit = (q.Page-1)*q.Size, q.Size
	tasks, total, err := m.store.ListTasks(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	views, err := m.views(ctx, tasks)
	return views, total, err
}

func (m *Service) views(ctx context.Context, tasks []model.Task) ([]TaskView, error) {
	comps := make([]string, len(tasks))
	for i, t := range tasks {
		comps[i] = t.Component
	}
	cps, hbs, err := m.store.ProgressOf(ctx, comps)
	if err != nil {
		return nil, err
	}
	return m.viewsOf(ctx, tasks, cps, hbs)
}

// viewsOf builds the views of tasks from their progress, reading their
// automatic restarts and the parameters.
func (m *Service) viewsOf(ctx context.Context, tasks []model.Task, cps map[string][]model.Checkpoint, hbs map[string]model.Heartbeat) ([]TaskView, error) {
	// The restarts' audit rows, of the tasks that have had any.
	var comps []string
	for _, t := range tasks {
		if t.AutoRestarts > 0 {
			comps = append(comps, t.Component)
		}
	}
	var rows []model.Audit
	if len(comps) > 0 {
		var err error
		if rows, err = m.store.ListAudit(ctx, model.AuditFilter{Components: comps, Operation: model.OpAutoRestart, Limit: maxRestartsShown * len(comps)}); err != nil {
			return nil, err
		}
	}
	restarts := map[string][]Restart{}
	for _, a := range rows {
		if a.Result == model.ResultFailure || len(restarts[a.Component]) >= maxRestartsShown {
			continue
		}
		var d struct {
			Attempt   int    `json:"attempt"`
			Wait      string `json:"wait"`
			LastError string `json:"lastError"`
		}
		_ = json.Unmarshal([]byte(a.Detail), &d)
		restarts[a.Component] = append(restarts[a.Component], Restart{At: a.At, Task: a.TaskAfter, Attempt: d.Attempt, Wait: d.Wait, LastError: d.LastError})
	}
	set, err := m.params.Recent(ctx)
	if err != nil {
		return nil, err
	}
	fresh := set.Duration(params.HeartbeatStaleAfter)
	now := m.now()
	out := make([]TaskView, 0, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		cfg, err := t.ParsedConfig()
		if err != nil {
			return nil, err
		}
		v := TaskView{
			TaskName: t.Name().String(), Component: t.Component, Project: t.Project, Type: t.Type,
			Node: t.Node, Version: t.Version, State: t.State, DesiredState: t.Desired,
			Config: cfg.Masked(), Checkpoint: map[string]Progress{},
			CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Restarts: restarts[t.Component],
		}
		if errs := t.Errors(); len(errs) > 0 {
			// Built only when there is something to scrub: it costs a
			// pass over the config's values.
			v.ErrorDetails = model.ScrubberOf(cfg).Details(errs)
		}
		if v.Restarts == nil {
			v.Restarts = []Restart{}
		}
		if v.ErrorDetails == nil {
			v.ErrorDetails = []model.ErrorDetail{}
		}
		var hb *model.Heartbeat
		if b, ok := hbs[t.Component]; ok {
			hb = &b
		}
		if d, from, ok := model.TaskDelay(t, cps[t.Component], hb, now, fresh); ok {
			secs := int64(d / time.Second)
			v.Delay, v.DelaySource = &secs, from
		}
		for _, c := range cps[t.Component] {
			if c.Version != t.Version {
				continue
			}
			d := now.Unix() - c.TS
			if v.DelaySource == model.DelayFromSource {
				d = min(d, *v.Delay)
			}
			v.Checkpoint[c.Subtopic] = Progress{TS: c.TS, Time: time.Unix(c.TS, 0).UTC().Format(time.RFC3339), Token: c.Token, Delay: d, UpdatedAt: c.UpdatedAt}
		}
		if hb != nil && hb.Version == t.Version {
			at := hb.At
			v.Heartbeat = &at
			if hb.Metrics != "" {
				_ = json.Unmarshal([]byte(hb.Metrics), &v.Metrics)
			}
		}
		if t.Journal != "" {
			var j JournalView
			if json.Unmarshal([]byte(t.Journal), &j) == nil {
				v.Operation = &j
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// DDLHistory lists the schema statements the task's sink applied, oldest
// first, across its incarnations (docs/connectors.md, "DDL"); the
// statements are scrubbed of the task's secrets.
func (m *Service) DDLHistory(ctx context.Context, ref string) ([]model.AppliedDDL, error) {
	t, err := taskmgr.Resolve(ctx, m.store, ref, false)
	if err != nil {
		return nil, err
	}
	rows, err := m.store.DDLHistory(ctx, t.Component)
	if err != nil {
		return nil, err
	}
	cfg, _ := t.ParsedConfig()
	scrub := model.ScrubberOf(cfg)
	for i := range rows {
		rows[i].Statement, rows[i].Applied = scrub.String(rows[i].Statement), scrub.String(rows[i].Applied)
	}
	return rows, nil
}

// Operations lists the audit rows of a component's whole history (any
// incarnation), or of everything when ref is empty; newest first.
func (m *Service) Operations(ctx context.Context, ref string, since time.Time, limit int) ([]model.Audit, error) {
	f := model.AuditFilter{Since: since, Limit: limit}
	if ref != "" {
		r, err := model.ParseTaskRef(ref)
		if err != nil {
			return nil, err
		}
		f.Component = r.Component.String()
	}
	if limit > 1000 {
		return nil, fmt.Errorf("%w: limit must be at most 1000", model.ErrInvalidArgument)
	}
	return m.store.ListAudit(ctx, f)
}
