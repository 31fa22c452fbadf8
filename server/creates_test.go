package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/server"
)

// TestIndependentCreatesDoNotDeadlock: creates of different components,
// 8 at a time, all succeed on MariaDB; none loses a deadlock (error 1213)
// to another and answers 503.
func TestIndependentCreatesDoNotDeadlock(t *testing.T) {
	const workers, each = 8, 40
	// The rate limit is off: this measures the store, not the client's budget.
	n := cmtest.Start(t, dbtest.MySQLURL(t), cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
	body, _, _ := fileTask(t, "p_dl-incr_trans-1-0", 1)
	cfg := body["config"]
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				comp := fmt.Sprintf("p_dl%d-incr_trans-%d-0", w, i+1)
				env := n.Do(t, "POST", base+"create", map[string]any{"component": comp, "config": cfg, "start": false})
				if !env.IsSuccess {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s: %d %s", comp, env.Status, trim(env.Raw)))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d independent creates failed, e.g. %s", len(failed), workers*each, failed[0])
	}
}
