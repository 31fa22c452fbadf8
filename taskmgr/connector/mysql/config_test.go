package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func TestParseSourceConfig(t *testing.T) {
	comp := model.Component{Project: "p", Type: model.TypeIncr, N: 1}
	cfg := func(src, coord map[string]string) connector.Config {
		return connector.Config{Task: model.TaskName{Component: comp}, Scopes: model.Config{"source": src, "coordinator": coord}}
	}
	base := func() map[string]string {
		return map[string]string{"host": "db1", "username": "u", "tables": "shop.orders, shop.*"}
	}

	c, err := parseSourceConfig(cfg(base(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3306 || c.Flavor != "mariadb" || c.Subtopic != "db1-3306" || c.BatchSize != 10000 ||
		c.Parallelism != 4 || c.MaxBatchRows != 5000 || c.ThrottleRPS != 0 || c.IOTimeout != time.Minute {
		t.Errorf("defaults: %+v", c)
	}
	if c.ServerID < 1000 || c.ServerID > 4_000_000_000 || c.ServerID != defaultServerID(comp) {
		t.Errorf("server id %d", c.ServerID)
	}
	if !c.Tables.Match("shop", "anything") || c.Tables.Match("other", "orders") {
		t.Errorf("selection %v", c.Tables)
	}

	bad := []struct {
		key, value, want string
	}{
		{"host", "", "source.host"},
		{"username", "", "source.username"},
		{"tables", "", "source.tables"},
		{"tables", "orders", "db.table"},
		{"tables", "a.b*", "db.table"},
		{"port", "70000", "source.port"},
		{"serverId", "1", "reserved"},
		{"serverId", "x", "source.serverId"},
		{"flavor", "oracle", "source.flavor"},
		{"ioTimeout", "soon", "source.ioTimeout"},
		{"ioTimeout", "-1s", "source.ioTimeout"},
	}
	for _, b := range bad {
		src := base()
		src[b.key] = b.value
		if _, err := parseSourceConfig(cfg(src, nil)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s=%q: %v; want an error naming %s", b.key, b.value, err, b.want)
		}
	}
	for k, v := range map[string]string{"batchSize": "0", "parallelism": "-1", "throttleRps": "fast"} {
		if _, err := parseSourceConfig(cfg(base(), map[string]string{k: v})); err == nil {
			t.Errorf("coordinator.%s=%q accepted", k, v)
		}
	}
}

func TestParseSinkConfig(t *testing.T) {
	cfg := func(kv map[string]string) connector.Config { return connector.Config{Scopes: model.Config{"sink": kv}} }
	c, err := parseSinkConfig(cfg(map[string]string{"host": "h", "username": "u", "databaseMap": "a:b, c:d"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TargetDB("a") != "b" || c.TargetDB("c") != "d" || c.TargetDB("x") != "x" || c.Port != 3306 || c.IOTimeout != time.Minute {
		t.Errorf("%+v", c)
	}
	for v, want := range map[string]time.Duration{"0": 0, "2s": 2 * time.Second, "1m30s": 90 * time.Second} {
		if c, err := parseSinkConfig(cfg(map[string]string{"host": "h", "username": "u", "ioTimeout": v})); err != nil || c.IOTimeout != want {
			t.Errorf("sink.ioTimeout=%s: %v %v", v, c.IOTimeout, err)
		}
	}
	for _, m := range []string{"a", "a:", ":b", "a:b,a:c"} {
		if _, err := parseSinkConfig(cfg(map[string]string{"host": "h", "username": "u", "databaseMap": m})); err == nil {
			t.Errorf("databaseMap %q accepted", m)
		}
	}
}

func TestToken(t *testing.T) {
	p, err := parseToken("binlog.000012:1234")
	if err != nil || p.Name != "binlog.000012" || p.Pos != 1234 || formatToken(p) != "binlog.000012:1234" {
		t.Errorf("parseToken = %v, %v", p, err)
	}
	for _, s := range []string{"", "binlog", ":5", "f:x", "f:3", "f:-1"} {
		if _, err := parseToken(s); err == nil {
			t.Errorf("parseToken(%q) accepted", s)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("binlog.000001:4")
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := parseToken(s); err == nil {
			if q, err := parseToken(formatToken(p)); err != nil || q != p {
				t.Errorf("%q -> %v does not round-trip", s, p)
			}
		}
	})
}
