package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// tailer reads a source the way a runner does, on a goroutine of its own,
// until the test ends.
type tailer struct {
	s       *source
	records chan int64
	errs    chan error
}

func startTail(t *testing.T, s *source) *tailer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tailer{s: s, records: make(chan int64, 1<<16), errs: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			b, err := s.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					tl.errs <- err
				}
				return
			}
			for _, r := range b.Records {
				tl.records <- r.TS
			}
		}
	}()
	// Runs before the source's own cleanup (registered earlier).
	t.Cleanup(func() { cancel(); <-done })
	return tl
}

// next waits, bounded, for the next n records and returns their ts.
func (tl *tailer) next(t *testing.T, n int, within time.Duration) []int64 {
	t.Helper()
	deadline := time.After(within)
	var got []int64
	for len(got) < n {
		select {
		case ts := <-tl.records:
			got = append(got, ts)
		case err := <-tl.errs:
			t.Fatalf("after %v: %v", got, err)
		case <-deadline:
			t.Fatalf("%d of %d records after %s: %v", len(got), n, within, got)
		}
	}
	return got
}

// failure waits, bounded, for the error that ends the tail.
func (tl *tailer) failure(t *testing.T) error {
	t.Helper()
	select {
	case err := <-tl.errs:
		return err
	case ts := <-tl.records:
		t.Fatalf("record %d where an error was expected", ts)
	case <-time.After(5 * time.Second):
		t.Fatal("no error after 5s")
	}
	return nil
}

// fdsOn counts this process's descriptors open on path.
func fdsOn(t testing.TB, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == path {
			n++
		}
	}
	return n
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFor waits, bounded, until cond holds.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idleSource opens a tail of path that closes its file after idle, with
// reports and the safety poll an hour apart: only a notification (or, for
// a source without one, its fallback poll) can wake it.
func idleSource(t *testing.T, w *Watcher, path string, idle time.Duration, log *zap.Logger, from map[string]checkpoint.Position) *source {
	t.Helper()
	c := sourceConfig(model.TypeIncr, "path", path, "pollInterval", "1h")
	c.Logger = log
	s, err := newSource(c, anywhere, w)
	if err != nil {
		t.Fatal(err)
	}
	s.report, s.idle = time.Hour, idle
	if err := s.Open(context.Background(), from); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestIdleSourceWakesOnNotification: a tail idle long enough to have closed
// its file is woken by the append itself, with no poll or report due
// within the hour, opens the file, reads the line, and closes it again.
func TestIdleSourceWakesOnNotification(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2))
	s := idleSource(t, testWatcher(t), path, 100*time.Millisecond, nil, nil)
	tl := startTail(t, s)
	if got := tl.next(t, 2, 5*time.Second); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("read %v", got)
	}
	waitFor(t, 5*time.Second, "closed while idle", func() bool { return fdsOn(t, path) == 0 })

	for i := int64(3); i <= 5; i++ {
		appendFile(t, path, lines(i))
		if got := tl.next(t, 1, 5*time.Second); got[0] != i {
			t.Fatalf("read %v after appending %d", got, i)
		}
	}
	waitFor(t, 5*time.Second, "closed again while idle", func() bool { return fdsOn(t, path) == 0 })
	appendFile(t, path, lines(6, 7))
	if got := tl.next(t, 2, 5*time.Second); fmt.Sprint(got) != "[6 7]" {
		t.Fatalf("read %v after a second idle close", got)
	}
}

