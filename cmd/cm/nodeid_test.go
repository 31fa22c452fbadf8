package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// runCM runs the test binary as `cm ARGS` on db and waits, bounded, for it
// to exit; it returns the exit status and the output.
func runCM(t *testing.T, db string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CM_TEST_RUN_AS_CM=1", "CM_TEST_ARGS="+strings.Join(args, " "), "CM_DB="+db)
	out := &outputBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return waitExit(t, cmd, out)
}

// waitExit waits up to 60 s for cmd to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd, out *outputBuffer) (int, string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		err := <-done
		t.Fatalf("cm %v did not exit (killed: %v); output:\n%s", cmd.Env[len(cmd.Env)-2], err, out.String())
		return 0, ""
	}
}

func openStore(t *testing.T, db string) *model.Store {
	t.Helper()
	dsn, err := model.ParseDSN(db)
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.Open(context.Background(), dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestSecondNodeWithLiveIDRefused: on one MariaDB database, a second
// `cm serve` advertising the id of a live node exits non-zero naming the
// id and its holder, and the first node keeps its id and its task; the
// address a node registers is the one it advertises.
func TestSecondNodeWithLiveIDRefused(t *testing.T) {
	db := dbtest.MySQLURL(t)
	dir := t.TempDir()
	addrA, addrB := freePort(t), freePort(t)
	_, portA, _ := net.SplitHostPort(addrA)
	// A advertises localhost-PORT: other nodes call http://localhost:PORT.
	idA := "localhost-" + portA
	a := startCM(t, addrA, db, filepath.Join(dir, "a"), "--advertise", idA)
	src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	(&appender{path: src}).add(10)
	name := a.createFileTask(t, "p_n-incr_trans-1-0", src, sink)
	store := openStore(t, db)
	before, err := store.GetNode(context.Background(), model.NodeID(idA))
	if err != nil {
		t.Fatal(err)
	}
	if before.Addr != "http://localhost:"+portA || before.PID != a.cmd.Process.Pid || before.Instance == "" {
		t.Fatalf("A registered %+v, want address http://localhost:%s and pid %d", before, portA, a.cmd.Process.Pid)
	}

	code, out := runCM(t, db, "serve", "--listen", addrB, "--advertise", idA, "--data-dir", filepath.Join(dir, "b"))
	t.Logf("second cm serve with id %s: exit %d: %s", idA, code, strings.TrimSpace(out))
	if code == 0 {
		t.Fatalf("second node with a live id exited 0:\n%s", out)
	}
	for _, want := range []string{"node id " + idA + " is held by another live cm process", "instance " + before.Instance,
		fmt.Sprintf("pid %d", a.cmd.Process.Pid), "http://localhost:" + portA, "--advertise"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}
	after, err := store.GetNode(context.Background(), model.NodeID(idA))
	if err != nil || after.Instance != before.Instance {
		t.Fatalf("A's row after the refusal = %+v %v", after, err)
	}
	if d := a.detail(t, name); d.State != "RUNNING" {
		t.Fatalf("A's task is %s after the refusal", d.State)
	}
	// The refused process never listened.
	if c, err := net.Dial("tcp", addrB); err == nil {
		c.Close()
		t.Fatalf("the refused process listens on %s", addrB)
	}
}

// TestSecondProcessOnSQLiteFileRefused: SQLite is one node. A second
// `cm serve` on the file of a running one, with its own id and port, exits
// non-zero naming the holder's pid, and so does `cm migrate`; after the
// first is killed with SIGKILL, a new one starts at once with the same id
// (the kernel dropped the lock; the id's holder is known to be gone).
func TestSecondProcessOnSQLiteFileRefused(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "cm.db")
	addr := freePort(t)
	first := startCM(t, addr, db, filepath.Join(dir, "a"))
	store := openStore(t, db)
	held, err := store.GetNode(context.Background(), model.NodeID(nodeID(addr)))
	if err != nil || held.PID != first.cmd.Process.Pid {
		t.Fatalf("first node's row = %+v %v", held, err)
	}
	other := freePort(t)
	code, out := runCM(t, db, "serve", "--listen", other, "--data-dir", filepath.Join(dir, "b"))
	t.Logf("second cm serve on the file: exit %d: %s", code, strings.TrimSpace(out))
	want := fmt.Sprintf("is in use by another cm process (pid %d", first.cmd.Process.Pid)
	if code == 0 || !strings.Contains(out, want) || !strings.Contains(out, "SQLite serves one node") {
		t.Fatalf("second process on the SQLite file: exit %d, want non-zero and %q:\n%s", code, want, out)
	}
	code, out = runCM(t, db, "migrate", "--db", db)
	if code == 0 || !strings.Contains(out, want) {
		t.Fatalf("cm migrate on a file in use: exit %d:\n%s", code, out)
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.cmd.Process.Wait()
	// The killed node's heartbeat is fresh, but the restart does not wait.
	again := startCM(t, addr, db, filepath.Join(dir, "a"))
	n, err := store.GetNode(context.Background(), model.NodeID(nodeID(addr)))
	if err != nil || n.PID != again.cmd.Process.Pid || n.Instance == held.Instance {
		t.Fatalf("row after the restart = %+v %v, want pid %d and a new instance", n, err, again.cmd.Process.Pid)
	}
}

// TestNodeTakenOverShutsDown: on both backends, when another process takes
// a running node's id over (here the test writes another instance into
// the node's row), the node's next heartbeat finds it, and the node logs
// an error naming the new holder, stops its runners and exits non-zero,
// leaving its task's state alone for the new holder.
func TestNodeTakenOverShutsDown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db string) {
		dir := t.TempDir()
		addr := freePort(t)
		id := model.NodeID(nodeID(addr))
		p := startCM(t, addr, db, filepath.Join(dir, "data"), "--node-heartbeat", "200ms")
		src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
		(&appender{path: src}).add(10)
		comp := "p_t-incr_trans-1-0"
		p.createFileTask(t, comp, src, sink)
		cmtest.Eventually(t, 20*time.Second, "the task copied its lines", func() bool {
			_, ts := p.checkpoint(t, comp, "src.jsonl")
			return ts == 1009
		})

		store := openStore(t, db)
		ctx := context.Background()
		n, err := store.GetNode(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n.Instance, n.Host, n.PID, n.SeenAt = "intruder0000", "elsewhere", 4242, time.Now()
		if err := store.UpsertNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		code, out := waitExit(t, p.cmd, p.logs)
		if code == 0 {
			t.Fatalf("taken-over node exited 0:\n%s", out)
		}
		for _, want := range []string{"node id taken over", "instance intruder0000, pid 4242 on elsewhere", "runners stopped"} {
			if !strings.Contains(out, want) {
				t.Errorf("taken-over node's output does not say %q:\n%s", want, out)
			}
		}
		task, err := store.GetTask(ctx, comp)
		if err != nil || task.State != model.StateRunning {
			t.Fatalf("task after the takeover = %v %v, want its state left RUNNING", task, err)
		}
		if n, _ := store.GetNode(ctx, id); n.Instance != "intruder0000" {
			t.Fatalf("the taken-over node wrote its row on the way out: %+v", n)
		}
	})
}

