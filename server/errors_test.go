package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err       error
		status    int
		code      string
		retryable bool
	}{
		{&taskmgr.SupersededError{Given: "a", Current: "b"}, 409, "TASK_SUPERSEDED", false},
		{&model.IllegalTransitionError{From: model.StateRunning, Op: "update"}, 409, "ILLEGAL_STATE", false},
		{fmt.Errorf("x: %w", taskmgr.ErrBusy), 409, "TASK_BUSY", true},
		{model.ErrConflict, 409, "TASK_BUSY", true},
		{&taskmgr.FailedError{Task: "t"}, 409, "TASK_EXCEPTION", false},
		{fmt.Errorf("x: %w", taskmgr.ErrSkipDDL), 409, "DDL_SKIP_REFUSED", false},
		{fmt.Errorf("x: %w", taskmgr.ErrRewindUnsafe), 409, "PULLBACK_UNSAFE", false},
		{&taskmgr.RolledBackError{Task: "t", Code: "MIGRATE_ROLLED_BACK", Reason: "target failed"}, 409, "OPERATION_ROLLED_BACK", false},
		{taskmgr.ErrStopTimeout, 504, "STOP_TIMEOUT", true},
		{taskmgr.ErrStartTimeout, 504, "START_TIMEOUT", true},
		{taskmgr.ErrOperationTimeout, 504, "OPERATION_TIMEOUT", true},
		{taskmgr.ErrNodeNotFound, 404, "NODE_NOT_FOUND", false},
		{taskmgr.ErrTaskNotFound, 404, "TASK_NOT_FOUND", false},
		{taskmgr.ErrTaskExists, 409, "TASK_EXISTS", false},
		{taskmgr.ErrInvalidConfig, 400, "INVALID_CONFIG", false},
		{model.ErrInvalidName, 400, "INVALID_TASK_NAME", false},
		{checkpoint.ErrTimeUnit, 400, "CHECKPOINT_TIME_UNIT", false},
		{checkpoint.ErrInFuture, 400, "CHECKPOINT_IN_FUTURE", false},
		{checkpoint.ErrUnknownSubtopic, 400, "UNKNOWN_SUBTOPIC", false},
		{checkpoint.ErrForward, 409, "CHECKPOINT_FORWARD", false},
		{&checkpoint.OutOfRangeError{Subtopic: "s", Requested: 1, Oldest: 2}, 409, "CHECKPOINT_OUT_OF_RANGE", false},
		{checkpoint.ErrInvalid, 400, "INVALID_CHECKPOINT", false},
		{errBadJSON, 400, "INVALID_JSON", false},
		{fmt.Errorf("%w: unexpected EOF", errBadBody), 400, "INVALID_BODY", false},
		{fmt.Errorf("%w: i/o timeout", errBodyTimeout), 408, "REQUEST_TIMEOUT", false},
		{model.ErrInvalidArgument, 400, "INVALID_ARGUMENT", false},
		{model.ErrFenced, 409, "TASK_SUPERSEDED", false},
		{model.ErrNotFound, 404, "NOT_FOUND", false},
		{model.ErrAlreadyExists, 409, "ALREADY_EXISTS", false},
		{errors.Join(model.ErrUnavailable, errors.New("dial")), 503, "STORE_UNAVAILABLE", true},
		{context.DeadlineExceeded, 504, "TIMEOUT", true},
		{context.Canceled, 503, "CANCELED", true},
		{echo.NewHTTPError(http.StatusRequestEntityTooLarge), 413, "REQUEST_TOO_LARGE", false},
		{echo.ErrMethodNotAllowed, 405, "METHOD_NOT_ALLOWED", false},
		{echo.ErrNotFound, 404, "NOT_FOUND", false},
		{errors.New("surprise"), 500, "INTERNAL_ERROR", true},
	}
	for _, c := range cases {
		p := Classify(c.err)
		if p.Status != c.status || p.Code != c.code || p.Retryable != c.retryable {
			t.Errorf("Classify(%v) = %+v, want %d %s %v", c.err, p, c.status, c.code, c.retryable)
		}
	}
}

// TestEveryRuleIsNot500: no known category answers 500.
func TestEveryRuleIsNot500(t *testing.T) {
	for i, r := range catalogue {
		if r.problem.Status >= 500 && r.problem.Status != http.StatusServiceUnavailable && r.problem.Status != http.StatusGatewayTimeout {
			t.Errorf("rule %d (%s) answers %d", i, r.problem.Code, r.problem.Status)
		}
		if r.problem.Status >= 500 && !r.problem.Retryable {
			t.Errorf("rule %d (%s): a server-side status must be retryable", i, r.problem.Code)
		}
	}
}

// TestUnhealthyIsNotACallError: the health endpoint's code is its own.
func TestUnhealthyIsNotACallError(t *testing.T) {
	for _, r := range catalogue {
		if r.problem.Code == errUnhealthy {
			t.Fatalf("catalogue rule answers %s", errUnhealthy)
		}
	}
}
