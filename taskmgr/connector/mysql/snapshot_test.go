package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func TestSnapshotResumeAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("ints")+" (id BIGINT PRIMARY KEY, v VARCHAR(40), d DECIMAL(10,3), at DATETIME)")
	e.exec(t, "INSERT INTO "+e.src("ints")+" SELECT seq * 7, CONCAT('row ', seq, ' ☃'), seq / 8, '2024-01-01' + INTERVAL seq MINUTE FROM "+e.seq(1, 3000))
	e.exec(t, "CREATE TABLE "+e.src("comp")+" (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))")
	e.exec(t, "INSERT INTO "+e.src("comp")+" SELECT seq DIV 3, CONCAT('k', seq % 3), seq FROM "+e.seq(1, 1500))
	e.exec(t, "CREATE TABLE "+e.src("empty")+" (id INT PRIMARY KEY)")
	tables := map[string]int{"ints": 3000, "comp": 1500, "empty": 0}

	const chunk, readers = 100, 3
	cfg := e.config(t, model.TypeFull, map[string]map[string]string{
		"coordinator": {"batchSize": itoa(chunk), "parallelism": itoa(readers)},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Run 1: apply 12 chunks; the 12th is written but the process "dies"
	// before its position is recorded.
	src, snk := build(t, cfg)
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]checkpoint.Position{}
	written := map[string]int{} // "table/key" -> times written
	const firstRun = 12
	for i := 0; i < firstRun; i++ {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("run 1, batch %d: %v", i, err)
		}
		if len(b.Records) > chunk {
			t.Errorf("batch of %d rows; chunks are %d", len(b.Records), chunk)
		}
		if err := snk.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		countKeys(written, b)
		if i < firstRun-1 {
			for _, p := range b.Positions {
				recorded[p.Subtopic] = p
			}
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// Run 2 resumes from what was recorded and runs to the end.
	src2, _ := build(t, cfg)
	if err := src2.Open(ctx, recorded); err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	var last connector.Batch
	metrics := map[string]float64{}
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("full import did not end")
		}
		b, err := src2.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		countKeys(written, b)
		for k, v := range b.Metrics {
			metrics[k] = v
		}
		last = b
	}
	if len(last.Positions) != 1 {
		t.Fatalf("last batch positions %+v", last.Positions)
	}

	// Every row is copied; only the chunk applied but not recorded is
	// copied twice, well within one chunk per reader.
	again := 0
	for _, n := range written {
		again += n - 1
	}
	if again > readers*chunk {
		t.Errorf("%d rows copied twice; want at most %d (one chunk per reader)", again, readers*chunk)
	}
	t.Logf("rows copied twice after the crash: %d", again)
	total := 0
	for tb, n := range tables {
		total += n
		if got := metrics["rows."+e.srcName+"."+tb]; int(got) != n && n > 0 {
			t.Errorf("metric rows.%s = %v, want %d", tb, got, n)
		}
	}
	if len(written) != total {
		t.Errorf("%d distinct rows written, want %d", len(written), total)
	}
	e.sameTables(t, "ints", "comp", "empty")

	// The checksum metric is the CRC of the rows as the target holds them,
	// read the way the source reads.
	db, err := openDB(e.endpoint(), sourceSession, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tgt, err := loadTableDef(ctx, db, tableRef{DB: e.dstName, Name: "ints"})
	if err != nil {
		t.Fatal(err)
	}
	_, crc, err := readChunk(ctx, db, tgt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := metrics["crc32."+e.srcName+".ints"]; uint32(got) != crc {
		t.Errorf("crc32 metric %v, target rows %d", got, crc)
	}

	var pg progress
	if err := json.Unmarshal([]byte(last.Positions[0].Token), &pg); err != nil || !pg.Done {
		t.Errorf("last token %q: want done", last.Positions[0].Token)
	}
}

// countKeys counts each written row by table and primary key.
func countKeys(seen map[string]int, b connector.Batch) {
	for _, r := range b.Records {
		c := r.Change
		k := c.Table
		for _, i := range c.PK {
			k += "/" + encodeValue(c.After[i])
		}
		seen[k]++
	}
}

func TestSnapshotFinishedEndsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY)")
	e.exec(t, "INSERT INTO "+e.src("t")+" SELECT seq FROM "+e.seq(1, 10))
	cfg := e.config(t, model.TypeFull, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := openPipe(t, ctx, cfg)
	for {
		if _, err := p.step(t, ctx); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	p.src.Close()
	e.sameTables(t, "t")

	src2, _ := build(t, cfg)
	if err := src2.Open(ctx, p.positions); err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	if b, err := src2.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after a finished import: %+v, %v; want io.EOF", b, err)
	}
}
