package bench

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
)

// BenchmarkMySQLCatchUp writes a binlog of at least 500k row changes in
// many small transactions (each: 8 inserts, 3 updates, 1 delete, over two
// tables, from 4 writers), then, in CM_BENCH_MYSQL_ROUNDS rounds, replays
// the same binlog range on the second server three ways: a MariaDB native
// replica with one applier thread, the same replica with
// slave_parallel_threads=4 and slave_parallel_mode=optimistic, and a cm
// incr_trans task resumed at that position (each round has its own task,
// created before the workload). The order alternates between rounds. After
// its catch-up, each round corrupts cm's copy and pulls the task back to the
// workload's first second: the pullback is timed from the call until the
// durable checkpoint is at the end again and the copy equals the source.
// Every copy is checked by checksum against the source.
func BenchmarkMySQLCatchUp(b *testing.B) {
	const (
		writers    = 4
		rowsPerTxn = 12
	)
	rounds := envInt(b, "CM_BENCH_MYSQL_ROUNDS", 3)
	txnsPerWriter := envInt(b, "CM_BENCH_CATCHUP_TXNS", 11_250) // 4 * 11,250 * 12 = 540,000 row changes
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, r := newSource(b), replicaServer(b)
		n := node(b)
		tables := []string{"t1", "t2"}
		for _, tb := range tables {
			execOn(b, src.admin, fmt.Sprintf(catchUpTable, src.t(tb)))
		}
		nativeDB := src.db
		cmDB := func(k int) string { return src.db + "_cm" + strconv.Itoa(k) }
		b.Cleanup(func() {
			execOn(b, r.db, "DROP DATABASE IF EXISTS `"+nativeDB+"`")
			for k := 0; k < rounds; k++ {
				execOn(b, r.db, "DROP DATABASE IF EXISTS `"+cmDB(k)+"`")
			}
		})
		execOn(b, r.db, "CREATE DATABASE `"+nativeDB+"`")

		// One task per round records its start (the binlog end) and is
		// stopped: the native replicas start where the first one does.
		sub := src.host + "-" + src.port
		names := make([]string, rounds)
		starts := make([]pos, rounds)
		for k := range names {
			_, body := src.task(r, "incr_trans", cmDB(k), twoCores)
			names[k] = n.OK(b, http.MethodPost, base+"create", body).String()
			cmtest.Eventually(b, 30*time.Second, "cm records its start position", func() bool {
				var ok bool
				starts[k], ok = parsePos(n.Detail(b, names[k]).Checkpoint[sub].Token)
				return ok
			})
			n.OK(b, http.MethodPost, base+"stop?taskName="+names[k], nil)
		}
		start := starts[0]
		// The pullback goes back to a whole second: the first one after the
		// tables were created, before the first row of the workload.
		from := src.clock(b) + 1
		cmtest.Eventually(b, 5*time.Second, "the source's clock reaches the pullback time", func() bool { return src.clock(b) >= from })

		genStart := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- catchUpWriter(src, tables[w%2], int64(w)*10_000_000, txnsPerWriter)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		end := src.binlogEnd(b)
		changes := writers * txnsPerWriter * rowsPerTxn
		logf(b, "workload: %d row changes in %d transactions, binlog %s..%s, written in %s; task starts %v",
			changes, writers*txnsPerWriter, start, end, time.Since(genStart).Round(time.Millisecond), starts)
		want := map[string]string{}
		for _, tb := range tables {
			want[tb] = checksum(b, src.admin, src.t(tb))
		}
		check := func(what, db string) {
			for _, tb := range tables {
				if got := checksum(b, r.db, "`"+db+"`.`"+tb+"`"); got != want[tb] {
					b.Fatalf("%s %s: %s, source %s", what, tb, got, want[tb])
				}
			}
		}

		cpu := newCPUMeter(b, src, r)
		native := func(k, threads int) phase {
			for _, tb := range tables {
				execOn(b, r.db, "DROP TABLE IF EXISTS `"+nativeDB+"`.`"+tb+"`; USE `"+nativeDB+"`; "+showCreate(b, src.admin, src.t(tb)))
			}
			mode := "conservative"
			if threads > 0 {
				mode = "optimistic"
			}
			execOn(b, r.db, "SET GLOBAL replicate_wild_do_table = '"+nativeDB+".%'")
			execOn(b, r.db, fmt.Sprintf("SET GLOBAL slave_parallel_threads = %d", threads))
			execOn(b, r.db, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
				"MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d, MASTER_USE_GTID=no", src.port, src.user, src.password, start.file, start.off))
			execOn(b, r.db, "SET GLOBAL slave_parallel_mode = '"+mode+"'")
			retried := globalInt(b, r.db, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RETRIED_TRANSACTIONS'")
			p := measure(b, cpu, src, r, func() float64 {
				execOn(b, r.db, "START SLAVE")
				poll(b, 20*time.Minute, "the native replica reaches "+end.String(), func() bool {
					st := showRow(b, r.db, "SHOW SLAVE STATUS")
					if st["Last_SQL_Error"] != "" || st["Last_IO_Error"] != "" {
						b.Fatalf("native replica: %s %s", st["Last_SQL_Error"], st["Last_IO_Error"])
					}
					off, _ := strconv.ParseUint(st["Exec_Master_Log_Pos"], 10, 64)
					return !(pos{st["Relay_Master_Log_File"], off}).before(end)
				})
				return 0
			})
			retried = globalInt(b, r.db, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RETRIED_TRANSACTIONS'") - retried
			// What the server says it ran with: the mode, and its applier
			// worker threads (the parallel replica's pool).
			mode = showRow(b, r.db, "SHOW SLAVE STATUS")["Parallel_Mode"]
			workers := globalInt(b, r.db, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_worker'")
			mode = fmt.Sprintf("Parallel_Mode %s, %d worker threads", mode, workers)
			execOn(b, r.db, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL replicate_wild_do_table = ''; SET GLOBAL slave_parallel_threads = 0")
			check(fmt.Sprintf("native replica (%d threads)", threads), nativeDB)
			logf(b, "round %d native replica, slave_parallel_threads=%d (%s): %s; %d transactions retried", k+1, threads, mode, p, retried)
			return p
		}

		var one, four, cms, pulls []phase
		for k := 0; k < rounds; k++ {
			runCM := func() {
				name := names[k]
				stopProfile := profileCM(b, "catchup"+strconv.Itoa(k))
				var answered, moved time.Duration
				p := measure(b, cpu, src, r, func() float64 {
					t0 := time.Now()
					n.OK(b, http.MethodPost, base+"resume?taskName="+name, nil)
					answered = time.Since(t0)
					moved = waitPos(b, n, name, sub, start, end, t0)
					return 0
				})
				stopProfile()
				n.OK(b, http.MethodPost, base+"stop?taskName="+name, nil)
				check("cm", cmDB(k))
				logf(b, "round %d cm catch-up: %s; the call answered after %s, the first durable position after %s",
					k+1, p, answered.Round(time.Millisecond), moved.Round(time.Millisecond))
				cms = append(cms, p)

				broken := corrupt(b, r, cmDB(k), tables)
				stopProfile = profileCM(b, "pullback"+strconv.Itoa(k))
				var newName string
				pb := measure(b, cpu, src, r, func() float64 {
					t0 := time.Now()
					newName = n.OK(b, http.MethodPost, base+"pullback?taskName="+name+"&timestamp="+strconv.FormatInt(from, 10), nil).String()
					answered = time.Since(t0)
					moved = waitPos(b, n, newName, sub, pos{}, end, t0)
					return 0
				})
				stopProfile()
				n.OK(b, http.MethodPost, base+"stop?taskName="+newName, nil)
				check("cm after the pullback", cmDB(k))
				logf(b, "round %d cm pullback to %d after corrupting %s: %s; the call answered after %s, the first durable position after %s",
					k+1, from, broken, pb, answered.Round(time.Millisecond), moved.Round(time.Millisecond))
				pulls = append(pulls, pb)
			}
			steps := []func(){
				func() { one = append(one, native(k, 0)) },
				func() { four = append(four, native(k, 4)) },
				runCM,
			}
			if k%2 == 1 {
				steps[0], steps[2] = steps[2], steps[0]
			}
			for _, s := range steps {
				s()
			}
		}

		mOne, mFour, mCM, mPull := medianPhase(one), medianPhase(four), medianPhase(cms), medianPhase(pulls)
		vsFour := medianOf(four, func(p phase) float64 { return p.wall.Seconds() }) / mCM.wall.Seconds()
		vsOne := mOne.wall.Seconds() / mCM.wall.Seconds()
		toLimit := medianOf(cms, func(p phase) float64 { return p.wall.Seconds() / p.limit() })
		pullRatio := medianOf(pulls, func(p phase) float64 { return p.wall.Seconds() }) / mCM.wall.Seconds()
		b.ReportMetric(mOne.wall.Seconds(), "native1_s")
		b.ReportMetric(mFour.wall.Seconds(), "native4_s")
		b.ReportMetric(mCM.wall.Seconds(), "cm_s")
		b.ReportMetric(mPull.wall.Seconds(), "pullback_s")
		b.ReportMetric(float64(changes)/mCM.wall.Seconds(), "cm_rows/s")
		b.ReportMetric(vsFour, "x_native4")
		logf(b, "medians of %d rounds: 1-thread replica %s, 4-thread replica %s, cm %s, cm pullback %s", rounds, mOne, mFour, mCM, mPull)
		what := fmt.Sprintf("(1) catch-up, %s row changes", thousands(changes))
		report(b,
			verdict{Scenario: what + ": vs 4-thread optimistic replica", CM: secs(mCM.wall), Baseline: secs(mFour.wall),
				Ratio: fmt.Sprintf("%.2fx", vsFour), Target: "≥ 1.5x", Met: vsFour >= 1.5},
			verdict{Scenario: what + ": vs 1-thread replica", CM: secs(mCM.wall), Baseline: secs(mOne.wall),
				Ratio: fmt.Sprintf("%.2fx", vsOne), Target: "≥ 1.3x", Met: vsOne >= 1.3},
			verdict{Scenario: what + ": cm's wall vs the two-core limit", CM: secs(mCM.wall), Baseline: fmt.Sprintf("%.2f s", mCM.limit()),
				Ratio: fmt.Sprintf("%.2fx", toLimit), Target: "≤ 1.1x", Met: toLimit <= 1.1},
			verdict{Scenario: fmt.Sprintf("(4) pullback over %s row changes after corrupting the target, vs catch-up of the range", thousands(changes)),
				CM: secs(mPull.wall), Baseline: secs(mCM.wall), Ratio: fmt.Sprintf("%.2fx", pullRatio), Target: "≤ 1.25x", Met: pullRatio <= 1.25},
		)
	}
}

// corrupt damages cm's copy in ways a replay of the workload repairs: a
// tenth of the rows deleted, another tenth overwritten, and rows the source
// deleted put back. It says how many rows each changed.
func corrupt(b testing.TB, r *server, db string, tables []string) string {
	b.Helper()
	var deleted, changed, ghosts int64
	for _, tb := range tables {
		t := "`" + db + "`.`" + tb + "`"
		for _, q := range []struct {
			n *int64
			q string
		}{
			{&deleted, "DELETE FROM " + t + " WHERE id % 10 = 1"},
			{&changed, "UPDATE " + t + " SET amount = 0, note = 'corrupt' WHERE id % 10 = 3"},
			// Each transaction's eighth row (id % 8 = 0) is deleted later on
			// the source: put some back.
			{&ghosts, "INSERT IGNORE INTO " + t + " SELECT id + 7, 'ghost', 0, NOW(3), 'ghost' FROM " + t + " WHERE id % 80 = 9"},
		} {
			res, err := r.db.Exec(q.q)
			if err != nil {
				b.Fatalf("%s: %v", q.q, err)
			}
			c, _ := res.RowsAffected()
			*q.n += c
		}
	}
	return fmt.Sprintf("%d deleted, %d changed, %d deleted rows put back", deleted, changed, ghosts)
}
