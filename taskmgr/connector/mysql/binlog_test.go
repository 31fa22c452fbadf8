package mysql

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// createTables makes the tables the incremental tests write: one with an
// integer key and many column types, one with a composite key.
func (e *env) createTables(t *testing.T) {
	e.exec(t, `CREATE TABLE `+e.src("t1")+` (
		id INT NOT NULL PRIMARY KEY,
		name VARCHAR(64) NOT NULL,
		amount DECIMAL(12,2),
		created DATETIME(3),
		stamp TIMESTAMP NULL,
		u INT UNSIGNED,
		big BIGINT UNSIGNED,
		f DOUBLE,
		data BLOB,
		doc JSON,
		kind ENUM('a','b','c'),
		doubled INT AS (id * 2) VIRTUAL,
		ti TINYINT UNSIGNED,
		si SMALLINT UNSIGNED,
		mi MEDIUMINT UNSIGNED,
		neg MEDIUMINT,
		early DATETIME(6),
		plain DATETIME,
		stamp6 TIMESTAMP(6) NULL
	);
	CREATE TABLE `+e.src("t2")+` (
		a INT NOT NULL,
		b VARCHAR(20) NOT NULL,
		v INT,
		PRIMARY KEY (a, b)
	)`)
}

// workload writes inserts, updates (one moving a key), deletes and a
// multi-table transaction; n spreads keys apart between calls.
func (e *env) workload(t *testing.T, n int) {
	base := n * 1000
	var vals []string
	for i := 0; i < 50; i++ {
		id := base + i
		vals = append(vals, fmt.Sprintf("(%d, 'név %d ✓', %d.25, '2024-02-29 12:00:00.123', '2024-03-01 00:00:01', 4294967295, 18446744073709551615, 0.1, x'00ff%02x', '{\"k\": %d}', 'b', "+
			"255, 65535, 16777215 - %d, -8388608 + %d, '1969-07-20 20:17:40.00000%d', '9999-12-31 23:59:59', '2030-01-19 03:14:07.99999%d')",
			id, id, id, i, id, i, i, i%10, i%10))
	}
	e.exec(t, "INSERT INTO "+e.src("t1")+" (id, name, amount, created, stamp, u, big, f, data, doc, kind, ti, si, mi, neg, early, plain, stamp6) VALUES "+strings.Join(vals, ","))
	e.exec(t, "UPDATE "+e.src("t1")+" SET amount = amount * 2, name = CONCAT(name, '!') WHERE id BETWEEN ? AND ?", base, base+9)
	e.exec(t, "UPDATE "+e.src("t1")+" SET id = id + 500 WHERE id = ?", base+10) // key moves
	e.exec(t, "DELETE FROM "+e.src("t1")+" WHERE id BETWEEN ? AND ?", base+20, base+24)
	e.exec(t, "UPDATE "+e.src("t1")+" SET stamp = NULL, data = NULL, amount = NULL WHERE id = ?", base+30)
	// one transaction over both tables
	e.exec(t, fmt.Sprintf("START TRANSACTION;"+
		"INSERT INTO %[1]s VALUES (%[3]d, 'x', 1), (%[3]d, 'y', 2), (%[3]d, 'z', 3);"+
		"UPDATE %[1]s SET v = v + 10 WHERE a = %[3]d AND b = 'y';"+
		"DELETE FROM %[1]s WHERE a = %[3]d AND b = 'z';"+
		"UPDATE %[2]s SET name = 'in txn' WHERE id = %[4]d;"+
		"COMMIT", e.src("t2"), e.src("t1"), base, base+1))
}

