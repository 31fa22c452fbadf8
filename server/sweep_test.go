package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// hostileValues are parameter values no route may choke on.
var hostileValues = []string{
	"\x00", "a\x00b", "é", "\u202egnp.exe", "\ufeff", "💥", "\xff\xfe", "../../etc/passwd", "%2e%2e%2f", "..%2f..%2f",
	"'; DROP TABLE tasks; --", "${env:CM_DB}", "<script>", strings.Repeat("a", 4000), " ", "-1", "1e309",
	"99999999999999999999999", "NaN", "0x10",
}

// outOfRange are numbers past every bound, sent with a real task's name:
// each is refused before anything is done.
var outOfRange = url.Values{
	"timeout": {"-1"}, "page": {"0"}, "size": {"99999999999"}, "limit": {"-5"}, "since": {"99999999999999999"},
	"timestamp": {"99999999999999999999"}, "maxDelay": {"-1"}, "pullBackFlag": {"maybe"}, "restartFlag": {"2"},
	"force": {"yes please"}, "skipDdl": {"\x00"},
}

// hostileBodies are bodies no route may choke on.
var hostileBodies = []string{
	strings.Repeat("[", 200000),
	strings.Repeat(`{"a":`, 100000),
	`{"component":"x","config":{"source":{"type":`,
	`{"a":1}{"b"`,
	"\xff\xfe\x00\x00",
	`{"component":"sw-incr_trans-1-0","config":{"source":{"type":"file","path":"\u0000/../../etc/passwd"}},"node":"\u0000"}`,
	`{"sink":{"x":1e999999}}`,
	`{"sink":{"` + strings.Repeat("k", 70000) + `":"v"}}`,
	`null`, ` null `, `[]`, `"just a string"`, `{"sink":[]}`,
}

