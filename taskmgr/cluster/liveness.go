package cluster

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

// ErrNodeNotFound: the named node is not a live registered node.
var ErrNodeNotFound = errors.New("node not found")

// Liveness holds the thresholds of node states (node.suspectAfter,
// node.deadAfter).
type Liveness struct {
	SuspectAfter time.Duration
	DeadAfter    time.Duration
}

// LivenessOf is the node liveness thresholds of a parameter snapshot.
func LivenessOf(set params.Set) Liveness {
	return Liveness{SuspectAfter: set.Duration(params.NodeSuspectAfter), DeadAfter: set.Duration(params.NodeDeadAfter)}
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

// Nodes is the one place that answers "is node X alive", for a node that
// knows itself alive. Thresholds are read from the parameters on each call.
type Nodes struct {
	self   model.NodeID
	store  *model.Store
	params *params.Service
	now    func() time.Time
}

// NewNodes builds the liveness oracle of node self.
func NewNodes(self model.NodeID, store *model.Store, ps *params.Service) *Nodes {
	return &Nodes{self: self, store: store, params: ps, now: time.Now}
}

// liveness reads the current thresholds.
func (n *Nodes) liveness(ctx context.Context) (Liveness, error) {
	set, err := n.params.Snapshot(ctx)
	if err != nil {
		return Liveness{}, err
	}
	return LivenessOf(set), nil
}

// State is the state of one node: this node is alive, an unregistered node
// is dead, and a node whose row cannot be read now is suspect.
func (n *Nodes) State(ctx context.Context, id model.NodeID) NodeState {
	if id == n.self {
		return NodeAlive
	}
	row, err := n.store.GetNode(ctx, id)
	if err != nil {
		if errors.Is(err, model.ErrNotFound) {
			return NodeDead
		}
		return NodeSuspect
	}
	lv, err := n.liveness(ctx)
	if err != nil {
		return NodeSuspect
	}
	return lv.State(row.SeenAt, n.now())
}

// States reads the state of every registered node under lv; nodes never
// registered are absent (StateOf counts them dead).
func (n *Nodes) States(ctx context.Context, lv Liveness) (map[model.NodeID]NodeState, error) {
	rows, err := n.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[model.NodeID]NodeState, len(rows))
	now := n.now()
	for _, r := range rows {
		out[r.ID] = lv.State(r.SeenAt, now)
	}
	out[n.self] = NodeAlive
	return out, nil
}

// StateOf is id's state in states; a node not in it is dead.
func StateOf(states map[model.NodeID]NodeState, id model.NodeID) NodeState {
	if s, ok := states[id]; ok {
		return s
	}
	return NodeDead
}

// CheckLive refuses nodes that are not registered or not alive (suspect
// nodes are refused too: new work goes where it can run now).
func (n *Nodes) CheckLive(ctx context.Context, id model.NodeID) error {
	if id == n.self {
		return nil
	}
	row, err := n.store.GetNode(ctx, id)
	if errors.Is(err, model.ErrNotFound) {
		return fmt.Errorf("%w: %s is not a registered node", ErrNodeNotFound, id)
	}
	if err != nil {
		return err
	}
	lv, err := n.liveness(ctx)
	if err != nil {
		return err
	}
	now := n.now()
	if st := lv.State(row.SeenAt, now); st != NodeAlive {
		return fmt.Errorf("%w: %s is %s, last seen %s ago", ErrNodeNotFound, id, st, now.Sub(row.SeenAt).Round(time.Second))
	}
	return nil
}

// Alive lists the registered nodes that are alive now.
func (n *Nodes) Alive(ctx context.Context) ([]model.Node, error) {
	lv, err := n.liveness(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := n.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	now := n.now()
	var out []model.Node
	for _, r := range rows {
		if r.ID == n.self || lv.State(r.SeenAt, now) == NodeAlive {
			out = append(out, r)
		}
	}
	return out, nil
}