func TestBinlogSyncAndResume(t *testing.T) {
	e := newEnv(t)
	e.createTables(t)
	cfg := e.config(t, model.TypeIncr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := openPipe(t, ctx, cfg)
	src := p.src
	sub := src.(connector.Subtopicer).Subtopics()[0]
	if want := e.host + "-" + e.port; sub != want {
		t.Errorf("subtopic %q, want %q", sub, want)
	}
	// Without a position the source starts at the binlog end, which it
	// hands over as its start position (the runner makes it durable before
	// the first batch), at the server's clock.
	start := src.(connector.Starter).Start()
	if len(start) != 1 || start[0].Subtopic != sub || start[0].Token == "" || start[0].TS < time.Now().Unix()-60 {
		t.Fatalf("start = %+v: want the binlog end of subtopic %s at about now", start, sub)
	}
	p.positions[sub] = start[0]

	e.workload(t, 1)
	// A transaction larger than the row budget stays whole in one batch.
	e.exec(t, "INSERT INTO "+e.src("t2")+" (a, b, v) SELECT seq, 'big', seq FROM "+e.seq(100000, 107199))
	p.syncTo(t, sub, e.binlogEndNow(t))
	e.sameTables(t, "t1", "t2")
	biggest := 0
	for _, b := range p.batches {
		biggest = max(biggest, len(b.Records))
	}
	if biggest < 7200 {
		t.Errorf("largest batch has %d records; the 7200-row transaction was split", biggest)
	}

	// Stop, write more, resume from the recorded position: nothing is lost.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	e.workload(t, 2)
	e.exec(t, "DELETE FROM "+e.src("t2")+" WHERE b = 'big' AND a % 3 = 0")
	src2, _ := build(t, cfg)
	if err := src2.Open(ctx, p.positions); err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	p.src = src2
	p.syncTo(t, sub, e.binlogEndNow(t))
	e.sameTables(t, "t1", "t2")
	t.Logf("%d batches, %d row changes", len(p.batches), p.records())
}

func TestBinlogRewindToTime(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20))")
	cfg := e.config(t, model.TypeIncr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := openPipe(t, ctx, cfg)
	src := p.src
	sub := src.(connector.Subtopicer).Subtopics()[0]

	e.exec(t, "INSERT INTO "+e.src("t")+" (id, v) SELECT seq, seq FROM "+e.seq(1, 300))
	// T is a fresh second: everything above happened before it.
	time.Sleep(time.Until(time.Unix(time.Now().Unix()+1, 50e6)))
	rewind := time.Now().Unix()
	e.exec(t, "UPDATE "+e.src("t")+" SET v = v + 1 WHERE id <= 150")
	e.exec(t, "FLUSH BINARY LOGS") // the replay crosses a file boundary
	e.exec(t, "UPDATE "+e.src("t")+" SET v = v + 1, note = 'late' WHERE id > 150")
	e.exec(t, "DELETE FROM "+e.src("t")+" WHERE id BETWEEN 100 AND 109")
	e.exec(t, "INSERT INTO "+e.src("t")+" (id, v) VALUES (1000, 1), (1001, 2)")
	end := e.binlogEndNow(t)
	p.syncTo(t, sub, end)
	e.sameTables(t, "t")
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// Corrupt the target, then rewind the source to T: the replay repairs it.
	e.exec(t, "DELETE FROM "+e.dst("t")+" WHERE id IN (5, 200, 1000)")
	e.exec(t, "UPDATE "+e.dst("t")+" SET v = -1, note = 'bad' WHERE id BETWEEN 50 AND 60 OR id > 290")
	e.exec(t, "INSERT INTO "+e.dst("t")+" (id, v) VALUES (105, 0)")

	src2, _ := build(t, cfg)
	if err := src2.Open(ctx, map[string]checkpoint.Position{sub: {Subtopic: sub, TS: rewind}}); err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	p2 := &pipe{src: src2, snk: p.snk, positions: map[string]checkpoint.Position{}}
	p2.syncTo(t, sub, end)
	e.sameTables(t, "t")
	for _, b := range p2.batches {
		for _, r := range b.Records {
			if r.TS < rewind {
				t.Fatalf("replay delivered a change of %d, before the rewind time %d", r.TS, rewind)
			}
		}
	}
	if n := p2.records(); n != 150+150+10+2 {
		t.Errorf("replay delivered %d changes, want the 312 made after the rewind time", n)
	}
}

