package model

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"
)

// Config is a task's scoped configuration: scope -> key -> value,
// e.g. config["source"]["checkpoint"].
type Config map[string]map[string]string

var scopeKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)
var scopeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// ValidScope reports whether s is a legal scope name (no dots: the dot
// separates scope from key in deleteParams).
func ValidScope(s string) bool { return scopeRE.MatchString(s) }

// ValidKey reports whether k is a legal key name.
func ValidKey(k string) bool { return scopeKeyRE.MatchString(k) }

// Validate checks scope and key grammar.
func (c Config) Validate() error {
	for scope, kv := range c {
		if !ValidScope(scope) {
			return fmt.Errorf("%w: scope %q must match %s", ErrInvalidArgument, scope, scopeRE)
		}
		for k := range kv {
			if !ValidKey(k) {
				return fmt.Errorf("%w: key %q in scope %q must match %s", ErrInvalidArgument, k, scope, scopeKeyRE)
			}
		}
	}
	return nil
}

// Get returns config[scope][key].
func (c Config) Get(scope, key string) string { return c[scope][key] }

// Clone returns a deep copy.
func (c Config) Clone() Config {
	out := make(Config, len(c))
	for s, kv := range c {
		m := make(map[string]string, len(kv))
		for k, v := range kv {
			m[k] = v
		}
		out[s] = m
	}
	return out
}

// Set sets config[scope][key] = v.
func (c Config) Set(scope, key, v string) {
	if c[scope] == nil {
		c[scope] = map[string]string{}
	}
	c[scope][key] = v
}

// Delete removes config[scope][key] and drops the scope when it empties.
func (c Config) Delete(scope, key string) {
	delete(c[scope], key)
	if len(c[scope]) == 0 {
		delete(c, scope)
	}
}

// Merge overlays other onto c.
func (c Config) Merge(other Config) {
	for s, kv := range other {
		for k, v := range kv {
			c.Set(s, k, v)
		}
	}
}

// Keys lists scope.key pairs, sorted, for logs and audit.
func (c Config) Keys() []string {
	var out []string
	for s, kv := range c {
		for k := range kv {
			out = append(out, s+"."+k)
		}
	}
	sort.Strings(out)
	return out
}

// ErrorDetail is one entry of a task's errorDetails, shaped like OMS's.
type ErrorDetail struct {
	Code     string    `json:"code"`
	Level    string    `json:"level"` // FATAL, ERROR or WARNING
	Message  string    `json:"message"`
	Reason   string    `json:"reason,omitempty"`
	Proposal string    `json:"proposal,omitempty"`
	Stderr   []string  `json:"stderr,omitempty"`
	Time     time.Time `json:"time"`
	// Permanent says retrying will not help (bad config, missing
	// privileges): auto-restart leaves the task alone.
	Permanent bool `json:"permanent,omitempty"`
	// Position is set on an error a source stopped at a statement it
	// cannot pass (a DDL): where that statement is in the stream. Resume
	// with skipDdl=true moves the checkpoint from Before to After.
	Position *StatementPosition `json:"position,omitempty"`
}

// StatementPosition is a statement's place in a source's stream: the
// resume tokens just before and just after it, and its time.
type StatementPosition struct {
	Subtopic string `json:"subtopic"`
	Before   string `json:"before"`
	After    string `json:"after"`
	TS       int64  `json:"ts"`
}

// Error levels.
const (
	LevelFatal   = "FATAL"
	LevelError   = "ERROR"
	LevelWarning = "WARNING"
)

