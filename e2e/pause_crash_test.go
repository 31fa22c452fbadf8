package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestKill9DuringPause: cm is killed with SIGKILL right after a pause call
// answers (the runner may not have acknowledged it yet), and again while
// the task is PAUSED, with the source committing all the while. Each time
// cm starts again the task comes back PAUSED, its runner beating and
// applying nothing; after a resume the target equals the source, value for
// value.
func TestKill9DuringPause(t *testing.T) {
	bin := buildCM(t)
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	dir, addr, store := t.TempDir(), freeAddr(t), dbtest.MySQLURL(t)
	p := startCM(t, bin, addr, store, dir)
	name := p.node.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), nil)).String()
	sub := e.subtopic()
	started(t, p.node, name, sub)
	batch := 0
	write := func() {
		t.Helper()
		lo := batch*50 + 1
		batch++
		e.exec(t, fmt.Sprintf("INSERT INTO %[1]s SELECT seq, CONCAT('r', seq), seq / 7, NOW(3), REPEAT('x', seq) FROM %[2]s.seq_%[3]d_to_%[4]d; "+
			"UPDATE %[1]s SET amount = amount + 1 WHERE id %% 3 = 0; DELETE FROM %[1]s WHERE id = %[3]d + 5",
			e.srcT("a"), e.src, lo, lo+49))
	}
	write()
	reached(t, p.node, name, sub, e.binlogEnd(t), 60*time.Second)
	e.same(t, "a")

	// pausedAfterRestart starts cm again and checks the task is PAUSED with
	// a heartbeat newer than the start, and that the target has not moved.
	pausedAfterRestart := func() {
		t.Helper()
		before := e.checksum(t, e.dstT("a"))
		started := time.Now()
		p = startCM(t, bin, addr, store, dir)
		cmtest.Eventually(t, 60*time.Second, "the task is PAUSED and beats after the restart", func() bool {
			d := p.node.Detail(t, name)
			if d.State == model.StateException {
				t.Fatalf("task failed: %+v\n%s", d.ErrorDetails, p.tail())
			}
			return d.State == model.StatePaused && d.DesiredState == model.DesiredPaused && d.Heartbeat != nil && d.Heartbeat.After(started)
		})
		write() // committed on the source while the task is paused
		// Two heartbeats later the target is still as it was.
		beat := *p.node.Detail(t, name).Heartbeat
		cmtest.Eventually(t, 30*time.Second, "two more heartbeats", func() bool {
			hb := p.node.Detail(t, name).Heartbeat
			return hb != nil && hb.Sub(beat) >= time.Second
		})
		if got := e.checksum(t, e.dstT("a")); got != before {
			t.Fatalf("the target moved while the task was paused: %s -> %s", before, got)
		}
	}

	// Killed right after the pause answers.
	write()
	p.node.OK(t, http.MethodPost, base+"pause?taskName="+q(name), nil)
	p.kill(t)
	write()
	pausedAfterRestart()

	// Killed while PAUSED.
	p.kill(t)
	write()
	pausedAfterRestart()

	if got := p.node.OK(t, http.MethodPost, base+"resume?taskName="+q(name), nil).String(); got != name {
		t.Fatalf("resume answered %q, want %s", got, name)
	}
	write()
	reached(t, p.node, name, sub, e.binlogEnd(t), 60*time.Second)
	e.same(t, "a")
}
