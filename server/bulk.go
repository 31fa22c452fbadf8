package server

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/taskmgr"
)

// bulkAnswer is the result of batchStop and batchResume: one entry per
// task the filter selected, and how many of them failed.
type bulkAnswer struct {
	Items  []taskmgr.BulkResult `json:"items"`
	Total  int                  `json:"total"`
	Failed int                  `json:"failed"`
}

// bulkFilter reads the filter of a bulk call: project, node, state,
// taskNames (comma separated) and confirm.
func bulkFilter(c echo.Context) (taskmgr.BulkFilter, error) {
	f := taskmgr.BulkFilter{Project: param(c, "project"), Node: param(c, "node"), State: param(c, "state")}
	if v := param(c, "taskNames"); v != "" {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				f.Names = append(f.Names, n)
			}
		}
	}
	var err error
	f.Confirm, err = boolParam(c, "confirm")
	return f, err
}

// bulk answers a bulk call: the envelope's result lists every selected
// task's own result; the call succeeds when it could act on the filter,
// whatever became of each task.
func (h *handlers) bulk(c echo.Context, run func(taskmgr.Call, taskmgr.BulkFilter) ([]taskmgr.BulkResult, error)) error {
	f, err := bulkFilter(c)
	if err != nil {
		return err
	}
	res, err := run(call(c, "project", "node", "state", "taskNames", "confirm", "timeout"), f)
	if err != nil {
		return err
	}
	out := bulkAnswer{Items: res, Total: len(res)}
	if out.Items == nil {
		out.Items = []taskmgr.BulkResult{}
	}
	for _, r := range res {
		if !r.Success {
			out.Failed++
		}
	}
	return ok(c, out)
}

func (h *handlers) batchStop(c echo.Context) error {
	timeout, err := timeoutParam(c)
	if err != nil {
		return err
	}
	return h.bulk(c, func(cl taskmgr.Call, f taskmgr.BulkFilter) ([]taskmgr.BulkResult, error) {
		return h.svc.BulkStop(c.Request().Context(), cl, f, timeout)
	})
}

func (h *handlers) batchResume(c echo.Context) error {
	timeout, err := timeoutParam(c)
	if err != nil {
		return err
	}
	return h.bulk(c, func(cl taskmgr.Call, f taskmgr.BulkFilter) ([]taskmgr.BulkResult, error) {
		return h.svc.BulkResume(c.Request().Context(), cl, f, timeout)
	})
}
