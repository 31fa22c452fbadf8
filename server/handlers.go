package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/view"
)

// TaskService is what the API needs from the operator use cases (taskmgr).
type TaskService interface {
	Create(ctx context.Context, call taskmgr.Call, req taskmgr.CreateRequest) (string, error)
	Resume(ctx context.Context, call taskmgr.Call, ref string, opt taskmgr.ResumeOptions) (string, error)
	Stop(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	Pause(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	Update(ctx context.Context, call taskmgr.Call, ref string, deletes []string, patch model.Config) (string, error)
	Migrate(ctx context.Context, call taskmgr.Call, ref string, target taskmgr.MigrateTarget, timeout time.Duration) (string, error)
	Delete(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	Pullback(ctx context.Context, call taskmgr.Call, req taskmgr.PullbackRequest) (string, error)
	BulkStop(ctx context.Context, call taskmgr.Call, f taskmgr.BulkFilter, timeout time.Duration) ([]taskmgr.BulkResult, error)
	BulkResume(ctx context.Context, call taskmgr.Call, f taskmgr.BulkFilter, timeout time.Duration) ([]taskmgr.BulkResult, error)
	ListParams(ctx context.Context) ([]params.View, error)
	UpdateParam(ctx context.Context, call taskmgr.Call, key, value string) error
}

// ReadService is what the read routes need (taskmgr/view).
type ReadService interface {
	Detail(ctx context.Context, ref string) (*view.TaskView, error)
	List(ctx context.Context, q view.ListQuery) ([]view.TaskView, int64, error)
	Operations(ctx context.Context, ref string, since time.Time, limit int) ([]model.Audit, error)
	DDLHistory(ctx context.Context, ref string) ([]model.AppliedDDL, error)
	Nodes(ctx context.Context) (*view.ClusterView, error)
	Health(ctx context.Context, q view.HealthQuery) (*view.HealthReport, error)
	JobRuns(ctx context.Context) (*view.JobsView, error)
}

type handlers struct {
	svc   TaskService
	reads ReadService
}

// param reads a parameter from the query string or a form body.
func param(c echo.Context, name string) string {
	if v := c.QueryParam(name); v != "" {
		return v
	}
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if strings.HasPrefix(ct, echo.MIMEApplicationForm) || strings.HasPrefix(ct, echo.MIMEMultipartForm) {
		return c.FormValue(name)
	}
	return ""
}

func taskName(c echo.Context) (string, error) {
	v := strings.TrimSpace(param(c, "taskName"))
	if v == "" {
		return "", fmt.Errorf("%w: taskName is required", model.ErrInvalidName)
	}
	return v, nil
}

func boolParam(c echo.Context, name string) (bool, error) {
	v := param(c, name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q is not true or false", model.ErrInvalidArgument, name, v)
	}
	return b, nil
}

func intParam(c echo.Context, name string, min, max int) (int, error) {
	v := param(c, name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%w: %s=%q must be an integer in [%d, %d]", model.ErrInvalidArgument, name, v, min, max)
	}
	return n, nil
}

// timeoutParam reads a wait bound as seconds ("30") or a duration ("1m30s").
func timeoutParam(c echo.Context) (time.Duration, error) {
	v := param(c, "timeout")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, fmt.Errorf("%w: timeout=%q is not seconds or a duration like 45s", model.ErrInvalidArgument, v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > taskmgr.MaxWait {
		return 0, fmt.Errorf("%w: timeout must be in (0, %s]", model.ErrInvalidArgument, taskmgr.MaxWait)
	}
	return d, nil
}

// nameAndTimeout reads the two parameters every waiting write takes.
func nameAndTimeout(c echo.Context) (string, time.Duration, error) {
	name, err := taskName(c)
	if err != nil {
		return "", 0, err
	}
	timeout, err := timeoutParam(c)
	return name, timeout, err
}

// answer turns a use case's result into the envelope.
func answer(c echo.Context, result any, err error) error {
	if err != nil {
		return err
	}
	return ok(c, result)
}

// call describes the caller for the audit log.
func call(c echo.Context, params ...string) taskmgr.Call {
	p := map[string]string{}
	for _, name := range params {
		if v := param(c, name); v != "" {
			p[name] = v
		}
	}
	return taskmgr.Call{Actor: actor(c), RequestID: requestID(c), Params: p}
}

// decodeJSON decodes a JSON body strictly into v; an empty body leaves v alone.
func decodeJSON(c echo.Context, v any) (bool, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return false, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	// null would decode as nothing at all: an update of no change, written.
	if string(bytes.TrimSpace(body)) == "null" {
		return false, fmt.Errorf("%w: the body is null; send a JSON object, or no body", errBadJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if dec.More() {
		return false, fmt.Errorf("%w: trailing data after the JSON value", errBadJSON)
	}
	return true, nil
}

func (h *handlers) create(c echo.Context) error {
	var req taskmgr.CreateRequest
	has, err := decodeJSON(c, &req)
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("%w: create needs a JSON body {\"component\":...,\"config\":{...}}", model.ErrInvalidArgument)
	}
	name, err := h.svc.Create(c.Request().Context(), call(c), req)
	if err != nil {
		return err
	}
	return ok(c, name)
}

func (h *handlers) resume(c echo.Context) error {
	name, err := taskName(c)
	if err != nil {
		return err
	}
	var opt taskmgr.ResumeOptions
	if opt.PullBack, err = boolParam(c, "pullBackFlag"); err != nil {
		return err
	}
	if opt.Restart, err = boolParam(c, "restartFlag"); err != nil {
		return err
	}
	if opt.Force, err = boolParam(c, "force"); err != nil {
		return err
	}
	if opt.SkipDDL, err = boolParam(c, "skipDdl"); err != nil {
		return err
	}
	if opt.Timeout, err = timeoutParam(c); err != nil {
		return err
	}
	res, err := h.svc.Resume(c.Request().Context(), call(c, "taskName", "pullBackFlag", "restartFlag", "force", "skipDdl"), name, opt)
	return answer(c, res, err)
}

func (h *handlers) stop(c echo.Context) error {
	name, timeout, err := nameAndTimeout(c)
	if err != nil {
		return err
	}
	res, err := h.svc.Stop(c.Request().Context(), call(c, "taskName", "timeout"), name, timeout)
	return answer(c, res, err)
}

func (h *handlers) pause(c echo.Context) error {
	name, timeout, err := nameAndTimeout(c)
	if err != nil {
		return err
	}
	res, err := h.svc.Pause(c.Request().Context(), call(c, "taskName", "timeout"), name, timeout)
	return answer(c, res, err)
}

func (h *handlers) update(c echo.Context) error {
	name, err := taskName(c)
	if err != nil {
		return err
	}
	var deletes []string
	if v := param(c, "deleteParams"); v != "" {
		for _, d := range strings.Split(v, ",") {
			if _, _, err := taskmgr.SplitParam(d); err != nil {
				return err
			}
			deletes = append(deletes, strings.TrimSpace(d))
		}
	}
	var patch model.Config
	if _, err := decodeJSON(c, &patch); err != nil {
		return err
	}
	if err := patch.Validate(); err != nil {
		return err
	}
	res, err := h.svc.Update(c.Request().Context(), call(c, "taskName", "deleteParams"), name, deletes, patch)
	return answer(c, res, err)
}

func (h *handlers) migrate(c echo.Context) error {
	name, timeout, err := nameAndTimeout(c)
	if err != nil {
		return err
	}
	target := taskmgr.MigrateTarget{IP: param(c, "ip"), Node: param(c, "node")}
	res, err := h.svc.Migrate(c.Request().Context(), call(c, "taskName", "ip", "node"), name, target, timeout)
	return answer(c, res, err)
}

func (h *handlers) delete(c echo.Context) error {
	name, timeout, err := nameAndTimeout(c)
	if err != nil {
		return err
	}
	res, err := h.svc.Delete(c.Request().Context(), call(c, "taskName"), name, timeout)
	return answer(c, res, err)
}

func (h *handlers) pullback(c echo.Context) error {
	name, err := taskName(c)
	if err != nil {
		return err
	}
	req := taskmgr.PullbackRequest{Task: name, Timestamp: param(c, "timestamp"), Subtopic: param(c, "subtopic"), TZ: param(c, "tz")}
	if req.Force, err = boolParam(c, "force"); err != nil {
		return err
	}
	if req.Timeout, err = timeoutParam(c); err != nil {
		return err
	}
	res, err := h.svc.Pullback(c.Request().Context(), call(c, "taskName", "timestamp", "subtopic", "tz", "force"), req)
	return answer(c, res, err)
}

func (h *handlers) detail(c echo.Context) error {
	name, err := taskName(c)
	if err != nil {
		return err
	}
	v, err := h.reads.Detail(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return ok(c, v)
}

// page is batchDetail's result.
type page struct {
	Items []view.TaskView `json:"items"`
	Total int64           `json:"total"`
}

func (h *handlers) batchDetail(c echo.Context) error {
	q := view.ListQuery{State: param(c, "state"), Node: param(c, "node"), Project: param(c, "project")}
	if v := param(c, "taskNames"); v != "" {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				q.Refs = append(q.Refs, n)
			}
		}
	}
	var err error
	if q.Page, err = intParam(c, "page", 1, 1_000_000); err != nil {
		return err
	}
	if q.Size, err = intParam(c, "size", 1, view.MaxPageSize); err != nil {
		return err
	}
	items, total, err := h.reads.List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	if items == nil {
		items = []view.TaskView{}
	}
	return ok(c, page{Items: items, Total: total})
}

// Operation is one audit record as the API shows it.
type Operation struct {
	ID          int64           `json:"id"`
	Time        time.Time       `json:"time"`
	Actor       string          `json:"actor"`
	Operation   string          `json:"operation"`
	TaskBefore  string          `json:"taskBefore"`
	TaskAfter   string          `json:"taskAfter"`
	StateBefore string          `json:"stateBefore"`
	StateAfter  string          `json:"stateAfter"`
	Params      json.RawMessage `json:"params"`
	Detail      json.RawMessage `json:"detail"`
	Result      string          `json:"result"`
	ErrCode     string          `json:"errCode,omitempty"`
	ErrMsg      string          `json:"errMsg,omitempty"`
	DurationMS  int64           `json:"durationMs"`
	RequestID   string          `json:"requestId,omitempty"`
	// Calls is how many calls the row stands for: more than 1 for the
	// summary of identical refusals coalesced in a window.
	Calls int64 `json:"calls"`
}

func raw(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

// lastSince is the last time every store can compare audit times with
// (MariaDB's DATETIME ends at 9999-12-31 23:59:59).
var lastSince = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// sinceParam reads operations' since: RFC 3339 or unix seconds, at most
// lastSince. A time before 1970 selects everything, like no since at all.
func sinceParam(c echo.Context) (time.Time, error) {
	v := param(c, "since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%w: since=%q is not RFC 3339 or unix seconds", model.ErrInvalidArgument, v)
		}
		if n > lastSince.Unix() {
			return time.Time{}, fmt.Errorf("%w: since=%q is after %s", model.ErrInvalidArgument, v, lastSince.Format(time.RFC3339))
		}
		t = time.Unix(n, 0)
	}
	switch {
	case t.After(lastSince):
		return time.Time{}, fmt.Errorf("%w: since=%q is after %s", model.ErrInvalidArgument, v, lastSince.Format(time.RFC3339))
	case t.Before(time.Unix(0, 0)):
		return time.Time{}, nil
	}
	return t, nil
}

func (h *handlers) operations(c echo.Context) error {
	since, err := sinceParam(c)
	if err != nil {
		return err
	}
	limit, err := intParam(c, "limit", 1, 1000)
	if err != nil {
		return err
	}
	rows, err := h.reads.Operations(c.Request().Context(), strings.TrimSpace(param(c, "taskName")), since, limit)
	if err != nil {
		return err
	}
	out := make([]Operation, len(rows))
	for i, a := range rows {
		out[i] = Operation{ID: a.ID, Time: a.At, Actor: a.Actor, Operation: a.Operation, TaskBefore: a.TaskBefore,
			TaskAfter: a.TaskAfter, StateBefore: string(a.StateBefore), StateAfter: string(a.StateAfter),
			Params: raw(a.Params), Detail: raw(a.Detail), Result: a.Result, ErrCode: a.ErrCode, ErrMsg: a.ErrMsg,
			DurationMS: a.DurationMS, RequestID: a.RequestID, Calls: a.Calls}
	}
	return ok(c, out)
}

func (h *handlers) ddlHistory(c echo.Context) error {
	name, err := taskName(c)
	if err != nil {
		return err
	}
	rows, err := h.reads.DDLHistory(c.Request().Context(), name)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []model.AppliedDDL{}
	}
	return ok(c, rows)
}

func (h *handlers) params(c echo.Context) error {
	out, err := h.svc.ListParams(c.Request().Context())
	if err != nil {
		return err
	}
	return ok(c, out)
}

func (h *handlers) updateParam(c echo.Context) error {
	key := strings.TrimSpace(param(c, "key"))
	if key == "" {
		return fmt.Errorf("%w: key is required", model.ErrInvalidArgument)
	}
	value := param(c, "value")
	cl := taskmgr.Call{Actor: actor(c), RequestID: requestID(c)}
	if err := h.svc.UpdateParam(c.Request().Context(), cl, key, value); err != nil {
		return err
	}
	return ok(c, key)
}

func (h *handlers) jobs(c echo.Context) error {
	out, err := h.reads.JobRuns(c.Request().Context())
	if err != nil {
		return err
	}
	return ok(c, out)
}

func (h *handlers) nodes(c echo.Context) error {
	out, err := h.reads.Nodes(c.Request().Context())
	if err != nil {
		return err
	}
	return ok(c, out)
}

// health answers 200 when every selected task is healthy and 503 with the
// problems otherwise: the one route where 503 means "unhealthy" rather than
// "cm could not answer". The report is the result either way.
func (h *handlers) health(c echo.Context) error {
	q := view.HealthQuery{Project: param(c, "project"), Node: param(c, "node")}
	if v := param(c, "maxDelay"); v != "" {
		d, err := params.ParseDuration(v)
		if err != nil {
			n, nerr := strconv.ParseInt(v, 10, 64)
			if nerr != nil || n < 0 {
				return fmt.Errorf("%w: maxDelay=%q is not seconds or a duration like 5m", model.ErrInvalidArgument, v)
			}
			d = time.Duration(n) * time.Second
		}
		q.MaxDelay = d
	}
	r, err := h.reads.Health(c.Request().Context(), q)
	if err != nil {
		return err
	}
	if r.Healthy {
		return ok(c, r)
	}
	code, msg, retry := errUnhealthy, fmt.Sprintf("%s: %d problem(s)", r.Status, len(r.Problems)), true
	c.Set(ctxErrCode, code)
	return c.JSON(http.StatusServiceUnavailable, envelope{ErrCode: &code, ErrMsg: &msg, ErrorDetail: ErrorDetail{RequestID: requestID(c)}, Result: r, Retryable: &retry})
}
