package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/connector-manager/cm/server"
)

// TestRateLimitConfigLayering: the rate limit and the idempotency TTL come
// from the file, the environment or flags like every key, and default to
// the server's defaults.
func TestRateLimitConfigLayering(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("rate-limit: 5\nrate-burst: 9\nidempotency-ttl: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	cmd := serveCommand(&c)
	if err := cmd.Flags().Parse([]string{"--config", file, "--idempotency-ttl", "2h"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CM_RATE_BURST": "7"}
	if err := resolve(cmd, &c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.RateLimit != 5 || c.RateBurst != 7 || c.IdempotencyTTL != 2*time.Hour {
		t.Fatalf("resolved rate %g burst %d ttl %s", c.RateLimit, c.RateBurst, c.IdempotencyTTL)
	}
	var d serveConfig
	cmd = serveCommand(&d)
	if err := resolve(cmd, &d, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	def := server.DefaultConfig()
	if d.RateLimit != def.RateLimit || d.RateBurst != def.RateBurst || d.IdempotencyTTL != def.IdempotencyTTL {
		t.Fatalf("defaults rate %g burst %d ttl %s, server's %g %d %s", d.RateLimit, d.RateBurst, d.IdempotencyTTL, def.RateLimit, def.RateBurst, def.IdempotencyTTL)
	}
}