// TestSourcePollsWithoutWatch: a source whose watch is refused (here the
// watcher's own limit; the kernel's inotify limits are refused the same
// way) says so once and still reads appended lines, by polling.
func TestSourcePollsWithoutWatch(t *testing.T) {
	w := testWatcher(t)
	w.maxDirs = 1
	first := filepath.Join(t.TempDir(), "first.jsonl")
	writeFile(t, first, "")
	held, err := w.add(first)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()

	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1))
	core, logs := observer.New(zap.DebugLevel)
	s := idleSource(t, w, path, 100*time.Millisecond, zap.New(core), nil)
	tl := startTail(t, s)
	tl.next(t, 1, 5*time.Second)
	waitFor(t, 5*time.Second, "closed while idle", func() bool { return fdsOn(t, path) == 0 })
	for i := int64(2); i <= 4; i++ {
		appendFile(t, path, lines(i))
		if got := tl.next(t, 1, 5*time.Second); got[0] != i {
			t.Fatalf("read %v after appending %d", got, i)
		}
	}
	if n := logs.FilterMessageSnippet("no file notifications").Len(); n != 1 {
		t.Fatalf("%d log lines about polling, want 1: %v", n, logs.All())
	}
	if n := w.watchedDirs(); n != 1 {
		t.Fatalf("%d directories watched, want 1 (the refused one is not)", n)
	}
}

// TestIdleSourcesHoldNoDescriptors: a thousand idle tails in ten
// directories hold no descriptor of their own (the watcher holds one for
// all), one watch per directory, and each is woken by an append to its
// file.
func TestIdleSourcesHoldNoDescriptors(t *testing.T) {
	const n, dirs = 1000, 10
	w := testWatcher(t)
	root := t.TempDir()
	before := openFDs(t)
	paths := make([]string, n)
	tails := make([]*tailer, n)
	for i := range paths {
		dir := filepath.Join(root, "d"+strconv.Itoa(i%dirs))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		paths[i] = filepath.Join(dir, strconv.Itoa(i)+".jsonl")
		writeFile(t, paths[i], lines(1))
		tails[i] = startTail(t, idleSource(t, w, paths[i], 200*time.Millisecond, nil, nil))
	}
	for _, tl := range tails {
		tl.next(t, 1, 10*time.Second)
	}
	// The watcher's inotify descriptor, and what the runtime may open
	// (epoll): a handful, not one per source.
	const slack = 8
	waitFor(t, 20*time.Second, "idle sources closed their files", func() bool { return openFDs(t) <= before+slack })
	if got := w.watchedDirs(); got != dirs {
		t.Fatalf("%d directories watched for %d sources in %d directories", got, n, dirs)
	}

	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() { appendFile(t, paths[i], lines(2)) })
	}
	wg.Wait()
	for i, tl := range tails {
		if got := tl.next(t, 1, 20*time.Second); got[0] != 2 {
			t.Fatalf("source %d read %v after the append", i, got)
		}
	}
	waitFor(t, 20*time.Second, "idle sources closed their files again", func() bool { return openFDs(t) <= before+slack })
	t.Logf("%d descriptors before, %d with %d idle sources", before, openFDs(t), n)
}

// TestReplacedWhileOpen: a file replaced (renamed over) while the source
// still has it open is not noticed: the source reads on from the file it
// opened, as it always did.
func TestReplacedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	writeFile(t, path, lines(1))
	s := idleSource(t, testWatcher(t), path, time.Hour, nil, nil)
	tl := startTail(t, s)
	tl.next(t, 1, 5*time.Second)
	old, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	writeFile(t, path+".new", lines(50, 60, 70))
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteString(lines(2)); err != nil {
		t.Fatal(err)
	}
	if got := tl.next(t, 1, 5*time.Second); got[0] != 2 {
		t.Fatalf("read %v, want the line appended to the file the source opened", got)
	}
}

