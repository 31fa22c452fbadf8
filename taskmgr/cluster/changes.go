package cluster

import "sync"

// Changes wakes waiters when this node writes a task's row: the operator
// calls waiting for a task to converge, woken by the local reconciler's and
// jobs' writes of that task. A waiter watches one component, so a write
// wakes only the calls waiting on its task. Writes of other nodes reach a
// waiter only by its own reads (taskmgr's waits poll a task another node
// owns, and poll slowly as a safety net otherwise).
type Changes struct {
	mu  sync.Mutex
	all chan struct{}
	by  map[string]chan struct{}
}

// NewChanges returns the change notifier a node's use cases and runtime share.
func NewChanges() *Changes {
	return &Changes{all: make(chan struct{}), by: map[string]chan struct{}{}}
}

// Changed returns a channel closed at the next Broadcast of any task.
func (c *Changes) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

// ChangedOf returns a channel closed at the next Broadcast that names
// component (or names none).
func (c *Changes) ChangedOf(component string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.by[component]
	if !ok {
		ch = make(chan struct{})
		c.by[component] = ch
	}
	return ch
}

// Broadcast wakes the waiters of the components written, and those of
// Changed; with no component it wakes every waiter.
func (c *Changes) Broadcast(components ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.all)
	c.all = make(chan struct{})
	if len(components) == 0 {
		for comp, ch := range c.by {
			close(ch)
			delete(c.by, comp)
		}
		return
	}
	for _, comp := range components {
		if ch, ok := c.by[comp]; ok {
			close(ch)
			delete(c.by, comp)
		}
	}
}
