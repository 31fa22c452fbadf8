package server_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestPullbackTimeForms: a pullback given as RFC 3339 with an offset, and
// as a date-time with tz=+08:00, lands on the same unix second as the
// unix-seconds form: the audit rows name the same target.
func TestPullbackTimeForms(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	const comp = "p_tf-incr_trans-1-0"
	name, _, sink := streamed(t, n, comp)
	// ts 150 is 1970-01-01 08:02:30 at +08:00.
	forms := []string{
		"timestamp=" + url.QueryEscape("1970-01-01T08:02:30+08:00"),
		"timestamp=" + url.QueryEscape("1970-01-01 08:02:30") + "&tz=" + url.QueryEscape("+08:00"),
		"timestamp=" + url.QueryEscape("1970-01-01 08:02:30") + "&tz=Asia/Shanghai",
		"timestamp=150",
	}
	for i, form := range forms {
		name = n.OK(t, "POST", base+"pullback?taskName="+q(name)+"&"+form, nil).String()
		cmtest.Eventually(t, 10*time.Second, "replayed from 150 and caught up", func() bool {
			return len(sinkTS(t, sink)) == 100+50*(i+1) && n.Detail(t, name).Checkpoint["src.jsonl"].TS == 199
		})
	}
	rows, err := n.Store.ListAudit(t.Context(), model.AuditFilter{Component: comp, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, a := range rows {
		if a.Operation == "pullback" {
			if a.Result != model.ResultSuccess || !strings.Contains(a.Detail, `"target":{"src.jsonl":150}`) {
				t.Fatalf("pullback audit row %+v", a)
			}
			targets = append(targets, a.Params)
		}
	}
	if len(targets) != len(forms) {
		t.Fatalf("%d pullback rows, want %d: %v", len(targets), len(forms), targets)
	}
	// The offset names the zone; another zone beside it is refused.
	env := n.Do(t, "POST", base+"pullback?taskName="+q(name)+"&timestamp="+url.QueryEscape("1970-01-01T08:02:30+08:00")+"&tz=UTC", nil)
	if env.Status != 400 || env.Code() != "INVALID_CHECKPOINT" || !strings.Contains(env.Raw, "+08:00") {
		t.Fatalf("offset and another zone: %d %s", env.Status, env.Raw)
	}
}

// TestResponseTimesCarryZone: every time in detail, operations, health,
// nodes and jobs is RFC 3339 with an offset.
func TestResponseTimesCarryZone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		name, _, _ := streamed(t, n, "p_tz-incr_trans-1-0")
		cmtest.Eventually(t, 10*time.Second, "a heartbeat and a job run", func() bool {
			return n.Detail(t, name).Heartbeat != nil && strings.Contains(n.OK(t, "GET", base+"jobs", nil).Raw, `"lastRun":"`)
		})
		for _, path := range []string{"detail?taskName=" + q(name), "batchDetail", "operations?taskName=" + q(name), "health", "nodes", "jobs"} {
			env := n.OK(t, "GET", base+path, nil)
			var v any
			if err := json.Unmarshal(env.Result, &v); err != nil {
				t.Fatal(err)
			}
			seen := 0
			walkTimes(t, path, "", v, &seen)
			if seen == 0 {
				t.Fatalf("%s: no time found in %s", path, env.Raw)
			}
		}
		// The checkpoint's time is its ts.
		p := n.Detail(t, name).Checkpoint["src.jsonl"]
		if at, err := time.Parse(time.RFC3339, p.Time); err != nil || at.Unix() != p.TS || !strings.HasSuffix(p.Time, "Z") {
			t.Fatalf("checkpoint time %q for ts %d: %v", p.Time, p.TS, err)
		}
	})
}

// walkTimes checks every string that looks like a date in v is RFC 3339
// with an offset, and counts them.
func walkTimes(t *testing.T, path, at string, v any, seen *int) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkTimes(t, path, at+"."+k, e, seen)
		}
	case []any:
		for i, e := range x {
			walkTimes(t, path, fmt.Sprintf("%s[%d]", at, i), e, seen)
		}
	case string:
		if !looksLikeDate(x) {
			return
		}
		if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
			t.Errorf("%s %s = %q is not RFC 3339 with an offset: %v", path, at, x, err)
		}
		*seen++
	}
}

// looksLikeDate: x starts with YYYY-MM-DD.
func looksLikeDate(x string) bool {
	if len(x) < 10 || x[4] != '-' || x[7] != '-' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if x[i] < '0' || x[i] > '9' {
			return false
		}
	}
	return true
}
