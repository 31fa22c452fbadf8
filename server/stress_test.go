package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// legalAny reports whether some event of the transition table moves a task
// from one state to the other, or leaves it: what a pullback, which is
// several events, may write in one row.
func legalAny(from, to model.State) bool {
	if from == to {
		return true
	}
	for _, ev := range model.Events {
		for _, d := range []model.Desired{model.DesiredRunning, model.DesiredStopped, model.DesiredDeleted} {
			if next, err := model.Next(from, ev, d); err == nil && next == to {
				return true
			}
		}
	}
	return false
}

// TestConflictingClients: clients issue conflicting stops, resumes,
// updates and pullbacks on a few tasks at once, a bounded number each.
// Every answer is a success, a refusal (4xx) or a documented retryable
// 503/504; each client sees a task's version only grow; every audited
// state change is a transition of model's table. Run with -count=3.
func TestConflictingClients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{NoJobs: true})
		var comps []string
		for _, p := range []string{"ka", "kb", "kc"} {
			comp := p + "-incr_trans-1-0"
			body, _, _ := fileTask(t, comp, 5)
			n.OK(t, "POST", base+"create", body)
			comps = append(comps, comp)
		}
		const clients, opsEach = 6, 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), 42))
				seen := map[string]int64{}
				for i := range opsEach {
					comp := comps[rng.IntN(len(comps))]
					var env cmtest.Envelope
					switch op := rng.IntN(4); op {
					case 0:
						env = n.Do(t, "POST", base+"stop?timeout=20&taskName="+comp, nil)
					case 1:
						env = n.Do(t, "POST", base+"resume?timeout=20&taskName="+comp, nil)
					case 2:
						env = n.Do(t, "POST", base+"update?taskName="+comp, fmt.Sprintf(`{"sink":{"note":"c%d-%d"}}`, c, i))
					default:
						env = n.Do(t, "POST", base+"pullback?timeout=20&timestamp=101&taskName="+comp, nil)
					}
					mu.Lock()
					codes[fmt.Sprintf("%d %s", env.Status, env.Code())]++
					mu.Unlock()
					documented := env.Retryable != nil && *env.Retryable &&
						(env.Status == http.StatusServiceUnavailable || env.Status == http.StatusGatewayTimeout)
					if env.Status >= 500 && !documented {
						t.Errorf("client %d op %d on %s = %d %s", c, i, comp, env.Status, env.Raw)
					}
					d := n.Detail(t, comp)
					if d.Version < seen[comp] {
						t.Errorf("client %d saw %s at version %d after %d", c, comp, d.Version, seen[comp])
					}
					seen[comp] = d.Version
				}
			}()
		}
		wg.Wait()
		t.Logf("answers: %v", codes)
		rows, err := n.Store.ListAudit(context.Background(), model.AuditFilter{Components: comps, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rows {
			if a.Result == model.ResultFailure || a.StateBefore == "" {
				continue // a refusal leaves the state as it was
			}
			if !legal(a.StateBefore, a.StateAfter, a.Operation) && (!strings.HasPrefix(a.Operation, "pullback") || !legalAny(a.StateBefore, a.StateAfter)) {
				t.Errorf("audit row %d: %s %s -> %s is not a transition of the table", a.ID, a.Operation, a.StateBefore, a.StateAfter)
			}
		}
	})
}
