package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/taskmgr/params"
)

// scrape reads the node's /metrics and parses the text format.
func scrape(t *testing.T, n *cmtest.Node) map[string]*dto.MetricFamily {
	t.Helper()
	env := n.Do(t, "GET", "/metrics", nil)
	if env.Status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", env.Status, env.Raw)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(env.Raw))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, env.Raw)
	}
	return mfs
}

// series finds the series of family name whose labels include want; ok
// false when there is none.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	mf := mfs[name]
	if mf == nil {
		return nil, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is a counter's or gauge's value, a histogram's count; -1 when the
// series is missing.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	m, ok := series(mfs, name, want)
	switch {
	case !ok:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

// TestMetricsAfterARun runs a file task on a real node (create, copy,
// stop, resume, delete) and checks /metrics by name and value: the task's
// records applied equal the lines written, its transitions and restart are
// counted, the create call is counted under its route, the committer, the
// jobs and the store are timed, and the deleted task's series are gone.
func TestMetricsAfterARun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		n.OK(t, "POST", base+"params/update?key="+q(params.JobSchedule(params.JobAutoRestart))+"&value="+q("@every 1s"), nil)
		const comp = "p_metrics-incr_trans-1-0"
		body, _, sink := fileTask(t, comp, 25)
		name := n.OK(t, "POST", base+"create", body).String()
		cmtest.Eventually(t, 10*time.Second, "sink has 25 lines", func() bool { return lines(t, sink) >= 25 })
		n.OK(t, "POST", base+"stop?taskName="+q(name), nil)
		n.OK(t, "POST", base+"resume?taskName="+q(name), nil)

		task := map[string]string{"task": name, "component": comp, "node": string(n.ID)}
		var mfs map[string]*dto.MetricFamily
		cmtest.Eventually(t, 15*time.Second, "checkpoint written, a job run and a flush recorded", func() bool {
			mfs = scrape(t, n)
			return value(mfs, "cm_task_checkpoint_age_seconds", task) >= 0 &&
				value(mfs, "cm_job_runs_total", map[string]string{"job": params.JobAutoRestart}) >= 1 &&
				value(mfs, "cm_committer_flush_batch_size", nil) >= 1
		})
		checks := []struct {
			what   string
			got    float64
			ok     func(float64) bool
			expect string
		}{
			{"records applied", value(mfs, "cm_task_records_applied_total", task), func(v float64) bool { return v == 25 }, "25 (the lines written)"},
			{"restarts", value(mfs, "cm_task_restarts_total", task), func(v float64) bool { return v == 1 }, "1 (the resume)"},
			{"pullbacks", value(mfs, "cm_task_pullbacks_total", task), func(v float64) bool { return v == 0 }, "0"},
			{"STARTING->RUNNING", value(mfs, "cm_task_transitions_total", map[string]string{"from": "STARTING", "to": "RUNNING"}), func(v float64) bool { return v >= 2 }, ">= 2 (create, resume)"},
			{"RUNNING->STOPPING", value(mfs, "cm_task_transitions_total", map[string]string{"from": "RUNNING", "to": "STOPPING"}), func(v float64) bool { return v == 1 }, "1 (the stop)"},
			{"running tasks", value(mfs, "cm_tasks", map[string]string{"state": "RUNNING", "node": string(n.ID)}), func(v float64) bool { return v == 1 }, "1"},
			{"stopped tasks", value(mfs, "cm_tasks", map[string]string{"state": "STOPPED", "node": string(n.ID)}), func(v float64) bool { return v == 0 }, "0"},
			{"lag", value(mfs, "cm_task_replication_lag_seconds", task), func(v float64) bool { return v >= 0 }, "present"},
			{"create calls", value(mfs, "cm_http_requests_total", map[string]string{"route": "/connector/task/v2/create", "method": "POST", "status": "200"}), func(v float64) bool { return v == 1 }, "1"},
			{"create latency", value(mfs, "cm_http_request_duration_seconds", map[string]string{"route": "/connector/task/v2/create", "method": "POST"}), func(v float64) bool { return v == 1 }, "1 observation"},
			{"flush latency", value(mfs, "cm_committer_flush_duration_seconds", nil), func(v float64) bool { return v >= 1 }, ">= 1 observation"},
			{"job failures", value(mfs, "cm_job_failures_total", map[string]string{"job": params.JobAutoRestart}), func(v float64) bool { return v == 0 }, "0"},
			{"job duration", value(mfs, "cm_job_duration_seconds", map[string]string{"job": params.JobAutoRestart}), func(v float64) bool { return v >= 1 }, ">= 1 observation"},
			{"task queries", value(mfs, "cm_store_query_duration_seconds", map[string]string{"op": "query", "table": "tasks"}), func(v float64) bool { return v >= 1 }, ">= 1 observation"},
			{"node up", value(mfs, "cm_node_up", map[string]string{"node": string(n.ID)}), func(v float64) bool { return v == 1 }, "1"},
			{"lease holder", value(mfs, "cm_lease_holder", map[string]string{"node": string(n.ID)}), func(v float64) bool { return v == 1 }, "1 (the only node leads)"},
			{"scrape error", value(mfs, "cm_task_metrics_error", nil), func(v float64) bool { return v == 0 }, "0"},
		}
		for _, c := range checks {
			if !c.ok(c.got) {
				t.Errorf("%s = %g, want %s", c.what, c.got, c.expect)
			}
		}
		// Unknown paths are counted under one label, not by path.
		n.Do(t, "GET", "/no/such/path/a1", nil)
		n.Do(t, "GET", "/no/such/path/b2", nil)
		mfs = scrape(t, n)
		if got := value(mfs, "cm_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}); got != 2 {
			t.Errorf("unmatched 404s = %g, want 2", got)
		}
		for _, m := range mfs["cm_http_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && strings.Contains(l.GetValue(), "/no/such") {
					t.Errorf("a raw path became a route label: %s", l.GetValue())
				}
			}
		}

		n.OK(t, "POST", base+"delete?taskName="+q(name), nil)
		mfs = scrape(t, n)
		for fam, mf := range mfs {
			if _, ok := series(mfs, fam, map[string]string{"component": comp}); ok {
				t.Errorf("%s still has a series of the deleted task: %v", fam, mf.GetMetric())
			}
		}
		if got := value(mfs, "cm_tasks", map[string]string{"state": "RUNNING", "node": string(n.ID)}); got != 0 {
			t.Errorf("running tasks after delete = %g, want 0", got)
		}
	})
}

