package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

// roles are every role an auth file may give, from the least to the most.
var roles = []server.Role{server.RoleNode, server.RoleViewer, server.RoleOperator, server.RoleAdmin}

// authFile writes an auth file with one token per name (name -> role) and
// returns its path and the tokens by name. The tokens are made up here;
// the file holds only their hashes.
func authFile(t *testing.T, entries map[string]server.Role) (string, map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.yaml")
	return path, writeAuthFile(t, path, entries)
}

func writeAuthFile(t *testing.T, path string, entries map[string]server.Role) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	var b strings.Builder
	b.WriteString("tokens:\n")
	for name, role := range entries {
		tok := "tok-" + name + "-0123456789abcdefghijklmnopqrstuvwxyz"
		tokens[name] = tok
		fmt.Fprintf(&b, "  - {name: %s, role: %s, sha256: %s}\n", name, role, server.HashToken(tok))
	}
	if err := os.WriteFile(path+".tmp", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil { // as an editor saves: the reader sees one file or the other
		t.Fatal(err)
	}
	return tokens
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// oneOfEach is an auth file with a token of each role, named after it.
func oneOfEach(t *testing.T) (string, map[string]string) {
	entries := map[string]server.Role{}
	for _, r := range roles {
		entries[string(r)] = r
	}
	return authFile(t, entries)
}

func wantRefused(t *testing.T, what string, env cmtest.Envelope, status int, code string) {
	t.Helper()
	if env.Status != status || env.Code() != code || env.Retryable == nil || *env.Retryable || env.IsSuccess {
		t.Errorf("%s = %d %s, want %d %s retryable false in the envelope", what, env.Status, env.Raw, status, code)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(env.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: WWW-Authenticate %q, want Bearer", what, env.Header.Get("WWW-Authenticate"))
	}
}

// TestEveryRouteNeedsItsRole walks the routes the real server registered:
// each must have a role (or be one of the open probes); without a token,
// with a token no file lists, or with another scheme it is 401; with a
// token whose role is too low 403; with one whose role suffices neither.
// A route added without a role fails here.
func TestEveryRouteNeedsItsRole(t *testing.T) {
	path, tokens := oneOfEach(t)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: path})
	routes := n.App.HTTP().Routes()
	if len(routes) < 15 {
		t.Fatalf("the router lists %d routes", len(routes))
	}
	mapped, open := server.RouteRoles(), server.OpenRoutes()
	registered := map[string]bool{}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		registered[key] = true
		need, isMapped := mapped[key]
		target := regexp.MustCompile(`:[^/]+`).ReplaceAllString(rt.Path, "x")
		switch {
		case open[key]:
			if env := n.Do(t, rt.Method, target, nil); env.Status == http.StatusUnauthorized || env.Status == http.StatusForbidden {
				t.Errorf("open route %s without a token = %d %s", key, env.Status, env.Raw)
			}
			continue
		case !isMapped:
			t.Errorf("route %s has no role: give it one in routeRoles in server/auth.go (and docs/security.md)", key)
			continue
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			wantRefused(t, key+" without a token", n.Do(t, rt.Method, target, nil), http.StatusUnauthorized, "UNAUTHENTICATED")
			wantRefused(t, key+" with an unknown token", n.DoWith(t, bearer("not-a-token-of-this-node"), rt.Method, target, nil), http.StatusUnauthorized, "UNAUTHENTICATED")
			basic := http.Header{"Authorization": {"Basic " + tokens["admin"]}}
			wantRefused(t, key+" with Basic", n.DoWith(t, basic, rt.Method, target, nil), http.StatusUnauthorized, "UNAUTHENTICATED")
			for _, r := range roles {
				env := n.DoWith(t, bearer(tokens[string(r)]), rt.Method, target, nil)
				if r.Allows(need) {
					if env.Status == http.StatusUnauthorized || env.Status == http.StatusForbidden {
						t.Errorf("%s as %s (needs %s) = %d %s", key, r, need, env.Status, env.Raw)
					}
					continue
				}
				wantRefused(t, fmt.Sprintf("%s as %s (needs %s)", key, r, need), env, http.StatusForbidden, "FORBIDDEN")
			}
		})
	}
	for key := range mapped {
		if !registered[key] {
			t.Errorf("routeRoles names %s, which the server does not register", key)
		}
	}
	if !registered["POST /internal/v1/wake"] || mapped["POST /internal/v1/wake"] != server.RoleNode {
		t.Errorf("the wake route must be registered and need role node")
	}
	// No route matches: 401 first, so the router is not probed anonymously;
	// with a token the router's own answer.
	wantRefused(t, "GET /nope without a token", n.Do(t, "GET", "/nope", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
	if env := n.DoWith(t, bearer(tokens["viewer"]), "GET", "/nope", nil); env.Status != http.StatusNotFound {
		t.Errorf("GET /nope as viewer = %d %s", env.Status, env.Raw)
	}
	if env := n.DoWith(t, bearer(tokens["viewer"]), "GET", base+"stop", nil); env.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET stop as viewer = %d %s", env.Status, env.Raw)
	}
}

