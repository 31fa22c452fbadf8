package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connector-manager/cm/internal/cmtest"
)

func TestConfigLayering(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:9001\ndb: sqlite:/tmp/from-file.db\nlog-level: warn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CM_DB": "sqlite:/tmp/from-env.db", "CM_LOG_LEVEL": "debug"}
	var c serveConfig
	cmd := serveCommand(&c)
	if err := cmd.Flags().Parse([]string{"--config", file, "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	if err := resolve(cmd, &c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	// flag > env > file > default
	if c.LogLevel != "error" || c.DB != "sqlite:/tmp/from-env.db" || c.Listen != "127.0.0.1:9001" || c.LogFormat != "json" {
		t.Fatalf("resolved %+v", c)
	}
	dsn, node, err := c.validate()
	if err != nil || node != "127.0.0.1-9001" || dsn.Path != "/tmp/from-env.db" {
		t.Fatalf("validate: %v %v %v", dsn, node, err)
	}
}

func TestConfigRefusesInvalid(t *testing.T) {
	c := serveConfig{Listen: "nowhere", DB: "postgres://x", Advertise: "", LogLevel: "loud", LogFormat: "xml"}
	_, _, err := c.validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"--db", "--listen", "--log-level", "--log-format"} {
		if !strings.Contains(err.Error(), want) && !strings.Contains(err.Error(), strings.TrimPrefix(want, "--")) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	c = serveConfig{Listen: "127.0.0.1:1", DB: "sqlite:x.db", Advertise: "10.0.0.1", LogLevel: "info", LogFormat: "json"}
	if _, _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "--advertise") {
		t.Fatalf("advertise without port: %v", err)
	}
}

func TestUnknownYAMLKeyRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("listne: 127.0.0.1:9001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	cmd := serveCommand(&c)
	if err := cmd.Flags().Parse([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := resolve(cmd, &c, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "listne") {
		t.Fatalf("typo in config file: %v", err)
	}
}

func TestGCPercentMatchesTestNodes(t *testing.T) {
	if defaultGCPercent != cmtest.GCPercent {
		t.Fatalf("cm serve runs with --gc-percent %d but test nodes with %d", defaultGCPercent, cmtest.GCPercent)
	}
	c := serveConfig{Listen: "127.0.0.1:1", DB: "sqlite:x.db", LogLevel: "info", LogFormat: "json", GCPercent: 5}
	if _, _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "--gc-percent") {
		t.Fatalf("gc-percent 5 accepted: %v", err)
	}
}