func TestBinlogOldest(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY)")
	cfg := e.config(t, model.TypeIncr, nil)
	src, _ := build(t, cfg)
	sub := src.(connector.Subtopicer).Subtopics()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	oldest, err := src.(connector.Ranger).Oldest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := oldest[sub]
	if ts <= 0 || ts > time.Now().Unix() {
		t.Fatalf("Oldest = %v; want the start of the first binlog, before now", oldest)
	}

	// A rewind to before the oldest binlog is refused, permanently, and one
	// to the oldest time opens: together they pin Oldest to the exact start
	// of the oldest binlog.
	err = src.Open(ctx, map[string]checkpoint.Position{sub: {Subtopic: sub, TS: ts - 1}})
	if errCode(err) != codePositionPurged {
		t.Fatalf("Open before the oldest binlog: %v; want %s", err, codePositionPurged)
	}
	var ce *connector.Error
	if !errors.As(err, &ce) || !ce.Permanent {
		t.Errorf("error %v is not permanent", err)
	}
	src2, _ := build(t, cfg)
	if err := src2.Open(ctx, map[string]checkpoint.Position{sub: {Subtopic: sub, TS: ts}}); err != nil {
		t.Fatalf("Open at the oldest time: %v", err)
	}
	src2.Close()
}

func TestBinlogRefusesTableWithoutPrimaryKey(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("ok")+" (id INT PRIMARY KEY); CREATE TABLE "+e.src("nopk")+" (id INT, v INT)")
	src, snk := build(t, e.config(t, model.TypeIncr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := src.Open(ctx, nil); errCode(err) != codeNoPrimaryKey || !strings.Contains(err.Error(), "nopk") {
		t.Errorf("source Open: %v; want %s naming nopk", err, codeNoPrimaryKey)
	}
	src.Close()
	if err := snk.Open(ctx); errCode(err) != codeNoPrimaryKey {
		t.Errorf("sink Open: %v; want %s", err, codeNoPrimaryKey)
	}
	snk.Close()

	// A target table without a key is refused even if the source has one.
	e.exec(t, "DROP TABLE "+e.src("nopk")+", "+e.dst("ok")+"; CREATE TABLE "+e.dst("ok")+" (id INT)")
	_, snk = build(t, e.config(t, model.TypeIncr, nil))
	if err := snk.Open(ctx); errCode(err) != codeNoPrimaryKey || !strings.Contains(err.Error(), e.dstName+".ok") {
		t.Errorf("sink Open: %v; want %s naming %s.ok", err, codeNoPrimaryKey, e.dstName)
	}
	snk.Close()

	// A named table that does not exist is refused.
	src, _ = build(t, e.config(t, model.TypeIncr, map[string]map[string]string{"source": {"tables": e.srcName + ".missing"}}))
	if err := src.Open(ctx, nil); errCode(err) != codeTableNotFound {
		t.Errorf("source Open: %v; want %s", err, codeTableNotFound)
	}
	src.Close()
}

func TestBinlogDDL(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.src("t")+" (id INT PRIMARY KEY, v INT)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// sink.ddl=stop: schema statements stop the source (apply: ddl_test.go).
	p := openPipe(t, ctx, e.config(t, model.TypeIncr, map[string]map[string]string{"sink": {"ddl": "stop"}}))
	src := p.src
	sub := src.(connector.Subtopicer).Subtopics()[0]

	// A new table matching db.* is fine: the sink creates it on the target.
	e.exec(t, "CREATE TABLE "+e.src("later")+" (id INT PRIMARY KEY, s VARCHAR(10)); INSERT INTO "+e.src("later")+" VALUES (1, 'a'), (2, 'b')")
	e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (1, 1)")
	p.syncTo(t, sub, e.binlogEndNow(t))
	e.sameTables(t, "t", "later")

	// ALTER of a selected table stops the source, after what came before it.
	e.exec(t, "INSERT INTO "+e.src("t")+" VALUES (2, 2); ALTER TABLE "+e.src("t")+" ADD COLUMN w INT")
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = p.step(t, ctx)
	}
	if errCode(err) != codeDDLUnsupported || !strings.Contains(err.Error(), "ADD COLUMN") {
		t.Fatalf("after ALTER TABLE: %v; want %s quoting the statement", err, codeDDLUnsupported)
	}
	if e.count(t, e.dst("t")) != 2 {
		t.Errorf("the row written before the ALTER was not applied")
	}
}

// freezer is a loopback TCP proxy to addr that can stop forwarding without
// closing anything, as a dropped route or a hung server would.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezer(t *testing.T, addr string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go f.pipe(c, u)
			go f.pipe(u, c)
		}
	}()
	return f
}

