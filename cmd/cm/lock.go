package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/connector-manager/cm/model"
)

// lockStore takes the exclusive lock of a SQLite store, an flock on the
// file PATH.lock beside the database, and keeps it until release is called
// or the process ends (the kernel drops it even on kill -9, so a crash
// leaves nothing to clean up). SQLite is one node: a second cm process on
// the same file is refused while the first holds the lock. The lock file
// names its holder for that message. MySQL stores take no lock: nodes
// sharing them are the point.
func lockStore(dsn model.DSN) (release func(), err error) {
	if dsn.Dialect != model.SQLite {
		return func() {}, nil
	}
	path := dsn.Path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the store lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 512))
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "holder unknown"
		}
		return nil, fmt.Errorf("%s is in use by another cm process (%s; lock %s): SQLite serves one node, "+
			"so stop that process first, or run several nodes on one MySQL database", dsn.Redacted, holder, path)
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	}
	return func() { _ = f.Close() }, nil
}