// TestPausedNodeTakenOver: a node stopped with SIGSTOP stops heartbeating;
// once its heartbeat is older than node.suspectAfter, a second `cm serve`
// with the same id (MariaDB) starts and runs the node's task. When the
// first is let go on (SIGCONT), its first heartbeat finds the id taken and
// it exits non-zero naming the new holder's pid, while the new holder
// keeps the task running.
func TestPausedNodeTakenOver(t *testing.T) {
	db := dbtest.MySQLURL(t)
	dir := t.TempDir()
	addrA, addrB := freePort(t), freePort(t)
	id := nodeID(addrA)
	flags := []string{"--node-heartbeat", "200ms"}
	a := startCM(t, addrA, db, filepath.Join(dir, "a"), flags...)
	a.call(t, "POST", "/connector/task/v2/params/update?key=node.suspectAfter&value=1s", "")
	src, sink := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "sink.jsonl")
	app := &appender{path: src}
	app.add(10)
	comp := "p_s-incr_trans-1-0"
	a.createFileTask(t, comp, src, sink)
	cmtest.Eventually(t, 20*time.Second, "A copied the lines", func() bool {
		_, ts := a.checkpoint(t, comp, "src.jsonl")
		return ts == 1009
	})

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	store := openStore(t, db)
	cmtest.Eventually(t, 20*time.Second, "A's heartbeat older than node.suspectAfter", func() bool {
		n, err := store.GetNode(context.Background(), model.NodeID(id))
		return err == nil && time.Since(n.SeenAt) > 1500*time.Millisecond
	})
	b := startCM(t, addrB, db, filepath.Join(dir, "b"), append(flags, "--advertise", id)...)
	if n, err := store.GetNode(context.Background(), model.NodeID(id)); err != nil || n.PID != b.cmd.Process.Pid {
		t.Fatalf("row after B started = %+v %v, want B's pid %d", n, err, b.cmd.Process.Pid)
	}
	app.add(10)
	cmtest.Eventually(t, 20*time.Second, "B runs A's task", func() bool {
		_, ts := b.checkpoint(t, comp, "src.jsonl")
		return ts == 1019
	})

	resumed = true
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code, out := waitExit(t, a.cmd, a.logs)
	if code == 0 {
		t.Fatalf("the taken-over node exited 0:\n%s", out)
	}
	if want := fmt.Sprintf("pid %d", b.cmd.Process.Pid); !strings.Contains(out, "node id taken over") || !strings.Contains(out, want) {
		t.Fatalf("the taken-over node does not say it was taken over by %s:\n%s", want, out)
	}
	app.add(10)
	cmtest.Eventually(t, 20*time.Second, "B goes on after A left", func() bool {
		state, ts := b.checkpoint(t, comp, "src.jsonl")
		return state == "RUNNING" && ts == 1029
	})
}

