package cmtest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestFreePortIsHeld: a reserved port is outside the kernel's ephemeral
// range, so no listener on :0 and no outgoing connection is given it; its
// lock is held until the test ends, so no other test process (which
// would take the lock with its own open file) reserves it meanwhile; and
// two reservations never share a port.
func TestFreePortIsHeld(t *testing.T) {
	lo, hi := reservablePorts(t)
	seen := map[string]bool{}
	for range 20 {
		addr := ReservePort(t)
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
