package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// cmBinary is a cm binary built once per test binary run: the crash tests
// run real `cm serve` processes and kill them with SIGKILL.
var cmBinary = struct {
	once sync.Once
	path string
	err  error
}{}

func buildCM(t *testing.T) string {
	t.Helper()
	cmBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "cm-e2e-bin-")
		if err != nil {
			cmBinary.err = err
			return
		}
		// go test puts the bin directory of the go command running it
		// first on PATH, so "go" is that same toolchain.
		goTool := "go"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmBinary.path = filepath.Join(dir, "cm")
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", cmBinary.path, "github.com/connector-manager/cm/cmd/cm").CombinedOutput()
		if err != nil {
			cmBinary.err = fmt.Errorf("go build cm/cmd/cm: %w\n%s", err, out)
		}
	})
	if cmBinary.err != nil {
		t.Fatal(cmBinary.err)
	}
	return cmBinary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cmBinary.path != "" {
		os.RemoveAll(filepath.Dir(cmBinary.path))
	}
	os.Exit(code)
}

// cmProcess is a running `cm serve`.
type cmProcess struct {
	cmd  *exec.Cmd
	node *cmtest.Node // only URL is set: the API helpers
	log  string
	done chan struct{}
}

// freeAddr returns a loopback address reserved for this test
// (cmtest.ReservePort): a child cm listens on it, and on it again after a
// restart.
func freeAddr(t *testing.T) string { return cmtest.ReservePort(t) }

