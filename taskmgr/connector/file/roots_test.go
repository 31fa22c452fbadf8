package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// anywhere is a root of /, for the tests of other things than confinement.
var anywhere = func() *Roots {
	r, err := NewRoots("/")
	if err != nil {
		panic(err)
	}
	return r
}()

// TestRoots: file sources and sinks take a path only when, cleaned and
// with its symlinks resolved, it lies under a root: an absolute path
// elsewhere, ".." out of the root, a symlink inside the root that leads
// out, and a relative path are refused at build time (create and update)
// with connector.ErrOutsideRoots.
func TestRoots(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "in.jsonl"), "{\"ts\":1}\n")
	writeFile(t, filepath.Join(outside, "secret.jsonl"), "{\"ts\":1}\n")
	for _, l := range [][2]string{
		{outside, filepath.Join(root, "out-dir")},
		{filepath.Join(outside, "secret.jsonl"), filepath.Join(root, "out-file")},
		{filepath.Join(outside, "nope"), filepath.Join(root, "dangling")},
		{filepath.Join(root, "sub"), filepath.Join(root, "in-dir")},
	} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	// The root itself reached through a symlink is the same root.
	viaLink := filepath.Join(base, "root-link")
	if err := os.Symlink(root, viaLink); err != nil {
		t.Fatal(err)
	}
	roots, err := NewRoots(viaLink)
	if err != nil {
		t.Fatal(err)
	}
	r := connector.NewRegistry()
	Register(r, roots, testWatcher(t))
	for _, tc := range []struct {
		name string
		path string
		ok   bool
	}{
		{"inside", filepath.Join(root, "in.jsonl"), true},
		{"new file inside", filepath.Join(root, "new", "deeper", "x.jsonl"), true},
		{"inside through a symlink inside", filepath.Join(root, "in-dir", "x.jsonl"), true},
		{"through the root's symlink", filepath.Join(viaLink, "in.jsonl"), true},
		{"absolute elsewhere", "/etc/hostname", false},
		{"dot-dot out", root + "/../../etc/hostname", false},
		{"dot-dot to a sibling", root + "/../outside/secret.jsonl", false},
		{"symlinked directory out", filepath.Join(root, "out-dir", "secret.jsonl"), false},
		{"new file under a symlink out", filepath.Join(root, "out-dir", "new.jsonl"), false},
		{"symlinked file out", filepath.Join(root, "out-file"), false},
		{"dangling symlink out", filepath.Join(root, "dangling"), false},
		{"relative", "in.jsonl", false},
		{"prefix is not a parent", root + "-evil/x.jsonl", false},
	} {
		for _, scope := range []string{"source", "sink"} {
			t.Run(tc.name+"/"+scope, func(t *testing.T) {
				c := model.Config{"source": {"type": "file", "path": filepath.Join(root, "in.jsonl")},
					"sink": {"type": "file", "path": filepath.Join(root, "out.jsonl")}}
				if scope == "sink" {
					c["source"]["path"] = filepath.Join(root, "elsewhere.jsonl")
				}
				c[scope]["path"] = tc.path
				_, _, err := r.Build(connector.Config{Type: model.TypeIncr, Scopes: c})
				if tc.ok && err != nil {
					t.Fatalf("Build = %v, want it accepted", err)
				}
				if !tc.ok && !errors.Is(err, connector.ErrOutsideRoots) && (tc.name != "dangling symlink out" || !errors.Is(err, connector.ErrConfig)) {
					t.Fatalf("Build = %v, want ErrOutsideRoots", err)
				}
			})
		}
	}
	none, err := NewRoots()
	if err != nil {
		t.Fatal(err)
	}
	if err := none.Check("source.path", filepath.Join(root, "in.jsonl")); !errors.Is(err, connector.ErrOutsideRoots) {
		t.Fatalf("no roots: Check = %v, want ErrOutsideRoots", err)
	}
	if _, err := NewRoots("relative/dir"); err == nil {
		t.Fatal("NewRoots accepted a relative root")
	}
}

// TestRootsAtOpen: a path accepted at create time that a symlink swapped
// in later leads out of the roots is refused when the connector opens,
// permanently, before the sink creates or writes anything.
func TestRootsAtOpen(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "in"), filepath.Join(root, "out"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "in", "a.jsonl"), "{\"ts\":1}\n")
	writeFile(t, filepath.Join(outside, "a.jsonl"), "{\"ts\":1}\n")
	roots, err := NewRoots(root)
	if err != nil {
		t.Fatal(err)
	}
	r := connector.NewRegistry()
	Register(r, roots, testWatcher(t))
	c := model.Config{"source": {"type": "file", "path": filepath.Join(root, "in", "a.jsonl")},
		"sink": {"type": "file", "path": filepath.Join(root, "out", "b.jsonl")}}
	src, snk, err := r.Build(connector.Config{Type: model.TypeIncr, Scopes: c})
	if err != nil {
		t.Fatal(err)
	}
	// Both directories are swapped for symlinks out of the root.
	for _, d := range []string{"in", "out"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	var ce *connector.Error
	err = src.Open(context.Background(), nil)
	if !errors.As(err, &ce) || ce.Detail.Code != codeOutsideRoots || !ce.Permanent {
		src.Close()
		t.Fatalf("source Open = %v, want a permanent %s", err, codeOutsideRoots)
	}
	err = snk.Open(context.Background())
	if !errors.As(err, &ce) || ce.Detail.Code != codeOutsideRoots || !ce.Permanent {
		snk.Close()
		t.Fatalf("sink Open = %v, want a permanent %s", err, codeOutsideRoots)
	}
	if _, err := os.Stat(filepath.Join(outside, "b.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the sink created its file outside the root: %v", err)
	}
	// CheckOpen looks at where an open descriptor leads.
	f, err := os.Open(filepath.Join(root, "in", "a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := roots.CheckOpen("source.path", f.Name(), f); !errors.As(err, &ce) || ce.Detail.Code != codeOutsideRoots {
		t.Fatalf("CheckOpen = %v", err)
	}
}
