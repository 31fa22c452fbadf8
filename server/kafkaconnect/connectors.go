package kafkaconnect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/view"
)

// api marks the audit rows of calls made through these paths.
const api = "kafka-connect"

// call describes the caller for the audit log, with the connector and the
// given parameters.
func (h *handlers) call(c echo.Context, params map[string]string) taskmgr.Call {
	var cl taskmgr.Call
	if h.svc.Caller != nil {
		cl = h.svc.Caller(c)
	}
	p := map[string]string{"api": api, "method": c.Request().Method, "path": c.Path()}
	if name := c.Param("connector"); name != "" {
		p["connector"] = name
	}
	for k, v := range params {
		p[k] = v
	}
	cl.Params = p
	return cl
}

// connectorErr words the errors Kafka Connect words itself: a connector
// that does not exist, one that exists already. Others pass through to the
// server's classification.
func connectorErr(name string, err error) error {
	switch {
	case errors.Is(err, taskmgr.ErrTaskNotFound):
		return notFound(name)
	case errors.Is(err, taskmgr.ErrTaskExists):
		return &Error{Status: http.StatusConflict, Code: "TASK_EXISTS", Message: "Connector " + name + " already exists"}
	}
	return err
}

// existing is the connector the path names, once it is known to exist.
func (h *handlers) existing(c echo.Context) (string, error) {
	name := c.Param("connector")
	_, err := h.detail(c, name)
	return name, err
}

// detail reads a connector; a name that is no component, and a deleted
// task, are not found.
func (h *handlers) detail(c echo.Context, name string) (*view.TaskView, error) {
	if _, err := model.ParseComponent(name); err != nil {
		return nil, notFound(name)
	}
	v, err := h.svc.Reads.Detail(c.Request().Context(), name)
	if err != nil {
		return nil, connectorErr(name, err)
	}
	if v.State == model.StateDeleted {
		return nil, notFound(name)
	}
	return v, nil
}

func (h *handlers) plugins() []string {
	if h.svc.Plugins == nil {
		return nil
	}
	return h.svc.Plugins.PluginNames()
}

// body reads a JSON request body into v; an empty body is refused with
// what.
func body(c echo.Context, v any, what string) error {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return badRequest(what)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("Cannot deserialize the request body: " + err.Error())
	}
	return nil
}

func (h *handlers) list(c echo.Context) error {
	var info, status bool
	for _, e := range c.QueryParams()["expand"] {
		switch e {
		case "info":
			info = true
		case "status":
			status = true
		}
	}
	var all []view.TaskView
	for page := 1; ; page++ {
		items, total, err := h.svc.Reads.List(c.Request().Context(), view.ListQuery{Page: page, Size: view.MaxPageSize})
		if err != nil {
			return err
		}
		all = append(all, items...)
		if len(items) == 0 || int64(len(all)) >= total {
			break
		}
	}
	if !info && !status {
		names := make([]string, 0, len(all))
		for _, v := range all {
			if v.State != model.StateDeleted {
				names = append(names, v.Component)
			}
		}
		sort.Strings(names)
		return c.JSON(http.StatusOK, names)
	}
	out := map[string]map[string]any{}
	for i := range all {
		v := &all[i]
		if v.State == model.StateDeleted {
			continue
		}
		e := map[string]any{}
		if info {
			e["info"] = infoOf(v)
		}
		if status {
			e["status"] = statusOf(v)
		}
		out[v.Component] = e
	}
	return c.JSON(http.StatusOK, out)
}

// createRequest is POST /connectors's body.
type createRequest struct {
	Name         string     `json:"name"`
	Config       flatConfig `json:"config"`
	InitialState string     `json:"initial_state"`
}

