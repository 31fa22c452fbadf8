package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestServeConfinesConnectors runs cm serve with --plugin-dir and
// --file-root: a declared plugin runs with a scrubbed environment (CM_TASK
// and what its manifest names, not cm's CM_DB or a secret cm was started
// with), a task bringing its own command is refused and runs nothing, and
// a file path outside the roots is refused.
func TestServeConfinesConnectors(t *testing.T) {
	dir := t.TempDir()
	plugins, out, marker := filepath.Join(dir, "plugins"), filepath.Join(dir, "env"), filepath.Join(dir, "ran")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	cmtest.ShellPlugin(t, plugins, "envdump", "env > "+out+
		`; read -r hello; while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; sleep 0.1; done`, "CM_TEST_LANG")
	db := dbtest.SQLiteURL(t)
	p := startCMEnv(t, []string{"CM_TEST_SECRET=marker-secret-5e1a", "CM_TEST_LANG=passed-through"},
		freePort(t), db, filepath.Join(dir, "data"), "--plugin-dir", plugins)

	p.call(t, "POST", "/connector/task/v2/create", `{"component":"p_env-incr_trans-1-0","config":{"source":{"type":"process","plugin":"envdump"}}}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ts := p.checkpoint(t, "p_env-incr_trans-1-0", "s"); ts == 100 {
			break // written after the environment
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not run:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	if !strings.Contains(env, "\nCM_TEST_LANG=passed-through\n") && !strings.HasPrefix(env, "CM_TEST_LANG=passed-through\n") {
		t.Errorf("the declared variable is missing:\n%s", env)
	}
	if !strings.Contains(env, "CM_TASK=") {
		t.Errorf("CM_TASK is missing:\n%s", env)
	}
	for _, leak := range []string{"marker-secret", "CM_DB=", db, "CM_TEST_RUN_AS_CM", "CM_TEST_ARGS"} {
		if strings.Contains(env, leak) {
			t.Errorf("cm's environment reached the plugin (%s):\n%s", leak, env)
		}
	}

	argv, _ := json.Marshal([]string{"/bin/sh", "-c", "touch " + marker})
	body, _ := json.Marshal(map[string]any{"component": "p_cmd-incr_trans-1-0",
		"config": map[string]map[string]string{"source": {"type": "process", "command": string(argv)}}})
	if status, ans := rawCall(t, p, "POST", "/connector/task/v2/create", string(body)); status != 400 || ans["errCode"] != "PROCESS_COMMAND_REFUSED" {
		t.Errorf("create with source.command = %d %v", status, ans)
	}
	for _, path := range []string{"/etc/hostname", dir + "/../../../../etc/hostname"} {
		body, _ := json.Marshal(map[string]any{"component": "p_file-incr_trans-1-0", "config": map[string]map[string]string{
			"source": {"type": "file", "path": path}, "sink": {"type": "file", "path": filepath.Join(dir, "sink.jsonl")}}})
		if status, ans := rawCall(t, p, "POST", "/connector/task/v2/create", string(body)); status != 400 || ans["errCode"] != "FILE_OUTSIDE_ROOTS" {
			t.Errorf("create with source.path %s = %d %v", path, status, ans)
		}
	}
	// The accepted task has run; the refused one never did.
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused command ran")
	}

	// A manifest added later is read on SIGHUP; a broken one is refused
	// and leaves the plugins in force.
	plugin := `{"component":"p_late-incr_trans-1-0","config":{"source":{"type":"process","plugin":"late"}}}`
	if status, ans := rawCall(t, p, "POST", "/connector/task/v2/create", plugin); status != 400 || ans["errCode"] != "UNKNOWN_PLUGIN" {
		t.Fatalf("create with a plugin not declared yet = %d %v", status, ans)
	}
	cmtest.ShellPlugin(t, plugins, "late", `read -r hello; while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`)
	hangup := func() {
		t.Helper()
		before := strings.Count(p.logs.String(), "plugins reloaded") + strings.Count(p.logs.String(), "plugin reload refused")
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(p.logs.String(), "plugins reloaded")+strings.Count(p.logs.String(), "plugin reload refused") == before {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged after SIGHUP:\n%s", p.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hangup()
	p.call(t, "POST", "/connector/task/v2/create", plugin)
	if err := os.WriteFile(filepath.Join(plugins, "broken.yaml"), []byte("name: broken\ncommand: [sh]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hangup()
	if !strings.Contains(p.logs.String(), "broken.yaml") {
		t.Fatalf("the refused reload does not name the manifest:\n%s", p.logs.String())
	}
	p.call(t, "POST", "/connector/task/v2/stop?taskName=p_late-incr_trans-1-0", "")
	p.call(t, "POST", "/connector/task/v2/resume?taskName=p_late-incr_trans-1-0", "")
}

// TestServeRefusesBadPlugins: cm serve does not start on a plugin
// directory with an invalid manifest or two plugins of one name, and says
// which file and why.
func TestServeRefusesBadPlugins(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"relative program", map[string]string{"a.yaml": "name: a\ncommand: [sh, -c, 'exit 0']\n"}, "a.yaml: command[0] \"sh\": must be an absolute path"},
		{"unknown key", map[string]string{"a.yaml": "name: a\ncommand: [/bin/true]\nargs: [x]\n"}, "a.yaml: yaml: unmarshal errors"},
		{"duplicate", map[string]string{"a.yaml": "name: a\ncommand: [/bin/true]\n", "b.yaml": "name: a\ncommand: [/bin/false]\n"},
			"b.yaml: plugin \"a\" is already declared by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out := runCM(t, dbtest.SQLiteURL(t), "serve", "--listen", freePort(t), "--data-dir", filepath.Join(t.TempDir(), "data"), "--plugin-dir", dir)
			if code == 0 || !strings.Contains(out, "--plugin-dir") || !strings.Contains(out, tc.want) {
				t.Fatalf("cm serve = %d, want it refused naming the file (%q):\n%s", code, tc.want, out)
			}
		})
	}
}

// rawCall is p.call for an answer that may be an error.
func rawCall(t *testing.T, p *cmProcess, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans map[string]any
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, ans
}

// TestConfinementConfig: --plugin-dir and --file-root layer like the other
// flags (flag > env > file); --file-root is repeatable and comma-separated.
func TestConfinementConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("plugin-dir: /etc/cm/plugins\nfile-root: [/srv/a, /srv/b]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		plugins   string
		fileRoots []string
	}{
		{"file", nil, nil, "/etc/cm/plugins", []string{"/srv/a", "/srv/b"}},
		{"env", nil, map[string]string{"CM_PLUGIN_DIR": "/opt/p", "CM_FILE_ROOT": "/e1,/e2"}, "/opt/p", []string{"/e1", "/e2"}},
		{"flags", []string{"--plugin-dir", "/flag/p", "--file-root", "/f1", "--file-root", "/f2"}, map[string]string{"CM_FILE_ROOT": "/e1"}, "/flag/p", []string{"/f1", "/f2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c serveConfig
			cmd := serveCommand(&c)
			if err := cmd.Flags().Parse(append([]string{"--config", file}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if err := resolve(cmd, &c, func(k string) string { return tc.env[k] }); err != nil {
				t.Fatal(err)
			}
			if c.PluginDir != tc.plugins || strings.Join(c.FileRoots, " ") != strings.Join(tc.fileRoots, " ") {
				t.Fatalf("plugin dir %q, file roots %q; want %q, %q", c.PluginDir, c.FileRoots, tc.plugins, tc.fileRoots)
			}
		})
	}
}
