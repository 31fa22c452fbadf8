package kafkaconnect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/view"
)

// Kafka Connect's states (connector: all of them; task: all but STOPPED).
const (
	stateRunning    = "RUNNING"
	statePaused     = "PAUSED"
	stateStopped    = "STOPPED"
	stateFailed     = "FAILED"
	stateUnassigned = "UNASSIGNED"
)

// typeSource is the one type cm's connectors report: a task pulls from
// its source and delivers to its sink itself, which is what a Kafka
// Connect source connector does (docs/kafka-connect.md).
const typeSource = "source"

// Config keys Kafka Connect gives a meaning to.
const (
	keyName  = "name"
	keyClass = "connector.class"
)

// states maps a task's state to its connector's and its one task's Kafka
// Connect states; hasTask false means the connector shows no tasks, as a
// stopped Kafka Connect connector does.
func states(s model.State) (connector, task string, hasTask bool) {
	switch s {
	case model.StateRunning:
		return stateRunning, stateRunning, true
	case model.StateStarting:
		// Being assigned to its runner: Kafka Connect's word for a task
		// not yet started on a worker.
		return stateRunning, stateUnassigned, true
	case model.StatePaused:
		return statePaused, statePaused, true
	case model.StateException:
		return stateFailed, stateFailed, true
	case model.StateCreated, model.StateStopping, model.StateStopped, model.StateFinished, model.StateDeleted:
		return stateStopped, "", false
	default:
		return stateUnassigned, stateUnassigned, true
	}
}

// stateInfo is ConnectorStateInfo's connector part and each task's.
type stateInfo struct {
	ID       *int   `json:"id,omitempty"`
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
}

// connectorStatus is ConnectorStateInfo.
type connectorStatus struct {
	Name      string      `json:"name"`
	Connector stateInfo   `json:"connector"`
	Tasks     []stateInfo `json:"tasks"`
	Type      string      `json:"type"`
}

// taskID names one task of a connector.
type taskID struct {
	Connector string `json:"connector"`
	Task      int    `json:"task"`
}

// connectorInfo is ConnectorInfo.
type connectorInfo struct {
	Name   string            `json:"name"`
	Config map[string]string `json:"config"`
	Tasks  []taskID          `json:"tasks"`
	Type   string            `json:"type"`
}

// trace is the last error of a failed task, as Kafka Connect's stack
// trace field: code and message of each detail, oldest first.
func trace(v *view.TaskView) string {
	var b strings.Builder
	for _, d := range v.ErrorDetails {
		if d.Level == model.LevelWarning {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Code + ": " + d.Message)
	}
	return b.String()
}

func statusOf(v *view.TaskView) connectorStatus {
	cs, ts, hasTask := states(v.State)
	out := connectorStatus{Name: v.Component, Connector: stateInfo{State: cs, WorkerID: string(v.Node)}, Tasks: []stateInfo{}, Type: typeSource}
	if hasTask {
		id := 0
		t := stateInfo{ID: &id, State: ts, WorkerID: string(v.Node)}
		if ts == stateFailed {
			t.Trace = trace(v)
			out.Connector.Trace = t.Trace
		}
		out.Tasks = append(out.Tasks, t)
	}
	return out
}

func infoOf(v *view.TaskView) connectorInfo {
	out := connectorInfo{Name: v.Component, Config: flatten(v.Component, v.Config), Tasks: []taskID{}, Type: typeSource}
	if _, _, hasTask := states(v.State); hasTask {
		out.Tasks = append(out.Tasks, taskID{Connector: v.Component, Task: 0})
	}
	return out
}

// flatten is a task's config as Kafka Connect shows it: scope.key keys,
// plus name.
func flatten(name string, cfg model.Config) map[string]string {
	out := map[string]string{keyName: name}
	for scope, kv := range cfg {
		for k, v := range kv {
			out[scope+"."+k] = v
		}
	}
	return out
}

// flatConfig is a Kafka Connect config as sent: string values, and null
// for a key a PATCH removes. Numbers and booleans are taken as the text
// they were written as, as Kafka Connect's own JSON reader does.
type flatConfig map[string]*string

func (f *flatConfig) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(flatConfig, len(raw))
	for k, r := range raw {
		r = bytes.TrimSpace(r)
		switch {
		case len(r) == 0 || bytes.Equal(r, []byte("null")): // a RawMessage decodes null as nil
			out[k] = nil
		case len(r) > 0 && r[0] == '"':
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return err
			}
			out[k] = &s
		case len(r) > 0 && (r[0] == '{' || r[0] == '['):
			return fmt.Errorf("config %q: a value is a string, not an object or array", k)
		default:
			s := string(r)
			out[k] = &s
		}
	}
	*f = out
	return nil
}

// scoped turns a flat config into cm's scoped one. name, when present,
// must be the connector's; connector.class must be given, and be the
// component's type or a declared plugin; every other key is scope.key.
// A null value is refused (only PATCH removes keys).
func scoped(name string, flat flatConfig, plugins []string) (model.Config, error) {
	cfg := model.Config{}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := flat[k]
		if v == nil {
			return nil, badRequest(fmt.Sprintf("config %q is null: a null value removes a key only in PATCH /connectors/%s/config", k, name))
		}
		if k == keyName {
			if *v != name {
				return nil, badRequest(fmt.Sprintf("Connector name configuration (%s) doesn't match connector name in the URL (%s)", *v, name))
			}
			continue
		}
		scope, key, ok := strings.Cut(k, ".")
		if !ok || !model.ValidScope(scope) || !model.ValidKey(key) {
			return nil, badRequest(fmt.Sprintf("config key %q is not scope.key: cm's connectors take source.*, sink.* and other scope.key keys (docs/kafka-connect.md)", k))
		}
		cfg.Set(scope, key, *v)
	}
	if err := checkClass(name, cfg, plugins); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkClass checks connector.class: the component's type (incr_trans,
// full_trans), or a declared plugin, which the source must then run.
func checkClass(name string, cfg model.Config, plugins []string) error {
	class := cfg.Get("connector", "class")
	if class == "" {
		return badRequest(fmt.Sprintf("Connector config %s contains no connector type: give connector.class (the component's type, or a plugin)", name))
	}
	comp, err := model.ParseComponent(name)
	if err != nil {
		return badRequest(err.Error())
	}
	if class == string(comp.Type) {
		return nil
	}
	for _, p := range plugins {
		if p == class {
			if got := cfg.Get("source", "plugin"); got != class {
				return badRequest(fmt.Sprintf("connector.class %q is a plugin: the source must run it (source.type=process, source.plugin=%s), not %q", class, class, got))
			}
			return nil
		}
	}
	return badRequest(fmt.Sprintf("connector.class %q is neither the connector's type (%s) nor a declared plugin (GET /connector-plugins lists them)", class, comp.Type))
}

// component refuses a connector name that is not a component id
// (PROJECT-TYPE-N-M), for a call that would create it.
func component(name string) error {
	if _, err := model.ParseComponent(name); err != nil {
		return badRequest(fmt.Sprintf("connector name %q: cm names a connector by its component id, PROJECT-TYPE-N-M (TYPE incr_trans or full_trans), e.g. p_1-incr_trans-1-0", name))
	}
	return nil
}
