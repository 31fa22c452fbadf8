package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// NodeState is how alive a node looks from its heartbeat age.
type NodeState string

// Node states.
const (
	NodeAlive   NodeState = "alive"
	NodeSuspect NodeState = "suspect"
	NodeDead    NodeState = "dead"
)

// Liveness holds the thresholds of node states (node.suspectAfter,
// node.deadAfter).
type Liveness struct {
	SuspectAfter time.Duration
	DeadAfter    time.Duration
}

// State is the state of a node last seen at seen, judged at now.
func (l Liveness) State(seen, now time.Time) NodeState {
	age := now.Sub(seen)
	switch {
	case age >= l.DeadAfter:
		return NodeDead
	case age >= l.SuspectAfter:
		return NodeSuspect
	default:
		return NodeAlive
	}
}

// livenessOf is the node liveness thresholds of a parameter snapshot.
func livenessOf(set params.Set) Liveness {
	return Liveness{SuspectAfter: set.Duration(params.NodeSuspectAfter), DeadAfter: set.Duration(params.NodeDeadAfter)}
}

// liveness reads the current thresholds.
func (m *Manager) liveness(ctx context.Context) (Liveness, error) {
	set, err := m.params.Snapshot(ctx)
	if err != nil {
		return Liveness{}, err
	}
	return livenessOf(set), nil
}

// checkNodeLive refuses nodes that are not registered or not alive
// (suspect nodes are refused too: new work goes where it can run now).
func (m *Manager) checkNodeLive(ctx context.Context, id model.NodeID) error {
	if id == m.cfg.Node {
		return nil
	}
	n, err := m.store.GetNode(ctx, id)
	if errors.Is(err, model.ErrNotFound) {
		return fmt.Errorf("%w: %s is not a registered node", ErrNodeNotFound, id)
	}
	if err != nil {
		return err
	}
	lv, err := m.liveness(ctx)
	if err != nil {
		return err
	}
	if st := lv.State(n.SeenAt, m.now()); st != NodeAlive {
		return fmt.Errorf("%w: %s is %s, last seen %s ago", ErrNodeNotFound, id, st, m.now().Sub(n.SeenAt).Round(time.Second))
	}
	return nil
}
