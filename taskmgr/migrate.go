package taskmgr

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/journal"
)

// MigrateTarget picks where a task moves: the live node on IP, or the exact
// node; neither picks the least loaded other live node.
type MigrateTarget struct {
	IP   string
	Node string
}

// Migrate moves a task to another live node as a new incarnation (version +
// 1) that continues from the durable checkpoint, and answers the new name
// once it runs there and has sent its first heartbeat.
func (m *Manager) Migrate(ctx context.Context, call Call, ref string, target MigrateTarget, timeout time.Duration) (string, error) {
	started := m.now()
	cur, err := m.load(ctx, ref, true)
	if err != nil {
		m.auditFailure(ctx, call, journal.OpMigrate, componentOf(ref), nil, err, started)
		return "", err
	}
	to, err := m.pickNode(ctx, cur.Node, target)
	if err != nil {
		m.auditFailure(ctx, call, journal.OpMigrate, cur.Component, cur, err, started)
		return "", err
	}
	t, audit, err := m.startMigrate(ctx, call, ref, to)
	if err != nil {
		return "", err
	}
	if t.Journal == "" {
		m.finish(ctx, audit, nil, started)
		return t.Name().String(), nil
	}
	return m.waitJournal(ctx, t.Component, audit.ID, pick(timeout, m.cfg.StopTimeout+m.cfg.StartTimeout))
}

// startMigrate writes the migrate journal of ref towards to. It does not wait.
func (m *Manager) startMigrate(ctx context.Context, call Call, ref string, to model.NodeID) (*model.Task, *model.Audit, error) {
	var j *journal.Journal
	var fenced bool
	return m.mutate(ctx, call, journal.OpMigrate, ref, func(t *model.Task) error {
		if t.State == model.StateDeleted {
			return &model.IllegalTransitionError{From: t.State, Op: journal.OpMigrate}
		}
		if t.Node == to {
			return fmt.Errorf("%w: %s already runs on %s", model.ErrInvalidArgument, t.Component, to)
		}
		fenced = m.nodes.State(ctx, t.Node) == cluster.NodeDead
		j = &journal.Journal{Op: journal.OpMigrate, From: t.Node, To: to, DesiredBefore: t.Desired, VersionBefore: t.Version, Started: m.now().UTC()}
		if t.State.Active() && !fenced {
			j.Step = journal.StepStopping
			t.Journal = j.Encode()
			return transition(t, model.EventStop)
		}
		return journal.RebindTo(t, j)
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		a.Detail = jsonString(map[string]any{"from": j.From, "to": j.To, "versionBefore": j.VersionBefore, "oldNodeDead": fenced})
		if j.Step == journal.StepStopping {
			return nil
		}
		if err := tx.RebindProgress(ctx, t.Component, t.Version); err != nil {
			return err
		}
		return tx.StartIncarnation(ctx, t, journal.OpMigrate)
	})
}

// stampAuditID names the operator's audit row in a journal the same call
// writes, so whoever completes the journal records how the call ended.
func stampAuditID(t *model.Task, id int64) error {
	if t.Journal == "" {
		return nil
	}
	j, err := journal.Decode(t.Journal)
	if err != nil {
		return err
	}
	// The journal is this call's own (mutate refuses a task with one in
	// flight); a transaction run again stamps its new row's id.
	j.AuditID = id
	t.Journal = j.Encode()
	return nil
}

// pickNode chooses the target of a migrate away from from.
func (m *Manager) pickNode(ctx context.Context, from model.NodeID, target MigrateTarget) (model.NodeID, error) {
	if target.Node != "" {
		id, err := model.ParseNodeID(target.Node)
		if err != nil {
			return "", err
		}
		if id == from {
			return "", fmt.Errorf("%w: the task already runs on %s", model.ErrInvalidArgument, id)
		}
		return id, m.nodes.CheckLive(ctx, id)
	}
	nodes, err := m.liveNodes(ctx)
	if err != nil {
		return "", err
	}
	var cands []nodeLoad
	for _, n := range nodes {
		if n.id == from || (target.IP != "" && n.id.Host() != target.IP) {
			continue
		}
		cands = append(cands, n)
	}
	if len(cands) == 0 {
		if target.IP != "" {
			return "", fmt.Errorf("%w: no live node on %s other than %s", cluster.ErrNodeNotFound, target.IP, from)
		}
		return "", fmt.Errorf("%w: no live node other than %s", cluster.ErrNodeNotFound, from)
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].load != cands[j].load {
			return cands[i].load < cands[j].load
		}
		return cands[i].id < cands[j].id
	})
	return cands[0].id, nil
}

type nodeLoad struct {
	id   model.NodeID
	load int64
}

// liveNodes lists the alive nodes with how many (non-deleted) tasks each owns.
func (m *Manager) liveNodes(ctx context.Context) ([]nodeLoad, error) {
	nodes, err := m.nodes.Alive(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := m.store.CountTasks(ctx)
	if err != nil {
		return nil, err
	}
	load := map[model.NodeID]int64{}
	for _, c := range counts {
		load[c.Node] += c.N
	}
	out := make([]nodeLoad, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, nodeLoad{n.ID, load[n.ID]})
	}
	return out, nil
}
