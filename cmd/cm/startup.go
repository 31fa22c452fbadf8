package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/connector-manager/cm/model"
)

// What cm serve checks before it opens anything, and how a refusal is
// worded: each names the setting the way an operator would set it (flag,
// environment variable and YAML key) and says in words what is wrong.
// SQLite's own answer for a directory it cannot write in is
// "out of memory (14)" (SQLITE_CANTOPEN), which says neither.

// setting names a flag as the three places it can be set.
func setting(flag string) string {
	if env, ok := envOf[flag]; ok {
		return fmt.Sprintf("--%s (env %s, YAML %s)", flag, env, flag)
	}
	return "--" + flag
}

// checkStartDirs refuses to start when the data dir, or the directory of
// a SQLite store, cannot hold cm's files. A missing directory is created,
// as cm always has; one that cannot be created says why.
func checkStartDirs(dataDir string, dsn model.DSN) error {
	var errs []error
	if err := checkWritableDir(dataDir); err != nil {
		errs = append(errs, fmt.Errorf("%s %s: %w", setting("data-dir"), dataDir, err))
	}
	if dsn.Dialect == model.SQLite {
		if err := checkSQLitePath(dsn.Path); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", setting("db"), dsn.Redacted, err))
		}
	}
	return errors.Join(errs...)
}

// checkSQLitePath checks the database file's directory (SQLite writes its
// journal and WAL beside the file, and cm its lock) and, when the file
// exists, that it can be opened for writing.
func checkSQLitePath(path string) error {
	dir := filepath.Dir(path)
	if err := checkWritableDir(dir); err != nil {
		return fmt.Errorf("the database's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // created on open
	case err != nil:
		return fmt.Errorf("the database file %s %s", path, why(err))
	}
	_ = f.Close()
	return nil
}

// checkWritableDir makes sure dir is a directory this process can create
// files in, creating it (and its parents) when missing. It writes and
// removes a file: permission bits do not tell (root, ACLs, read-only
// mounts, immutable directories).
func checkWritableDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		var pe *fs.PathError
		at := abs
		if errors.As(err, &pe) {
			at = pe.Path
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s does not exist and cannot be created: %s is not a directory (%w)", abs, at, err)
		}
		// mkdir at failed: it is the directory at would go in that refused.
		return fmt.Errorf("%s does not exist and cannot be created: %s %s", abs, filepath.Dir(at), why(err))
	}
	f, err := os.CreateTemp(abs, ".cm-write-check-*")
	if err != nil {
		return fmt.Errorf("%s %s", abs, why(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%s: removing the write check %s: %w", abs, name, err)
	}
	return nil
}

// why says in words what a file system error means, the error after it.
func why(err error) string {
	var what string
	switch {
	case errors.Is(err, syscall.EROFS):
		what = "is on a read-only file system"
	case errors.Is(err, fs.ErrPermission):
		what = fmt.Sprintf("is not writable by this process (uid %d): check its owner, mode and attributes", os.Geteuid())
	case errors.Is(err, syscall.ENOTDIR):
		what = "is not a directory"
	case errors.Is(err, fs.ErrNotExist):
		what = "does not exist"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		what = "has no space left"
	default:
		what = "cannot be written"
	}
	return fmt.Sprintf("%s (%v)", what, err)
}

// badValue words a value of flag that does not parse: what it must be,
// rather than the parser's own error alone.
func badValue(f *pflag.Flag, v string, err error) string {
	var want string
	switch f.Value.Type() {
	case "int", "int64", "uint", "uint64":
		want = "a whole number"
	case "float64":
		want = "a number"
	case "duration":
		want = "a duration like 500ms, 30s or 5m"
	case "bool":
		want = "true or false"
	default:
		return fmt.Sprintf("%q: %v", v, err)
	}
	return fmt.Sprintf("%q is not %s (%v)", v, want, err)
}
