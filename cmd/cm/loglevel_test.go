package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
)

// TestLogLevelAtRuntime: cm serve's log level is the one the Kafka Connect
// path /admin/loggers/root reads and sets: started at info, a successful
// request is not logged (the access log logs those at debug); after
// PUT {"level":"DEBUG"} it is.
func TestLogLevelAtRuntime(t *testing.T) {
	dir := t.TempDir()
	p := startCM(t, freePort(t), dbtest.SQLiteURL(t), filepath.Join(dir, "data"), "--log-level", "info")
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := do("GET", "/admin/loggers/root", ""); st != http.StatusOK || !strings.Contains(body, `"level":"INFO"`) {
		t.Fatalf("GET root = %d %s", st, body)
	}
	do("GET", "/connector-plugins?before=1", "")
	if st, body := do("PUT", "/admin/loggers/root", `{"level":"DEBUG"}`); st != http.StatusOK || body != `["root"]`+"\n" && body != `["root"]` {
		t.Fatalf("PUT root = %d %q", st, body)
	}
	if st, body := do("GET", "/admin/loggers/root", ""); st != http.StatusOK || !strings.Contains(body, `"level":"DEBUG"`) {
		t.Fatalf("GET root after PUT = %d %s", st, body)
	}
	do("GET", "/connector-plugins?after=1", "")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), `"path":"/connector-plugins"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no debug request line after the level was lowered: %s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Exactly one such line: the request after the PUT, not the one before.
	if n := strings.Count(p.logs.String(), `"path":"/connector-plugins"`); n != 1 {
		t.Fatalf("%d request lines for /connector-plugins: %s", n, p.logs.String())
	}
}
