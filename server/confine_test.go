package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestProcessCommandRefused: a process task that brings its own argv
// (source.command) or working directory, at create or at update, is
// refused with PROCESS_COMMAND_REFUSED and a message saying how to declare
// a plugin; one naming an undeclared plugin with UNKNOWN_PLUGIN; neither
// runs anything. A declared plugin runs.
func TestProcessCommandRefused(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	marker := filepath.Join(t.TempDir(), "ran")
	argv, _ := json.Marshal([]string{"/bin/sh", "-c", "touch " + marker})
	for _, tc := range []struct {
		name, component string
		source          map[string]string
		code            string
	}{
		{"command", "p_cr-incr_trans-1-0", map[string]string{"type": "process", "command": string(argv)}, "PROCESS_COMMAND_REFUSED"},
		{"command beside a plugin", "p_cr-incr_trans-2-0", map[string]string{"type": "process", "plugin": "ok", "command": string(argv)}, "PROCESS_COMMAND_REFUSED"},
		{"workdir", "p_cr-incr_trans-3-0", map[string]string{"type": "process", "plugin": "ok", "workdir": "/"}, "PROCESS_COMMAND_REFUSED"},
		{"undeclared plugin", "p_cr-incr_trans-4-0", map[string]string{"type": "process", "plugin": "touch-marker"}, "UNKNOWN_PLUGIN"},
		{"no plugin", "p_cr-incr_trans-5-0", map[string]string{"type": "process"}, "UNKNOWN_PLUGIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := n.Do(t, "POST", base+"create", map[string]any{"component": tc.component, "config": map[string]any{"source": tc.source}})
			if env.Status != 400 || env.Code() != tc.code || env.Retryable == nil || *env.Retryable || !strings.Contains(env.Raw, "--plugin-dir") {
				t.Fatalf("create = %d %s, want 400 %s saying how to declare a plugin", env.Status, env.Raw, tc.code)
			}
			if env := n.Do(t, "GET", base+"detail?taskName="+q(tc.component), nil); env.Code() != "TASK_NOT_FOUND" {
				t.Fatalf("the refused task exists: %s", env.Raw)
			}
		})
	}

	// A declared plugin runs; an update that brings a command is refused
	// and leaves the task's config as it was.
	ok := n.Plugin(t, "ok", `read -r hello; while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; sleep 0.1; done`)
	name := n.OK(t, "POST", base+"create", map[string]any{"component": "p_ok-incr_trans-1-0",
		"config": map[string]any{"source": map[string]string{"type": "process", "plugin": ok}}}).String()
	cmtest.Eventually(t, 5*time.Second, "the plugin ran", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	upd, _ := json.Marshal(map[string]any{"source": map[string]string{"command": string(argv)}})
	if env := n.Do(t, "POST", base+"update?taskName="+q(name), string(upd)); env.Status != 400 || env.Code() != "PROCESS_COMMAND_REFUSED" {
		t.Fatalf("update with a command = %d %s", env.Status, env.Raw)
	}
	if env := n.Do(t, "POST", base+"update?taskName="+q(name), `{"source":{"plugin":"touch-marker"}}`); env.Status != 400 || env.Code() != "UNKNOWN_PLUGIN" {
		t.Fatalf("update to an undeclared plugin = %d %s", env.Status, env.Raw)
	}
	n.OK(t, "POST", base+"resume?taskName="+q(name), nil)
	if d := n.Detail(t, name); d.State != model.StateRunning || d.Config["source"]["command"] != "" || d.Config["source"]["plugin"] != ok {
		t.Fatalf("after the refused updates: %s %v", d.State, d.Config)
	}
	// By now the reconciler has run the accepted task and passed over the
	// refused ones more than once: nothing ran the command.
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused command ran: %v", err)
	}
}

