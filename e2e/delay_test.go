package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/view"
)

// TestIdleMySQLTaskHasNoDelay: an incremental task that has applied
// everything reports delay 0 once the server's heartbeat says it is at the
// binlog's end, and health has no DELAY warning for it well past a 2s
// threshold, however long ago its last row changed.
func TestIdleMySQLTaskHasNoDelay(t *testing.T) {
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	n, name := startIncr(t, e)
	n.OK(t, http.MethodPost, base+"params/update?key="+q(params.DelayThreshold)+"&value=2s", nil)
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('row ', seq), seq, NOW(3), NULL FROM "+e.src+".seq_1_to_50")
	e.converged(t, 60*time.Second, "a")
	wrote := time.Now()

	// Other tests may write other databases of the shared server: their
	// transactions move the position too, and the delay they leave is
	// their age, under a second; the server's heartbeat (every 5s) then
	// says the source is at the end.
	cmtest.Eventually(t, 30*time.Second, "delay 0 from the source", func() bool {
		d := n.Detail(t, name)
		return d.Delay != nil && *d.Delay == 0 && d.DelaySource == model.DelayFromSource
	})
	time.Sleep(max(0, 4*time.Second-time.Since(wrote))) // twice the threshold since the last row
	cmtest.Eventually(t, 30*time.Second, "healthy, past the threshold", func() bool {
		env := n.Do(t, http.MethodGet, base+"health", nil)
		var r view.HealthReport
		if err := json.Unmarshal(env.Result, &r); err != nil {
			t.Fatalf("health: %d %s", env.Status, env.Raw)
		}
		return env.Status == http.StatusOK && r.Healthy
	})
	if d := n.Detail(t, name); d.Delay == nil || *d.Delay > 1 || d.DelaySource != model.DelayFromSource {
		t.Fatalf("idle task: delay %v from %q, %d since the last row", d.Delay, d.DelaySource, time.Since(wrote)/time.Second)
	}
}
