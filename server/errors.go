package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server/kafkaconnect"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

// Problem is how an error is answered: the HTTP status, the stable errCode
// and whether retrying the same call may succeed.
type Problem struct {
	Status    int
	Code      string
	Retryable bool
}

// errBadJSON marks a request body that is not the JSON the endpoint takes.
var errBadJSON = errors.New("request body is not valid JSON")

// errBadBody marks a request body that could not be read: malformed chunked
// encoding, or shorter than its Content-Length when the client closed.
var errBadBody = errors.New("request body could not be read")

// errBodyTimeout marks a request body the client stopped sending.
var errBodyTimeout = errors.New("request body did not arrive in time")

// rule maps one error category to its Problem. Order matters only where
// categories nest (a specific sentinel before the general one it wraps).
type rule struct {
	match   func(error) bool
	problem Problem
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func as[T error]() func(error) bool {
	return func(err error) bool {
		var t T
		return errors.As(err, &t)
	}
}

// Catalogue is the errCode catalogue, in matching order. docs/api.md lists it.
var catalogue = []rule{
	{as[*taskmgr.SupersededError](), Problem{http.StatusConflict, "TASK_SUPERSEDED", false}},
	{as[*model.IllegalTransitionError](), Problem{http.StatusConflict, "ILLEGAL_STATE", false}},
	{is(taskmgr.ErrBusy), Problem{http.StatusConflict, "TASK_BUSY", true}},
	{is(model.ErrConflict), Problem{http.StatusConflict, "TASK_BUSY", true}},
	{is(taskmgr.ErrTaskFailed), Problem{http.StatusConflict, "TASK_EXCEPTION", false}},
	{is(taskmgr.ErrSkipDDL), Problem{http.StatusConflict, "DDL_SKIP_REFUSED", false}},
	{is(taskmgr.ErrRolledBack), Problem{http.StatusConflict, "OPERATION_ROLLED_BACK", false}},
	{is(taskmgr.ErrRewindUnsafe), Problem{http.StatusConflict, "PULLBACK_UNSAFE", false}},
	{is(taskmgr.ErrStopTimeout), Problem{http.StatusGatewayTimeout, "STOP_TIMEOUT", true}},
	{is(taskmgr.ErrStartTimeout), Problem{http.StatusGatewayTimeout, "START_TIMEOUT", true}},
	{is(taskmgr.ErrPauseTimeout), Problem{http.StatusGatewayTimeout, "PAUSE_TIMEOUT", true}},
	{is(taskmgr.ErrOperationTimeout), Problem{http.StatusGatewayTimeout, "OPERATION_TIMEOUT", true}},
	{is(cluster.ErrNodeNotFound), Problem{http.StatusNotFound, "NODE_NOT_FOUND", false}},
	{is(taskmgr.ErrTaskNotFound), Problem{http.StatusNotFound, "TASK_NOT_FOUND", false}},
	{is(taskmgr.ErrTaskExists), Problem{http.StatusConflict, "TASK_EXISTS", false}},
	{is(taskmgr.ErrCommandRefused), Problem{http.StatusBadRequest, "PROCESS_COMMAND_REFUSED", false}},
	{is(taskmgr.ErrUnknownPlugin), Problem{http.StatusBadRequest, "UNKNOWN_PLUGIN", false}},
	{is(taskmgr.ErrOutsideRoots), Problem{http.StatusBadRequest, "FILE_OUTSIDE_ROOTS", false}},
	{is(taskmgr.ErrInvalidConfig), Problem{http.StatusBadRequest, "INVALID_CONFIG", false}},
	{is(model.ErrInvalidName), Problem{http.StatusBadRequest, "INVALID_TASK_NAME", false}},
	{is(checkpoint.ErrTimeUnit), Problem{http.StatusBadRequest, "CHECKPOINT_TIME_UNIT", false}},
	{is(checkpoint.ErrInFuture), Problem{http.StatusBadRequest, "CHECKPOINT_IN_FUTURE", false}},
	{is(checkpoint.ErrUnknownSubtopic), Problem{http.StatusBadRequest, "UNKNOWN_SUBTOPIC", false}},
	{is(checkpoint.ErrForward), Problem{http.StatusConflict, "CHECKPOINT_FORWARD", false}},
	{is(checkpoint.ErrOutOfRange), Problem{http.StatusConflict, "CHECKPOINT_OUT_OF_RANGE", false}},
	{is(checkpoint.ErrInvalid), Problem{http.StatusBadRequest, "INVALID_CHECKPOINT", false}},
	{is(errBadJSON), Problem{http.StatusBadRequest, "INVALID_JSON", false}},
	{is(errBadBody), Problem{http.StatusBadRequest, "INVALID_BODY", false}},
	{is(errBodyTimeout), Problem{http.StatusRequestTimeout, "REQUEST_TIMEOUT", false}},
	{is(errUnauthenticated), Problem{http.StatusUnauthorized, "UNAUTHENTICATED", false}},
	{is(errForbidden), Problem{http.StatusForbidden, "FORBIDDEN", false}},
	{is(errRateLimited), Problem{http.StatusTooManyRequests, "RATE_LIMITED", true}},
	{is(errNotReady), Problem{http.StatusServiceUnavailable, "NOT_READY", true}},
	{is(errKeyReused), Problem{http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED", false}},
	{is(model.ErrInvalidArgument), Problem{http.StatusBadRequest, "INVALID_ARGUMENT", false}},
	{is(model.ErrFenced), Problem{http.StatusConflict, "TASK_SUPERSEDED", false}},
	{is(model.ErrNotFound), Problem{http.StatusNotFound, "NOT_FOUND", false}},
	{is(model.ErrAlreadyExists), Problem{http.StatusConflict, "ALREADY_EXISTS", false}},
	{is(model.ErrUnavailable), Problem{http.StatusServiceUnavailable, "STORE_UNAVAILABLE", true}},
	{is(context.DeadlineExceeded), Problem{http.StatusGatewayTimeout, "TIMEOUT", true}},
	{is(context.Canceled), Problem{http.StatusServiceUnavailable, "CANCELED", true}},
}

// errUnhealthy is the errCode of a health answer that lists problems (503,
// retryable). It is not an error of a call, so no rule maps to it; the
// health handler sets it, and no rule may reuse it.
const errUnhealthy = "UNHEALTHY"

// echoProblems maps the framework's own HTTP errors (routing, body limit).
var echoProblems = map[int]Problem{
	http.StatusNotFound:              {http.StatusNotFound, "NOT_FOUND", false},
	http.StatusMethodNotAllowed:      {http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", false},
	http.StatusRequestEntityTooLarge: {http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", false},
	http.StatusUnsupportedMediaType:  {http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", false},
	http.StatusBadRequest:            {http.StatusBadRequest, "INVALID_ARGUMENT", false},
	http.StatusUnauthorized:          {http.StatusUnauthorized, "UNAUTHENTICATED", false},
	http.StatusForbidden:             {http.StatusForbidden, "FORBIDDEN", false},
	http.StatusTooManyRequests:       {http.StatusTooManyRequests, "TOO_MANY_REQUESTS", true},
}

var internalProblem = Problem{http.StatusInternalServerError, "INTERNAL_ERROR", true}

// Classify is the one mapping from errors to status, errCode and retryable.
func Classify(err error) Problem {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if p, ok := echoProblems[he.Code]; ok {
			return p
		}
		return Problem{he.Code, "HTTP_" + http.StatusText(he.Code), he.Code >= 500}
	}
	// The Kafka Connect paths' own refusals (a connector not found, offsets
	// of a running connector) carry the status and errCode they answer.
	var kc *kafkaconnect.Error
	if errors.As(err, &kc) {
		return Problem{kc.Status, kc.Code, false}
	}
	for _, r := range catalogue {
		if r.match(err) {
			return r.problem
		}
	}
	return internalProblem
}

// ErrCode is Classify's errCode, for the audit log.
func ErrCode(err error) string { return Classify(err).Code }
