package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestStoreOutage: the store (MariaDB) becomes unreachable for a few
// seconds under a running node. Meanwhile calls answer 503
// STORE_UNAVAILABLE (retryable) within seconds, the log stays bounded, and
// the running task keeps its records. Once the store is back the node
// recovers by itself: the task is RUNNING without a restart, every record
// reached the sink exactly once.
func TestStoreOutage(t *testing.T) {
	t.Run("short", func(t *testing.T) { storeOutage(t, 3*time.Second) })
	// Longer than task.heartbeat.staleAfter and node.deadAfter: the
	// heartbeats written before it are stale when the store is back, which
	// says nothing about the task (it ran all along).
	t.Run("past the liveness timeouts", func(t *testing.T) { storeOutage(t, 7*time.Second) })
}

func storeOutage(t *testing.T, outageFor time.Duration) {
	n, proxy := nodeBehindProxy(t)
	body, src, sink := fileTask(t, "p_outage-incr_trans-1-0", 5)
	name := n.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 10*time.Second, "sink has 5 lines", func() bool { return lines(t, sink) >= 5 })
	for k, v := range map[string]string{"task.heartbeat.staleAfter": "2s", "node.suspectAfter": "1s", "node.deadAfter": "2s",
		"job.task-liveness.schedule": "@every 1s", "job.node-liveness.schedule": "@every 1s", "job.auto-restart.schedule": "@every 1s"} {
		n.OK(t, "POST", base+"params/update?key="+q(k)+"&value="+q(v), nil)
	}

	logsBefore := n.Logs.Len()
	proxy.Cut()
	cut := time.Now()
	appendLines(t, src, 5, 10)
	for range 3 {
		started := time.Now()
		env := n.Do(t, "GET", base+"detail?taskName="+q(name), nil)
		if env.Status != http.StatusServiceUnavailable || !strings.Contains(env.Raw, "STORE_UNAVAILABLE") || !strings.Contains(env.Raw, `"retryable":true`) {
			t.Fatalf("detail while the store is down: %d %s", env.Status, env.Raw)
		}
		if took := time.Since(started); took > 15*time.Second {
			t.Fatalf("detail while the store is down took %s", took)
		}
		time.Sleep(time.Second)
	}
	env := n.Do(t, "POST", base+"stop?taskName="+q(name), nil)
	if env.Status != http.StatusServiceUnavailable || env.IsSuccess {
		t.Fatalf("stop while the store is down: %d %s", env.Status, env.Raw)
	}
	time.Sleep(time.Until(cut.Add(outageFor)))
	outage := time.Since(cut)
	logged := n.Logs.Len() - logsBefore
	proxy.Restore()
	t.Logf("outage of %s: %d log entries", outage.Round(time.Millisecond), logged)
	if perSecond := float64(logged) / outage.Seconds(); perSecond > 200 {
		t.Fatalf("%d log entries in a %s outage", logged, outage)
	}

	cmtest.Eventually(t, 60*time.Second, "the sink has every record after the outage", func() bool { return lines(t, sink) >= 10 })
	cmtest.Eventually(t, 30*time.Second, "the task is RUNNING with a fresh heartbeat", func() bool {
		env := n.Do(t, "GET", base+"detail?taskName="+q(name), nil)
		if env.Status != http.StatusOK {
			return false
		}
		d := n.Detail(t, name)
		return d.State == model.StateRunning && d.Heartbeat != nil && d.Heartbeat.After(cut)
	})
	// Three liveness passes later it is still RUNNING.
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(200 * time.Millisecond) {
		if d := n.Detail(t, name); d.State != model.StateRunning {
			t.Fatalf("after the outage the task went %s: %+v", d.State, d.ErrorDetails)
		}
	}
	seen := cmtest.SinkIndexes(t, sink)
	for i := range 10 {
		if seen[i] != 1 {
			t.Fatalf("record %d reached the sink %d times", i, seen[i])
		}
	}
	var ops []struct {
		Operation string `json:"operation"`
	}
	if err := json.Unmarshal(n.OK(t, "GET", base+"operations?taskName="+q(name), nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.Operation == model.OpAutoRestart {
			t.Fatalf("the outage restarted the task: %+v", ops)
		}
	}
}

// TestStoreHangs: the store stops answering without closing anything. A
// call answers within the store's timeout instead of hanging with it, and
// once the store answers again the node goes on by itself.
func TestStoreHangs(t *testing.T) {
	n, proxy := nodeBehindProxy(t)
	body, src, sink := fileTask(t, "p_hang-incr_trans-1-0", 5)
	name := n.OK(t, "POST", base+"create", body).String()
	cmtest.Eventually(t, 10*time.Second, "sink has 5 lines", func() bool { return lines(t, sink) >= 5 })

	proxy.Freeze()
	frozen := time.Now()
	appendLines(t, src, 5, 10)
	started := time.Now()
	env := n.Do(t, "GET", base+"detail?taskName="+q(name), nil)
	took := time.Since(started)
	t.Logf("detail while the store hangs: %d in %s: %s", env.Status, took.Round(time.Millisecond), env.Raw)
	if took > 30*time.Second || env.Status == http.StatusOK || env.Status == http.StatusInternalServerError {
		t.Fatalf("detail while the store hangs: %d in %s", env.Status, took)
	}
	time.Sleep(time.Until(frozen.Add(3 * time.Second)))
	proxy.Thaw()
	cmtest.Eventually(t, 60*time.Second, "the sink has every record after the store answers again", func() bool { return lines(t, sink) >= 10 })
	cmtest.Eventually(t, 60*time.Second, "detail answers again, RUNNING", func() bool {
		env := n.Do(t, "GET", base+"detail?taskName="+q(name), nil)
		return env.Status == http.StatusOK && n.Detail(t, name).State == model.StateRunning
	})
	seen := cmtest.SinkIndexes(t, sink)
	for i := range 10 {
		if seen[i] != 1 {
			t.Fatalf("record %d reached the sink %d times", i, seen[i])
		}
	}
}

// nodeBehindProxy starts a node whose store, a fresh MariaDB database, it
// reaches through a proxy the test can cut or freeze.
func nodeBehindProxy(t *testing.T) (*cmtest.Node, *dbtest.Proxy) {
	t.Helper()
	raw, _ := dbtest.NewMySQLDatabase(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	proxy := dbtest.StartProxy(t, u.Host)
	u.Host = proxy.Addr
	return cmtest.Start(t, u.String(), cmtest.Options{}), proxy
}