// TestReadyz: 200 on a healthy node, 503 NOT_READY once its store is
// closed; open without a token when authentication is on.
func TestReadyz(t *testing.T) {
	path, _ := oneOfEach(t)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: path})
	if env := n.Do(t, "GET", "/readyz", nil); env.Status != http.StatusOK || !env.IsSuccess || env.String() != "ready" {
		t.Fatalf("readyz on a healthy node = %d %s", env.Status, env.Raw)
	}
	if err := n.Store.Close(); err != nil {
		t.Fatal(err)
	}
	env := n.Do(t, "GET", "/readyz", nil)
	if env.Status != http.StatusServiceUnavailable || env.Code() != "NOT_READY" || env.Retryable == nil || !*env.Retryable {
		t.Fatalf("readyz with the store closed = %d %s, want 503 NOT_READY retryable", env.Status, env.Raw)
	}
	if !strings.Contains(env.Raw, "store") {
		t.Errorf("readyz does not say the store is the problem: %s", env.Raw)
	}
}

// TestPprofNeedsAdmin: the profiles answer an admin token only.
func TestPprofNeedsAdmin(t *testing.T) {
	path, tokens := oneOfEach(t)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true, AuthFile: path})
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if env := n.Do(t, "GET", p, nil); env.Status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d, want 401", p, env.Status)
		}
		for _, r := range []string{"viewer", "operator", "node"} {
			if env := n.DoWith(t, bearer(tokens[r]), "GET", p, nil); env.Status != http.StatusForbidden || env.Code() != "FORBIDDEN" {
				t.Errorf("GET %s as %s = %d %s, want 403 FORBIDDEN", p, r, env.Status, env.Raw)
			}
		}
		env := n.DoWith(t, bearer(tokens["admin"]), "GET", p, nil)
		if env.Status != http.StatusOK || env.Raw == "" {
			t.Errorf("GET %s as admin = %d (%d bytes), want 200 with a profile", p, env.Status, len(env.Raw))
		}
	}
	// /metrics is a viewer read.
	if env := n.DoWith(t, bearer(tokens["viewer"]), "GET", "/metrics", nil); env.Status != http.StatusOK || !strings.Contains(env.Raw, "cm_node_up") {
		t.Errorf("GET /metrics as viewer = %d", env.Status)
	}
	if env := n.Do(t, "GET", "/metrics", nil); env.Status != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token = %d, want 401", env.Status)
	}
}
