package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connector-manager/cm/internal/metrics"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/view"
)

// taskSampler lists this node's tasks for a scrape through the read side,
// so the lag is the delay detail and health show.
func taskSampler(node model.NodeID, reads *view.Service) metrics.Sampler {
	return func(ctx context.Context) ([]metrics.TaskSample, error) {
		var out []metrics.TaskSample
		for page := 1; ; page++ {
			views, total, err := reads.List(ctx, view.ListQuery{Node: string(node), Page: page, Size: view.MaxPageSize})
			if err != nil {
				return nil, err
			}
			now := time.Now()
			for _, v := range views {
				s := metrics.TaskSample{Task: v.TaskName, Component: v.Component, State: v.State}
				if v.Delay != nil {
					lag := float64(max(0, *v.Delay))
					s.Lag = &lag
				}
				var last time.Time
				for _, p := range v.Checkpoint {
					if p.UpdatedAt.After(last) {
						last = p.UpdatedAt
					}
				}
				if !last.IsZero() {
					age := max(0, now.Sub(last).Seconds())
					s.CheckpointAge = &age
				}
				out = append(out, s)
			}
			if len(views) == 0 || int64(page*view.MaxPageSize) >= total {
				return out, nil
			}
		}
	}
}

// ready says whether the node may take traffic (GET /readyz): the store
// answers with every migration applied, and the nodes table says this
// process holds the node id.
func (n *Node) ready(ctx context.Context) error {
	if err := n.Store.Ready(ctx); err != nil {
		return err
	}
	row, err := n.Store.GetNode(ctx, n.cfg.Node)
	if errors.Is(err, model.ErrNotFound) {
		return fmt.Errorf("node %s is not registered", n.cfg.Node)
	}
	if err != nil {
		return fmt.Errorf("reading this node's row: %w", err)
	}
	if row.Instance != n.Membership.Instance() {
		return fmt.Errorf("node %s is not held by this process (instance %s) but by %q", n.cfg.Node, n.Membership.Instance(), row.Instance)
	}
	return nil
}
