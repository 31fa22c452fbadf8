package cmtest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/connector-manager/cm/model"
)

// Statements counts the SQL statements a store ran, by gorm operation
// (create, query, update, delete, row, raw) and by operation and table.
// Begin and commit are not statements gorm's callbacks see and are not
// counted.
type Statements struct {
	ByOp    map[string]int // "query" -> 4
	ByTable map[string]int // "query tasks" -> 2; raw SQL has table ""
}

// Total is the number of statements.
func (s Statements) Total() int {
	n := 0
	for _, c := range s.ByOp {
		n += c
	}
	return n
}

// String lists the counts, e.g. "5 (query 4, update 1; query tasks 2, ...)".
func (s Statements) String() string {
	list := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%d (%s; %s)", s.Total(), list(s.ByOp), list(s.ByTable))
}

// statementCounter is the observer of a test node's store: it counts each
// statement and hands everything on to the node's own observer (its
// metrics).
type statementCounter struct {
	next model.Observer

	mu      sync.Mutex
	byOp    map[string]int
	byTable map[string]int
}

func countStatements(store *model.Store, next model.Observer) (*statementCounter, error) {
	c := &statementCounter{next: next, byOp: map[string]int{}, byTable: map[string]int{}}
	if err := store.Observe(c); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *statementCounter) Query(op, table string, took time.Duration) {
	c.mu.Lock()
	c.byOp[op]++
	c.byTable[op+" "+table]++
	c.mu.Unlock()
	c.next.Query(op, table, took)
}

func (c *statementCounter) Transition(from, to model.State) { c.next.Transition(from, to) }

func (c *statementCounter) snapshot() Statements {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Statements{ByOp: make(map[string]int, len(c.byOp)), ByTable: make(map[string]int, len(c.byTable))}
	for k, v := range c.byOp {
		s.ByOp[k] = v
	}
	for k, v := range c.byTable {
		s.ByTable[k] = v
	}
	return s
}

// CountStatements runs fn and returns the statements the node's store ran
// while it did: fn's own and whatever else the node did in that window (the
// runner, the reconciler, the committer, the heartbeats), so a test that
// budgets a call keeps the node's periodic work out of the window (long
// intervals through Options.Tune).
func (n *Node) CountStatements(fn func()) Statements {
	before := n.counter.snapshot()
	fn()
	after := n.counter.snapshot()
	d := Statements{ByOp: map[string]int{}, ByTable: map[string]int{}}
	for k, v := range after.ByOp {
		if v -= before.ByOp[k]; v != 0 {
			d.ByOp[k] = v
		}
	}
	for k, v := range after.ByTable {
		if v -= before.ByTable[k]; v != 0 {
			d.ByTable[k] = v
		}
	}
	return d
}
