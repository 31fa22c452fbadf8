package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// BenchmarkMySQLFullImport copies a table of CM_BENCH_IMPORT_ROWS rows
// (1M by default, about 100 MB) from a source server of its own (see
// privateSource) to the second server, in CM_BENCH_MYSQL_ROUNDS rounds, three ways each round, the order
// alternating: server-side LOAD DATA INFILE of a file the source wrote with
// SELECT ... INTO OUTFILE (the file is written before the timed LOAD, and
// its writing is timed on its own), `mariadb-dump --single-transaction |
// mariadb`, and a cm full_trans task (timed from the create call until
// FINISHED; the sink creates the target table inside the timed part). Each
// copy is checked by checksum against the source and dropped before the next.
func BenchmarkMySQLFullImport(b *testing.B) {
	rounds := envInt(b, "CM_BENCH_MYSQL_ROUNDS", 3)
	rows := envInt(b, "CM_BENCH_IMPORT_ROWS", 1_000_000)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := replicaServer(b)
		src := privateSource(b, r.files)
		n := node(b)
		big := src.t("big")
		execOn(b, src.admin, fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME, note VARCHAR(100))", big))
		for lo := 1; lo <= rows; lo += 100_000 {
			execOn(b, src.admin, "INSERT INTO "+big+" SELECT seq, CONCAT('name ', seq), seq / 7, '2024-01-01' + INTERVAL seq SECOND, REPEAT('n', 20 + seq % 60) FROM "+src.seq(lo, min(lo+99_999, rows)))
		}
		create := showCreate(b, src.admin, big)
		want := checksum(b, src.admin, big)
		dir := r.files
		copyDB := func(kind string, k int) string { return src.db + "_" + kind + strconv.Itoa(k) }
		drop := func(db string) { execOn(b, r.db, "DROP DATABASE IF EXISTS `"+db+"`") }
		check := func(what, db string) {
			if got := checksum(b, r.db, "`"+db+"`.big"); got != want {
				b.Fatalf("%s copy: %s, source %s", what, got, want)
			}
			drop(db)
		}
		cpu := newCPUMeter(b, src, r)

		var outfiles, loads, dumps, cms []phase
		for k := 0; k < rounds; k++ {
			load := func() {
				file := filepath.Join(dir, fmt.Sprintf("big-%d-%d.txt", i, k))
				out := measure(b, cpu, src, r, func() float64 {
					execOn(b, src.admin, "SELECT * FROM "+big+" INTO OUTFILE '"+file+"' CHARACTER SET utf8mb4")
					return 0
				})
				db := copyDB("load", k)
				b.Cleanup(func() { drop(db) })
				execOn(b, r.db, "CREATE DATABASE `"+db+"`; USE `"+db+"`; "+create)
				p := measure(b, cpu, src, r, func() float64 {
					execOn(b, r.db, "LOAD DATA INFILE '"+file+"' INTO TABLE `"+db+"`.big CHARACTER SET utf8mb4")
					return 0
				})
				if err := os.Remove(file); err != nil {
					b.Log(err)
				}
				check("LOAD DATA", db)
				logf(b, "round %d SELECT ... INTO OUTFILE: %s", k+1, out)
				logf(b, "round %d LOAD DATA INFILE: %s", k+1, p)
				outfiles, loads = append(outfiles, out), append(loads, p)
			}
			dump := func() {
				db := copyDB("dump", k)
				b.Cleanup(func() { drop(db) })
				execOn(b, r.db, "CREATE DATABASE `"+db+"`")
				pass := ""
				if src.password != "" {
					pass = " -p'" + src.password + "'"
				}
				pipeline := fmt.Sprintf("set -o pipefail; mariadb-dump --no-defaults -h %s -P %s -u %s%s --single-transaction %s big | mariadb --no-defaults -h 127.0.0.1 -P %d -u root %s",
					src.host, src.port, src.user, pass, src.db, r.port, db)
				p := measure(b, cpu, src, r, func() float64 {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
					defer cancel()
					cmd := exec.CommandContext(ctx, "bash", "-c", pipeline)
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("mariadb-dump | mariadb: %v\n%s", err, out)
					}
					// bash's own usage includes its children it waited for.
					return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
				})
				check("dump", db)
				logf(b, "round %d mariadb-dump | mariadb: %s", k+1, p)
				dumps = append(dumps, p)
			}
			runCM := func() {
				db := copyDB("cm", k)
				b.Cleanup(func() { drop(db) })
				_, body := src.task(r, "full_trans", db, twoCores)
				stop := func() {}
				if k == rounds-1 {
					stop = profileCM(b, "import")
				}
				p := measure(b, cpu, src, r, func() float64 {
					name := n.OK(b, http.MethodPost, base+"create", body).String()
					poll(b, 20*time.Minute, "the full import finishes", func() bool {
						d := n.Detail(b, name)
						if d.State == model.StateException {
							b.Fatalf("cm task failed: %+v", d.ErrorDetails)
						}
						return d.State == model.StateFinished
					})
					return 0
				})
				stop()
				check("cm", db)
				logf(b, "round %d cm full import: %s", k+1, p)
				cms = append(cms, p)
			}
			steps := []func(){load, dump, runCM}
			if k%2 == 1 {
				steps[0], steps[2] = steps[2], steps[0]
			}
			for _, s := range steps {
				s()
			}
		}

		mOut, mLoad, mDump, mCM := medianPhase(outfiles), medianPhase(loads), medianPhase(dumps), medianPhase(cms)
		cmS := mCM.wall.Seconds()
		vsLoad := mLoad.wall.Seconds() / cmS
		vsBoth := medianOf(loads, func(p phase) float64 { return p.wall.Seconds() })
		vsBoth = (vsBoth + mOut.wall.Seconds()) / cmS
		vsDump := mDump.wall.Seconds() / cmS
		perRow := func(cpu float64) string { return fmt.Sprintf("%.2f µs", cpu*1e6/float64(rows)) }
		b.ReportMetric(mLoad.wall.Seconds(), "load_s")
		b.ReportMetric(mDump.wall.Seconds(), "dump_s")
		b.ReportMetric(cmS, "cm_s")
		b.ReportMetric(float64(rows)/cmS, "cm_rows/s")
		b.ReportMetric(vsLoad, "x_load")
		logf(b, "medians of %d rounds: INTO OUTFILE %s; LOAD DATA %s; dump %s; cm %s", rounds, mOut, mLoad, mDump, mCM)
		logf(b, "CPU per row: target server %s for cm's statements, %s for LOAD DATA, %s for the dump; cm process %s; source %s for cm's reads, %s for INTO OUTFILE",
			perRow(mCM.tgt), perRow(mLoad.tgt), perRow(mDump.tgt), perRow(mCM.cm), perRow(mCM.src), perRow(mOut.src))
		what := fmt.Sprintf("(2) full import, %s rows", thousands(rows))
		report(b,
			verdict{Scenario: what + ": vs LOAD DATA INFILE alone", CM: secs(mCM.wall), Baseline: secs(mLoad.wall),
				Ratio: fmt.Sprintf("%.2fx", vsLoad), Target: "≥ 1.0x", Met: vsLoad >= 1.0},
			verdict{Scenario: what + ": vs SELECT INTO OUTFILE + LOAD DATA", CM: secs(mCM.wall), Baseline: secs(mLoad.wall + mOut.wall),
				Ratio: fmt.Sprintf("%.2fx", vsBoth), Target: "≥ 1.0x", Met: vsBoth >= 1.0},
			verdict{Scenario: what + ": vs mariadb-dump | mariadb", CM: secs(mCM.wall), Baseline: secs(mDump.wall),
				Ratio: fmt.Sprintf("%.2fx", vsDump), Target: "≥ 1.5x", Met: vsDump >= 1.5},
			verdict{Scenario: what + ": target server CPU per row, vs LOAD DATA", CM: perRow(mCM.tgt), Baseline: perRow(mLoad.tgt),
				Ratio: fmt.Sprintf("%.2fx", mCM.tgt/mLoad.tgt), Target: "≤ 1.0x", Met: mCM.tgt <= mLoad.tgt},
		)
	}
}

// privateSource starts a source server of the benchmark's own, configured
// like the one of scripts/with-mariadb.sh (internal/dbtest.StartServer) but
// with the second server's buffer pool (1 GiB) and allowed to write files
// where the second server reads them (secure_file_priv, which the shared
// server leaves NULL: no INTO OUTFILE), and one database on it.
func privateSource(b testing.TB, files string) *source {
	b.Helper()
	srv := dbtest.StartServer(b, "--innodb-buffer-pool-size=1G", "--secure-file-priv="+files)
	db, err := sql.Open("mysql", srv.DSN)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	b.Cleanup(func() { db.Close() })
	s := &source{admin: db, host: "127.0.0.1", port: strconv.Itoa(srv.Port), user: "root", db: "bench_import"}
	execOn(b, db, "CREATE DATABASE "+s.db)
	return s
}