func (h *handlers) create(c echo.Context) error {
	var req createRequest
	if err := body(c, &req, "Request body must contain the connector's name and config"); err != nil {
		return err
	}
	if req.Name == "" {
		return badRequest("Connector name must be specified (\"name\")")
	}
	if req.Config == nil {
		return badRequest("Connector config must be specified (\"config\")")
	}
	if err := component(req.Name); err != nil {
		return err
	}
	initial := strings.ToUpper(strings.TrimSpace(req.InitialState))
	switch initial {
	case "":
		initial = stateRunning
	case stateRunning, stateStopped, statePaused:
	default:
		return badRequest(fmt.Sprintf("initial_state %q: must be RUNNING, PAUSED or STOPPED", req.InitialState))
	}
	cfg, err := scoped(req.Name, req.Config, h.plugins())
	if err != nil {
		return err
	}
	// PAUSED: created stopped, then paused, which starts its runner
	// and holds it still before any data moves.
	start := initial == stateRunning
	ctx := c.Request().Context()
	cl := h.call(c, map[string]string{"connector": req.Name, "initial_state": initial})
	if _, err := h.svc.Tasks.Create(ctx, cl, taskmgr.CreateRequest{Component: req.Name, Config: cfg, Start: &start}); err != nil {
		return connectorErr(req.Name, err)
	}
	if initial == statePaused {
		if _, err := h.svc.Tasks.Pause(ctx, cl, req.Name, 0); err != nil {
			return connectorErr(req.Name, err)
		}
	}
	return h.answerInfo(c, req.Name, http.StatusCreated)
}

// answerInfo answers ConnectorInfo with status (201 with a Location).
func (h *handlers) answerInfo(c echo.Context, name string, status int) error {
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		c.Response().Header().Set(echo.HeaderLocation, PathConnectors+"/"+name)
	}
	return c.JSON(status, infoOf(v))
}

func (h *handlers) info(c echo.Context) error {
	return h.answerInfo(c, c.Param("connector"), http.StatusOK)
}

func (h *handlers) config(c echo.Context) error {
	name := c.Param("connector")
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, flatten(name, v.Config))
}

func (h *handlers) putConfig(c echo.Context) error {
	name := c.Param("connector")
	var flat flatConfig
	if err := body(c, &flat, "Connector config must be sent as the request body"); err != nil {
		return err
	}
	_, err := h.detail(c, name)
	var ke *Error
	if errors.As(err, &ke) && ke.Status == http.StatusNotFound {
		err = h.createByPut(c, name, flat)
		if !errors.Is(err, model.ErrAlreadyExists) {
			return err
		}
		// A concurrent call created it meanwhile: this one updates it.
	} else if err != nil {
		return err
	}
	cfg, err := scoped(name, flat, h.plugins())
	if err != nil {
		return err
	}
	if _, err := h.svc.Tasks.ReplaceConfig(c.Request().Context(), h.call(c, nil), name, cfg, 0); err != nil {
		return connectorErr(name, err)
	}
	return h.answerInfo(c, name, http.StatusOK)
}

// createByPut is a PUT config of a connector that does not exist: it is
// created and started, as Kafka Connect does, by a caller who may create.
func (h *handlers) createByPut(c echo.Context, name string, flat flatConfig) error {
	if err := component(name); err != nil {
		return err
	}
	if h.svc.Allows != nil && !h.svc.Allows(c, CreateRole) {
		return &Error{Status: http.StatusForbidden, Code: "FORBIDDEN",
			Message: fmt.Sprintf("connector %s does not exist, and creating it needs role %s", name, CreateRole)}
	}
	cfg, err := scoped(name, flat, h.plugins())
	if err != nil {
		return err
	}
	start := true
	if _, err := h.svc.Tasks.Create(c.Request().Context(), h.call(c, map[string]string{"initial_state": stateRunning}),
		taskmgr.CreateRequest{Component: name, Config: cfg, Start: &start}); err != nil {
		if errors.Is(err, model.ErrAlreadyExists) {
			return err // for putConfig, which updates it instead
		}
		return connectorErr(name, err)
	}
	return h.answerInfo(c, name, http.StatusCreated)
}

func (h *handlers) patchConfig(c echo.Context) error {
	name := c.Param("connector")
	var patch flatConfig
	if err := body(c, &patch, "Connector config patch must be sent as the request body"); err != nil {
		return err
	}
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	flat := flatConfig{}
	for k, val := range flatten(name, v.Config) {
		flat[k] = &val
	}
	for k, val := range patch {
		if val == nil {
			delete(flat, k)
			continue
		}
		flat[k] = val
	}
	cfg, err := scoped(name, flat, h.plugins())
	if err != nil {
		return err
	}
	if _, err := h.svc.Tasks.ReplaceConfig(c.Request().Context(), h.call(c, nil), name, cfg, 0); err != nil {
		return connectorErr(name, err)
	}
	return h.answerInfo(c, name, http.StatusOK)
}