// rawRequest sends text on a fresh connection (closing its write side when
// closeWrite) and reads one answer; status 0 means the server closed the
// connection without one.
func rawRequest(t *testing.T, n *cmtest.Node, text string, closeWrite bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // safety bound; the server answers first
	if _, err := io.WriteString(c, text); err != nil {
		return 0, ""
	}
	if closeWrite {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type taskRow struct {
	State, Desired, Config, Journal string
	Node                            model.NodeID
	Revision, Version               int64
}

func taskRows(t *testing.T, s *model.Store) map[string]taskRow {
	t.Helper()
	rows, _, err := s.ListTasks(context.Background(), model.TaskFilter{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]taskRow{}
	for _, r := range rows {
		out[r.Component] = taskRow{State: string(r.State), Desired: string(r.Desired), Config: r.Config, Journal: r.Journal,
			Node: r.Node, Revision: r.Revision, Version: r.Version}
	}
	return out
}

// TestSweep sends malformed requests to every route the server registered
// (a new route is swept without anyone listing it): wrong methods, bodies
// over the limit, deep, garbled and truncated bodies, garbled chunked
// encoding, unicode and NUL in parameters, path tricks and out-of-range
// numbers. None is answered 500, no handler panics, and nothing is written:
// the task rows are as they were and every new audit row is a refusal.
func TestSweep(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) {
		c.RateLimit, c.BodyTimeout = 0, 500*time.Millisecond
	}})
	running := "swr-incr_trans-1-0"
	body, _, _ := fileTask(t, running, 3)
	n.OK(t, "POST", base+"create", body)
	stopped := "sws-incr_trans-1-0"
	body, _, _ = fileTask(t, stopped, 3)
	name := n.OK(t, "POST", base+"create", body).String()
	n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
	cmtest.Eventually(t, 10*time.Second, "the running task settles", func() bool {
		d := n.Detail(t, running)
		return d.State == model.StateRunning && d.Heartbeat != nil
	})
	before := taskRows(t, n.Store)
	audits, err := n.Store.ListAudit(context.Background(), model.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	lastAudit := audits[0].ID

	routes := n.App.HTTP().Routes()
	if len(routes) < 15 {
		t.Fatalf("the router lists %d routes", len(routes))
	}
	sent, bad := 0, 0
	check := func(what string, status int, answer string) {
		t.Helper()
		sent++
		if status >= 500 && status != http.StatusServiceUnavailable || strings.Contains(answer, `"INTERNAL_ERROR"`) {
			bad++
			t.Errorf("%s = %d %.300s", what, status, answer)
		}
	}
	do := func(method, target, ct string, body io.Reader) {
		t.Helper()
		req, err := http.NewRequest(method, n.URL+target, body)
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may answer an oversized body (413) and close
			// while the client still writes it: no answer to check.
			sent++
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(method+" "+target, resp.StatusCode, string(b))
	}
	param := regexp.MustCompile(`:[^/]+`)
	for _, rt := range routes {
		path := param.ReplaceAllString(rt.Path, "x")
		// Wrong methods.
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			if m != rt.Method {
				do(m, path, "", nil)
			}
		}
		// Hostile parameter values, in the query and in a form body.
		for _, v := range hostileValues {
			qs := url.Values{}
			for _, p := range []string{"taskName", "taskNames", "key", "value", "node", "ip", "state", "project", "subtopic", "tz", "deleteParams"} {
				qs.Set(p, v)
			}
			do(rt.Method, path+"?"+qs.Encode(), "", nil)
			do(rt.Method, path, "application/x-www-form-urlencoded", strings.NewReader(qs.Encode()))
		}
		// Out-of-range numbers with a real task's name, and hostile bodies.
		for _, task := range []string{running, stopped} {
			qs := url.Values{"taskName": {task}, "key": {"no.such.param"}}
			for k, v := range outOfRange {
				qs[k] = v
			}
			for _, b := range hostileBodies {
				do(rt.Method, path+"?"+qs.Encode(), "application/json", strings.NewReader(b))
			}
		}
		// A body over the limit (1M), without and with a declared length.
		huge := strings.Repeat(" ", 2<<20)
		do(rt.Method, path, "application/json", strings.NewReader(huge))
		do(rt.Method, path, "application/json", io.MultiReader(strings.NewReader(huge))) // chunked
		// Raw requests: path tricks, garbled chunked encoding, truncated bodies.
		for _, p := range []string{"/connector/task/v2/../v2" + strings.TrimPrefix(path, "/connector/task/v2"), "/%2e%2e" + path, "/" + path, path + "/",
			path + "%00", strings.ReplaceAll(path, "/", "//"), path + "/..", path + "?taskName=%zz", path + "?%00=%00"} {
			st, ans := rawRequest(t, n, rt.Method+" "+p+" HTTP/1.1\r\nHost: cm\r\nConnection: close\r\n\r\n", false)
			check("raw "+rt.Method+" "+p, st, ans)
		}
		target := path + "?taskName=" + running + "&timeout=-1"
		for _, text := range []string{
			"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n",
			"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
			"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n",
			"Content-Length: 100\r\nContent-Type: application/json\r\n\r\n{\"sink\":",
			"Content-Length: -5\r\n\r\n",
			"Content-Length: 99999999999999999999\r\n\r\n",
			"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
			"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		} {
			st, ans := rawRequest(t, n, rt.Method+" "+target+" HTTP/1.1\r\nHost: cm\r\n"+text, true)
			check(fmt.Sprintf("raw %s %s with %q", rt.Method, target, text[:min(len(text), 40)]), st, ans)
		}
		// A truncated body on a connection kept open: REQUEST_TIMEOUT.
		st, ans := rawRequest(t, n, rt.Method+" "+target+" HTTP/1.1\r\nHost: cm\r\nContent-Length: 100\r\n\r\n{", false)
		check("raw truncated body kept open "+rt.Method+" "+path, st, ans)
	}
	if bad > 0 {
		t.Fatalf("%d of %d malformed requests answered 500", bad, sent)
	}

	for _, e := range n.Logs.All() {
		if strings.Contains(e.Message, "panic") || e.Level >= zapcore.ErrorLevel {
			t.Errorf("log: %s %s %v", e.Level, e.Message, e.ContextMap())
		}
	}
	if after := taskRows(t, n.Store); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("task rows changed:\nbefore %+v\nafter  %+v", before, after)
	}
	audits, err = n.Store.ListAudit(context.Background(), model.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, a := range audits {
		if a.ID <= lastAudit {
			continue
		}
		refusals++
		if a.Result != model.ResultFailure {
			t.Errorf("the sweep wrote an audit row that is not a refusal: %+v", a)
		}
	}
	t.Logf("%d malformed requests over %d routes; %d refusal rows written", sent, len(routes), refusals)
}
