package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestRunningWhileTasksStart: Reconciler.Running is read from outside the
// reconciler (health, metrics) while runners start and exit; under -race
// this fails if the runner map is written without the lock.
func TestRunningWhileTasksStart(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			_ = n.Rec.Running()
			time.Sleep(time.Millisecond)
		}
	}()
	var names []string
	for i := 1; i <= 5; i++ {
		body, _, _ := fileTask(t, fmt.Sprintf("p_race-incr_trans-%d-0", i), 3)
		names = append(names, n.OK(t, "POST", base+"create", body).String())
	}
	for _, name := range names {
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	}
	close(done)
	wg.Wait()
	if got := n.Rec.Running(); got != 0 {
		t.Fatalf("Running = %d after every task stopped", got)
	}
}
