package taskmgr

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSerial: calls on one key run one at a time, calls on other keys do
// not wait for them, a wait ends with its context, and no key is kept once
// its calls are done.
func TestSerial(t *testing.T) {
	var s serial
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := s.acquire(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d calls on one key at once", most.Load())
	}

	release, err := s.acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.acquire(context.Background(), "b")
	if err != nil {
		t.Fatal("another key waited:", err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait past its context: %v", err)
	}
	release()
	if len(s.slots) != 0 {
		t.Fatalf("keys kept after their calls: %v", s.slots)
	}
}
