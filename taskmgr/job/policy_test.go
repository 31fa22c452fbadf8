package job

import (
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

func TestRestartPolicyNext(t *testing.T) {
	p := restartPolicy{Initial: time.Second, Max: 10 * time.Second, MaxAttempts: 5, Window: time.Hour}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	transient := &model.ErrorDetail{Code: "PROCESS_EXITED"}
	cases := []struct {
		name     string
		p        restartPolicy
		attempts int
		err      *model.ErrorDetail
		wait     time.Duration
		ok       bool
	}{
		{"first attempt waits initial", p, 0, transient, time.Second, true},
		{"no error detail", p, 0, nil, time.Second, true},
		{"second doubles", p, 1, transient, 2 * time.Second, true},
		{"third doubles again", p, 2, transient, 4 * time.Second, true},
		{"capped at max", p, 4, transient, 10 * time.Second, true},
		{"budget spent", p, 5, transient, 0, false},
		{"over budget", p, 9, transient, 0, false},
		{"permanent flag", p, 0, &model.ErrorDetail{Code: "SRC_DENIED", Permanent: true}, 0, false},
		{"invalid config (permanent)", p, 0, &model.ErrorDetail{Code: model.CodeInvalidConfig, Permanent: true}, 0, false},
		{"a code alone is not permanence", p, 0, &model.ErrorDetail{Code: model.CodeInvalidConfig}, time.Second, true},
		{"negative attempts count as none", p, -1, transient, time.Second, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wait, ok := c.p.Next(c.attempts, c.err, at)
			if wait != c.wait || ok != c.ok {
				t.Fatalf("Next(%d) = %s %v, want %s %v", c.attempts, wait, ok, c.wait, c.ok)
			}
		})
	}
}

func TestRestartPolicyJitter(t *testing.T) {
	p := restartPolicy{Initial: time.Second, Max: time.Minute, MaxAttempts: 10, Jitter: 0.2}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		now := at.Add(time.Duration(i) * time.Millisecond)
		w, ok := p.Next(2, nil, now)
		if !ok || w < 3200*time.Millisecond || w > 4800*time.Millisecond {
			t.Fatalf("attempt 2 wait %s %v, want 4s ±20%%", w, ok)
		}
		if w2, _ := p.Next(2, nil, now); w2 != w {
			t.Fatalf("not pure: %s then %s", w, w2)
		}
		seen[w] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter barely varies: %d distinct waits of 50", len(seen))
	}
	if w, _ := p.Next(9, nil, at); w > time.Minute {
		t.Fatalf("jitter pushed the wait past max: %s", w)
	}
}
