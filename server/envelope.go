package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/server/kafkaconnect"
	"github.com/connector-manager/cm/taskmgr"
)

// envelope is the OMS answer shape. On success the error fields are null; on
// failure result is null and retryable says whether to try again.
type envelope struct {
	ErrCode     *string `json:"errCode"`
	ErrMsg      *string `json:"errMsg"`
	ErrorDetail any     `json:"errorDetail"`
	IsSuccess   bool    `json:"isSuccess"`
	Result      any     `json:"result"`
	Retryable   *bool   `json:"retryable"`
}

// ErrorDetail is the errorDetail of a failure.
type ErrorDetail struct {
	RequestID string `json:"requestId"`
	// CurrentTaskName is set when the call named a superseded incarnation.
	CurrentTaskName string `json:"currentTaskName,omitempty"`
	// TaskErrors are the task's errorDetails when it went to EXCEPTION.
	TaskErrors any `json:"taskErrors,omitempty"`
}

func ok(c echo.Context, result any) error {
	return c.JSON(http.StatusOK, envelope{IsSuccess: true, Result: result})
}

// routingMessage says what the router's own refusals mean: a 404 names the
// method and path nothing is registered at, a 405 the methods the path
// takes (the Allow header Echo set, without OPTIONS, which every path
// answers). Other messages pass through.
func routingMessage(c echo.Context, status int, msg string) string {
	req := c.Request()
	switch status {
	case http.StatusNotFound:
		return fmt.Sprintf("no route %s %s: the routes are listed by GET /openapi.yaml", req.Method, clip(req.URL.Path))
	case http.StatusMethodNotAllowed:
		var allowed []string
		for _, m := range strings.Split(c.Response().Header().Get(echo.HeaderAllow), ",") {
			if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			return fmt.Sprintf("%s is not allowed on %s", req.Method, clip(req.URL.Path))
		}
		return fmt.Sprintf("%s is not allowed on %s: use %s", req.Method, clip(req.URL.Path), strings.Join(allowed, " or "))
	}
	return msg
}

// maxLoggedPath bounds a requested path as messages and logs repeat it.
const maxLoggedPath = 256

func clip(path string) string {
	if len(path) <= maxLoggedPath {
		return path
	}
	return path[:maxLoggedPath] + "..."
}

// fail answers err in the envelope. It is the echo HTTPErrorHandler too, so
// routing and body-limit errors get the same shape.
func fail(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := Classify(err)
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		msg = routingMessage(c, he.Code, msg)
	}
	detail := ErrorDetail{RequestID: requestID(c)}
	var sup *taskmgr.SupersededError
	if errors.As(err, &sup) {
		detail.CurrentTaskName = sup.Current
	}
	var failed *taskmgr.FailedError
	if errors.As(err, &failed) {
		detail.TaskErrors = failed.Details
	}
	code, retry := p.Code, p.Retryable
	c.Set(ctxErrCode, code)
	if p.Status >= 500 && p.Code == internalProblem.Code {
		c.Set(ctxInternalErr, err)
	}
	if kafkaconnect.Owns(c.Request().URL.Path) {
		kafkaconnect.WriteError(c, err, p.Status, code, retry, msg)
		return
	}
	_ = c.JSON(p.Status, envelope{ErrCode: &code, ErrMsg: &msg, ErrorDetail: detail, Result: nil, Retryable: &retry})
}