// pipe copies from src to dst until either closes; once frozen it reads
// and drops, so the peer sees silence rather than a closed connection.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if f.frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestBinlogStallFails: a dump that goes silent (no event, no heartbeat)
// fails the read with MYSQL_BINLOG_STREAM instead of waiting forever, and
// closing the source does not wait for the silent server either.
func TestBinlogStallFails(t *testing.T) {
	e := newEnv(t)
	e.createTables(t)
	proxy := newFreezer(t, net.JoinHostPort(e.host, e.port))
	_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	cfg := e.config(t, model.TypeIncr, map[string]map[string]string{"source": {"port": port}})
	src, _ := build(t, cfg)
	bs := src.(*binlogSource)
	bs.heartbeat, bs.stall = 500*time.Millisecond, 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			src.Close()
		}
	}()
	if start := src.(connector.Starter).Start(); len(start) != 1 { // resolved at open, made durable by the runner
		t.Fatalf("start = %+v", start)
	}
	e.workload(t, 1)
	if b, err := src.Read(ctx); err != nil || len(b.Records) == 0 {
		t.Fatalf("read through the proxy: %d records, %v", len(b.Records), err)
	}
	proxy.frozen.Store(true)
	e.workload(t, 2) // written, but never arrives
	start := time.Now()
	var err error
	for err == nil && time.Since(start) < 30*time.Second {
		_, err = src.Read(ctx)
	}
	if got := errCode(err); got != codeBinlogStream || !strings.Contains(err.Error(), "silent") {
		t.Fatalf("read of a silent dump: %v (code %q), want %s", err, got, codeBinlogStream)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the stall was noticed after %s, want about 2s", took)
	}
	// Ending the dump opens a connection to KILL its thread; the silent
	// server must not hold Close (and so a stop) for long.
	start = time.Now()
	closed = true
	src.Close()
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("closing a source whose server went silent took %s", took)
	}
	t.Logf("stall noticed, source closed in %s", time.Since(start).Round(time.Millisecond))
}

// TestBinlogIdleStaysAlive: a quiet source sends only heartbeats, and a
// read that waits through many stall periods of them does not fail. (Run
// alone, the server is quiet; in the full suite other tests' writes to other
// databases arrive too, and the read must still only wait.)
func TestBinlogIdleStaysAlive(t *testing.T) {
	e := newEnv(t)
	e.createTables(t)
	src, _ := build(t, e.config(t, model.TypeIncr, nil))
	bs := src.(*binlogSource)
	bs.heartbeat, bs.stall = 200*time.Millisecond, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if start := src.(connector.Starter).Start(); len(start) != 1 { // resolved at open, made durable by the runner
		t.Fatalf("start = %+v", start)
	}
	// Other tests may write other databases of the shared server meanwhile:
	// those come as batches with a position and no records.
	quiet, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	for {
		b, err := src.Read(quiet)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil || len(b.Records) > 0 {
			t.Fatalf("read of a quiet selection for 4 stall periods: %d records, %v; want it still waiting", len(b.Records), err)
		}
	}
	// And it still delivers afterwards. Batches with no records may come
	// first: other databases' writes, and the caught-up delay report an
	// idle source sends on a server heartbeat.
	e.workload(t, 1)
	for {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("read after the quiet time: %v", err)
		}
		if len(b.Records) > 0 {
			break
		}
	}
}

// TestBinlogTimeNeverGoesBack: a transaction's time is its first event's,
// so on MySQL a long transaction that commits after short ones carries an
// earlier time than they did. The position the source reports after it
// moves on (its token) but keeps the higher time.
func TestBinlogTimeNeverGoesBack(t *testing.T) {
	s := &binlogSource{log: zap.NewNop(), file: "binlog.000001"}
	s.lastTS = 100 // where it resumed
	for _, c := range []struct {
		begin int64
		end   uint32
		want  int64
	}{
		{begin: 105, end: 400, want: 105},
		{begin: 110, end: 800, want: 110},
		{begin: 101, end: 1200, want: 110}, // the long one
		{begin: 111, end: 1600, want: 111},
	} {
		s.begin(c.begin, true)
		s.end(c.end)
		if s.lastTS != c.want || s.last.Pos != c.end {
			t.Fatalf("after a transaction begun at %d ending at %d: time %d at %d, want time %d", c.begin, c.end, s.lastTS, s.last.Pos, c.want)
		}
	}
}