// TestReplacedWhileClosed: a file replaced while an idle source has it
// closed is read as a task resuming at the same offset reads it, once it is
// that long: from there if that is a line boundary of the new file, else
// the task fails with CHECKPOINT_INVALID. A file truncated in place is
// FILE_TRUNCATED, as when it is open.
func TestReplacedWhileClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, path string, logs *observer.ObservedLogs)
		want    []int64 // the records read after the replacement, or
		code    string  // the error
	}{
		{"renamed over, longer, at a line boundary", func(t *testing.T, path string, logs *observer.ObservedLogs) {
			// Same length of lines: offset 2 lines in is a line boundary.
			writeFile(t, path+".new", lines(5, 6, 7, 8))
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}, []int64{7, 8}, ""},
		{"renamed over, shorter, then long enough", func(t *testing.T, path string, logs *observer.ObservedLogs) {
			writeFile(t, path+".new", lines(5))
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the shorter file waited for", func() bool {
				return logs.FilterMessageSnippet("replaced by a shorter one").Len() > 0
			})
			appendFile(t, path, lines(6, 7))
		}, []int64{7}, ""},
		{"renamed over, not at a line boundary", func(t *testing.T, path string, logs *observer.ObservedLogs) {
			writeFile(t, path+".new", `{"ts":5,"v":"longer than the lines before"}`+"\n"+lines(6, 7))
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}, nil, codeCheckpointInvalid},
		{"removed and created again", func(t *testing.T, path string, logs *observer.ObservedLogs) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, lines(5, 6, 7))
		}, []int64{7}, ""},
		{"truncated in place", func(t *testing.T, path string, logs *observer.ObservedLogs) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, nil, codeTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			writeFile(t, path, lines(1, 2))
			core, logs := observer.New(zap.DebugLevel)
			s := idleSource(t, testWatcher(t), path, 100*time.Millisecond, zap.New(core), nil)
			tl := startTail(t, s)
			tl.next(t, 2, 5*time.Second)
			waitFor(t, 5*time.Second, "closed while idle", func() bool { return fdsOn(t, path) == 0 })
			tc.replace(t, path, logs)
			if tc.code != "" {
				wantCode(t, tl.failure(t), tc.code, true)
				return
			}
			if got := tl.next(t, len(tc.want), 5*time.Second); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("read %v after the replacement, want %v", got, tc.want)
			}
		})
	}
}

// TestRemovedWhileClosed: a file removed while the source has it closed is
// waited for; the source neither fails nor reads until it is back.
func TestRemovedWhileClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1))
	core, logs := observer.New(zap.DebugLevel)
	s := idleSource(t, testWatcher(t), path, 100*time.Millisecond, zap.New(core), nil)
	tl := startTail(t, s)
	tl.next(t, 1, 5*time.Second)
	waitFor(t, 5*time.Second, "closed while idle", func() bool { return fdsOn(t, path) == 0 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// The removal wakes the source, which finds the file gone and says so.
	waitFor(t, 5*time.Second, "the source saw the file gone", func() bool {
		return logs.FilterMessageSnippet("is gone").Len() > 0
	})
	select {
	case err := <-tl.errs:
		t.Fatalf("the source failed while its file was missing: %v", err)
	default:
	}
	writeFile(t, path, lines(1, 2))
	if got := tl.next(t, 1, 5*time.Second); got[0] != 2 {
		t.Fatalf("read %v once the file was back, want [2]", got)
	}
}

var _ connector.Source = (*source)(nil)

// TestIdleSourceThroughSymlink: a source whose path is a symlink into
// another directory is woken by appends to the file the link leads to
// (written in that directory, not the link's).
func TestIdleSourceThroughSymlink(t *testing.T) {
	target := filepath.Join(t.TempDir(), "target.jsonl")
	writeFile(t, target, lines(1))
	link := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	w := testWatcher(t)
	tl := startTail(t, idleSource(t, w, link, 100*time.Millisecond, nil, nil))
	tl.next(t, 1, 5*time.Second)
	waitFor(t, 5*time.Second, "closed while idle", func() bool { return fdsOn(t, target) == 0 })
	if n := w.watchedDirs(); n != 2 {
		t.Fatalf("%d directories watched for a link into another directory, want 2", n)
	}
	appendFile(t, target, lines(2))
	if got := tl.next(t, 1, 5*time.Second); got[0] != 2 {
		t.Fatalf("read %v, want [2]", got)
	}
}
