package main

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
)

// outputBuffer collects a child's output. The exec package writes it from
// its own goroutine while the test reads it, so both go through the mutex.
type outputBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// portLocks is where test processes record the loopback ports they hold
// for a child cm, one locked file per port. cmd/cm and e2e share it.
var portLocks = filepath.Join(os.TempDir(), "cm-test-ports")

// freePort returns a loopback address that stays this test's until it
// ends, for a child `cm serve` to listen on, and to listen on again after a
// restart (the port is part of the node's id). A port taken with :0 and
// closed again is not that: the kernel may hand it the next moment to
// another listener or to an outgoing connection (an HTTP call, a database
// client). So the port is one the kernel never hands out, outside its
// ephemeral range, and the test holds an exclusive lock on a file named
// after it, which every test process reserving ports this way respects.
// A port something already listens on is passed over.
func freePort(t testing.TB) string {
	t.Helper()
	lo, hi := reservablePorts(t)
	if err := os.MkdirAll(portLocks, 0o777); err != nil {
		t.Fatal(err)
	}
	n := hi - lo + 1
	first := rand.IntN(n)
	for i := 0; i < n && i < 5000; i++ {
		port := lo + (first+i)%n
		f, err := os.OpenFile(filepath.Join(portLocks, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue // another user's file: theirs
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close() // in use by a process that does not take part
			continue
		}
		ln.Close()
		t.Cleanup(func() { f.Close() })
		return addr
	}
	t.Fatalf("no loopback port free in %d-%d", lo, hi)
	return ""
}

// reservablePorts is the larger of the port ranges below and above the
// kernel's ephemeral range, above the privileged ports.
func reservablePorts(t testing.TB) (lo, hi int) {
	t.Helper()
	eph := [2]int{32768, 60999} // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil {
				eph = [2]int{a, z}
			}
		}
	}
	lo, hi = 10000, eph[0]-1
	if above := [2]int{eph[1] + 1, 65535}; above[1]-above[0] > hi-lo {
		lo, hi = above[0], above[1]
	}
	if hi-lo < 100 {
		t.Fatalf("the ephemeral port range %d-%d leaves under 100 ports to reserve for child processes", eph[0], eph[1])
	}
	return lo, hi
}

// TestFreePortIsHeld: a reserved port is outside the kernel's ephemeral
// range, so no listener on :0 and no outgoing connection is given it; its
// lock is held until the test ends, so no other test process (which
// would take the lock with its own open file) reserves it meanwhile; and
// two reservations never share a port.
func TestFreePortIsHeld(t *testing.T) {
	lo, hi := reservablePorts(t)
	seen := map[string]bool{}
	for range 20 {
		addr := freePort(t)
		host, p, err := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if err != nil || host != "127.0.0.1" || port < lo || port > hi {
			t.Fatalf("reserved %s, want 127.0.0.1 and a port in %d-%d", addr, lo, hi)
		}
		if seen[addr] {
			t.Fatalf("%s reserved twice", addr)
		}
		seen[addr] = true
		f, err := os.OpenFile(filepath.Join(portLocks, p), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		f.Close()
		if err == nil {
			t.Fatalf("%s: another open file could lock it: another process could reserve it too", addr)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, p, _ := net.SplitHostPort(ln.Addr().String()); seen["127.0.0.1:"+p] {
		t.Fatalf("the kernel handed out reserved port %s", p)
	}
}

// TestChildOutputReadWhileRunning: the test reads a child cm's output
// while the child writes it (under -race, a plain bytes.Buffer fails
// here): the child logs that it serves on the reserved address.
func TestChildOutputReadWhileRunning(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	p := startCM(t, addr, dbtest.SQLiteURL(t), filepath.Join(dir, "data"))
	want := `"msg":"cm serving","node":"` + nodeID(addr) + `","listen":"` + addr + `"`
	within(t, 10*time.Second, "the child logs its address", func() bool {
		p.call(t, "GET", "/connector/task/v2/jobs", "") // more output meanwhile
		return strings.Contains(p.logs.String(), want)
	})
}
