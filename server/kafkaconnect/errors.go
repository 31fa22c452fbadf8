package kafkaconnect

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Error is an answer of Kafka Connect's own wording: a status and message
// Kafka Connect would send (a connector not found, offsets of a running
// connector), with cm's errCode beside them.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func notFound(name string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "TASK_NOT_FOUND", Message: "Connector " + name + " not found"}
}

func badRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Message: msg}
}

// errorBody is Kafka Connect's error body. error_code and message are Kafka
// Connect's; errCode and retryable are cm's errCode catalogue
// (docs/api.md) and its retry hint, which Kafka Connect clients ignore.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
	ErrCode   string `json:"errCode"`
	Retryable bool   `json:"retryable"`
}

// Owns says whether path is one of this API's: its errors (routing, auth,
// rate limit, body limit) are answered in Kafka Connect's body.
func Owns(path string) bool {
	if path == PathRoot || path == PathHealth {
		return true
	}
	for _, p := range []string{PathConnectors, PathPlugins, PathLoggers} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// WriteError answers an error in Kafka Connect's body. status, code and
// retryable are the server's classification of err (Classify); an *Error
// says its own status and message.
func WriteError(c echo.Context, err error, status int, code string, retryable bool, msg string) {
	var e *Error
	if errors.As(err, &e) {
		status, code, msg, retryable = e.Status, e.Code, e.Message, false
	}
	b, _ := json.Marshal(errorBody{ErrorCode: status, Message: msg, ErrCode: code, Retryable: retryable})
	_ = c.JSONBlob(status, b)
}
