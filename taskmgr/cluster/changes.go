package cluster

import (
	"sync"

	"github.com/connector-manager/cm/model"
)

// Changes wakes waiters when this node writes a task's row: the operator
// calls waiting for a task to converge, woken by the local reconciler's and
// jobs' writes of that task. A waiter watches one component, so a write
// wakes only the calls waiting on its task. Writes of other nodes reach a
// waiter only by its own reads (taskmgr's waits poll a task another node
// owns, and poll slowly as a safety net otherwise).
//
// A writer that has the row it committed publishes it (Publish): the
// waiters and the reconciler take it from here instead of reading it
// again. The last rows of up to keptRows tasks are kept; a write announced
// without its row (Broadcast) drops the row kept for that task, so what is
// kept is never older than a write this node announced.
type Changes struct {
	mu   sync.Mutex
	by   map[string]chan struct{}
	rows map[string]model.Task
	// order lists the components of rows, oldest first.
	order []string
}

// keptRows bounds the rows Changes keeps.
const keptRows = 4096

// NewChanges returns the change notifier a node's use cases and runtime share.
func NewChanges() *Changes {
	return &Changes{by: map[string]chan struct{}{}, rows: map[string]model.Task{}}
}

// ChangedOf returns a channel closed at the next Broadcast or Publish that
// names component (or a Broadcast that names none).
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

// Latest returns the last row of component published on this node, if it
// is still kept and no write without its row was announced since.
func (c *Changes) Latest(component string) (model.Task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.rows[component]
	return t, ok
}

// Publish keeps t, a row just committed, and wakes the waiters of its
// component.
func (c *Changes) Publish(t *model.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.rows[t.Component]; !ok || cur.Revision <= t.Revision {
		if !ok {
			c.order = append(c.order, t.Component)
			if len(c.order) > keptRows {
				delete(c.rows, c.order[0])
				c.order = append(c.order[:0:0], c.order[1:]...)
			}
		}
		c.rows[t.Component] = *t
	}
	c.wake(t.Component)
}

// Broadcast wakes the waiters of the components written; with no
// component it wakes every waiter. The rows kept for
// those components are dropped: the write's own row is not known.
func (c *Changes) Broadcast(components ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(components) == 0 {
		for comp, ch := range c.by {
			close(ch)
			delete(c.by, comp)
		}
		clear(c.rows)
		c.order = c.order[:0]
		return
	}
	for _, comp := range components {
		delete(c.rows, comp) // its place in order is skipped when it comes up
		c.wake(comp)
	}
}

// wake closes the channels of component's waiters.
func (c *Changes) wake(component string) {
	if ch, ok := c.by[component]; ok {
		close(ch)
		delete(c.by, component)
	}
}
