package cluster

import "sync"

// Changes wakes waiters when this node writes a task's row: the operator
// calls waiting for a task to converge, woken by the local reconciler's
// writes. Waiters also poll the store, so writes of other nodes are seen
// too.
type Changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewChanges returns the change notifier a node's use cases and runtime share.
func NewChanges() *Changes { return &Changes{ch: make(chan struct{})} }

// Changed returns a channel closed at the next Broadcast.
func (c *Changes) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// Broadcast wakes every waiter of Changed.
func (c *Changes) Broadcast() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}
