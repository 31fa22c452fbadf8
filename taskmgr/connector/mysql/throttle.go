package mysql

import (
	"context"
	"sync"
	"time"
)

// throttle limits rows per second across all goroutines sharing it. A caller
// reserves n rows and waits until the reservation's slot: bursts are one
// batch, the long-run rate is rps. A nil *throttle never waits.
type throttle struct {
	mu   sync.Mutex
	rps  float64
	next time.Time // when the next reservation may start
}

func newThrottle(rps float64) *throttle {
	if rps <= 0 {
		return nil
	}
	return &throttle{rps: rps}
}

// wait blocks until n more rows may pass, or ctx ends.
func (t *throttle) wait(ctx context.Context, n int) error {
	if t == nil || n <= 0 {
		return nil
	}
	t.mu.Lock()
	now := time.Now()
	if t.next.Before(now) {
		t.next = now
	}
	at := t.next
	t.next = t.next.Add(time.Duration(float64(n) / t.rps * float64(time.Second)))
	t.mu.Unlock()

	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
