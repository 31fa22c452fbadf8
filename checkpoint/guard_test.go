package checkpoint

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestCheckPullback(t *testing.T) {
	now := time.Unix(1676300000, 0)
	cur := map[string]Position{
		"a": {Subtopic: "a", TS: 1676290000, Token: "binlog.000003:120"},
		"b": {Subtopic: "b", TS: 1676290000},
	}
	known := []string{"a", "b", "c"}
	oldest := map[string]int64{"a": 1676200000, "b": 1676200000}

	tests := []struct {
		name    string
		current map[string]Position
		target  map[string]int64
		known   []string
		oldest  map[string]int64
		force   bool
		want    error
		msg     string
	}{
		{name: "seed pullback", current: cur, target: map[string]int64{"a": 1676286000}, known: known, oldest: oldest},
		{name: "several subtopics", current: cur, target: map[string]int64{"a": 1676286000, "b": 1676280000}, known: known, oldest: oldest},
		{name: "to current progress", current: cur, target: map[string]int64{"a": 1676290000}, known: known, oldest: oldest},
		{name: "to oldest available", current: cur, target: map[string]int64{"a": 1676200000}, known: known, oldest: oldest},
		{name: "to now", target: map[string]int64{"c": 1676300000}, known: known},
		{name: "no current position", target: map[string]int64{"c": 1676299999}, known: known, oldest: oldest},
		{name: "nothing known skips the check", current: cur, target: map[string]int64{"zzz": 1676286000}},
		{name: "forward with force", current: cur, target: map[string]int64{"a": 1676295000}, known: known, oldest: oldest, force: true},

		{name: "empty target", current: cur, target: map[string]int64{}, known: known, want: ErrInvalid, msg: "no subtopics"},
		{name: "unknown subtopic", current: cur, target: map[string]int64{"a": 1, "x": 1676286000, "w": 1},
			known: known, want: ErrUnknownSubtopic, msg: `"w", "x"; the task reads "a", "b", "c"`},
		{name: "documentation placeholder", target: map[string]int64{"{subtopic}": 1676286000},
			known: known, want: ErrUnknownSubtopic, msg: `"{subtopic}"`},
		{name: "negative", target: map[string]int64{"a": -1}, known: known, want: ErrInvalid, msg: "negative"},
		{name: "milliseconds", target: map[string]int64{"a": 1676286000000}, known: known, want: ErrTimeUnit,
			msg: `subtopic "a": 1676286000000 looks like milliseconds; give unix seconds such as 1676286000`},
		{name: "in the future", current: cur, target: map[string]int64{"a": 1676300001}, known: known, want: ErrInFuture,
			msg: `subtopic "a": 1676300001`},
		{name: "future even with force", target: map[string]int64{"c": 1676300001}, force: true, want: ErrInFuture},
		{name: "out of range", current: cur, target: map[string]int64{"a": 1676199999}, known: known, oldest: oldest,
			want: ErrOutOfRange, msg: "oldest available time 1676200000"},
		{name: "out of range even with force", target: map[string]int64{"b": 0}, oldest: oldest, force: true, want: ErrOutOfRange},
		{name: "forward", current: cur, target: map[string]int64{"b": 1676290001}, known: known, oldest: oldest,
			want: ErrForward, msg: "force=true"},

		// Order: the most fundamental problem wins, whichever subtopic has it.
		{name: "unknown before future", target: map[string]int64{"a": 1676300001, "x": 1}, known: known, want: ErrUnknownSubtopic},
		{name: "unit before out of range", target: map[string]int64{"a": 1, "b": 1676286000000}, oldest: oldest, want: ErrTimeUnit},
		{name: "future before out of range", target: map[string]int64{"a": 1, "b": 1676300001}, oldest: oldest, want: ErrInFuture},
		{name: "out of range before forward", current: cur, target: map[string]int64{"a": 1676295000, "b": 1}, oldest: oldest,
			want: ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.target)
			err := CheckPullback(tt.current, tt.target, tt.known, tt.oldest, tt.force, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckPullback: %v", err)
				}
			} else {
				if !errors.Is(err, tt.want) {
					t.Fatalf("CheckPullback = %v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("CheckPullback error %q does not mention %q", err, tt.msg)
				}
			}
			if !maps.Equal(before, tt.target) {
				t.Errorf("CheckPullback changed its input: %v then %v", before, tt.target)
			}
		})
	}
}

func TestOutOfRangeError(t *testing.T) {
	now := time.Unix(1676300000, 0)
	err := CheckPullback(nil, map[string]int64{"p_493po": 1676286000}, nil,
		map[string]int64{"p_493po": 1676289600}, false, now)
	var oor *OutOfRangeError
	if !errors.As(err, &oor) {
		t.Fatalf("CheckPullback = %v, want *OutOfRangeError", err)
	}
	want := OutOfRangeError{Subtopic: "p_493po", Requested: 1676286000, Oldest: 1676289600}
	if *oor != want {
		t.Fatalf("OutOfRangeError = %+v, want %+v", *oor, want)
	}
	if !errors.Is(err, ErrOutOfRange) {
		t.Fatal("errors.Is(OutOfRangeError, ErrOutOfRange) = false")
	}
	wrapped := errors.Join(errors.New("pulling back"), err)
	if !errors.Is(wrapped, ErrOutOfRange) {
		t.Fatal("a wrapped *OutOfRangeError is not ErrOutOfRange")
	}
	for _, part := range []string{"p_493po", "1676289600", "2023-02-13 12:00:00 UTC", "1676286000", "2023-02-13 11:00:00 UTC"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("OutOfRangeError %q does not mention %q", err, part)
		}
	}
}
