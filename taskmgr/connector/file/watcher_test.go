package file

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testWatcher is a node's Watcher for one test, closed when it ends (after
// the sources opened later, whose cleanups run first).
func testWatcher(t testing.TB) *Watcher {
	t.Helper()
	w := NewWatcher(nil)
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("closing the watcher: %v", err)
		}
	})
	return w
}

// woken waits, bounded, for a wake-up of s.
func woken(t *testing.T, s *watch, what string) {
	t.Helper()
	select {
	case <-s.C:
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

// drain empties a wake-up left by an earlier event.
func drain(s *watch) {
	select {
	case <-s.C:
	default:
	}
}

// TestWatcherFansOut: files of one directory share one watch; an event
// wakes the sources of that file only; the last release of a directory
// stops watching it.
func TestWatcherFansOut(t *testing.T) {
	w := testWatcher(t)
	dir, other := t.TempDir(), t.TempDir()
	a, b, c := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(other, "c.jsonl")
	for _, p := range []string{a, b, c} {
		writeFile(t, p, "")
	}
	wa, err := w.add(a)
	if err != nil {
		t.Fatal(err)
	}
	wa2, err := w.add(a)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := w.add(b)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := w.add(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.watchedDirs(); n != 2 {
		t.Fatalf("%d directories watched for 4 watches in 2 directories, want 2", n)
	}

	appendFile(t, a, lines(1))
	woken(t, wa, "an append to a")
	woken(t, wa2, "an append to a (second watch)")
	// b and c heard nothing: an append to them now is their first event,
	// and only it wakes them, so a stray wake-up from a would show here as
	// a wake-up before the append.
	select {
	case <-wb.C:
		t.Fatal("an append to a woke the watch of b")
	case <-wc.C:
		t.Fatal("an append to a woke the watch of c")
	default:
	}
	appendFile(t, c, lines(1))
	woken(t, wc, "an append to c")

	wa.release()
	wa2.release()
	wa2.release() // twice is fine
	if n := w.watchedDirs(); n != 2 {
		t.Fatalf("%d directories watched while b and c are, want 2", n)
	}
	wb.release()
	if n := w.watchedDirs(); n != 1 {
		t.Fatalf("%d directories watched once only c is, want 1", n)
	}
	wc.release()
	if n := w.watchedDirs(); n != 0 {
		t.Fatalf("%d directories watched after every release, want 0", n)
	}
}

// TestWatcherSeesReplacement: the rename of another file over the watched
// one, its removal and its creation each wake the watch.
func TestWatcherSeesReplacement(t *testing.T) {
	w := testWatcher(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "in.jsonl")
	writeFile(t, p, lines(1))
	s, err := w.add(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()

	next := filepath.Join(dir, "in.jsonl.new")
	writeFile(t, next, lines(1, 2))
	drain(s) // (nothing names in.jsonl yet, but be sure)
	if err := os.Rename(next, p); err != nil {
		t.Fatal(err)
	}
	woken(t, s, "a rename over the file")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	woken(t, s, "the file's removal")
	writeFile(t, p, lines(3))
	woken(t, s, "the file's creation")
	if s.isLost() {
		t.Fatal("the watch is lost though its directory is still there")
	}
}

// TestWatcherLosesRemovedDirectory: a watched directory that is removed
// wakes its watches and marks them lost, so their sources watch again or
// poll; watching it again once it is back works.
func TestWatcherLosesRemovedDirectory(t *testing.T) {
	w := testWatcher(t)
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "in.jsonl")
	writeFile(t, p, "")
	s, err := w.add(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.isLost() {
		woken(t, s, "the directory's removal")
		if time.Now().After(deadline) {
			t.Fatal("the watch is not lost after its directory was removed")
		}
	}
	s.release()
	if n := w.watchedDirs(); n != 0 {
		t.Fatalf("%d directories watched after the only one was removed, want 0", n)
	}
	if _, err := w.add(p); err == nil {
		t.Fatal("watching a file in a directory that does not exist succeeded")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "")
	s, err = w.add(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	appendFile(t, p, lines(1))
	woken(t, s, "an append once the directory is back")
}

// TestWatcherLimitAndClose: past maxDirs a watch is refused; Close ends
// every watch (lost) and refuses new ones.
func TestWatcherLimitAndClose(t *testing.T) {
	w := testWatcher(t)
	w.maxDirs = 1
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeFile(t, a, "")
	writeFile(t, b, "")
	s, err := w.add(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.add(b); !errors.Is(err, errTooManyDirs) {
		t.Fatalf("a second directory past maxDirs 1: %v, want errTooManyDirs", err)
	}
	if n := w.watchedDirs(); n != 1 {
		t.Fatalf("%d directories watched after a refusal, want 1", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	woken(t, s, "Close")
	if !s.isLost() {
		t.Fatal("a watch is not lost after Close")
	}
	s.release()
	if _, err := w.add(a); !errors.Is(err, errWatcherClosed) {
		t.Fatalf("add after Close: %v, want errWatcherClosed", err)
	}
}
