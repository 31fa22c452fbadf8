package model

import "fmt"

// State is the observed state of a task: what its runner last reported, or the
// transitional state an operator's call put it in while the owning node converges.
type State string

// The states the API reports. DELETED tasks are kept as history.
const (
	StateCreated   State = "CREATED"
	StateStarting  State = "STARTING"
	StateRunning   State = "RUNNING"
	StatePaused    State = "PAUSED"
	StateStopping  State = "STOPPING"
	StateStopped   State = "STOPPED"
	StateException State = "EXCEPTION"
	StateFinished  State = "FINISHED"
	StateDeleted   State = "DELETED"
)

// States lists every state, in diagram order.
var States = []State{
	StateCreated, StateStarting, StateRunning, StatePaused, StateStopping,
	StateStopped, StateException, StateFinished, StateDeleted,
}

// Desired is what an operator asked for. Only the API writes it; the owning
// node's reconciler drives runners until the observed state matches it.
type Desired string

// Desired states.
const (
	DesiredRunning Desired = "RUNNING"
	DesiredPaused  Desired = "PAUSED"
	DesiredStopped Desired = "STOPPED"
	DesiredDeleted Desired = "DELETED"
)

// Event is what moves a task from one state to another: an operator's call or
// a runner's report.
type Event string

// Operator events (written by the API) and runtime events (written by the
// reconciler of the owning node).
const (
	EventResume  Event = "resume"  // operator: run (also create with start=true)
	EventRestart Event = "restart" // operator: resume with restartFlag/pullBackFlag; new incarnation
	EventPause   Event = "pause"   // operator: hold still, keeping the runner, its resources and its position
	EventStop    Event = "stop"    // operator: stop and keep the checkpoint
	EventDelete  Event = "delete"  // operator: stop if needed, then keep as history
	EventStarted Event = "started" // runtime: runner is up
	EventStopped Event = "stopped" // runtime: runner exited and its checkpoint is durable
	EventFailed  Event = "failed"  // runtime: runner or connector failed
	EventDone    Event = "done"    // runtime: a full import completed
	EventPaused  Event = "paused"  // runtime: the runner holds still and its checkpoint is durable
)

// Events lists every event.
var Events = []Event{
	EventResume, EventRestart, EventPause, EventStop, EventDelete,
	EventStarted, EventStopped, EventFailed, EventDone, EventPaused,
}

// transitions is the one table of legal state changes. A missing entry is
// illegal. An entry whose target equals its source is an idempotent no-op.
//
// delete from a state with a live runner goes to STOPPING; the reconciler
// completes it with EventStopped, which lands in DELETED because the desired
// state is DELETED (see Next).
//
// pause sets the desired state PAUSED and leaves a live runner's state alone
// (a task that has none starts, as for resume): the task is PAUSED only once
// its runner reports that it holds still with its checkpoint durable
// (EventPaused). A paused task keeps its runner, so resume goes through
// STARTING again and the runner reports EventStarted when data moves.
var transitions = map[State]map[Event]State{
	StateCreated: {
		EventResume:  StateStarting,
		EventRestart: StateStarting,
		EventPause:   StateStarting,
		EventDelete:  StateDeleted,
	},
	StateStarting: {
		EventResume:  StateStarting,
		EventPause:   StateStarting,
		EventPaused:  StatePaused,
		EventStop:    StateStopping,
		EventDelete:  StateStopping,
		EventStarted: StateRunning,
		EventStopped: StateStopped,
		EventFailed:  StateException,
		EventDone:    StateFinished,
	},
	StateRunning: {
		EventResume:  StateRunning,
		EventPause:   StateRunning,
		EventPaused:  StatePaused,
		EventStop:    StateStopping,
		EventDelete:  StateStopping,
		EventStopped: StateStopped,
		EventFailed:  StateException,
		EventDone:    StateFinished,
	},
	StatePaused: {
		EventResume:  StateStarting,
		EventPause:   StatePaused,
		EventPaused:  StatePaused,
		EventStop:    StateStopping,
		EventDelete:  StateStopping,
		EventStopped: StateStopped,
		EventFailed:  StateException,
	},
	StateStopping: {
		EventStop:    StateStopping,
		EventDelete:  StateStopping,
		EventStopped: StateStopped,
		EventFailed:  StateException,
		EventDone:    StateFinished,
	},
	StateStopped: {
		EventResume:  StateStarting,
		EventRestart: StateStarting,
		EventPause:   StateStarting,
		EventStop:    StateStopped,
		EventDelete:  StateDeleted,
	},
	StateException: {
		EventResume:  StateStarting,
		EventRestart: StateStarting,
		EventPause:   StateStarting,
		EventStop:    StateStopping,
		EventDelete:  StateStopping,
		EventStopped: StateStopped,
		EventFailed:  StateException,
	},
	StateFinished: {
		EventRestart: StateStarting,
		EventStop:    StateFinished,
		EventDelete:  StateDeleted,
	},
	StateDeleted: {
		EventDelete: StateDeleted,
	},
}

// Next returns the state that event moves a task in state from to, or an
// *IllegalTransitionError. A runner that stops while the operator asked for
// deletion lands in DELETED.
func Next(from State, ev Event, desired Desired) (State, error) {
	to, ok := transitions[from][ev]
	if !ok {
		return from, newIllegalTransition(from, ev)
	}
	if to == StateStopped && desired == DesiredDeleted {
		return StateDeleted, nil
	}
	return to, nil
}

// DesiredAfter is the desired state an operator event sets; runtime events
// leave it alone (ok is false).
func DesiredAfter(ev Event) (d Desired, ok bool) {
	switch ev {
	case EventResume, EventRestart:
		return DesiredRunning, true
	case EventPause:
		return DesiredPaused, true
	case EventStop:
		return DesiredStopped, true
	case EventDelete:
		return DesiredDeleted, true
	case EventStarted, EventStopped, EventFailed, EventDone, EventPaused:
		return "", false
	}
	return "", false
}

// Transitional reports whether a runner may be alive in state s, so the owning
// node still has work to do before the task is quiet.
func (s State) Transitional() bool {
	switch s {
	case StateStarting, StateStopping:
		return true
	case StateCreated, StateRunning, StatePaused, StateStopped, StateException, StateFinished, StateDeleted:
		return false
	}
	return false
}

// Active reports whether the owning node should have a runner for a task in s.
func (s State) Active() bool {
	switch s {
	case StateStarting, StateRunning, StatePaused, StateStopping:
		return true
	case StateCreated, StateStopped, StateException, StateFinished, StateDeleted:
		return false
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// ParseState parses a state name as the API reports it.
func ParseState(v string) (State, error) {
	s := State(v)
	if !s.Valid() {
		return "", fmt.Errorf("%w: unknown state %q", ErrInvalidArgument, v)
	}
	return s, nil
}

// Apply moves t by ev through the transition table: its state, and for an
// operator event its desired state. It is the one function that changes a
// task's state fields; a task that (re)starts drops its error details. An
// illegal event is an *IllegalTransitionError and leaves t alone.
func (t *Task) Apply(ev Event) error {
	d, operator := DesiredAfter(ev)
	desired := t.Desired
	if operator {
		desired = d
	}
	to, err := Next(t.State, ev, desired)
	if err != nil {
		return err
	}
	t.Desired = desired
	if to == StateStarting {
		t.SetErrors(nil)
	}
	t.State = to
	return nil
}
