package taskmgr

import (
	"context"
	"time"

	"go.uber.org/zap"

	"cm/model"
)

// Membership registers this node in the shared store and keeps its
// heartbeat fresh, so other nodes can tell it is alive.
type Membership struct {
	node     model.NodeID
	addr     string
	version  string
	store    *model.Store
	interval time.Duration
	log      *zap.Logger
}

// NewMembership builds the membership of this node; addr is its API base URL.
func NewMembership(cfg Config, store *model.Store, addr, version string, log *zap.Logger) *Membership {
	return &Membership{node: cfg.Node, addr: addr, version: version, store: store, interval: cfg.NodeHeartbeat, log: log.Named("membership")}
}

// Register records this node as alive now.
func (m *Membership) Register(ctx context.Context) error {
	now := time.Now().UTC()
	return m.store.UpsertNode(ctx, &model.Node{ID: m.node, Addr: m.addr, Version: m.version, StartedAt: now, SeenAt: now})
}

// Run heartbeats until ctx is done.
func (m *Membership) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.store.TouchNode(ctx, m.node, time.Now()); err != nil && ctx.Err() == nil {
				m.log.Warn("node heartbeat", zap.Error(err))
				if err := m.Register(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("re-registering node", zap.Error(err))
				}
			}
		}
	}
}
