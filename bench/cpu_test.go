package bench

import (
	"database/sql"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100
// on every Linux this runs on.
const clockTicks = 100

// cpuTime is the CPU (user + system) a process has used so far, from
// /proc/<pid>/stat; 0 when it cannot be read.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// serverPID is the process id of the server behind db, from its pid file.
func serverPID(b testing.TB, db *sql.DB) int {
	b.Helper()
	var file string
	if err := db.QueryRow("SELECT @@pid_file").Scan(&file); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Logf("no CPU figures for the server: %v", err)
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

// cpuMeter reads the CPU used by the benchmark process (the cm node and
// the benchmark's own polling), the source server and the second server
// over one phase of a benchmark.
type cpuMeter struct {
	pids  [3]int // cm, source, target
	start [3]time.Duration
}

func newCPUMeter(b testing.TB, src *source, r *server) *cpuMeter {
	return &cpuMeter{pids: [3]int{os.Getpid(), serverPID(b, src.admin), r.cmd.Process.Pid}}
}

func (m *cpuMeter) begin() {
	for i, p := range m.pids {
		m.start[i] = cpuTime(p)
	}
}

// quiesce waits until each server has written its dirty pages and purged
// old row versions, so that a timed phase does not pay for the background
// work left by the one before it (the dump's 100 MB of new pages being
// flushed while cm imports, say). It flushes by lowering
// innodb_max_dirty_pages_pct to 0 for the wait, and gives up after a
// minute (logging what was left).
func quiesce(b testing.TB, dbs ...*sql.DB) {
	b.Helper()
	for _, db := range dbs {
		var pct string
		if err := db.QueryRow("SELECT @@GLOBAL.innodb_max_dirty_pages_pct").Scan(&pct); err != nil {
			b.Fatal(err)
		}
		execOn(b, db, "SET GLOBAL innodb_max_dirty_pages_pct = 0")
		deadline := time.Now().Add(time.Minute)
		var dirty, history int64
		for {
			dirty = globalInt(b, db, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
			history = globalInt(b, db, "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'")
			if (dirty == 0 && history < 100) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		execOn(b, db, "SET GLOBAL innodb_max_dirty_pages_pct = "+pct)
		if dirty != 0 || history >= 100 {
			b.Logf("server not quiet after a minute: %d dirty pages, history length %d", dirty, history)
		}
	}
}

func globalInt(b testing.TB, db *sql.DB, q string) int64 {
	b.Helper()
	var v int64
	if err := db.QueryRow(q).Scan(&v); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return v
}
