package job

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/params"
)

type nopWaker struct{}

func (nopWaker) Wake(context.Context, model.NodeID, ...string) {}

// TestTaskLivenessSparesARestartedNode: a RUNNING task whose heartbeat is
// older than staleAfter fails with HEARTBEAT_STALE, unless its node started
// within staleAfter (it is still starting the runners of its tasks after a
// restart, a burst at a time); the same heartbeat on a node that started
// long ago is stale.
func TestTaskLivenessSparesARestartedNode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		dsn, err := model.ParseDSN(url)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		store, err := model.Open(ctx, dsn, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		ps := params.New(store)
		if err := ps.Update(ctx, "test", "", params.HeartbeatStaleAfter, "30s"); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		nodes := map[model.NodeID]time.Time{"127.0.0.1-1001": now.Add(-5 * time.Second), "127.0.0.1-1002": now.Add(-time.Hour)}
		comps := map[model.NodeID]string{"127.0.0.1-1001": "p_r-incr_trans-1-0", "127.0.0.1-1002": "p_o-incr_trans-1-0"}
		for id, started := range nodes {
			if err := store.UpsertNode(ctx, &model.Node{ID: id, Addr: "http://127.0.0.1:1", StartedAt: started, SeenAt: now}); err != nil {
				t.Fatal(err)
			}
			comp := comps[id]
			tk := &model.Task{Component: comp, Project: comp[:3], Type: model.TypeIncr, Node: id, Version: 1,
				Desired: model.DesiredRunning, State: model.StateRunning, Config: "{}"}
			if err := store.CreateTask(ctx, tk); err != nil {
				t.Fatal(err)
			}
			if err := store.ClaimHeartbeat(ctx, comp, 1, id); err != nil {
				t.Fatal(err)
			}
			// The last heartbeat of the process before the restart.
			if _, err := store.SaveProgress(ctx, []model.Progress{{Component: comp, Version: 1, Beat: now.Add(-2 * time.Minute)}}); err != nil {
				t.Fatal(err)
			}
		}
		// A task beating now, on the node that started long ago: not stale.
		fresh := &model.Task{Component: "p_f-incr_trans-1-0", Project: "p_f", Type: model.TypeIncr, Node: "127.0.0.1-1002", Version: 1,
			Desired: model.DesiredRunning, State: model.StateRunning, Config: "{}"}
		if err := store.CreateTask(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if err := store.ClaimHeartbeat(ctx, fresh.Component, 1, fresh.Node); err != nil {
			t.Fatal(err)
		}
		j := &taskLiveness{store: store, nodes: cluster.NewNodes("127.0.0.1-1001", store, ps),
			w: &writer{store: store, changes: cluster.NewChanges(), waker: nopWaker{}, log: zap.NewNop()}}
		set, err := ps.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		summary, err := j.Run(ctx, set)
		if err != nil {
			t.Fatal(err)
		}
		restarted, _ := store.GetTask(ctx, comps["127.0.0.1-1001"])
		old, _ := store.GetTask(ctx, comps["127.0.0.1-1002"])
		beating, _ := store.GetTask(ctx, fresh.Component)
		if restarted.State != model.StateRunning || old.State != model.StateException || old.LastError() == "" || beating.State != model.StateRunning {
			t.Fatalf("%s: the restarted node's task is %s, the other's %s (%s), the beating one %s", summary, restarted.State, old.State, old.LastError(), beating.State)
		}
	})
}