// Task is the current incarnation of a component. Exactly one row per
// component; deleted tasks stay as rows in state DELETED.
//
// Revision is the compare-and-swap column: every write of state, desired
// state, config, node or version bumps it and names the revision it read.
// Version is the incarnation (the last part of the task name) and doubles as
// the fencing token for runtime writes.
type Task struct {
	ID        int64    `gorm:"primaryKey;autoIncrement"`
	Component string   `gorm:"size:128;not null;uniqueIndex"`
	Project   string   `gorm:"size:64;not null;index"`
	Type      TaskType `gorm:"size:16;not null"`
	Node      NodeID   `gorm:"size:128;not null;index"`
	Version   int64    `gorm:"not null"`
	Revision  int64    `gorm:"not null"`
	Desired   Desired  `gorm:"column:desired_state;size:16;not null"`
	State     State    `gorm:"size:16;not null;index"`
	// Config is the JSON of a Config.
	Config string `gorm:"type:text;not null"`
	// ErrorDetails is the JSON of []ErrorDetail; empty when healthy.
	ErrorDetails string `gorm:"type:text"`
	// Journal is the JSON of an in-flight multi-step operation (pullback,
	// migrate); empty when none. While set, other operator calls are refused.
	Journal string `gorm:"type:text"`
	// AutoRestarts counts the automatic restarts of the component, over
	// all its incarnations (written by the auto-restart use case): a
	// detail reads their audit rows only when it is not zero.
	AutoRestarts int64     `gorm:"not null;default:0"`
	CreatedAt    time.Time `gorm:"not null"`
	UpdatedAt    time.Time `gorm:"not null"`
}

// TableName fixes the table name.
func (Task) TableName() string { return "tasks" }

// Name is the task's current full name.
func (t *Task) Name() TaskName {
	c, _ := ParseComponent(t.Component)
	return TaskName{Node: t.Node, Component: c, Version: t.Version}
}

// ParsedConfig decodes Config.
func (t *Task) ParsedConfig() (Config, error) {
	c := Config{}
	if t.Config == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(t.Config), &c); err != nil {
		return nil, fmt.Errorf("decoding config of %s: %w", t.Component, err)
	}
	return c, nil
}

// SetConfig encodes c into Config.
func (t *Task) SetConfig(c Config) {
	b, _ := json.Marshal(c)
	t.Config = string(b)
}

// Errors decodes ErrorDetails.
func (t *Task) Errors() []ErrorDetail {
	var out []ErrorDetail
	if t.ErrorDetails != "" {
		_ = json.Unmarshal([]byte(t.ErrorDetails), &out)
	}
	return out
}

// SetErrors encodes details into ErrorDetails; nil clears them.
func (t *Task) SetErrors(details []ErrorDetail) {
	details = details[max(0, len(details)-MaxErrorDetails):]
	if len(details) == 0 {
		t.ErrorDetails = ""
		return
	}
	b, _ := json.Marshal(details)
	t.ErrorDetails = string(b)
}

// MaxErrorDetails bounds the error details a task row keeps: SetErrors
// keeps the newest.
const MaxErrorDetails = 10

// LastError is the newest error detail as "CODE: message", for messages.
func (t *Task) LastError() string {
	errs := t.Errors()
	if len(errs) == 0 {
		return "no error detail"
	}
	e := errs[len(errs)-1]
	return e.Code + ": " + e.Message
}

// Incarnation records each version a component has had: where it ran and why
// it began and ended.
type Incarnation struct {
	ID        int64      `gorm:"primaryKey;autoIncrement"`
	Component string     `gorm:"size:128;not null;uniqueIndex:ux_incarnation"`
	Version   int64      `gorm:"not null;uniqueIndex:ux_incarnation"`
	Name      string     `gorm:"size:255;not null"`
	Node      NodeID     `gorm:"size:128;not null"`
	Reason    string     `gorm:"size:32;not null"` // create, pullback, restart, migrate, recreate
	CreatedAt time.Time  `gorm:"not null"`
	EndedAt   *time.Time ``
}

// TableName fixes the table name.
func (Incarnation) TableName() string { return "task_incarnations" }

// Checkpoint is the durable progress of one subtopic of a task. Version fences
// writes: only the current incarnation may move it.
type Checkpoint struct {
	Component string    `gorm:"primaryKey;size:128"`
	Subtopic  string    `gorm:"primaryKey;size:255"`
	Version   int64     `gorm:"not null"`
	TS        int64     `gorm:"column:ts;not null"`
	Token     string    `gorm:"type:text"`
	UpdatedAt time.Time `gorm:"not null"`
}

// TableName fixes the table name.
func (Checkpoint) TableName() string { return "task_checkpoints" }

// Heartbeat is the last sign of life of a task's runner, fenced like Checkpoint.
type Heartbeat struct {
	Component string    `gorm:"primaryKey;size:128"`
	Version   int64     `gorm:"not null"`
	Node      NodeID    `gorm:"size:128;not null"`
	At        time.Time `gorm:"not null"`
	// Metrics is the JSON of the runner's counters.
	Metrics string `gorm:"type:text"`
}