// TestWildcardListen: a wildcard --listen without --advertise takes the
// host's one routable address as the node id (and address), and is refused
// with a message naming --advertise when there is none or several; for
// 0.0.0.0 only IPv4 addresses count. The refusal comes before anything is
// opened or bound.
func TestWildcardListen(t *testing.T) {
	ip := func(ss ...string) []net.IP {
		var out []net.IP
		for _, s := range ss {
			out = append(out, net.ParseIP(s))
		}
		return out
	}
	local := []string{"127.0.0.1", "::1", "fe80::1", "169.254.1.1"}
	cases := []struct {
		listen string
		ips    []net.IP
		want   model.NodeID // "" = refused
		says   string
	}{
		{"0.0.0.0:8088", ip(append(local, "192.0.2.10")...), "192.0.2.10-8088", ""},
		{"0.0.0.0:8088", ip(append(local, "192.0.2.10", "2001:db8::10")...), "192.0.2.10-8088", ""},
		{":8088", ip(append(local, "2001:db8::10")...), "2001:db8::10-8088", ""},
		{"[::]:8088", ip(append(local, "192.0.2.10")...), "192.0.2.10-8088", ""},
		{":8088", ip(append(local, "192.0.2.10", "2001:db8::10")...), "", "2 routable ones (192.0.2.10, 2001:db8::10)"},
		{"0.0.0.0:8088", ip(append(local, "192.0.2.10", "198.51.100.7")...), "", "e.g. --advertise 192.0.2.10-8088"},
		{"0.0.0.0:8088", ip(local...), "", "no routable one to advertise"},
		{"0.0.0.0:8088", nil, "", "--advertise 127.0.0.1-8088 for a node alone"},
	}
	for _, tc := range cases {
		// Insecure: what is tested here is the id, not the posture (auth_test.go).
		c := serveConfig{Listen: tc.listen, DB: "sqlite:x.db", LogLevel: "info", LogFormat: "json", GCPercent: 100, Insecure: true,
			hostIPs: func() ([]net.IP, error) { return tc.ips, nil }}
		_, node, err := c.validate()
		switch {
		case tc.want != "" && (err != nil || node != tc.want):
			t.Errorf("%s with %v: %q %v, want %s", tc.listen, tc.ips, node, err, tc.want)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "--advertise") || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%s with %v: %q %v, want a refusal saying %q", tc.listen, tc.ips, node, err, tc.says)
		}
	}
	if got := apiURL("2001:db8::10-8088"); got != "http://[2001:db8::10]:8088" {
		t.Errorf("apiURL of an IPv6 id = %s", got)
	}
	// --advertise wins over the wildcard, and is where other nodes call.
	c := serveConfig{Listen: "0.0.0.0:8088", Advertise: "10.0.0.7-9000", DB: "sqlite:x.db", LogLevel: "info", LogFormat: "json", GCPercent: 100, Insecure: true,
		hostIPs: func() ([]net.IP, error) { return nil, errors.New("not asked") }}
	if _, node, err := c.validate(); err != nil || node != "10.0.0.7-9000" || apiURL(node) != "http://10.0.0.7:9000" {
		t.Errorf("advertise with a wildcard listen: %q %v", node, err)
	}

	// Through the command: refused before the store is opened.
	dir := t.TempDir()
	cfg := &serveConfig{hostIPs: func() ([]net.IP, error) { return ip("192.0.2.10", "198.51.100.7"), nil }}
	cmd := serveCommand(cfg)
	cmd.SetArgs([]string{"--listen", "0.0.0.0:8088", "--db", "sqlite:" + filepath.Join(dir, "cm.db")})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set --advertise IP-PORT") {
		t.Fatalf("cm serve --listen 0.0.0.0:8088 on a host with two addresses: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cm.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused serve opened the store: %v", err)
	}
}
