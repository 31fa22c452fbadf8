package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestRoutingMessages: a request no route matches is logged with the path
// it asked for and answered naming method and path; a wrong method is
// answered naming the methods the route takes, as the Allow header does.
func TestRoutingMessages(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	const missing = "/connector/task/v2/no-such-route"
	env := n.Do(t, "GET", missing+"?x=1", nil)
	if env.Status != http.StatusNotFound || env.Code() != "NOT_FOUND" || env.ErrMsg == nil ||
		!strings.Contains(*env.ErrMsg, "GET "+missing) {
		t.Errorf("GET %s = %d %s, want 404 NOT_FOUND naming GET and the path", missing, env.Status, env.Raw)
	}
	logged := false
	for _, e := range n.Logs.FilterMessage("request").All() {
		f := e.ContextMap()
		if f["status"] == int64(http.StatusNotFound) {
			if f["path"] != missing {
				t.Errorf("404 logged with path %q, want %q (fields %v)", f["path"], missing, f)
			}
			logged = true
		}
	}
	if !logged {
		t.Errorf("no access log line for the 404")
	}

	for _, c := range []struct{ method, path, allowed string }{
		{"GET", "/connector/task/v2/stop", "POST"},
		{"POST", "/connector/task/v2/detail", "GET"},
		{"DELETE", "/healthz", "GET"},
	} {
		env := n.Do(t, c.method, c.path, nil)
		if env.Status != http.StatusMethodNotAllowed || env.Code() != "METHOD_NOT_ALLOWED" || env.ErrMsg == nil {
			t.Errorf("%s %s = %d %s, want 405 METHOD_NOT_ALLOWED", c.method, c.path, env.Status, env.Raw)
			continue
		}
		msg := *env.ErrMsg
		if !strings.Contains(msg, "use "+c.allowed) || !strings.Contains(msg, c.method+" is not allowed on "+c.path) || strings.Contains(msg, "OPTIONS") {
			t.Errorf("%s %s: errMsg %q, want it to say use %s", c.method, c.path, msg, c.allowed)
		}
		if !strings.Contains(env.Header.Get("Allow"), c.allowed) {
			t.Errorf("%s %s: Allow %q", c.method, c.path, env.Header.Get("Allow"))
		}
	}
}

// TestStateFilterNamesTheStates: batchDetail's state filter refuses a value
// that is no state with the list of states, and says when it only needs
// upper case.
func TestStateFilterNamesTheStates(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	for _, c := range []struct{ value, hint string }{
		{"running", "state=RUNNING"},
		{"weird", ""},
	} {
		env := n.Do(t, "GET", "/connector/task/v2/batchDetail?state="+c.value, nil)
		if env.Status != http.StatusBadRequest || env.Code() != "INVALID_ARGUMENT" || env.ErrMsg == nil {
			t.Errorf("state=%s = %d %s, want 400 INVALID_ARGUMENT", c.value, env.Status, env.Raw)
			continue
		}
		msg := *env.ErrMsg
		for _, s := range model.States {
			if !strings.Contains(msg, string(s)) {
				t.Errorf("state=%s: errMsg %q does not name %s", c.value, msg, s)
			}
		}
		if c.hint != "" && !strings.Contains(msg, c.hint) {
			t.Errorf("state=%s: errMsg %q does not suggest %s", c.value, msg, c.hint)
		}
	}
	if env := n.Do(t, "GET", "/connector/task/v2/batchDetail?state=RUNNING", nil); env.Status != http.StatusOK {
		t.Errorf("state=RUNNING = %d %s", env.Status, env.Raw)
	}
}
