package taskmgr

import (
	"errors"
	"testing"

	"github.com/connector-manager/cm/model"
)

// TestStateChecksAnswerBusyWhileTransitional spells out, for every state,
// how each operator call's state check answers: it proceeds, it is refused
// as ILLEGAL_STATE, or, while the task is STARTING or STOPPING, it is
// TASK_BUSY (retry once the task settles), never ILLEGAL_STATE.
func TestStateChecksAnswerBusyWhileTransitional(t *testing.T) {
	const (
		ok      = "ok"
		busy    = "busy"
		illegal = "illegal"
	)
	classify := func(err error) string {
		var ite *model.IllegalTransitionError
		switch {
		case err == nil:
			return ok
		case errors.Is(err, ErrBusy):
			return busy
		case errors.As(err, &ite):
			return illegal
		}
		return "unexpected: " + err.Error()
	}
	event := func(ev model.Event) func(*model.Task) error {
		return func(tk *model.Task) error { return transition(tk, ev) }
	}
	calls := map[string]func(*model.Task) error{
		"resume":   event(model.EventResume),
		"restart":  event(model.EventRestart), // resume with pullBackFlag or restartFlag
		"pause":    event(model.EventPause),
		"stop":     event(model.EventStop),
		"delete":   event(model.EventDelete),
		"update":   func(tk *model.Task) error { return checkState(tk, "update", updateStates...) },
		"pullback": func(tk *model.Task) error { return checkState(tk, "pullback", pullbackStates...) },
	}
	want := map[model.State]map[string]string{
		model.StateCreated:   {"resume": ok, "restart": ok, "pause": ok, "stop": illegal, "delete": ok, "update": illegal, "pullback": ok},
		model.StateStarting:  {"resume": ok, "restart": busy, "pause": ok, "stop": ok, "delete": ok, "update": busy, "pullback": busy},
		model.StateRunning:   {"resume": ok, "restart": illegal, "pause": ok, "stop": ok, "delete": ok, "update": illegal, "pullback": ok},
		model.StatePaused:    {"resume": ok, "restart": illegal, "pause": ok, "stop": ok, "delete": ok, "update": illegal, "pullback": ok},
		model.StateStopping:  {"resume": busy, "restart": busy, "pause": busy, "stop": ok, "delete": ok, "update": busy, "pullback": busy},
		model.StateStopped:   {"resume": ok, "restart": ok, "pause": ok, "stop": ok, "delete": ok, "update": ok, "pullback": ok},
		model.StateException: {"resume": ok, "restart": ok, "pause": ok, "stop": ok, "delete": ok, "update": ok, "pullback": ok},
		model.StateFinished:  {"resume": illegal, "restart": ok, "pause": illegal, "stop": ok, "delete": ok, "update": illegal, "pullback": ok},
		model.StateDeleted:   {"resume": illegal, "restart": illegal, "pause": illegal, "stop": illegal, "delete": ok, "update": illegal, "pullback": illegal},
	}
	for _, s := range model.States {
		row, found := want[s]
		if !found {
			t.Errorf("state %s has no row", s)
			continue
		}
		for name, call := range calls {
			tk := &model.Task{Component: "p-incr_trans-1-0", State: s, Desired: model.DesiredStopped}
			got := classify(call(tk))
			if got != row[name] {
				t.Errorf("%s while %s: %s, want %s", name, s, got, row[name])
			}
			if s.Transitional() && got == illegal {
				t.Errorf("%s while %s answers ILLEGAL_STATE; a transitional state answers TASK_BUSY", name, s)
			}
		}
	}
}
