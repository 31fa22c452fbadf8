package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/connector-manager/cm/taskmgr/connector"
)

// Roots are the directories file sources and sinks may use: a path is
// accepted only when, cleaned and with its symlinks resolved, it is a root
// or lies under one. Nil or empty Roots accept no path.
type Roots struct {
	dirs []string // absolute, cleaned, symlinks resolved
}

// NewRoots resolves dirs (absolute paths; a directory that does not exist
// yet is resolved as far as it exists, like a sink's path).
func NewRoots(dirs ...string) (*Roots, error) {
	r := &Roots{}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("file root %q: must be an absolute path", d)
		}
		real, err := resolve(d)
		if err != nil {
			return nil, fmt.Errorf("file root %s: %w", d, err)
		}
		r.dirs = append(r.dirs, real)
	}
	return r, nil
}

// Dirs lists the resolved roots.
func (r *Roots) Dirs() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.dirs...)
}

// Check resolves path and refuses it, wrapping connector.ErrOutsideRoots,
// unless it is inside a root. key names the config key for the message.
func (r *Roots) Check(key, path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: %s %q must be an absolute path", connector.ErrOutsideRoots, key, path)
	}
	real, err := resolve(path)
	if err != nil {
		return fmt.Errorf("%s %q: %w", key, path, err)
	}
	if !r.contains(real) {
		return fmt.Errorf("%w: %s %q resolves to %s, which is not under a file root %s: "+
			"start cm serve with --file-root for the directory it lives in", connector.ErrOutsideRoots, key, path, real, r.describe())
	}
	return nil
}

// CheckAgain is Check when a connector opens: a refusal is a permanent
// *connector.Error, a path that cannot be resolved an I/O error.
func (r *Roots) CheckAgain(key, path string) error {
	err := r.Check(key, path)
	if errors.Is(err, connector.ErrOutsideRoots) {
		return outsideRoots(err.Error())
	}
	if err != nil {
		return ioError("resolving", path, err)
	}
	return nil
}

func outsideRoots(msg string) error {
	return connector.Fail(codeOutsideRoots, msg,
		"a file connector reads and writes only under the directories cm serve was given with --file-root",
		"point the path inside a file root, or add its directory with --file-root", true, nil)
}

// CheckOpen checks the file f just opened for path: where its descriptor
// leads, so a symlink swapped in after the config was accepted, or between
// the check and the open, is caught. It fails permanently.
func (r *Roots) CheckOpen(key, path string, f *os.File) error {
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		// No /proc: resolve the name again instead.
		if real, err = filepath.EvalSymlinks(path); err != nil {
			return ioError("resolving", path, err)
		}
	}
	if !r.contains(real) {
		return outsideRoots(fmt.Sprintf("%s %s leads to %s, outside the file roots %s", key, path, real, r.describe()))
	}
	return nil
}

func (r *Roots) contains(real string) bool {
	if r == nil {
		return false
	}
	for _, d := range r.dirs {
		if real == d || strings.HasPrefix(real, d+string(filepath.Separator)) || d == string(filepath.Separator) {
			return true
		}
	}
	return false
}

func (r *Roots) describe() string {
	if r == nil || len(r.dirs) == 0 {
		return "(none is configured)"
	}
	return "(" + strings.Join(r.dirs, ", ") + ")"
}

// resolve cleans the absolute path p and resolves its symlinks: the
// longest prefix that exists is resolved by filepath.EvalSymlinks and the
// rest, which does not exist yet (a sink's file, its new directories), is
// joined on. A cleaned absolute path holds no "..", so the rest cannot
// climb out of the resolved prefix.
func resolve(p string) (string, error) {
	p = filepath.Clean(p)
	var rest []string
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// A dangling symlink: where it points does not exist yet, and
			// creating that would be writing wherever it says.
			return "", fmt.Errorf("%s is a symlink to a path that does not exist", p)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}
