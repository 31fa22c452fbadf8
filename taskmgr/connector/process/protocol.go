package process

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

// handshake is the one JSON line written to the program's stdin at start.
type handshake struct {
	Task string         `json:"task"`
	Type model.TaskType `json:"type"`
	// Config is the whole task config, secrets included: it is the
	// program's own.
	Config model.Config `json:"config"`
	// Checkpoint holds where to resume, by subtopic. A position with an
	// empty token means "start at the first record at or after ts".
	Checkpoint map[string]handshakePosition `json:"checkpoint"`
}

type handshakePosition struct {
	TS    int64  `json:"ts"`
	Token string `json:"token"`
}

func newHandshake(task model.TaskName, typ model.TaskType, cfg model.Config, from map[string]checkpoint.Position) handshake {
	h := handshake{Task: task.String(), Type: typ, Config: cfg, Checkpoint: map[string]handshakePosition{}}
	if h.Config == nil {
		h.Config = model.Config{}
	}
	for sub, p := range from {
		h.Checkpoint[sub] = handshakePosition{TS: p.TS, Token: p.Token}
	}
	return h
}

// Types of the messages a program writes on stdout, one JSON object a line.
const (
	msgCheckpoint = "checkpoint"
	msgHeartbeat  = "heartbeat"
	msgMetrics    = "metrics"
	msgError      = "error"
)

// message is one stdout line. Which fields count depends on Type.
type message struct {
	Type string `json:"type"`

	// checkpoint
	Subtopic string `json:"subtopic"`
	TS       *int64 `json:"ts"`
	Token    string `json:"token"`

	// metrics
	Metrics map[string]float64 `json:"metrics"`

	// heartbeat: caughtUp says the program has delivered everything its
	// source has (delay 0); delaySeconds, when it knows, how far behind
	// the source's head it is. Neither: its delay is its checkpoint's age.
	CaughtUp     bool     `json:"caughtUp"`
	DelaySeconds *float64 `json:"delaySeconds"`

	// error
	Code      string `json:"code"`
	Message   string `json:"message"`
	Reason    string `json:"reason"`
	Proposal  string `json:"proposal"`
	Permanent bool   `json:"permanent"`
}

// parseMessage decodes and checks one stdout line. Types it does not know
// are returned as they are, for the caller to ignore: newer programs may
// send more.
func parseMessage(line []byte) (message, error) {
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("not a JSON message: %w", err)
	}
	switch m.Type {
	case "":
		return m, errors.New(`no "type"`)
	case msgCheckpoint:
		if m.Subtopic == "" {
			return m, errors.New(`checkpoint without "subtopic"`)
		}
		if m.TS == nil || *m.TS < 0 {
			return m, errors.New(`checkpoint without a non-negative integer "ts"`)
		}
	case msgHeartbeat:
		if d := m.DelaySeconds; d != nil && (*d < 0 || *d != *d) {
			return m, errors.New(`heartbeat with a negative "delaySeconds"`)
		}
	}
	return m, nil
}

func (m message) position() checkpoint.Position {
	return checkpoint.Position{Subtopic: m.Subtopic, TS: *m.TS, Token: m.Token}
}
