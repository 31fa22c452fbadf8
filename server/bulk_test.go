package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/taskmgr"
)

type bulkResult struct {
	Items  []taskmgr.BulkResult `json:"items"`
	Total  int                  `json:"total"`
	Failed int                  `json:"failed"`
}

// TestBulkStopResume: batchStop and batchResume act on the tasks their
// filter selects (project, names, state), each through stop or resume,
// audited per task with bulk= in its parameters, and answer one result
// per task; nothing is done without confirm=true or without a filter.
func TestBulkStopResume(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
		var sinks []string
		for i, comp := range []string{"pa-incr_trans-1-0", "pa-incr_trans-2-0", "pa-incr_trans-3-0", "pb-incr_trans-1-0"} {
			body, _, sink := fileTask(t, comp, 3+i)
			n.OK(t, "POST", base+"create", body)
			sinks = append(sinks, sink)
		}
		for i, s := range sinks {
			cmtest.Eventually(t, 10*time.Second, "sink "+s, func() bool { return lines(t, s) >= 3+i })
		}

		for _, c := range []struct{ query, want string }{
			{"project=pa", "confirm=true"},
			{"project=pa&confirm=false", "confirm=true"},
			{"confirm=true", "at least one of"},
			{"project=pa&confirm=maybe", "confirm"},
			{"state=running&confirm=true", "unknown state"},
			{"taskNames=nope&confirm=true", ""},
		} {
			env := n.Do(t, "POST", base+"batchStop?"+c.query, nil)
			if env.Status != http.StatusBadRequest || env.IsSuccess || !strings.Contains(env.Raw, c.want) {
				t.Errorf("batchStop?%s = %d %s", c.query, env.Status, env.Raw)
			}
		}
		for _, comp := range []string{"pa-incr_trans-1-0", "pb-incr_trans-1-0"} {
			if d := n.Detail(t, comp); d.State != model.StateRunning {
				t.Fatalf("a refused bulk call changed %s: %s", comp, d.State)
			}
		}

		var res bulkResult
		if err := json.Unmarshal(n.OK(t, "POST", base+"batchStop?project=pa&confirm=true", nil).Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.Total != 3 || res.Failed != 0 || len(res.Items) != 3 {
			t.Fatalf("batchStop %+v", res)
		}
		for i, it := range res.Items {
			want := fmt.Sprintf("%s:connector_v2:pa-incr_trans-%d-0:0000000001", n.ID, i+1)
			if it.Task != want || !it.Success || it.ErrCode != "" {
				t.Errorf("item %d %+v, want %s", i, it, want)
			}
			if d := n.Detail(t, fmt.Sprintf("pa-incr_trans-%d-0", i+1)); d.State != model.StateStopped {
				t.Errorf("pa-incr_trans-%d-0 is %s", i+1, d.State)
			}
		}
		if d := n.Detail(t, "pb-incr_trans-1-0"); d.State != model.StateRunning {
			t.Fatalf("outside the filter: %s", d.State)
		}
		// Per task: a stopped task stops again (a success); names and
		// state together.
		if err := json.Unmarshal(n.OK(t, "POST", base+"batchStop?taskNames=pa-incr_trans-1-0,pb-incr_trans-1-0&confirm=true", nil).Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.Total != 2 || res.Failed != 0 {
			t.Fatalf("batchStop by names %+v", res)
		}
		if err := json.Unmarshal(n.OK(t, "POST", base+"batchResume?state=STOPPED&confirm=true", nil).Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.Total != 4 || res.Failed != 0 {
			t.Fatalf("batchResume %+v", res)
		}
		for _, comp := range []string{"pa-incr_trans-1-0", "pa-incr_trans-2-0", "pa-incr_trans-3-0", "pb-incr_trans-1-0"} {
			if d := n.Detail(t, comp); d.State != model.StateRunning {
				t.Errorf("%s after batchResume: %s", comp, d.State)
			}
		}

		var ops []server.Operation
		if err := json.Unmarshal(n.OK(t, "GET", base+"operations?taskName=pa-incr_trans-2-0", nil).Result, &ops); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, o := range ops {
			var p map[string]string
			_ = json.Unmarshal(o.Params, &p)
			if p["bulk"] != "" && p["taskName"] != "" && o.Result == model.ResultSuccess {
				seen[o.Operation+"/"+p["bulk"]] = true
			}
		}
		if !seen["stop/stop"] || !seen["resume/resume"] {
			t.Fatalf("audit of pa-incr_trans-2-0: %+v", ops)
		}
	})
}

// TestBulkCap: a filter that selects more than taskmgr.MaxBulk tasks is
// refused whole (nothing stopped, nothing audited); narrowed to the cap it
// acts on all of them; and two identical bulk calls at once both answer a
// success for every task, each stopped once.
func TestBulkCap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{NoJobs: true, HTTP: func(c *server.Config) { c.RateLimit = 0 }})
		var names []string
		for i := range taskmgr.MaxBulk + 1 {
			comp := fmt.Sprintf("cap-incr_trans-%d-0", i+1)
			body, _, _ := fileTask(t, comp, 1)
			n.OK(t, "POST", base+"create", body)
			names = append(names, comp)
		}
		cmtest.Eventually(t, 60*time.Second, "every task RUNNING", func() bool {
			var res struct {
				Total int `json:"total"`
			}
			env := n.OK(t, "GET", base+"batchDetail?project=cap&state=RUNNING&size=1", nil)
			if err := json.Unmarshal(env.Result, &res); err != nil {
				t.Fatal(err)
			}
			return res.Total == taskmgr.MaxBulk+1
		})

		env := n.Do(t, "POST", base+"batchStop?project=cap&confirm=true", nil)
		if env.Status != http.StatusBadRequest || env.IsSuccess || !strings.Contains(env.Raw, fmt.Sprint(taskmgr.MaxBulk+1)) {
			t.Fatalf("batchStop over the cap = %d %s", env.Status, env.Raw)
		}
		for _, comp := range []string{names[0], names[len(names)-1]} {
			if d := n.Detail(t, comp); d.State != model.StateRunning {
				t.Fatalf("a refused bulk call changed %s: %s", comp, d.State)
			}
			var ops []server.Operation
			if err := json.Unmarshal(n.OK(t, "GET", base+"operations?taskName="+comp, nil).Result, &ops); err != nil {
				t.Fatal(err)
			}
			for _, o := range ops {
				if o.Operation == "stop" {
					t.Fatalf("a refused bulk call audited a stop of %s: %+v", comp, o)
				}
			}
		}

		// Two identical calls on the cap's worth of tasks at once.
		twice := func(call string) {
			t.Helper()
			query := base + call + "?confirm=true&taskNames=" + strings.Join(names[:taskmgr.MaxBulk], ",")
			results := make(chan bulkResult, 2)
			for range 2 {
				go func() {
					var res bulkResult
					env := n.Do(t, "POST", query, nil)
					if env.Status == http.StatusOK {
						_ = json.Unmarshal(env.Result, &res)
					}
					results <- res
				}()
			}
			for range 2 {
				res := <-results
				if res.Total != taskmgr.MaxBulk || res.Failed != 0 || len(res.Items) != taskmgr.MaxBulk {
					var failed []taskmgr.BulkResult
					for _, it := range res.Items {
						if !it.Success {
							failed = append(failed, it)
						}
					}
					t.Fatalf("%s of %d tasks: total %d, failed %d, %d items; failed: %+v", call, taskmgr.MaxBulk, res.Total, res.Failed, len(res.Items), failed[:min(3, len(failed))])
				}
			}
		}
		twice("batchStop")
		for _, comp := range []string{names[0], names[taskmgr.MaxBulk-1]} {
			if d := n.Detail(t, comp); d.State != model.StateStopped {
				t.Fatalf("%s after the bulk stops: %s", comp, d.State)
			}
		}
		if d := n.Detail(t, names[taskmgr.MaxBulk]); d.State != model.StateRunning {
			t.Fatalf("the task outside the names: %s", d.State)
		}
		twice("batchResume")
		for _, comp := range []string{names[0], names[taskmgr.MaxBulk-1]} {
			if d := n.Detail(t, comp); d.State != model.StateRunning {
				t.Fatalf("%s after the bulk resumes: %s", comp, d.State)
			}
		}
	})
}
