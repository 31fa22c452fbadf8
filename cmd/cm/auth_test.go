package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/server"
)

// writeTokens writes an auth file listing tokens (name -> role) under
// made-up tokens, returned by name.
func writeTokens(t *testing.T, path string, entries map[string]server.Role) map[string]string {
	t.Helper()
	var b strings.Builder
	b.WriteString("tokens:\n")
	tokens := map[string]string{}
	for name, role := range entries {
		tok, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
		fmt.Fprintf(&b, "  - {name: %s, role: %s, sha256: %s}\n", name, role, server.HashToken(tok))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return tokens
}

// status is the HTTP status of a GET with a bearer token ("" for none).
func status(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestPostureRefusesReachableWithoutAuth: cm serve on an address other
// hosts can reach, without --auth-file or --insecure, exits non-zero before
// it opens the store, naming both flags.
func TestPostureRefusesReachableWithoutAuth(t *testing.T) {
	addr := freePort(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	db := "sqlite:" + filepath.Join(t.TempDir(), "cm.db")
	// The bound only ends a child that started after all (the bug this
	// tests for); a refusal comes at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CM_TEST_RUN_AS_CM=1",
		"CM_TEST_ARGS=serve --listen 0.0.0.0:"+port+" --advertise "+nodeID(addr)+" --data-dir "+t.TempDir(), "CM_DB="+db)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err == nil || !errors.As(err, &exit) || exit.ExitCode() <= 0 {
		t.Fatalf("cm serve --listen 0.0.0.0 without an auth file: %v\n%s", err, out)
	}
	for _, want := range []string{"--auth-file", "--insecure", "0.0.0.0:" + port} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not name %s:\n%s", want, out)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(db, "sqlite:")); err == nil {
		t.Error("the refused node created its store")
	}
}

// TestPostureInsecureStarts: --insecure lets it start, with a warning.
func TestPostureInsecureStarts(t *testing.T) {
	addr := freePort(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	p := startCM(t, addr, "sqlite:"+filepath.Join(t.TempDir(), "cm.db"), t.TempDir(),
		"--listen", "0.0.0.0:"+port, "--advertise", nodeID(addr), "--insecure")
	if code := status(t, p.base+"/connector/task/v2/nodes", ""); code != http.StatusOK {
		t.Fatalf("anonymous call on an --insecure node = %d", code)
	}
	if !strings.Contains(p.logs.String(), "--insecure: serving without authentication") {
		t.Fatalf("no warning in the log:\n%s", p.logs.String())
	}
}

// TestPosture: which --listen needs an auth file.
func TestPosture(t *testing.T) {
	for listen, reachable := range map[string]bool{
		"127.0.0.1:8088": false, "127.0.0.2:8088": false, "[::1]:8088": false, "localhost:8088": false,
		"0.0.0.0:8088": true, ":8088": true, "[::]:8088": true, "192.0.2.10:8088": true, "cm.example.com:8088": true,
	} {
		c := serveConfig{Listen: listen}
		if err := c.checkPosture(); (err != nil) != reachable {
			t.Errorf("--listen %s: %v", listen, err)
		}
		c.Insecure = true
		if err := c.checkPosture(); err != nil {
			t.Errorf("--listen %s --insecure: %v", listen, err)
		}
		c = serveConfig{Listen: listen, AuthFile: "auth.yaml"}
		if err := c.checkPosture(); err != nil {
			t.Errorf("--listen %s --auth-file: %v", listen, err)
		}
	}
}

// TestAuthConfigLayering: the new keys from the file, the environment and
// flags, and a bad proxy refused.
func TestAuthConfigLayering(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cm.yaml")
	yaml := "auth-file: /etc/cm/auth.yaml\nnode-token-file: /etc/cm/node.token\ninsecure: true\ntrusted-proxies: [10.0.0.0/8, 192.0.2.1]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	cmd := serveCommand(&c)
	if err := cmd.Flags().Parse([]string{"--config", file, "--node-token-file", "/flag/node.token"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CM_AUTH_FILE": "/env/auth.yaml"}
	if err := resolve(cmd, &c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.AuthFile != "/env/auth.yaml" || c.NodeTokenFile != "/flag/node.token" || !c.Insecure ||
		strings.Join(c.TrustedProxies, ",") != "10.0.0.0/8,192.0.2.1" {
		t.Fatalf("resolved %+v", c)
	}
	c = serveConfig{Listen: "127.0.0.1:1", DB: "sqlite:x.db", LogLevel: "info", LogFormat: "json", GCPercent: 400, TrustedProxies: []string{"10.0.0.0/33"}}
	if _, _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("a bad CIDR: %v", err)
	}
}

// TestTokenNew: cm token new prints a fresh URL-safe token of 32 random
// bytes and the auth file line that lets it in with its role.
func TestTokenNew(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := rootCmd()
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"token", "new"}, args...))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	seen := map[string]bool{}
	for range 3 {
		out, err := run("--name", "ops-oncall", "--role", "operator")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("output:\n%s", out)
		}
		tok := lines[0]
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) < 32 {
			t.Fatalf("token %q: %d bytes, %v", tok, len(raw), err)
		}
		if seen[tok] {
			t.Fatalf("token %s printed twice", tok)
		}
		seen[tok] = true
		if strings.Contains(lines[1], tok) {
			t.Fatalf("the auth file line holds the token itself: %s", lines[1])
		}
		ts, err := server.ParseTokens([]byte("tokens:\n" + lines[1] + "\n"))
		if err != nil {
			t.Fatalf("line %q: %v", lines[1], err)
		}
		if r, ok := ts.Role(tok); !ok || r != server.RoleOperator {
			t.Fatalf("the line gives the token %s %v", r, ok)
		}
	}
	for _, bad := range [][]string{{"--name", "ops", "--role", "root"}, {"--name", "a b", "--role", "viewer"}, {"--role", "viewer"}} {
		if out, err := run(bad...); err == nil {
			t.Errorf("token new %v accepted:\n%s", bad, out)
		}
	}
}

