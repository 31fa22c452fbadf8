package model

import (
	"errors"
	"testing"
)

// TestTransitionsExhaustive spells out the expected outcome of every event in
// every state. "-" is illegal.
func TestTransitionsExhaustive(t *testing.T) {
	const x = State("-")
	cols := []Event{EventResume, EventRestart, EventPause, EventStop, EventDelete, EventStarted, EventStopped, EventFailed, EventDone, EventPaused}
	want := map[State][]State{
		//               resume         restart        pause          stop           delete         started       stopped       failed          done           paused
		StateCreated:   {StateStarting, StateStarting, StateStarting, x, StateDeleted, x, x, x, x, x},
		StateStarting:  {StateStarting, x, StateStarting, StateStopping, StateStopping, StateRunning, StateStopped, StateException, StateFinished, StatePaused},
		StateRunning:   {StateRunning, x, StateRunning, StateStopping, StateStopping, x, StateStopped, StateException, StateFinished, StatePaused},
		StatePaused:    {StateStarting, x, StatePaused, StateStopping, StateStopping, x, StateStopped, StateException, x, StatePaused},
		StateStopping:  {x, x, x, StateStopping, StateStopping, x, StateStopped, StateException, StateFinished, x},
		StateStopped:   {StateStarting, StateStarting, StateStarting, StateStopped, StateDeleted, x, x, x, x, x},
		StateException: {StateStarting, StateStarting, StateStarting, StateStopping, StateStopping, x, StateStopped, StateException, x, x},
		StateFinished:  {x, StateStarting, x, StateFinished, StateDeleted, x, x, x, x, x},
		StateDeleted:   {x, x, x, x, StateDeleted, x, x, x, x, x},
	}
	if len(want) != len(States) || len(cols) != len(Events) {
		t.Fatalf("table covers %d states and %d events; model has %d and %d", len(want), len(cols), len(States), len(Events))
	}
	for _, from := range States {
		row, ok := want[from]
		if !ok {
			t.Fatalf("no expectations for %s", from)
		}
		for i, ev := range cols {
			got, err := Next(from, ev, DesiredRunning)
			if row[i] == x {
				var ite *IllegalTransitionError
				if !errors.As(err, &ite) || ite.From != from {
					t.Errorf("%s --%s--> %s, want illegal", from, ev, got)
				}
				continue
			}
			if err != nil || got != row[i] {
				t.Errorf("%s --%s--> %s (%v), want %s", from, ev, got, err, row[i])
			}
		}
	}
}

func TestStoppedWhileDeletingLandsInDeleted(t *testing.T) {
	for _, from := range []State{StateStarting, StateRunning, StateStopping, StateException} {
		got, err := Next(from, EventStopped, DesiredDeleted)
		if err != nil || got != StateDeleted {
			t.Errorf("%s stopped with desired DELETED -> %s, %v; want DELETED", from, got, err)
		}
	}
}

func TestDesiredAfter(t *testing.T) {
	cases := map[Event]Desired{EventResume: DesiredRunning, EventRestart: DesiredRunning, EventPause: DesiredPaused, EventStop: DesiredStopped, EventDelete: DesiredDeleted}
	for _, ev := range Events {
		d, ok := DesiredAfter(ev)
		want, operator := cases[ev]
		if ok != operator || d != want {
			t.Errorf("DesiredAfter(%s) = %q, %v; want %q, %v", ev, d, ok, want, operator)
		}
	}
}

func TestActiveAndTransitional(t *testing.T) {
	active := map[State]bool{StateStarting: true, StateRunning: true, StatePaused: true, StateStopping: true}
	transitional := map[State]bool{StateStarting: true, StateStopping: true}
	for _, s := range States {
		if s.Active() != active[s] || s.Transitional() != transitional[s] || !s.Valid() {
			t.Errorf("%s: active %v transitional %v valid %v", s, s.Active(), s.Transitional(), s.Valid())
		}
	}
	if State("NOPE").Valid() {
		t.Error("unknown state is valid")
	}
	if _, err := ParseState("running"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ParseState(lower case) = %v, want ErrInvalidArgument", err)
	}
}
