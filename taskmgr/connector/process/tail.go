package process

import (
	"bytes"
	"sync"
)

const (
	// tailLines is how many stderr lines an error detail carries.
	tailLines = 20
	// maxTailLine caps one kept line; the log file has it whole.
	maxTailLine = 1024
)

// tail keeps the last lines added to it. The stderr goroutine adds what it
// reads; Read and Close take Lines.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string // oldest first, at most max
	cur   []byte   // the line being written
}

func newTail(max int) *tail { return &tail{max: max} }

// add appends p, which may hold any part of one or more lines.
func (t *tail) add(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.cur = appendCapped(t.cur, p)
			return
		}
		t.cur = appendCapped(t.cur, p[:i])
		t.push(string(bytes.TrimSuffix(t.cur, []byte{'\r'})))
		t.cur = t.cur[:0]
		p = p[i+1:]
	}
}

func (t *tail) push(line string) {
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, line)
}

// Lines returns the last lines, including one not ended yet.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.cur) > 0 {
		out = append(out, string(t.cur))
	}
	if len(out) > t.max {
		out = out[len(out)-t.max:]
	}
	return out
}

func appendCapped(dst, p []byte) []byte {
	room := maxTailLine - len(dst)
	if room <= 0 {
		return dst
	}
	if len(p) > room {
		p = p[:room]
	}
	return append(dst, p...)
}
