package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
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

// freePort returns a loopback address reserved for this test
// (cmtest.ReservePort).
func freePort(t testing.TB) string { return cmtest.ReservePort(t) }
