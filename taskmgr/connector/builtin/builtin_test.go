package builtin

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func registry(t *testing.T, cfg Config) *connector.Registry {
	t.Helper()
	c, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.Registry
}

func TestRegistryBuilds(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "true.yaml"), []byte("name: true\ncommand: [/bin/true]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := registry(t, Config{PluginDir: dir, FileRoots: []string{"/"}})
	for _, tc := range []struct {
		name    string
		c       model.Config
		ok      bool
		hasSink bool
	}{
		{"file to file", model.Config{"source": {"type": "file", "path": "/in"}, "sink": {"type": "file", "path": "/out"}}, true, true},
		{"process", model.Config{"source": {"type": "process", "plugin": "true"}}, true, false},
		{"process with a sink", model.Config{"source": {"type": "process", "plugin": "true"}, "sink": {"type": "file", "path": "/out"}}, false, false},
		{"process with a command", model.Config{"source": {"type": "process", "command": `["/bin/true"]`}}, false, false},
		{"file without a sink", model.Config{"source": {"type": "file", "path": "/in"}}, false, false},
		{"unknown source", model.Config{"source": {"type": "kafka"}}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, snk, err := r.Build(connector.Config{Type: model.TypeIncr, Scopes: tc.c})
			if !tc.ok {
				if !errors.Is(err, connector.ErrConfig) {
					t.Fatalf("Build = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || src == nil || (snk != nil) != tc.hasSink {
				t.Fatalf("Build = %v, %v, %v", src, snk, err)
			}
		})
	}
}

// TestFileToFile runs a full import the way the runner does.
func TestFileToFile(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out", "out.jsonl")
	data := "{\"ts\":1,\"a\":1}\n{\"ts\":2,\"a\":2}\n"
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c := model.Config{"source": {"type": "file", "path": in}, "sink": {"type": "file", "path": out}}
	src, snk, err := registry(t, Config{FileRoots: []string{dir}}).Build(connector.Config{Type: model.TypeFull, Scopes: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	for {
		b, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != data {
		t.Fatalf("out holds %q (%v), want %q", got, err, data)
	}
}

// TestNewRefuses: cm does not start on a broken plugin directory or root.
func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ncommand: [sh]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{PluginDir: dir},
		{PluginDir: filepath.Join(dir, "missing")},
		{FileRoots: []string{"data"}},
	} {
		if _, err := New(cfg, zap.NewNop()); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{PluginDir: dir}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("New = %v, want the manifest named", err)
	}
}
