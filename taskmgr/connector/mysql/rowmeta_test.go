package mysql

import (
	"context"
	"database/sql"
	"errors"
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

	"go.uber.org/zap/zaptest"

	"cm/model"
	"cm/taskmgr/connector"
)

// ownServer is a throwaway mariadbd in a temp dir on a free loopback port,
// for tests that need a server setting the shared one must keep (such as
// binlog_row_metadata, which is GLOBAL only). It is shut down when the test
// ends.
type ownServer struct {
	port int
	db   *sql.DB
}

func startOwnServer(t *testing.T, flags ...string) *ownServer {
	t.Helper()
	for _, tool := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (make deps installs mariadb-server): %v", tool, err)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
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
		db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/?multiStatements=true", port))
		if err != nil {
			stop()
			t.Fatal(err)
		}
		if up := waitUp(db, exited, 60*time.Second); up {
			t.Cleanup(func() { db.Close(); stop() })
			return &ownServer{port: port, db: db}
		}
		db.Close()
		stop()
		log, _ := os.ReadFile(logPath)
		if !strings.Contains(string(log), "Address already in use") {
			t.Fatalf("mariadbd did not start:\n%s", log)
		}
	}
	t.Fatal("mariadbd found no free port in 3 attempts")
	return nil
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

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (o *ownServer) exec(t *testing.T, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := o.db.ExecContext(ctx, q); err != nil {
		t.Fatalf("%s: %v", clip(q, 200), err)
	}
}

// nextSecond waits until the server's clock is in a later second than now
// and returns that second: what is logged from then on has that time or
// later, what was logged before has an earlier one.
func (o *ownServer) nextSecond(t *testing.T) int64 {
	t.Helper()
	var now int64
	if err := o.db.QueryRow("SELECT UNIX_TIMESTAMP()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ { // 2 s at most
		var ts int64
		if err := o.db.QueryRow("SELECT UNIX_TIMESTAMP()").Scan(&ts); err != nil {
			t.Fatal(err)
		}
		if ts > now {
			return ts
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the server's clock did not move in 2 s")
	return 0
}

// TestBinlogRowMetadataMinimal, on a server of its own logging MINIMAL row
// metadata: the open source shows the condition as a WARNING, and a rewind
// to a time before a column reorder of a selected table with rows logged
// in between is refused naming the statement; a rewind after it, or across
// only an index change, is accepted.
func TestBinlogRowMetadataMinimal(t *testing.T) {
	srv := startOwnServer(t, "--binlog-row-metadata=MINIMAL")
	srv.exec(t, "CREATE DATABASE src; CREATE TABLE src.t (id INT PRIMARY KEY, a VARCHAR(20), b INT); CREATE TABLE src.other (id INT PRIMARY KEY, v INT)")
	cfg := connector.Config{
		Task: model.TaskName{Node: "127.0.0.1-9000", Component: model.Component{Project: "p_rowmeta", Type: model.TypeIncr, N: 1}, Version: 1},
		Type: model.TypeIncr,
		Scopes: model.Config{"source": {"type": "mysql", "host": "127.0.0.1", "port": strconv.Itoa(srv.port),
			"username": "root", "tables": "src.t"}},
		Logger: zaptest.NewLogger(t),
	}
	newSource := func() *BinlogSource {
		src, err := NewBinlogSource(cfg)
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
	if len(w) != 1 || w[0].Code != CodeRowMetadataMinimal || w[0].Level != model.LevelWarning || !strings.Contains(w[0].Message, "MINIMAL") {
		t.Fatalf("warnings of a source on a MINIMAL server: %+v", w)
	}

	before := srv.nextSecond(t)
	srv.exec(t, "INSERT INTO src.t VALUES (1, 'one', 1), (2, 'two', 2)")
	srv.exec(t, "ALTER TABLE src.t MODIFY a VARCHAR(20) AFTER b") // same column count, other order
	srv.exec(t, "INSERT INTO src.t VALUES (3, 4, 'three')")
	err := newSource().CheckRewind(ctx, map[string]int64{sub: before})
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Detail.Code != CodeRewindAcrossDDL || !ce.Permanent || !strings.Contains(ce.Detail.Message, "MODIFY a VARCHAR(20) AFTER b") {
		t.Fatalf("rewind across the reorder: %v; want a permanent %s naming the statement", err, CodeRewindAcrossDDL)
	}
	t.Logf("refused: %s", ce.Detail.Message)

	// After the reorder, and across changes that keep the columns, or of
	// tables the task does not read, a rewind is fine.
	after := srv.nextSecond(t)
	srv.exec(t, "INSERT INTO src.t VALUES (5, 6, 'five')")
	srv.exec(t, "ALTER TABLE src.t ADD INDEX ib (b)")
	srv.exec(t, "INSERT INTO src.other VALUES (1, 1); ALTER TABLE src.other ADD COLUMN w INT FIRST")
	srv.exec(t, "INSERT INTO src.t VALUES (7, 8, 'seven')")
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
