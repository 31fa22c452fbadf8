package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a throwaway mariadbd of a test's own, in a temp dir on a free
// loopback port, for tests that need a server setting the shared one must
// keep (binlog_row_metadata, for one, is GLOBAL only). It is configured
// like the one scripts/with-mariadb.sh starts, plus the test's flags, and
// shut down when the test ends.
type Server struct {
	Port int
	// DSN is the go-sql-driver DSN of the server as root, no database
	// selected, multiStatements on.
	DSN string
	DB  *sql.DB
}

// StartServer starts a mariadbd with flags added to the usual ones. It waits
// at most 60 s for the server to answer, and retries on another port if the
// one it picked was taken meanwhile.
func StartServer(t testing.TB, flags ...string) *Server {
	t.Helper()
	for _, tool := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("dbtest: %s not found (make deps installs mariadb-server): %v", tool, err)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("dbtest: mariadb-install-db: %v\n%s", err, out)
	}
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		logPath := filepath.Join(dir, fmt.Sprintf("error-%d.log", attempt))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--no-defaults", "--user=root", "--datadir=" + data,
			"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
			"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-name-resolve",
			"--log-bin=" + filepath.Join(data, "binlog"), "--binlog-format=ROW", "--server-id=1",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
			"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-buffer-pool-size=16M"}, flags...)
		cmd := exec.Command("mariadbd", args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		dsn := fmt.Sprintf("root@tcp(127.0.0.1:%d)/?multiStatements=true", port)
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			stop()
			t.Fatal(err)
		}
		if waitUp(db, exited, 60*time.Second) {
			t.Cleanup(func() { db.Close(); stop() })
			return &Server{Port: port, DSN: dsn, DB: db}
		}
		db.Close()
		stop()
		log, _ := os.ReadFile(logPath)
		if !strings.Contains(string(log), "Address already in use") {
			t.Fatalf("dbtest: mariadbd did not start:\n%s", log)
		}
	}
	t.Fatal("dbtest: mariadbd found no free port in 3 attempts")
	return nil
}

// Exec runs statements on the server (several per call are fine), bounded.
func (s *Server) Exec(t testing.TB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.DB.ExecContext(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// NextSecond waits (2 s at most) until the server's clock is in a later
// second than when called, and returns that second: what the server logs
// from then on has that time or later, what it logged before an earlier one.
func (s *Server) NextSecond(t testing.TB) int64 {
	t.Helper()
	now := s.now(t)
	for i := 0; i < 100; i++ {
		if ts := s.now(t); ts > now {
			return ts
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("dbtest: the server's clock did not move in 2 s")
	return 0
}

func (s *Server) now(t testing.TB) int64 {
	t.Helper()
	var ts int64
	if err := s.DB.QueryRow("SELECT UNIX_TIMESTAMP()").Scan(&ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

// waitUp pings db until it answers, the server exits or within passes.
func waitUp(db *sql.DB, exited <-chan struct{}, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
