package mysql

import (
	"context"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	if newThrottle(0) != nil {
		t.Fatal("rate 0 must not throttle")
	}
	th := newThrottle(1000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < 4; i++ {
		if err := th.wait(ctx, 50); err != nil { // 200 rows at 1000/s: the last waits 150 ms
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 140*time.Millisecond || d > 2*time.Second {
		t.Errorf("4x50 rows at 1000 rows/s took %v", d)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	slow := newThrottle(1)
	if err := slow.wait(short, 10000); err != nil {
		t.Fatal(err) // the first reservation passes at once
	}
	if err := slow.wait(short, 1); err == nil { // queued 10000 s behind it
		t.Error("wait past the deadline returned nil")
	}
}
