package mysql

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

// BenchmarkBinlogSync measures the incremental path end to end: 100k rows
// inserted in transactions of 1000, then read from the binlog and applied.
func BenchmarkBinlogSync(b *testing.B) {
	const rows = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		e.exec(b, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, name VARCHAR(40), v DOUBLE, at DATETIME)")
		cfg := e.config(b, model.TypeIncr, nil)
		src, snk := build(b, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := snk.Open(ctx); err != nil {
			b.Fatal(err)
		}
		if err := src.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		p := &pipe{src: src, snk: snk, positions: map[string]checkpoint.Position{}}
		for j := 0; j < rows; j += 1000 {
			e.exec(b, "INSERT INTO "+e.src("t")+" SELECT seq, CONCAT('name ', seq), seq / 3, NOW() FROM "+e.seq(j+1, j+1000))
		}
		end := e.binlogEndNow(b)
		b.StartTimer()
		start := time.Now()
		p.syncTo(b, e.host+"-"+e.port, end)
		b.ReportMetric(rows/time.Since(start).Seconds(), "rows/s")
		b.StopTimer()
		e.sameTables(b, "t")
		src.Close()
		snk.Close()
		cancel()
	}
}

// BenchmarkSnapshot measures a full import of 200k rows with the default
// chunk size and parallelism.
func BenchmarkSnapshot(b *testing.B) {
	const rows = 200_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		e.exec(b, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, name VARCHAR(40), v DOUBLE, at DATETIME)")
		e.exec(b, "INSERT INTO "+e.src("t")+" SELECT seq, CONCAT('name ', seq), seq / 3, NOW() FROM "+e.seq(1, rows))
		src, snk := build(b, e.config(b, model.TypeFull, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := snk.Open(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := src.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		for {
			batch, err := src.Read(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := snk.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(rows/time.Since(start).Seconds(), "rows/s")
		b.StopTimer()
		e.sameTables(b, "t")
		src.Close()
		snk.Close()
		cancel()
	}
}
