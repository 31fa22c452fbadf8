package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
)

// What one task holds open while it moves data (docs/design.md, "Open
// files"). An idle file task holds none: its source closes the file after a
// few idle seconds and its sink opens the file for each write only.
const (
	// fdsFileTask: the source's file and the sink's file.
	fdsFileTask = 2
	// fdsProcessTask: the child's stdin, stdout and stderr pipes, its
	// stderr log file and its pidfd.
	fdsProcessTask = 5
	// fdsReserve: what the node holds besides its tasks (the store's
	// connections, the listener and the API's connections, the file
	// watcher, the log).
	fdsReserve = 512
)

// openFileLimit is the node's RLIMIT_NOFILE after raiseOpenFiles.
type openFileLimit struct {
	// Was is the soft limit cm found (the Go runtime raises it to one
	// below the hard limit already at start), Soft and Hard the limits
	// cm runs with.
	Was, Soft, Hard uint64
}

// tasks returns how many tasks needing per descriptors each the limit
// leaves room for.
func (l openFileLimit) tasks(per uint64) uint64 {
	if l.Soft <= fdsReserve {
		return 0
	}
	return (l.Soft - fdsReserve) / per
}

// raiseOpenFiles raises the soft limit on open files to the hard one, and
// logs what that leaves room for. A failure is logged, not returned: the
// node runs with the limit it has, as it always could.
//
// Programs cm starts (process plugins) inherit the raised soft limit.
func raiseOpenFiles(log *zap.Logger) openFileLimit {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("reading the open file limit", zap.Error(err))
		return openFileLimit{}
	}
	l := openFileLimit{Was: lim.Cur, Soft: lim.Cur, Hard: lim.Max}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("raising the open file limit to the hard limit", zap.Uint64("soft", lim.Cur), zap.Uint64("hard", lim.Max), zap.Error(err))
		} else {
			l.Soft = lim.Max
		}
	}
	fields := []zap.Field{zap.Uint64("soft", l.Soft), zap.Uint64("hard", l.Hard), zap.Uint64("was", l.Was),
		zap.Uint64("file_tasks_moving_data", l.tasks(fdsFileTask)), zap.Uint64("process_tasks", l.tasks(fdsProcessTask))}
	if w, ok := inotifyWatches(); ok {
		// One watch per directory of file sources; past the limit a
		// source polls.
		fields = append(fields, zap.Uint64("inotify_max_user_watches", w))
	}
	log.Info("open file limit: idle file tasks hold no descriptor; these many tasks fit while they all move data", fields...)
	return l
}

// inotifyWatches reads fs.inotify.max_user_watches.
func inotifyWatches() (uint64, bool) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}
