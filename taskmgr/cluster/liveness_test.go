package cluster

import (
	"testing"
	"time"
)

func TestLivenessState(t *testing.T) {
	lv := Liveness{SuspectAfter: 10 * time.Second, DeadAfter: 30 * time.Second}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		age  time.Duration
		want NodeState
	}{
		{0, NodeAlive}, {9 * time.Second, NodeAlive}, {10 * time.Second, NodeSuspect},
		{29 * time.Second, NodeSuspect}, {30 * time.Second, NodeDead}, {time.Hour, NodeDead}, {-time.Second, NodeAlive},
	}
	for _, c := range cases {
		if got := lv.State(now.Add(-c.age), now); got != c.want {
			t.Errorf("age %s: %s, want %s", c.age, got, c.want)
		}
	}
}