// TableName fixes the table name.
func (Heartbeat) TableName() string { return "task_heartbeats" }

// Audit is one operation audit row. Params never holds secrets.
type Audit struct {
	ID          int64     `gorm:"primaryKey;autoIncrement"`
	At          time.Time `gorm:"not null;index"`
	Actor       string    `gorm:"size:255;not null"`
	Operation   string    `gorm:"size:32;not null"`
	Component   string    `gorm:"size:128;index"`
	TaskBefore  string    `gorm:"size:255"`
	TaskAfter   string    `gorm:"size:255"`
	StateBefore State     `gorm:"size:16"`
	StateAfter  State     `gorm:"size:16"`
	Params      string    `gorm:"type:text"` // JSON, secrets masked
	Detail      string    `gorm:"type:text"` // JSON, e.g. checkpoint before/after
	Result      string    `gorm:"size:16;not null"`
	ErrCode     string    `gorm:"size:64"`
	ErrMsg      string    `gorm:"type:text"`
	DurationMS  int64     ``
	RequestID   string    `gorm:"size:64"`
	// Calls is how many calls the row stands for: 1, but for the summary
	// row of identical refusals coalesced by Refusals.
	Calls int64 `gorm:"not null;default:1"`
}

// TableName fixes the table name.
func (Audit) TableName() string { return "operation_audit_log" }

// AuditResult is how an accepted operation ended: written once when it
// ends, so its Audit row is never updated (see Store.FinishAudit).
type AuditResult struct {
	AuditID    int64     `gorm:"primaryKey;autoIncrement:false"`
	At         time.Time `gorm:"not null"`
	Result     string    `gorm:"size:16;not null"`
	ErrCode    string    `gorm:"size:64"`
	ErrMsg     string    `gorm:"type:text"`
	DurationMS int64
}

// TableName fixes the table name.
func (AuditResult) TableName() string { return "operation_audit_results" }

// Audit results.
const (
	ResultAccepted = "accepted" // written; the call is waiting for convergence
	ResultSuccess  = "success"
	ResultFailure  = "failure"
)

// Param is a system parameter.
type Param struct {
	Key       string    `gorm:"primaryKey;size:128"`
	Value     string    `gorm:"type:text;not null"`
	UpdatedAt time.Time `gorm:"not null"`
}

// TableName fixes the table name.
func (Param) TableName() string { return "system_params" }

// Lease is a named lease in the shared store, held by one node until
// ExpiresAt. Holders take and renew it with a compare-and-swap on
// (Holder, ExpiresAt); see Store.AcquireLease.
type Lease struct {
	Name   string `gorm:"primaryKey;size:64"`
	Holder string `gorm:"size:128;not null"`
	// ExpiresAt is unix milliseconds, so the compare-and-swap is exact on
	// every backend.
	ExpiresAt int64     `gorm:"not null"`
	UpdatedAt time.Time `gorm:"not null"`
}

// TableName fixes the table name.
func (Lease) TableName() string { return "leases" }

// Expires is ExpiresAt as a time.
func (l *Lease) Expires() time.Time { return time.UnixMilli(l.ExpiresAt) }

// JobRun is the last run of a scheduled job, written by whichever node ran it.
type JobRun struct {
	Name       string    `gorm:"primaryKey;size:64"`
	Node       NodeID    `gorm:"size:128;not null"`
	StartedAt  time.Time `gorm:"not null"`
	DurationMS int64     `gorm:"not null"`
	Result     string    `gorm:"size:16;not null"` // success or failure
	Summary    string    `gorm:"type:text"`
	Error      string    `gorm:"type:text"`
	Runs       int64     `gorm:"not null"`
}

// TableName fixes the table name.
func (JobRun) TableName() string { return "job_runs" }

// Components lists the components of tasks, in order.
func Components(tasks []Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.Component
	}
	return out
}

// CheckpointDelay is now minus the oldest checkpoint of t's current
// incarnation among cps; ok is false when it has none.
func CheckpointDelay(t *Task, cps []Checkpoint, now time.Time) (delay time.Duration, ok bool) {
	for _, c := range cps {
		if c.Version != t.Version {
			continue
		}
		d := now.Sub(time.Unix(c.TS, 0))
		if !ok || d > delay {
			delay, ok = d, true
		}
	}
	return delay, ok
}
