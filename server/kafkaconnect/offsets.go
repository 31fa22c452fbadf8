package kafkaconnect

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

// KIP-875's shapes: a partition is one subtopic, its offset the subtopic's
// position, a unix time in seconds (ts) and, once the task has moved, the
// source's token.
type (
	offsetPartition struct {
		Subtopic string `json:"subtopic"`
	}
	offsetValue struct {
		TS    json.Number `json:"ts"`
		Token string      `json:"token,omitempty"`
	}
	offsetEntry struct {
		Partition offsetPartition `json:"partition"`
		Offset    *offsetValue    `json:"offset"`
	}
	offsets struct {
		Offsets []offsetEntry `json:"offsets"`
	}
)

// notStopped is Kafka Connect's answer to an offsets change of a connector
// that is not stopped.
func notStopped(name string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "ILLEGAL_STATE", Message: "Connectors must be in the STOPPED state before their offsets can be modified. " +
		"This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/" + name + "/stop' endpoint"}
}

// offsets answers where each subtopic stands: its durable progress, else
// the position source.checkpoint configures (where the next run starts).
func (h *handlers) offsets(c echo.Context) error {
	name := c.Param("connector")
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	at := map[string]offsetValue{}
	if raw := v.Config.Get("source", "checkpoint"); raw != "" && raw != model.Masked {
		if configured, err := checkpoint.Parse(raw); err == nil {
			for s, ts := range configured {
				at[s] = offsetValue{TS: json.Number(strconv.FormatInt(ts, 10))}
			}
		}
	}
	for s, p := range v.Checkpoint {
		at[s] = offsetValue{TS: json.Number(strconv.FormatInt(p.TS, 10)), Token: p.Token}
	}
	out := offsets{Offsets: []offsetEntry{}}
	subs := make([]string, 0, len(at))
	for s := range at {
		subs = append(subs, s)
	}
	sort.Strings(subs)
	for _, s := range subs {
		o := at[s]
		out.Offsets = append(out.Offsets, offsetEntry{Partition: offsetPartition{Subtopic: s}, Offset: &o})
	}
	return c.JSON(http.StatusOK, out)
}

// stoppedForOffsets refuses an offsets change of a connector that runs.
func (h *handlers) stoppedForOffsets(c echo.Context, name string) error {
	v, err := h.detail(c, name)
	if err != nil {
		return err
	}
	if v.State != model.StateStopped && v.State != model.StateCreated {
		return notStopped(name)
	}
	return nil
}

// offsetsErr words a refusal of the use case for a state the connector
// moved to since the check as Kafka Connect does.
func offsetsErr(name string, err error) error {
	var it *model.IllegalTransitionError
	if errors.As(err, &it) {
		return notStopped(name)
	}
	return connectorErr(name, err)
}

func (h *handlers) alterOffsets(c echo.Context) error {
	name := c.Param("connector")
	var req offsets
	if err := body(c, &req, "Offsets must be specified in the request body"); err != nil {
		return err
	}
	if len(req.Offsets) == 0 {
		return badRequest("Partitions / offsets need to be provided for an alter offsets request")
	}
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	target := map[string]int64{}
	for i, e := range req.Offsets {
		if e.Partition.Subtopic == "" {
			return badRequest(fmt.Sprintf("offsets[%d]: the partition names no subtopic ({\"subtopic\": \"...\"})", i))
		}
		if e.Offset == nil || e.Offset.TS == "" {
			return badRequest(fmt.Sprintf("offsets[%d] (%s): the offset gives no ts (unix seconds); to start a connector over, DELETE its offsets", i, e.Partition.Subtopic))
		}
		ts, err := strconv.ParseInt(string(e.Offset.TS), 10, 64)
		if err != nil || ts < 0 {
			return badRequest(fmt.Sprintf("offsets[%d] (%s): ts %q is not unix seconds", i, e.Partition.Subtopic, e.Offset.TS))
		}
		target[e.Partition.Subtopic] = ts
	}
	if err := h.stoppedForOffsets(c, name); err != nil {
		return err
	}
	params := map[string]string{}
	if force {
		params["force"] = "true"
	}
	if _, err := h.svc.Tasks.AlterOffsets(c.Request().Context(), h.call(c, params), name, target, force); err != nil {
		return offsetsErr(name, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "The offsets for this connector have been altered successfully"})
}

func (h *handlers) resetOffsets(c echo.Context) error {
	name := c.Param("connector")
	if err := h.stoppedForOffsets(c, name); err != nil {
		return err
	}
	if _, err := h.svc.Tasks.ResetOffsets(c.Request().Context(), h.call(c, nil), name); err != nil {
		return offsetsErr(name, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "The offsets for this connector have been reset successfully"})
}
