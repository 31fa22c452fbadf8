package kafkaconnect_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/server"
)

// TestRoles: with authentication on, the Kafka Connect paths answer
// Kafka Connect's error body for a missing token (401) and a role too low
// (403); a PUT config that would create a connector needs the role that
// creates (admin), one that updates it the operator's.
func TestRoles(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, r := range []string{"viewer", "operator", "admin"} {
		fmt.Fprintf(&b, "- {name: %s, role: %s, sha256: %s}\n", r, r, server.HashToken("tok-"+r))
	}
	auth := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(auth, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: auth, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
	as := func(role string) []string { return []string{"Authorization", "Bearer tok-" + role} }
	wantError(t, "GET /connectors without a token", do(t, n, "GET", "/connectors", nil), http.StatusUnauthorized, "authentication required")
	mustStatus(t, "GET /connectors as viewer", do(t, n, "GET", "/connectors", nil, as("viewer")...), http.StatusOK)
	mustStatus(t, "GET /health without a token", do(t, n, "GET", "/health", nil), http.StatusOK)

	src, sink := fileSource(t, 2)
	name := "kc_auth-incr_trans-1-0"
	cfg := fileConfig(src, sink)
	wantError(t, "POST /connectors as operator", do(t, n, "POST", "/connectors", map[string]any{"name": name, "config": cfg}, as("operator")...), http.StatusForbidden, "forbidden")
	wantError(t, "create by PUT as operator", do(t, n, "PUT", "/connectors/"+name+"/config", cfg, as("operator")...), http.StatusForbidden, "needs role admin")
	mustStatus(t, "create by PUT as admin", do(t, n, "PUT", "/connectors/"+name+"/config", cfg, as("admin")...), http.StatusCreated)
	sinkHas(t, src, sink, 2)
	cfg["source.pollInterval"] = "1s"
	mustStatus(t, "update by PUT as operator", do(t, n, "PUT", "/connectors/"+name+"/config", cfg, as("operator")...), http.StatusOK)
	wantError(t, "stop as viewer", do(t, n, "PUT", "/connectors/"+name+"/stop", nil, as("viewer")...), http.StatusForbidden, "forbidden")
	wantEmpty(t, "stop as operator", do(t, n, "PUT", "/connectors/"+name+"/stop", nil, as("operator")...), http.StatusNoContent)
	wantError(t, "DELETE as operator", do(t, n, "DELETE", "/connectors/"+name, nil, as("operator")...), http.StatusForbidden, "forbidden")
	wantError(t, "reload as operator", do(t, n, "POST", "/connector-plugins/reload", nil, as("operator")...), http.StatusForbidden, "forbidden")
	wantError(t, "PUT a log level as operator", do(t, n, "PUT", "/admin/loggers/root", `{"level":"DEBUG"}`, as("operator")...), http.StatusForbidden, "forbidden")
	wantEmpty(t, "DELETE as admin", do(t, n, "DELETE", "/connectors/"+name, nil, as("admin")...), http.StatusNoContent)
}

// TestLogLevel: PUT /admin/loggers/root sets the node's level (Kafka
// Connect's names), GET shows it with when it was set.
func TestLogLevel(t *testing.T) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, Tune: func(c *app.Config) { c.LogLevel = &level }})
	var one map[string]any
	do(t, n, "GET", "/admin/loggers/root", nil).decode(t, &one)
	if one["level"] != "INFO" || one["last_modified"] != nil {
		t.Fatalf("root %v", one)
	}
	r := do(t, n, "PUT", "/admin/loggers/root", `{"level":"debug"}`)
	if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `["root"]` {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	if level.Level() != zapcore.DebugLevel {
		t.Fatalf("level %s", level.Level())
	}
	do(t, n, "GET", "/admin/loggers/root", nil).decode(t, &one)
	if one["level"] != "DEBUG" || one["last_modified"] == nil {
		t.Fatalf("root after PUT %v", one)
	}
	wantEmpty(t, "PUT with scope=cluster", do(t, n, "PUT", "/admin/loggers/root?scope=cluster", `{"level":"WARN"}`), http.StatusNoContent)
	if level.Level() != zapcore.WarnLevel {
		t.Fatalf("level %s", level.Level())
	}
}

// TestRateLimit: the Kafka Connect API's PUT, PATCH and DELETE count as
// mutating calls for the per-client rate limit, answered in its body.
func TestRateLimit(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit, c.RateBurst = 0.01, 1 }})
	wantError(t, "first stop", do(t, n, "PUT", "/connectors/kc_rl-incr_trans-1-0/stop", nil), http.StatusNotFound, "not found")
	r := do(t, n, "DELETE", "/connectors/kc_rl-incr_trans-1-0", nil)
	wantError(t, "second call", r, http.StatusTooManyRequests, "")
	if r.Header.Get("Retry-After") == "" {
		t.Fatalf("no Retry-After: %v", r.Header)
	}
	mustStatus(t, "a read", do(t, n, "GET", "/connectors", nil), http.StatusOK)
}