// startCM runs `cm serve` on addr with its store at db and waits until it
// answers /healthz. Its output goes to a file under dir.
func startCM(t *testing.T, bin, addr, db, dir string) *cmProcess {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("cm-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "info")
	cmd.Env = append(os.Environ(), "CM_DB="+db)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &cmProcess{cmd: cmd, node: &cmtest.Node{URL: "http://" + addr}, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(t) })
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(p.node.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("cm exited at start:\n%s", p.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cm did not answer /healthz within 60 s:\n%s", p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *cmProcess) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("cm %d did not die within 30 s of SIGKILL", p.cmd.Process.Pid)
	}
}

func (p *cmProcess) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// TestKill9DuringIncrementalSync: a writer keeps committing transactions
// (inserts, updates, deletes) on the source while cm streams them; cm is
// killed with SIGKILL mid-stream, the writer goes on while cm is down, cm
// starts again. The durable checkpoint never moves back, and once it is
// past the writer's last change the target equals the source.
func TestKill9DuringIncrementalSync(t *testing.T) {
	bin := buildCM(t)
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	dir, addr, store := t.TempDir(), freeAddr(t), dbtest.MySQLURL(t)

	p := startCM(t, bin, addr, store, dir)
	name := p.node.OK(t, http.MethodPost, base+"create", e.task(component("incr_trans"), nil)).String()
	sub := e.subtopic()
	var last binlogPos
	// observe reads the durable checkpoint and checks it never moves back.
	observe := func(p *cmProcess) binlogPos {
		d := p.node.Detail(t, name)
		if d.State == model.StateException {
			t.Fatalf("task failed: %+v\n%s", d.ErrorDetails, p.tail())
		}
		at, ok := parseToken(d.Checkpoint[sub].Token)
		if ok {
			if at.before(last) {
				t.Fatalf("durable checkpoint moved back: %s -> %s", last, at)
			}
			last = at
		}
		return last
	}
	cmtest.Eventually(t, 30*time.Second, "the task records its starting position", func() bool { return observe(p).file != "" })

	// The writer: transactions of 20 inserts, an update of 10 earlier rows
	// and a delete of 3, until stopped (at most 20000 transactions).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The writer stops between transactions: one cancelled in flight could
	// commit on the server after the writer returned.
	var stopping atomic.Bool
	stopWriter := func() { stopping.Store(true) }
	var wg sync.WaitGroup
	var writerErr error
	var txns atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20000 && ctx.Err() == nil && !stopping.Load(); i++ {
			lo := i*20 + 1
			_, err := e.admin.ExecContext(ctx, fmt.Sprintf("BEGIN; "+
				"INSERT INTO %[1]s SELECT seq, CONCAT('r', seq), seq, NOW(3), NULL FROM %[2]s.seq_%[3]d_to_%[4]d; "+
				"UPDATE %[1]s SET amount = amount + 1, note = 'u%[5]d' WHERE id BETWEEN %[6]d AND %[6]d + 9; "+
				"DELETE FROM %[1]s WHERE id IN (%[7]d, %[7]d + 5, %[7]d + 7); COMMIT",
				e.srcT("a"), e.src, lo, lo+19, i, max(1, lo-100), max(1, lo-50)))
			if err != nil {
				if ctx.Err() == nil {
					writerErr = err
				}
				return
			}
			txns.Store(int64(i + 1))
		}
	}()

	// Kill while it streams: after some progress, with the writer still going.
	killAt := time.Now().Add(1500 * time.Millisecond)
	cmtest.Eventually(t, 60*time.Second, "progress before the kill", func() bool {
		first := last
		return observe(p) != first && time.Now().After(killAt)
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	killedAt := last
	atKill := txns.Load()
	t.Logf("killed cm at durable checkpoint %s, %d source transactions committed so far", killedAt, atKill)
	// The writer goes on while cm is down.
	cmtest.Eventually(t, 30*time.Second, "the writer commits while cm is down", func() bool { return txns.Load() >= atKill+20 })

	p = startCM(t, bin, addr, store, dir)
	if at := observe(p); at.before(killedAt) {
		t.Fatalf("checkpoint after restart %s is behind %s seen before the kill", at, killedAt)
	}
	// Let it stream again with the writer still going, then stop the writer.
	atRestart := txns.Load()
	cmtest.Eventually(t, 60*time.Second, "streaming again while the writer writes", func() bool {
		return killedAt.before(observe(p)) && txns.Load() > atRestart
	})
	stopWriter()
	wg.Wait()
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	if n := txns.Load(); n == atKill || n == 20000 {
		t.Fatalf("the writer was not running across the kill and restart (%d transactions at the kill, %d at the end)", atKill, n)
	}
	end := e.binlogEnd(t)
	cmtest.Eventually(t, 2*time.Minute, "checkpoint reaches "+end.String(), func() bool { return !observe(p).before(end) })
	if d := e.diff(t, "a"); d != "" {
		t.Fatalf("after the restart the target differs: %s\n%s", d, p.tail())
	}
	t.Logf("%d transactions; target equals source: %s", txns.Load(), e.checksum(t, e.dstT("a")))
}

// fullProgress is a full import's token.
type fullProgress struct {
	Rows int64 `json:"rows"`
	Done bool  `json:"done"`
}

// TestKill9DuringFullImport: cm is killed with SIGKILL while a full import
// copies a table, and started again. The import finishes, the target
// equals the source, and the rows written more than once (counted by a
// trigger on the target: every row the sink writes fires it) are at most
// one chunk per reader.
func TestKill9DuringFullImport(t *testing.T) {
	const (
		rows        = 300_000
		batchSize   = 5000
		parallelism = 4
	)
	bin := buildCM(t)
	e := newEnv(t)
	e.exec(t, sprintf(tableA, e.srcT("a")))
	e.exec(t, "INSERT INTO "+e.srcT("a")+" SELECT seq, CONCAT('row ', seq), seq / 7, '2024-01-01 00:00:00' + INTERVAL seq SECOND, REPEAT('n', seq % 100) FROM "+e.src+sprintf(".seq_1_to_%d", rows))
	e.exec(t, "CREATE TABLE "+e.dstT("a")+" LIKE "+e.srcT("a"))
	e.exec(t, "CREATE TABLE "+e.dstT("writes")+" (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO "+e.dstT("writes")+" VALUES (1, 0)")
	e.exec(t, "CREATE TRIGGER "+e.dst+".count_writes BEFORE INSERT ON "+e.dstT("a")+" FOR EACH ROW UPDATE "+e.dstT("writes")+" SET n = n + 1 WHERE id = 1")
	dir, addr, store := t.TempDir(), freeAddr(t), dbtest.MySQLURL(t)
	sub := e.src + ".a"

	p := startCM(t, bin, addr, store, dir)
	name := p.node.OK(t, http.MethodPost, base+"create", e.task(component("full_trans"), map[string]map[string]string{
		"coordinator": {"batchSize": itoa(batchSize), "parallelism": itoa(parallelism)},
	})).String()
	progressOf := func(p *cmProcess) (fullProgress, model.State) {
		d := p.node.Detail(t, name)
		if d.State == model.StateException {
			t.Fatalf("task failed: %+v\n%s", d.ErrorDetails, p.tail())
		}
		var fp fullProgress
		if tok := d.Checkpoint[sub].Token; tok != "" {
			if err := json.Unmarshal([]byte(tok), &fp); err != nil {
				t.Fatalf("token %q: %v", tok, err)
			}
		}
		return fp, d.State
	}
	var before fullProgress
	cmtest.Eventually(t, 2*time.Minute, "a third of the table copied", func() bool {
		before, _ = progressOf(p)
		return before.Rows >= rows/3
	})
	if before.Done {
		t.Fatal("the import finished before the kill; make the table larger")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	written := e.count(t, "SELECT n FROM "+e.dstT("writes"))
	t.Logf("killed cm with %d rows durably checkpointed (seen last) and %d rows written", before.Rows, written)

	p = startCM(t, bin, addr, store, dir)
	resumed, _ := progressOf(p)
	t.Logf("after restart the durable checkpoint says %d rows", resumed.Rows)
	cmtest.Eventually(t, 3*time.Minute, "the import finishes", func() bool {
		_, st := progressOf(p)
		return st == model.StateFinished
	})
	if d := e.diff(t, "a"); d != "" {
		t.Fatalf("after the import the target differs: %s", d)
	}
	final, _ := progressOf(p)
	if !final.Done || final.Rows != rows {
		t.Fatalf("final token: %+v, want done with %d rows", final, rows)
	}
	writes := e.count(t, "SELECT n FROM "+e.dstT("writes"))
	again := writes - rows
	t.Logf("rows written %d for %d rows: %d written twice (%.2f chunks of %d; %d readers); written after the last durable checkpoint, so copied again: %d rows",
		writes, rows, again, float64(again)/batchSize, batchSize, parallelism, written-resumed.Rows)
	if again > batchSize*parallelism {
		t.Errorf("re-copied %d rows after the crash, more than one chunk per reader (%d)", again, batchSize*parallelism)
	}
}

// count runs a query answering one integer.
func (e *env) count(t testing.TB, query string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int64
	if err := e.admin.QueryRowContext(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
