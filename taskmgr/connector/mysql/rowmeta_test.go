package mysql

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// TestBinlogRowMetadataMinimal, on a server of its own logging MINIMAL row
// metadata: the open source shows the condition as a WARNING, and a rewind
// to a time before a column reorder of a selected table with rows logged
// in between is refused naming the statement; a rewind after it, or across
// only an index change, is accepted.
func TestBinlogRowMetadataMinimal(t *testing.T) {
	srv := dbtest.StartServer(t, "--binlog-row-metadata=MINIMAL")
	srv.Exec(t, "CREATE DATABASE src; CREATE TABLE src.t (id INT PRIMARY KEY, a VARCHAR(20), b INT); CREATE TABLE src.other (id INT PRIMARY KEY, v INT)")
	cfg := connector.Config{
		Task: model.TaskName{Node: "127.0.0.1-9000", Component: model.Component{Project: "p_rowmeta", Type: model.TypeIncr, N: 1}, Version: 1},
		Type: model.TypeIncr,
		Scopes: model.Config{"source": {"type": "mysql", "host": "127.0.0.1", "port": strconv.Itoa(srv.Port),
			"username": "root", "tables": "src.t"}},
		Logger: zaptest.NewLogger(t),
	}
	newSource := func() *binlogSource {
		src, err := newBinlogSource(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub := newSource().Subtopics()[0]

	open := newSource()
	if err := open.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	w := open.Warnings()
	open.Close()
	if len(w) != 1 || w[0].Code != codeRowMetadataMinimal || w[0].Level != model.LevelWarning || !strings.Contains(w[0].Message, "MINIMAL") {
		t.Fatalf("warnings of a source on a MINIMAL server: %+v", w)
	}

	before := srv.NextSecond(t)
	srv.Exec(t, "INSERT INTO src.t VALUES (1, 'one', 1), (2, 'two', 2)")
	srv.Exec(t, "ALTER TABLE src.t MODIFY a VARCHAR(20) AFTER b") // same column count, other order
	srv.Exec(t, "INSERT INTO src.t VALUES (3, 4, 'three')")
	err := newSource().CheckRewind(ctx, map[string]int64{sub: before})
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Detail.Code != codeRewindAcrossDDL || !ce.Permanent || !strings.Contains(ce.Detail.Message, "MODIFY a VARCHAR(20) AFTER b") {
		t.Fatalf("rewind across the reorder: %v; want a permanent %s naming the statement", err, codeRewindAcrossDDL)
	}
	t.Logf("refused: %s", ce.Detail.Message)

	// After the reorder, and across changes that keep the columns, or of
	// tables the task does not read, a rewind is fine.
	after := srv.NextSecond(t)
	srv.Exec(t, "INSERT INTO src.t VALUES (5, 6, 'five')")
	srv.Exec(t, "ALTER TABLE src.t ADD INDEX ib (b)")
	srv.Exec(t, "INSERT INTO src.other VALUES (1, 1); ALTER TABLE src.other ADD COLUMN w INT FIRST")
	srv.Exec(t, "INSERT INTO src.t VALUES (7, 8, 'seven')")
	if err := newSource().CheckRewind(ctx, map[string]int64{sub: after}); err != nil {
		t.Fatalf("rewind after the reorder: %v", err)
	}
	// A target for another subtopic says nothing about this source.
	if err := newSource().CheckRewind(ctx, map[string]int64{"other": before}); err != nil {
		t.Fatalf("rewind of another subtopic: %v", err)
	}
}

// TestBinlogRowMetadataFull: on the shared server (FULL), no warning, and
// any rewind passes the check without reading the binlog.
func TestBinlogRowMetadataFull(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, a INT, b INT)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := e.config(t, model.TypeIncr, nil)
	src, _ := build(t, cfg)
	sub := src.(connector.Subtopicer).Subtopics()[0]
	start := time.Now().Unix() - 1
	e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (1, 1, 1); ALTER TABLE "+e.src("t")+" MODIFY a INT AFTER b")
	if err := src.(connector.RewindChecker).CheckRewind(ctx, map[string]int64{sub: start}); err != nil {
		t.Fatalf("rewind on a FULL server: %v", err)
	}
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if w := src.(connector.Warner).Warnings(); len(w) != 0 {
		t.Fatalf("warnings on a FULL server: %+v", w)
	}
}
