// Package logkey names the log fields every package of cm uses, so a task,
// a node or a request is found under one key in every log line.
package logkey

// Log field keys.
const (
	Task      = "task"
	Node      = "node"
	Version   = "version"
	State     = "state"
	RequestID = "request_id"
)