// TestSIGHUPReloadsAuthFile: a real cm serve on the wildcard address with
// an auth file (which the posture allows) swaps its tokens on SIGHUP: a
// token added works, one removed is refused; a file that does not parse
// keeps the tokens in force and the log says why; the process lives on.
func TestSIGHUPReloadsAuthFile(t *testing.T) {
	addr := freePort(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	auth := filepath.Join(t.TempDir(), "auth.yaml")
	first := writeTokens(t, auth, map[string]server.Role{"alice": server.RoleAdmin})
	p := startCM(t, addr, "sqlite:"+filepath.Join(t.TempDir(), "cm.db"), t.TempDir(),
		"--listen", "0.0.0.0:"+port, "--advertise", nodeID(addr), "--auth-file", auth)
	nodes := p.base + "/connector/task/v2/nodes"
	if code := status(t, nodes, first["alice"]); code != http.StatusOK {
		t.Fatalf("alice before the reload: %d", code)
	}
	if code := status(t, nodes, ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", code)
	}
	if code := status(t, p.base+"/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz without a token: %d", code)
	}
	hangup := func(logLine string) {
		t.Helper()
		before := strings.Count(p.logs.String(), logLine)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		within(t, 10*time.Second, "log says "+logLine, func() bool { return strings.Count(p.logs.String(), logLine) > before })
	}

	second := writeTokens(t, auth, map[string]server.Role{"bob": server.RoleViewer})
	hangup(`"msg":"auth file reloaded"`)
	if code := status(t, nodes, second["bob"]); code != http.StatusOK {
		t.Fatalf("bob, added: %d", code)
	}
	if code := status(t, nodes, first["alice"]); code != http.StatusUnauthorized {
		t.Fatalf("alice, removed: %d", code)
	}

	if err := os.WriteFile(auth, []byte("tokens:\n  - {name: eve, role: superuser, sha256: 00}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup(`"msg":"reload refused"`)
	if !strings.Contains(p.logs.String(), "keeping the 1 tokens in force") {
		t.Fatalf("the refusal does not say the tokens stay:\n%s", p.logs.String())
	}
	if code := status(t, nodes, second["bob"]); code != http.StatusOK {
		t.Fatalf("bob after a bad file: %d", code)
	}
}
