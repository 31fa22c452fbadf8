package cluster

import (
	"fmt"
	"testing"

	"github.com/connector-manager/cm/model"
)

// TestChangesKeepsPublishedRows: a published row is kept and wakes the
// waiters of its task only; an older row never replaces a newer one; a
// write announced without its row drops the kept one; at most keptRows
// rows are kept.
func TestChangesKeepsPublishedRows(t *testing.T) {
	c := NewChanges()
	a, b := c.ChangedOf("a-incr_trans-1-0"), c.ChangedOf("b-incr_trans-1-0")
	c.Publish(&model.Task{Component: "a-incr_trans-1-0", Revision: 3, State: model.StateStopping})
	select {
	case <-a:
	default:
		t.Fatal("publishing a's row did not wake a's waiter")
	}
	select {
	case <-b:
		t.Fatal("publishing a's row woke b's waiter")
	default:
	}
	c.Publish(&model.Task{Component: "a-incr_trans-1-0", Revision: 2, State: model.StateRunning})
	if got, ok := c.Latest("a-incr_trans-1-0"); !ok || got.Revision != 3 || got.State != model.StateStopping {
		t.Fatalf("Latest = %+v %v; an older row replaced a newer one", got, ok)
	}
	c.Broadcast("a-incr_trans-1-0")
	if _, ok := c.Latest("a-incr_trans-1-0"); ok {
		t.Fatal("a write announced without its row left the older row kept")
	}
	for i := 0; i < keptRows+10; i++ {
		c.Publish(&model.Task{Component: fmt.Sprintf("p%d-incr_trans-1-0", i), Revision: 1})
	}
	if len(c.rows) > keptRows {
		t.Fatalf("%d rows kept, at most %d", len(c.rows), keptRows)
	}
	if _, ok := c.Latest(fmt.Sprintf("p%d-incr_trans-1-0", keptRows+9)); !ok {
		t.Fatal("the newest row is not kept")
	}
	if _, ok := c.Latest("p0-incr_trans-1-0"); ok {
		t.Fatal("the oldest row is still kept past the bound")
	}
}