// TestPluginEnvironment: a plugin's program gets CM_TASK, PATH and the
// variables its manifest names, and nothing else of cm's environment: not
// a store DSN with its password, not a secret cm was started with.
func TestPluginEnvironment(t *testing.T) {
	t.Setenv("CM_TEST_SECRET", "marker-secret-41d7")
	t.Setenv("CM_DB", "mysql://cm:marker-password-41d7@127.0.0.1:3306/cm")
	t.Setenv("CM_TEST_LANG", "passed-through")
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	out := filepath.Join(t.TempDir(), "env")
	script := `env > ` + out + `; read -r hello; while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; sleep 0.1; done`
	plugin := n.Plugin(t, "envdump", script, "CM_TEST_LANG", "CM_TEST_UNSET")
	name := n.OK(t, "POST", base+"create", map[string]any{"component": "p_env-incr_trans-1-0",
		"config": map[string]any{"source": map[string]string{"type": "process", "plugin": plugin}}}).String()
	// The first checkpoint comes after the environment is written.
	cmtest.Eventually(t, 5*time.Second, "checkpoint", func() bool { return n.Detail(t, name).Checkpoint["s"].TS == 100 })
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	if got["CM_TASK"] != name || got["CM_TEST_LANG"] != "passed-through" || got["PATH"] == "" || got["PATH"] == os.Getenv("PATH") {
		t.Errorf("CM_TASK=%q CM_TEST_LANG=%q PATH=%q: want the task's name, the declared variable and the default PATH", got["CM_TASK"], got["CM_TEST_LANG"], got["PATH"])
	}
	for k := range got {
		switch k {
		case "CM_TASK", "CM_TEST_LANG", "PATH", "PWD", "SHLVL", "_", "OLDPWD":
		default:
			t.Errorf("the program's environment has %s", k)
		}
	}
	if strings.Contains(string(b), "marker-") {
		t.Errorf("a secret of cm's environment reached the program:\n%s", b)
	}
}

// TestFileRoots: file sources and sinks outside the roots are refused at
// create and update with FILE_OUTSIDE_ROOTS: an absolute path elsewhere,
// ".." out of the root, a symlink inside the root that leads out; a path
// inside is accepted and runs.
func TestFileRoots(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, FileRoots: []string{root}})
	src, sink := filepath.Join(root, "src.jsonl"), filepath.Join(root, "out", "sink.jsonl")
	if err := os.WriteFile(src, []byte("{\"ts\":100,\"i\":0}\n{\"ts\":101,\"i\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.jsonl"), []byte("{\"ts\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"/etc/hostname",
		root + "/../../etc/hostname",
		filepath.Join(root, "etc", "hostname"),
		filepath.Join(root, "elsewhere", "secret.jsonl"),
		filepath.Join(outside, "secret.jsonl"),
	}
	i := 0
	for _, scope := range []string{"source", "sink"} {
		for _, p := range bad {
			i++
			cfg := map[string]map[string]string{"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": sink}}
			cfg[scope]["path"] = p
			comp := fmt.Sprintf("p_root-incr_trans-%d-0", i)
			env := n.Do(t, "POST", base+"create", map[string]any{"component": comp, "config": cfg})
			if env.Status != 400 || env.Code() != "FILE_OUTSIDE_ROOTS" {
				t.Errorf("%s.path %s: create = %d %s, want 400 FILE_OUTSIDE_ROOTS", scope, p, env.Status, env.Raw)
			}
		}
	}
	name := n.OK(t, "POST", base+"create", map[string]any{"component": "p_in-incr_trans-1-0",
		"config": map[string]map[string]string{"source": {"type": "file", "path": src}, "sink": {"type": "file", "path": sink}}}).String()
	cmtest.Eventually(t, 5*time.Second, "copied inside the root", func() bool { return len(cmtest.SinkIndexes(t, sink)) == 2 })
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	for _, scope := range []string{"source", "sink"} {
		upd, _ := json.Marshal(map[string]any{scope: map[string]string{"path": root + "/../../etc/hostname"}})
		if env := n.Do(t, "POST", base+"update?taskName="+q(name), string(upd)); env.Status != 400 || env.Code() != "FILE_OUTSIDE_ROOTS" {
			t.Errorf("update of %s.path out of the root = %d %s", scope, env.Status, env.Raw)
		}
	}
	if d := n.Detail(t, name); d.Config["source"]["path"] != src || d.Config["sink"]["path"] != sink {
		t.Fatalf("the refused updates changed the config: %v", d.Config)
	}
}
