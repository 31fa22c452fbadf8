package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// TestBinlogDDLStopPosition: an ALTER in the middle of a second, with
// transactions on two tables before it and after it in that same second
// (the session clock is frozen, so every event has the same time). The
// source stops at the ALTER with the tokens just before and after it; its
// last batch ends exactly before it. A source opened at the token after it
// delivers every transaction that followed, and nothing before it.
func TestBinlogDDLStopPosition(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t1")+" (id INT PRIMARY KEY, v VARCHAR(20)); CREATE TABLE "+e.src("t2")+" (id INT PRIMARY KEY, v VARCHAR(20))")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := e.config(t, model.TypeIncr, map[string]map[string]string{"sink": {"ddl": "stop"}})
	p := openPipe(t, ctx, cfg)
	sub := p.src.(connector.Subtopicer).Subtopics()[0]
	// The target tables exist with the definition before the ALTER.
	e.exec(t, "INSERT INTO "+e.src("t1")+" VALUES (0, 'first'); INSERT INTO "+e.src("t2")+" VALUES (0, 'first')")
	p.syncTo(t, sub, e.binlogEndNow(t))

	var q strings.Builder
	q.WriteString("SET timestamp = UNIX_TIMESTAMP();")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&q, "INSERT INTO %s VALUES (%d, 'before'); INSERT INTO %s VALUES (%d, 'before');", e.src("t1"), i, e.src("t2"), i)
	}
	fmt.Fprintf(&q, "ALTER TABLE %s ADD COLUMN w INT;", e.src("t1"))
	for i := 101; i <= 150; i++ {
		fmt.Fprintf(&q, "INSERT INTO %s VALUES (%d, 'after', %d); INSERT INTO %s VALUES (%d, 'after');", e.src("t1"), i, i, e.src("t2"), i)
	}
	fmt.Fprintf(&q, "UPDATE %s SET v = 'changed after' WHERE id <= 5; DELETE FROM %s WHERE id = 6;", e.src("t2"), e.src("t2"))
	q.WriteString("SET timestamp = DEFAULT")
	e.exec(t, q.String())

	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = p.step(t, ctx)
	}
	if errCode(err) != codeDDLUnsupported {
		t.Fatalf("after the ALTER: %v; want %s", err, codeDDLUnsupported)
	}
	at := stoppedAt(err)
	if at == nil || at.Subtopic != sub || at.Before == "" || at.After == "" {
		t.Fatalf("the refusal names no statement position: %+v", at)
	}
	before, _ := parseToken(at.Before)
	after, _ := parseToken(at.After)
	if before.Compare(after) >= 0 {
		t.Fatalf("position before the statement %s is not before the one after it %s", at.Before, at.After)
	}
	last := p.positions[sub]
	if last.Token != at.Before {
		t.Fatalf("the last batch ends at %s, want %s just before the statement", last.Token, at.Before)
	}
	var delivered []connector.Record
	for _, b := range p.batches {
		delivered = append(delivered, b.Records...)
	}
	for _, r := range delivered {
		if r.Change.After != nil && r.Change.After[1] == "before" && r.TS != at.TS {
			t.Fatalf("record of the incident second has time %d, the statement %d: the session clock did not hold", r.TS, at.TS)
		}
	}
	if got := e.count(t, e.dst("t1")); got != 11 {
		t.Fatalf("target t1 has %d rows before the statement, want 11", got)
	}

	// The operator changes the target, then the task continues right after
	// the statement.
	e.exec(t, "ALTER TABLE "+e.dst("t1")+" ADD COLUMN w INT")
	src, snk := build(t, cfg)
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	if err := src.Open(ctx, map[string]checkpoint.Position{sub: {Subtopic: sub, TS: at.TS, Token: at.After}}); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p2 := &pipe{src: src, snk: snk, positions: map[string]checkpoint.Position{}}
	p2.syncTo(t, sub, e.binlogEndNow(t))
	e.sameTables(t, "t1", "t2")
	if got := p2.records(); got != 100+6+1 {
		t.Errorf("after the statement the source delivered %d row changes, want 107 (nothing before it again)", got)
	}
}