// TestRoleLadder: admin includes operator includes viewer; node is apart.
func TestRoleLadder(t *testing.T) {
	allowed := map[server.Role][]server.Role{
		server.RoleViewer:   {server.RoleViewer, server.RoleOperator, server.RoleAdmin},
		server.RoleOperator: {server.RoleOperator, server.RoleAdmin},
		server.RoleAdmin:    {server.RoleAdmin},
		server.RoleNode:     {server.RoleNode, server.RoleAdmin},
	}
	for need, who := range allowed {
		for _, r := range roles {
			want := false
			for _, w := range who {
				want = want || w == r
			}
			if r.Allows(need) != want {
				t.Errorf("%s allows %s = %v, want %v", r, need, !want, want)
			}
		}
	}
}

// TestParseTokensRefuses: an auth file that cannot be what was meant is
// refused whole, with the entry and the reason.
func TestParseTokensRefuses(t *testing.T) {
	h := server.HashToken("x")
	for _, c := range []struct{ file, want string }{
		{"", "no tokens"},
		{"tokens: []\n", "no tokens"},
		{"tokens:\n  - {name: a, role: root, sha256: " + h + "}\n", "role \"root\""},
		{"tokens:\n  - {name: a, role: admin, sha256: abc}\n", "64 hex digits"},
		{"tokens:\n  - {name: a, role: admin, token: plain}\n", "field token not found"},
		{"tokens:\n  - {name: a@b, role: admin, sha256: " + h + "}\n", "token name"},
		{"tokens:\n  - {name: a, role: admin, sha256: " + h + "}\n  - {name: a, role: viewer, sha256: " + server.HashToken("y") + "}\n", "given twice"},
		{"tokens:\n  - {name: a, role: admin, sha256: " + h + "}\n  - {name: b, role: viewer, sha256: " + h + "}\n", "same token as a"},
	} {
		if _, err := server.ParseTokens([]byte(c.file)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseTokens(%q) = %v, want an error saying %q", c.file, err, c.want)
		}
	}
	ts, err := server.ParseTokens([]byte("tokens:\n  - {name: ops-oncall, role: operator, sha256: " + strings.ToUpper(h) + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := ts.Role("x"); !ok || r != server.RoleOperator {
		t.Fatalf("Role(x) = %s %v", r, ok)
	}
	if _, ok := ts.Role("y"); ok {
		t.Fatal("an unlisted token has a role")
	}
}

// TestAuthFileRefusedAtStart: a node does not start on a bad auth file.
func TestAuthFileRefusedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(path, []byte("tokens:\n  - {name: a, role: admin}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewAuth(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("NewAuth on a file without a hash = %v", err)
	}
	if _, err := server.NewAuth(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("NewAuth on a missing file succeeded")
	}
}

// TestAuthReload: a reload adds and removes tokens at once; a file that
// does not parse keeps the tokens in force; calls made all through the
// reloads with a token in every version of the file all succeed.
func TestAuthReload(t *testing.T) {
	path, tokens := authFile(t, map[string]server.Role{"keep": server.RoleViewer, "old": server.RoleViewer})
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: path})
	nodes := base + "nodes"
	n.Token = tokens["keep"]
	n.OK(t, "GET", nodes, nil)
	n.Token = tokens["old"]
	n.OK(t, "GET", nodes, nil)

	// Calls that must never fail while the file changes under them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	failures := make(chan string, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", n.URL+nodes, nil)
				req.Header.Set("Authorization", "Bearer "+tokens["keep"])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failures <- err.Error()
					return
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures <- fmt.Sprintf("call %d: %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	var added map[string]string
	for i := range 20 {
		entries := map[string]server.Role{"keep": server.RoleViewer, "new": server.RoleOperator}
		if i%2 == 1 {
			entries = map[string]server.Role{"keep": server.RoleViewer, "old": server.RoleViewer}
		}
		added = writeAuthFile(t, path, entries)
		if err := n.App.ReloadAuth(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("a call with a token kept by every reload failed: %s", f)
	}
	// The last file (i = 19) has keep and old: back to the first.
	if _, ok := added["new"]; ok {
		t.Fatal("test bug: the last file should not list new")
	}
	added = writeAuthFile(t, path, map[string]server.Role{"keep": server.RoleViewer, "new": server.RoleOperator})
	if err := n.App.ReloadAuth(); err != nil {
		t.Fatal(err)
	}
	n.Token = added["new"]
	n.OK(t, "GET", nodes, nil)
	wantRefused(t, "removed token", n.DoWith(t, bearer(tokens["old"]), "GET", nodes, nil), http.StatusUnauthorized, "UNAUTHENTICATED")

	if err := os.WriteFile(path, []byte("tokens: [{name: new, role: operator, sha256: 00}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := n.App.ReloadAuth()
	if err == nil || !strings.Contains(err.Error(), "keeping the 2 tokens in force") || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("reload of a bad file = %v", err)
	}
	n.OK(t, "GET", nodes, nil) // new still works
	n.Token = tokens["keep"]
	n.OK(t, "GET", nodes, nil)
}

// createRow reads the audit row of a task's create.
func createRow(t *testing.T, n *cmtest.Node, name string) server.Operation {
	t.Helper()
	var ops []server.Operation
	if err := json.Unmarshal(n.OK(t, "GET", base+"operations?taskName="+q(name), nil).Result, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Operation == "create" {
			return op
		}
	}
	t.Fatalf("no create among the audit rows of %s: %+v", name, ops)
	return server.Operation{}
}

// TestAuditActor: the audit actor is the token's name (anonymous with
// authentication off) at the peer's address; X-Forwarded-For and
// X-Real-IP count only from a trusted proxy.
func TestAuditActor(t *testing.T) {
	forwarded := http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.8"}}
	realOnly := http.Header{"X-Real-Ip": {"203.0.113.8"}}
	path, tokens := authFile(t, map[string]server.Role{"ops-oncall": server.RoleAdmin})
	for i, c := range []struct {
		what    string
		auth    bool
		trusted []string
		headers http.Header
		want    string
	}{
		{"auth off", false, nil, nil, "anonymous@127.0.0.1"},
		{"auth off, forwarded by an untrusted peer", false, nil, forwarded, "anonymous@127.0.0.1"},
		{"a token, forwarded by an untrusted peer", true, nil, forwarded, "ops-oncall@127.0.0.1"},
		{"a token, another proxy trusted", true, []string{"192.0.2.0/24"}, forwarded, "ops-oncall@127.0.0.1"},
		{"a token, forwarded by a trusted proxy", true, []string{"127.0.0.1/32"}, forwarded, "ops-oncall@203.0.113.7"},
		{"X-Real-IP from a trusted proxy", true, []string{"127.0.0.1"}, realOnly, "ops-oncall@203.0.113.8"},
	} {
		t.Run(c.what, func(t *testing.T) {
			opt := cmtest.Options{NoJobs: true, HTTP: func(h *server.Config) { h.TrustedProxies = c.trusted }}
			if c.auth {
				opt.AuthFile = path
			}
			n := cmtest.Start(t, dbtest.SQLiteURL(t), opt)
			if c.auth {
				n.Token = tokens["ops-oncall"]
			}
			body, _, _ := fileTask(t, fmt.Sprintf("p_actor-incr_trans-%d-0", i), 1)
			h := c.headers.Clone()
			if h == nil {
				h = http.Header{}
			}
			name := n.DoWith(t, h, "POST", base+"create", body).String()
			if name == "" {
				t.Fatal("create failed")
			}
			if row := createRow(t, n, name); row.Actor != c.want {
				t.Fatalf("audit actor %s, want %s", row.Actor, c.want)
			}
		})
	}
}

// TestRequestIDSanitised: a client's X-Request-Id is kept when it matches
// the safe pattern, else replaced by a generated one, in the answer, its
// errorDetail and the audit row.
func TestRequestIDSanitised(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	safe := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	for i, c := range []struct {
		id   string
		kept bool
	}{
		{"runbook-42.step:3_a", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"id with spaces", false},
		{"x'; DROP TABLE operation_audits; --", false},
		{"<script>alert(1)</script>", false},
		{"ünïcödé", false},
	} {
		h := http.Header{"X-Request-Id": {c.id}}
		env := n.DoWith(t, h, "POST", base+"stop?taskName=p_none-incr_trans-1-0", nil)
		var detail server.ErrorDetail
		if err := json.Unmarshal(env.ErrorDetail, &detail); err != nil {
			t.Fatal(err)
		}
		got := env.Header.Get("X-Request-Id")
		if got != detail.RequestID || !safe.MatchString(got) {
			t.Errorf("id %q: answered %q, errorDetail %q", c.id, got, detail.RequestID)
		}
		if (got == c.id) != c.kept {
			t.Errorf("id %q: answered %q, kept = %v, want %v", c.id, got, got == c.id, c.kept)
		}
		body, _, _ := fileTask(t, fmt.Sprintf("p_rid-incr_trans-%d-0", i), 1)
		name := n.DoWith(t, h, "POST", base+"create", body).String()
		if row := createRow(t, n, name); !safe.MatchString(row.RequestID) || (row.RequestID == c.id) != c.kept {
			t.Errorf("id %q: audit row's request id %q", c.id, row.RequestID)
		}
	}
}

// wakeStatuses are the statuses n answered the internal wake route with.
func wakeStatuses(n *cmtest.Node) []int64 {
	var out []int64
	for _, e := range n.Logs.FilterMessage("request").FilterField(zap.String("path", cluster.WakePath)).All() {
		out = append(out, e.ContextMap()["status"].(int64))
	}
	return out
}

// TestWakeNeedsNodeToken: with authentication on, a node wakes another
// with its node token; without one the wake is refused (401), and the
// waking node says so in its log.
func TestWakeNeedsNodeToken(t *testing.T) {
	path, tokens := authFile(t, map[string]server.Role{"ops": server.RoleAdmin, "nodes": server.RoleNode})
	nodeToken := filepath.Join(t.TempDir(), "node.token")
	if err := os.WriteFile(nodeToken, []byte(tokens["nodes"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		tokenFile string
		want      int64
	}{{"with the node token", nodeToken, http.StatusOK}, {"without a token", "", http.StatusUnauthorized}} {
		t.Run(c.what, func(t *testing.T) {
			url := dbtest.SQLiteURL(t)
			opt := cmtest.Options{NoJobs: true, AuthFile: path, NodeTokenFile: c.tokenFile}
			a := cmtest.Start(t, url, opt)
			b := cmtest.Start(t, url, opt)
			b.Token = tokens["ops"]
			body, _, _ := fileTask(t, "p_wake-incr_trans-1-0", 1)
			body["node"] = string(a.ID)
			b.OK(t, "POST", base+"create", body)
			cmtest.Eventually(t, 5*time.Second, "A answers a wake", func() bool { return len(wakeStatuses(a)) > 0 })
			if got := wakeStatuses(a); got[0] != c.want {
				t.Fatalf("A answered the wake %v, want %d", got, c.want)
			}
			refused := b.Logs.FilterMessageSnippet("wake refused").Len() > 0
			if refused != (c.want != http.StatusOK) {
				t.Fatalf("B logged a refused wake: %v", refused)
			}
		})
	}
}
