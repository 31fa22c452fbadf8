package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
)

// Config tunes the runtime of one node.
type Config struct {
	// Node is this node's id: the reconciler runs the tasks named after it.
	Node model.NodeID
	// OpenTimeout bounds a runner's opening of its connectors: a server
	// that accepts connections but never answers fails the task with
	// OPEN_TIMEOUT instead of leaving it STARTING.
	OpenTimeout time.Duration
	// ReconcileInterval is the period of the reconciler's pass over every
	// task of the node; nudges name the tasks they are about, and are
	// handled at once.
	ReconcileInterval time.Duration
	// StartBurst is how many runners one pass starts at most; the rest
	// start in the passes right after (a node restarting with many tasks).
	StartBurst int
	// DataDir holds per-task working directories (child process logs).
	DataDir string
	// Committer tunes checkpoint and heartbeat flushing.
	Committer checkpoint.CommitterConfig
	// Failpoint, when set, kills the process right after that journal
	// step commits. For crash tests only.
	Failpoint failpoint.Armed
}

// DefaultConfig returns the defaults for node.
func DefaultConfig(node model.NodeID) Config {
	return Config{
		Node:              node,
		OpenTimeout:       2 * time.Minute,
		ReconcileInterval: 5 * time.Second,
		StartBurst:        100,
		DataDir:           "./data",
		Committer:         checkpoint.DefaultCommitterConfig(),
	}
}

// Validate refuses configs the runtime cannot work with.
func (c Config) Validate() error {
	if _, err := model.ParseNodeID(string(c.Node)); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := c.Failpoint.Validate(); err != nil {
		return err
	}
	if c.OpenTimeout <= 0 || c.ReconcileInterval <= 0 || c.StartBurst <= 0 {
		return fmt.Errorf("%w: the open timeout, the reconcile interval and the start burst must be positive", model.ErrInvalidArgument)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data dir is empty", model.ErrInvalidArgument)
	}
	return nil
}

// Waker tells another node's reconciler to reconcile now (cluster.Waker).
type Waker interface {
	Wake(ctx context.Context, node model.NodeID, components ...string)
}
