package bench

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
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a second mariadbd on loopback, started by the benchmarks: the
// native replica and the target of cm's tasks, so both appliers write to
// the same server with the same settings.
type server struct {
	dir string
	// files is the server's secure_file_priv: where LOAD DATA INFILE
	// reads from.
	files string
	port  int
	cmd   *exec.Cmd
	done  chan struct{}
	db    *sql.DB // root, no database selected, multiStatements
}

var replica = struct {
	once sync.Once
	srv  *server
	err  error
}{}

// replicaServer starts the shared second server on first use; TestMain
// stops it.
func replicaServer(b testing.TB) *server {
	b.Helper()
	replica.once.Do(func() { replica.srv, replica.err = startServer() })
	if replica.err != nil {
		b.Fatal(replica.err)
	}
	return replica.srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if replica.srv != nil {
		replica.srv.stop()
	}
	printVerdicts(os.Stdout)
	if cmBinary.path != "" {
		os.RemoveAll(filepath.Dir(cmBinary.path))
	}
	os.Exit(code)
}

func sbin(name string) string {
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return name
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startServer initialises a data directory and runs mariadbd with the same
// durability settings as the source server of scripts/with-mariadb.sh
// (innodb_flush_log_at_trx_commit=2), no binary log (a replica without
// log_slave_updates writes none, and cm's target need not either), and a
// single replication applier thread.
func startServer() (*server, error) {
	dir, err := os.MkdirTemp("", "cm-bench-replica-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, sbin("mariadb-install-db"), "--no-defaults", "--user=root",
		"--datadir="+filepath.Join(dir, "data"), "--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	files := filepath.Join(dir, "files")
	// The servers read and write it as whatever user they run as.
	if err := os.Mkdir(files, 0o777); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chmod(files, 0o777); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{dir: dir, files: files, port: port, done: make(chan struct{})}
		logf, err := os.Create(filepath.Join(dir, "error.log"))
		if err != nil {
			return nil, err
		}
		s.cmd = exec.Command(sbin("mariadbd"), "--no-defaults", "--user=root",
			"--datadir="+filepath.Join(dir, "data"), "--socket="+filepath.Join(dir, "sock"),
			"--pid-file="+filepath.Join(dir, "pid"), "--port="+strconv.Itoa(port),
			"--bind-address=127.0.0.1", "--skip-name-resolve", "--server-id=2", "--skip-log-bin",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
			"--max-connections=200", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
			"--skip-slave-start", "--slave-parallel-threads=0", "--innodb-buffer-pool-size=1G",
			"--secure-file-priv="+files)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			logf.Close()
			return nil, err
		}
		logf.Close()
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		if s.db, err = sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/?multiStatements=true", port)); err != nil {
			s.stop()
			return nil, err
		}
		if err := s.wait(); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			s.stopKeep()
			if attempt < 4 && strings.Contains(string(log), "Address already in use") {
				continue
			}
			os.RemoveAll(dir)
			return nil, fmt.Errorf("mariadbd: %w\n%s", err, log)
		}
		return s, nil
	}
	return nil, fmt.Errorf("mariadbd: no free port")
}

func (s *server) wait() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopKeep shuts the server down (SIGTERM, then SIGKILL after 30 s).
func (s *server) stopKeep() {
	if s.db != nil {
		s.db.Close()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) stop() {
	s.stopKeep()
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
