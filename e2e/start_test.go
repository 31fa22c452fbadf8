package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestKill9InFirstSecondOfNewIncrTask: a new incr_trans task without
// source.checkpoint starts at the binlog end. cm is killed with SIGKILL
// right after the create call answers, while a writer commits rows, before
// any periodic flush. The start it resolved must already be durable: after
// the restart the task continues from there, and every row the writer
// committed is on the target.
func TestKill9InFirstSecondOfNewIncrTask(t *testing.T) {
	bin := buildCM(t)
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	dir, addr, store := t.TempDir(), freeAddr(t), dbtest.MySQLURL(t)
	p := startCM(t, bin, addr, store, dir)

	// The writer: one row per transaction, 400 rows over about two seconds,
	// running across the kill and the restart.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var writerErr error
	var rows atomic.Int64
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 400 && ctx.Err() == nil; i++ {
			if _, err := e.admin.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'r%d', %d, NOW(3), NULL)", e.srcT("a"), i, i, i)); err != nil {
				writerErr = err
				return
			}
			rows.Store(int64(i))
			if i == 20 {
				close(started)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	<-started

	name := p.node.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), nil)).String()
	// Rows committed from here on are after the task's start, whatever it
	// resolved to. Kill right after the call answered: well within the
	// first flush period.
	atCreate := rows.Load()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	atKill := rows.Load()
	time.Sleep(300 * time.Millisecond) // rows go on while cm is down

	p = startCM(t, bin, addr, store, dir)
	wg.Wait()
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	if atKill >= 400 {
		t.Fatalf("the writer had finished before the kill (%d rows): the test did not kill in the first second", atKill)
	}
	end := e.binlogEnd(t)
	sub := e.subtopic()
	cmtest.Eventually(t, time.Minute, "checkpoint reaches "+end.String(), func() bool {
		at, ok := parseToken(p.node.Detail(t, name).Checkpoint[sub].Token)
		return ok && !at.before(end)
	})
	// Every row committed after the create answered must be on the target,
	// byte for byte.
	var missing int64
	if err := e.admin.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT COUNT(*) FROM %s s LEFT JOIN %s d ON d.id = s.id WHERE s.id > ? AND (d.id IS NULL OR HEX(d.name) <> HEX(s.name) OR d.amount <> s.amount OR d.at <> s.at)",
		e.srcT("a"), e.dstT("a")), atCreate).Scan(&missing); err != nil {
		t.Fatalf("comparing: %v\n%s", err, p.tail())
	}
	if missing != 0 {
		t.Fatalf("%d of the source rows committed after the create answered (id > %d) are missing or differ on the target after the kill at row %d\n%s",
			missing, atCreate, atKill, p.tail())
	}
	t.Logf("create answered at source row %d, killed at row %d; the target has every row after %d", atCreate, atKill, atCreate)
}
