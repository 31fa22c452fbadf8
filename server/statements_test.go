package server_test

import (
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestStatementBudgets counts the statements a detail, a stop and a resume
// of a file task cost the node's store, through the HTTP API, from the
// request until the answer: the handler's, and the runner's and the
// reconciler's that the call set off. The node's periodic work (reconcile
// pass, heartbeats, membership) runs on long intervals, and each call waits
// for the store to go quiet after the one before (a started runner's first
// checkpoint flush and heartbeat come after resume answers), so neither
// lands in a call's window. The budgets are docs/design.md "Statement
// budgets".
const (
	detailBudget = 2
	stopBudget   = 9
	resumeBudget = 10
)

func TestStatementBudgets(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{NoJobs: true, Tune: func(c *app.Config) {
			c.Runtime.ReconcileInterval = time.Hour
			c.Runtime.Committer.Heartbeat = time.Hour
			c.NodeHeartbeat = time.Hour
		}})
		body, _, sink := fileTask(t, "p_1-incr_trans-1-0", 5)
		name := n.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 10*time.Second, "sink has 5 lines", func() bool { return lines(t, sink) >= 5 })
		// settle waits until the store ran nothing for 200 ms.
		settle := func() {
			t.Helper()
			for i := 0; i < 50; i++ {
				if n.CountStatements(func() { time.Sleep(200 * time.Millisecond) }).Total() == 0 {
					return
				}
			}
			t.Fatal("the node's store never went quiet for 200 ms within 10 s")
		}
		check := func(what string, budget int, s cmtest.Statements) {
			t.Helper()
			t.Logf("%s: %s", what, s)
			if s.Total() > budget {
				t.Errorf("%s ran %s statements, over its budget of %d", what, s, budget)
			}
		}
		for i := 0; i < 3; i++ {
			settle()
			check("detail", detailBudget, n.CountStatements(func() { n.Detail(t, name) }))
			settle()
			check("stop", stopBudget, n.CountStatements(func() { n.OK(t, "POST", base+"stop?taskName="+q(name), nil) }))
			if st := n.Detail(t, name).State; st != model.StateStopped {
				t.Fatalf("after stop: %s", st)
			}
			settle()
			check("resume", resumeBudget, n.CountStatements(func() { n.OK(t, "POST", base+"resume?taskName="+q(name), nil) }))
			if st := n.Detail(t, name).State; st != model.StateRunning {
				t.Fatalf("after resume: %s", st)
			}
		}
	})
}
