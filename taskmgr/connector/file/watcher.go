package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Watcher is the one file-system watch of a node, shared by every file
// source it runs: a source idle at the end of its file waits for a
// notification instead of a timer of its own. It watches directories (one
// inotify watch per directory, however many sources read files in it) and
// wakes the sources whose file an event names.
//
// It starts on the first watch asked for, so a node that runs no file
// source holds no inotify instance. Its one goroutine (the event loop) is
// owned by Close, which the registry's owner calls at shutdown.
type Watcher struct {
	log *zap.Logger
	// maxDirs, when positive, bounds the directories watched at once;
	// past it a watch is refused as the kernel refuses one past
	// fs.inotify.max_user_watches, and its source polls.
	maxDirs int

	// mu guards everything below. The event loop holds it while it fans an
	// event out; it never blocks while holding it (the sends do not wait).
	mu     sync.Mutex
	fsw    *fsnotify.Watcher // nil until the first watch, and after Close
	dirs   map[string]*watchedDir
	closed bool
	done   chan struct{} // closed when the event loop has returned
}

// watchedDir is one watched directory: the watches of the files in it, by
// base name.
type watchedDir struct {
	files map[string]map[*watch]struct{}
	n     int // watches in files
}

// watch is one source's subscription: C gets a value (it never blocks the
// watcher: one pending value is enough) when an event names one of its
// files, when events may have been lost, and when the watch itself ends
// (its directory went away, or the Watcher closed), after which lost
// reports true and the source must watch again or poll.
type watch struct {
	C     chan struct{}
	w     *Watcher
	files []watchKey
	lost  bool // guarded by w.mu
}

type watchKey struct{ dir, name string }

var (
	errWatcherClosed = errors.New("the file watcher is closed")
	errTooManyDirs   = errors.New("the file watcher watches as many directories as it may")
)

// NewWatcher returns a Watcher that has not started yet.
func NewWatcher(log *zap.Logger) *Watcher {
	if log == nil {
		log = zap.NewNop()
	}
	return &Watcher{log: log.Named("file-watcher"), dirs: map[string]*watchedDir{}}
}

// add watches the files paths name (a source's path and, when it is a
// symlink, where it leads). It fails, watching nothing, when a directory
// cannot be watched: the inotify instance or a watch cannot be had (the
// kernel's limits), the directory is gone, or the Watcher is closed.
func (w *Watcher) add(paths ...string) (*watch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errWatcherClosed
	}
	if w.fsw == nil {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			return nil, fmt.Errorf("starting the file watcher: %w", err)
		}
		w.fsw, w.done = fsw, make(chan struct{})
		go w.loop(fsw, w.done)
	}
	s := &watch{C: make(chan struct{}, 1), w: w}
	seen := map[watchKey]bool{}
	for _, p := range paths {
		k := watchKey{filepath.Dir(p), filepath.Base(p)}
		if seen[k] {
			continue
		}
		seen[k] = true
		d := w.dirs[k.dir]
		if d == nil {
			if w.maxDirs > 0 && len(w.dirs) >= w.maxDirs {
				w.releaseLocked(s)
				return nil, fmt.Errorf("watching %s: %w (%d)", k.dir, errTooManyDirs, w.maxDirs)
			}
			if err := w.fsw.Add(k.dir); err != nil {
				w.releaseLocked(s)
				return nil, fmt.Errorf("watching %s: %w", k.dir, err)
			}
			d = &watchedDir{files: map[string]map[*watch]struct{}{}}
			w.dirs[k.dir] = d
		}
		if d.files[k.name] == nil {
			d.files[k.name] = map[*watch]struct{}{}
		}
		d.files[k.name][s] = struct{}{}
		d.n++
		s.files = append(s.files, k)
	}
	return s, nil
}

// release ends the watch; a directory no other watch needs is no longer
// watched. It is safe to call more than once.
func (s *watch) release() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.releaseLocked(s)
}

// isLost reports whether the watch ended without release (see watch).
func (s *watch) isLost() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.lost
}

func (w *Watcher) releaseLocked(s *watch) {
	for _, k := range s.files {
		d := w.dirs[k.dir]
		if d == nil {
			continue // the directory went away
		}
		if subs := d.files[k.name]; subs != nil {
			if _, ok := subs[s]; ok {
				delete(subs, s)
				d.n--
			}
			if len(subs) == 0 {
				delete(d.files, k.name)
			}
		}
		if d.n == 0 {
			delete(w.dirs, k.dir)
			if w.fsw != nil {
				// An error means the kernel dropped the watch already.
				_ = w.fsw.Remove(k.dir)
			}
		}
	}
	s.files = nil
}

// loop fans events out until the fsnotify watcher is closed.
func (w *Watcher) loop(fsw *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	events, errs := fsw.Events, fsw.Errors
	for events != nil || errs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.event(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow of the kernel's queue loses events: every source
			// looks at its file once.
			w.log.Warn("file notifications lost; every file source looks at its file", zap.Error(err))
			w.mu.Lock()
			for _, d := range w.dirs {
				for _, subs := range d.files {
					for s := range subs {
						notify(s)
					}
				}
			}
			w.mu.Unlock()
		}
	}
}

func (w *Watcher) event(ev fsnotify.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	name := filepath.Clean(ev.Name)
	if d := w.dirs[name]; d != nil && ev.Op.Has(fsnotify.Remove|fsnotify.Rename) {
		// The directory itself was removed or moved away: its watch is
		// gone. Its sources watch again (it may be back) or poll.
		delete(w.dirs, name)
		if w.fsw != nil {
			_ = w.fsw.Remove(name)
		}
		for _, subs := range d.files {
			for s := range subs {
				s.lost = true
				notify(s)
			}
		}
		return
	}
	d := w.dirs[filepath.Dir(name)]
	if d == nil {
		return
	}
	for s := range d.files[filepath.Base(name)] {
		notify(s)
	}
}

func notify(s *watch) {
	select {
	case s.C <- struct{}{}:
	default: // one pending wake-up is as good as many
	}
}

// Close stops the Watcher and waits for its event loop. Watches still held
// are lost (their sources poll). It is safe to call more than once.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	fsw, done := w.fsw, w.done
	w.fsw = nil
	for _, d := range w.dirs {
		for _, subs := range d.files {
			for s := range subs {
				s.lost = true
				notify(s)
			}
		}
	}
	w.dirs = map[string]*watchedDir{}
	w.mu.Unlock()
	if fsw == nil {
		return nil
	}
	err := fsw.Close()
	<-done
	return err
}

// watchedDirs returns how many directories are watched (for tests).
func (w *Watcher) watchedDirs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirs)
}