func (h *handlers) status(c echo.Context) error {
	v, err := h.detail(c, c.Param("connector"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, statusOf(v))
}

// taskInfo is one entry of GET tasks.
type taskInfo struct {
	ID     taskID            `json:"id"`
	Config map[string]string `json:"config"`
}

func (h *handlers) tasks(c echo.Context) error {
	name := c.Param("connector")
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	out := []taskInfo{}
	if _, _, hasTask := states(v.State); hasTask {
		out = append(out, taskInfo{ID: taskID{Connector: name, Task: 0}, Config: flatten(name, v.Config)})
	}
	return c.JSON(http.StatusOK, out)
}

// task reads the connector of a task path; cm's connectors have one task,
// 0, while they run.
func (h *handlers) task(c echo.Context) (*view.TaskView, error) {
	name := c.Param("connector")
	v, err := h.detail(c, name)
	if err != nil {
		return nil, err
	}
	_, _, hasTask := states(v.State)
	if id := c.Param("task"); id != "0" || !hasTask {
		return nil, &Error{Status: http.StatusNotFound, Code: "TASK_NOT_FOUND", Message: "No status found for task " + name + "-" + id}
	}
	return v, nil
}

func (h *handlers) taskStatus(c echo.Context) error {
	v, err := h.task(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, statusOf(v).Tasks[0])
}

func (h *handlers) taskRestart(c echo.Context) error {
	if _, err := h.task(c); err != nil {
		return err
	}
	name := c.Param("connector")
	if _, err := h.svc.Tasks.Restart(c.Request().Context(), h.call(c, map[string]string{"task": c.Param("task")}), name, false, 0); err != nil {
		return connectorErr(name, err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) pause(c echo.Context) error {
	name, err := h.existing(c)
	if err != nil {
		return err
	}
	if _, err := h.svc.Tasks.Pause(c.Request().Context(), h.call(c, nil), name, 0); err != nil {
		return connectorErr(name, err)
	}
	return c.NoContent(http.StatusAccepted)
}

func (h *handlers) resume(c echo.Context) error {
	name, err := h.existing(c)
	if err != nil {
		return err
	}
	if _, err := h.svc.Tasks.Resume(c.Request().Context(), h.call(c, nil), name, taskmgr.ResumeOptions{}); err != nil {
		return connectorErr(name, err)
	}
	return c.NoContent(http.StatusAccepted)
}

func (h *handlers) stop(c echo.Context) error {
	name := c.Param("connector")
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	// A connector created STOPPED never ran: there is nothing to stop,
	// and Kafka Connect answers a stop of a stopped connector the same.
	if v.State == model.StateCreated {
		return c.NoContent(http.StatusNoContent)
	}
	if _, err := h.svc.Tasks.Stop(c.Request().Context(), h.call(c, nil), name, 0); err != nil {
		return connectorErr(name, err)
	}
	return c.NoContent(http.StatusNoContent)
}

func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(fmt.Sprintf("%s=%q is not true or false", name, v))
	}
	return b, nil
}

func (h *handlers) restart(c echo.Context) error {
	name := c.Param("connector")
	includeTasks, err := boolQuery(c, "includeTasks")
	if err != nil {
		return err
	}
	onlyFailed, err := boolQuery(c, "onlyFailed")
	if err != nil {
		return err
	}
	if _, err := h.detail(c, name); err != nil {
		return err
	}
	params := map[string]string{"includeTasks": strconv.FormatBool(includeTasks), "onlyFailed": strconv.FormatBool(onlyFailed)}
	if _, err := h.svc.Tasks.Restart(c.Request().Context(), h.call(c, params), name, onlyFailed, 0); err != nil {
		return connectorErr(name, err)
	}
	if !includeTasks && !onlyFailed {
		return c.NoContent(http.StatusOK)
	}
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, statusOf(v))
}

func (h *handlers) delete(c echo.Context) error {
	name, err := h.existing(c)
	if err != nil {
		return err
	}
	if _, err := h.svc.Tasks.Delete(c.Request().Context(), h.call(c, nil), name, 0); err != nil {
		return connectorErr(name, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// topics answers for a system without Kafka topics: a connector uses none,
// and there is nothing to reset (docs/kafka-connect.md).
func (h *handlers) topics(c echo.Context) error {
	name, err := h.existing(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]map[string][]string{name: {"topics": {}}})
}

func (h *handlers) resetTopics(c echo.Context) error {
	if _, err := h.detail(c, c.Param("connector")); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}
