package cmtest

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// portLocks is where test processes record the loopback ports they hold
// for a child cm, one locked file per port. cmd/cm and e2e share it.
var portLocks = filepath.Join(os.TempDir(), "cm-test-ports")

// ReservePort returns a loopback address that stays this test's until it
// ends, for a child `cm serve` to listen on, and to listen on again after a
// restart (the port is part of the node's id). A port taken with :0 and
// closed again is not that: the kernel may hand it the next moment to
// another listener or to an outgoing connection (an HTTP call, a database
// client). So the port is one the kernel never hands out, outside its
// ephemeral range, and the test holds an exclusive lock on a file named
// after it, which every test process reserving ports this way respects.
// A port something already listens on is passed over.
func ReservePort(t testing.TB) string {
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
