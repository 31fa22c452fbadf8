package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Membership registers this node in the shared store and keeps its
// heartbeat fresh, so other nodes can tell it is alive.
//
// A node id is held like a lease by one process at a time. Each process
// draws a random instance id at start and writes it into the node's row
// when it registers; every heartbeat is fenced by it. What must stay true:
//   - a process registers an id only if nobody holds it (no row, an empty
//     instance, a holder that has exited) or its holder has not been seen
//     for node.suspectAfter (it is not alive); the claim is one
//     compare-and-swap on what it read (model.Store.ClaimNode), so of two
//     processes starting at once one wins and the other is refused;
//   - a process whose heartbeat finds another instance in the row has been
//     taken over: Run returns a *NodeHeldError and the process must stop
//     its runners at once (cm serve shuts down).
type Membership struct {
	node     model.NodeID
	addr     string
	version  string
	instance string
	host     string
	pid      int
	sole     bool
	store    *model.Store
	params   *params.Service
	interval time.Duration
	log      *zap.Logger
}

// NewMembership builds the membership of this node; addr is its API base
// URL, the one other nodes call. It draws the process's instance id.
func NewMembership(node model.NodeID, heartbeat time.Duration, store *model.Store, addr, version string, log *zap.Logger) *Membership {
	host, _ := os.Hostname()
	m := &Membership{node: node, addr: addr, version: version, instance: newInstanceID(), host: host, pid: os.Getpid(),
		store: store, params: params.New(store), interval: heartbeat}
	m.log = log.Named("membership").With(zap.String("instance", m.instance))
	return m
}

func newInstanceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Instance is this process's instance id.
func (m *Membership) Instance() string { return m.instance }

// SoleProcess tells the membership that no other process can be using the
// store (cm serve holds the lock of its SQLite file), so whoever holds the
// id in it is a process that has exited.
func (m *Membership) SoleProcess() { m.sole = true }

// NodeHeldError says another process holds this node's id: at start, a
// live holder (the node refuses to start); while running, a process that
// took the id over (the node must stop).
type NodeHeldError struct {
	Node   model.NodeID
	Holder model.Node
	// Age is how long before the check the holder was last seen.
	Age time.Duration
	// Window is node.suspectAfter, how long a holder's heartbeat keeps the id.
	Window    time.Duration
	TakenOver bool
}

func (e *NodeHeldError) Error() string {
	if e.TakenOver {
		return fmt.Sprintf("node id %s was taken over by another process (%s); this process stops its runners and exits, the other one runs the node's tasks now",
			e.Node, e.Holder.Holder())
	}
	return fmt.Sprintf("node id %s is held by another live cm process (%s), last seen %s ago: "+
		"stop that process, or give this one its own id with --advertise; the id is free once its holder has not been seen for node.suspectAfter (%s)",
		e.Node, e.Holder.Holder(), e.Age.Round(time.Millisecond), e.Window)
}

// Unwrap makes the error a model.ErrConflict.
func (e *NodeHeldError) Unwrap() error { return model.ErrConflict }

// row is this process's registration at now.
func (m *Membership) row(now time.Time) *model.Node {
	return &model.Node{ID: m.node, Addr: m.addr, Version: m.version, StartedAt: now, SeenAt: now,
		Instance: m.instance, Host: m.host, PID: m.pid}
}

// Register takes the node id for this process, or refuses with a
// *NodeHeldError while another live process holds it.
func (m *Membership) Register(ctx context.Context) error {
	set, err := m.params.Snapshot(ctx)
	if err != nil {
		return err
	}
	window := LivenessOf(set).SuspectAfter
	for range 3 {
		now := time.Now().UTC()
		seen, err := m.store.GetNode(ctx, m.node)
		var staleBefore time.Time
		why := "new id"
		switch {
		case errors.Is(err, model.ErrNotFound):
			seen = nil
		case err != nil:
			return err
		case seen.Instance == "":
			why = "released"
		case seen.Instance == m.instance:
			why = "already ours"
		case m.sole:
			why = "the store is this process's alone"
		case m.exited(seen):
			why = "its holder has exited"
		default:
			staleBefore = now.Add(-window)
			if !seen.SeenAt.Before(staleBefore) {
				return &NodeHeldError{Node: m.node, Holder: *seen, Age: now.Sub(seen.SeenAt), Window: window}
			}
			why = "its holder has not been seen for node.suspectAfter"
		}
		err = m.store.ClaimNode(ctx, m.row(now), seen, staleBefore)
		if errors.Is(err, model.ErrConflict) {
			continue // the row changed since we read it: judge it again
		}
		if err != nil {
			return err
		}
		fields := []zap.Field{zap.String("addr", m.addr), zap.String("why", why)}
		if seen != nil && seen.Instance != "" && seen.Instance != m.instance {
			fields = append(fields, zap.String("previous_holder", seen.Holder()), zap.Time("previous_seen", seen.SeenAt))
		}
		m.log.Info("holding the node id", fields...)
		return nil
	}
	return fmt.Errorf("registering node %s: its row kept changing: %w", m.node, model.ErrConflict)
}

// exited reports whether n's holder is a process of this host that no
// longer exists. A pid equal to ours is no proof (a restarted container
// reuses pid 1; two pid namespaces can share a host name), nor is a
// process that exists (it may be another program that reused the pid):
// then the heartbeat's age decides.
func (m *Membership) exited(n *model.Node) bool {
	if m.host == "" || n.Host != m.host || n.PID <= 0 || n.PID == m.pid {
		return false
	}
	return errors.Is(syscall.Kill(n.PID, 0), syscall.ESRCH)
}

// Run heartbeats until ctx is done. It returns a *NodeHeldError as soon as
// a heartbeat finds the id taken over by another process: the caller must
// stop this node's runners then. Other errors are logged and retried.
func (m *Membership) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := m.store.TouchNode(ctx, m.node, m.instance, time.Now())
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, model.ErrConflict):
			held := &NodeHeldError{Node: m.node, TakenOver: true}
			n, gerr := m.store.GetNode(ctx, m.node)
			if gerr != nil {
				n = &model.Node{Instance: "unknown (" + gerr.Error() + ")"}
			}
			held.Holder = *n
			return held
		case errors.Is(err, model.ErrNotFound):
			// The row was deleted: register afresh. If another process
			// inserted it first, the next heartbeat says so.
			m.log.Warn("node row gone; registering again")
			if err := m.store.ClaimNode(ctx, m.row(time.Now().UTC()), nil, time.Time{}); err != nil && ctx.Err() == nil {
				m.log.Warn("re-registering node", zap.Error(err))
			}
		default:
			m.log.Warn("node heartbeat", zap.Error(err))
		}
	}
}

// Release gives the id up after this node has stopped its runners, so the
// next process to start with it need not wait for the heartbeat to age. A
// no-op if another process has taken the id over.
func (m *Membership) Release(ctx context.Context) error {
	return m.store.ReleaseNode(ctx, m.node, m.instance)
}
