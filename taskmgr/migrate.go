package taskmgr

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

// A migrate is journaled on the task row like a pullback. The operator's
// call (or the node-liveness job under ha.enable) picks a live target and
// writes the journal; the reconciler of whichever node owns the task at
// each step advances it, every step one compare-and-swap:
//
//	stopping (owner: old node) --(runner gone, checkpoint flushed)-->
//	    version+1, node=target, progress rebound to the new version,
//	    desired as before                                  --> starting
//	starting (owner: target)   --(RUNNING + first heartbeat)--> done
//	starting                   --(EXCEPTION)--> rolled back: version+1 on
//	    the old node if it is alive, else left EXCEPTION; audit failure
//
// When the old node is dead there is nothing to stop: the call rebinds at
// once, and the version bump fences any write the old incarnation might
// still attempt. A task that was not running is rebound at once too.
const (
	opMigrate    = "migrate"
	stepStarting = "starting"
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
		m.auditFailure(ctx, call, opMigrate, componentOf(ref), nil, err, started)
		return "", err
	}
	to, err := m.pickNode(ctx, cur.Node, target)
	if err != nil {
		m.auditFailure(ctx, call, opMigrate, cur.Component, cur, err, started)
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
	var j *journal
	var fenced bool
	return m.mutate(ctx, call, opMigrate, ref, func(t *model.Task) error {
		if t.State == model.StateDeleted {
			return &model.IllegalTransitionError{From: t.State, Op: opMigrate}
		}
		if t.Node == to {
			return fmt.Errorf("%w: %s already runs on %s", model.ErrInvalidArgument, t.Component, to)
		}
		fenced = m.nodes.State(ctx, t.Node) == cluster.NodeDead
		j = &journal{Op: opMigrate, From: t.Node, To: to, DesiredBefore: t.Desired, VersionBefore: t.Version, Started: m.now().UTC()}
		if t.State.Active() && !fenced {
			j.Step = stepStopping
			t.Journal = j.encode()
			return transition(t, model.EventStop)
		}
		return rebindTo(t, j)
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		a.Detail = jsonString(map[string]any{"from": j.From, "to": j.To, "versionBefore": j.VersionBefore, "oldNodeDead": fenced})
		if j.Step == stepStopping {
			return nil
		}
		if err := tx.RebindProgress(ctx, t.Component, t.Version); err != nil {
			return err
		}
		return tx.StartIncarnation(ctx, t, opMigrate)
	})
}

// rebindTo makes t the next incarnation on j.To: version + 1 and, if the
// operator wanted it running, STARTING there. The journal moves to step
// starting, or is cleared when nothing has to start.
func rebindTo(t *model.Task, j *journal) error {
	if t.Version >= model.MaxVersion {
		return fmt.Errorf("%w: %s has reached the last version", model.ErrInvalidArgument, t.Component)
	}
	t.Version++
	t.Node = j.To
	if j.DesiredBefore == model.DesiredRunning && t.State != model.StateFinished {
		t.Desired, t.State = model.DesiredRunning, model.StateStarting
		t.SetErrors(nil)
		j.Step = stepStarting
		t.Journal = j.encode()
		return nil
	}
	t.Desired = j.DesiredBefore
	if t.State.Active() {
		// The old node was dead: whatever it flushed is the checkpoint.
		t.State = model.StateStopped
	}
	t.Journal = ""
	return nil
}

// recordAuditID stores the operator's audit row id in a journal written by
// the same transaction, so whoever completes the journal closes that row.
func recordAuditID(ctx context.Context, tx *model.Store, t *model.Task, id int64) error {
	if t.Journal == "" {
		return nil
	}
	j, err := decodeJournal(t.Journal)
	if err != nil || j.AuditID != 0 {
		return err
	}
	j.AuditID = id
	t.Journal = j.encode()
	return tx.UpdateTask(ctx, t)
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

// advanceMigrate moves a migrate one step, if it can; see the diagram above.
func (r *Reconciler) advanceMigrate(ctx context.Context, t *model.Task, j *journal) bool {
	switch j.Step {
	case stepStopping:
		if t.State.Active() {
			return false
		}
		return r.migrateRebind(ctx, t, j)
	case stepStarting:
		switch t.State {
		case model.StateRunning:
			if !r.beatSince(ctx, t) {
				return false
			}
			next := *t
			next.Journal = ""
			return r.writeIntent(ctx, t, &next, "migrate:done", finishAudit(ctx, j, model.ResultSuccess, "", ""))
		case model.StateException:
			return r.migrateRollback(ctx, t, j, fmt.Errorf("the new incarnation failed on %s: %s", j.To, lastError(t)))
		case model.StateFinished, model.StateStopped, model.StateCreated, model.StateDeleted:
			next := *t
			next.Journal = ""
			return r.writeIntent(ctx, t, &next, "migrate:done", finishAudit(ctx, j, model.ResultSuccess, "", ""))
		case model.StateStarting, model.StateStopping:
			return false
		}
	}
	return false
}

// migrateRebind is the middle step, run once the old incarnation is gone.
// The node-liveness job runs it too for a task whose old node died
// mid-stop. If the target is no longer alive the migrate is rolled back.
func (r *Reconciler) migrateRebind(ctx context.Context, t *model.Task, j *journal) bool {
	if st := r.nodes.State(ctx, j.To); st != cluster.NodeAlive {
		next := *t
		next.Journal = ""
		restoreDesired(&next, j)
		return r.writeIntent(ctx, t, &next, "migrate:rollback",
			finishAudit(ctx, j, model.ResultFailure, "MIGRATE_ROLLED_BACK", fmt.Sprintf("target %s is %s", j.To, st)))
	}
	next := *t
	if err := rebindTo(&next, j); err != nil {
		next = *t
		next.Journal = ""
		restoreDesired(&next, j)
		return r.writeIntent(ctx, t, &next, "migrate:rollback", finishAudit(ctx, j, model.ResultFailure, "MIGRATE_ROLLED_BACK", err.Error()))
	}
	extra := func(tx *model.Store) error {
		if err := tx.RebindProgress(ctx, next.Component, next.Version); err != nil {
			return err
		}
		if err := tx.StartIncarnation(ctx, &next, opMigrate); err != nil {
			return err
		}
		if next.Journal == "" {
			return finishAudit(ctx, j, model.ResultSuccess, "", "")(tx)
		}
		return nil
	}
	if !r.writeIntent(ctx, t, &next, "migrate:rebind", extra) {
		return false
	}
	r.wakeNode(ctx, next.Node)
	return true
}

// migrateRollback undoes a migrate whose new incarnation failed: back to
// the old node as one more incarnation if that node is alive, else the
// task stays in EXCEPTION on the target. Either way the audit says so.
func (r *Reconciler) migrateRollback(ctx context.Context, t *model.Task, j *journal, cause error) bool {
	r.log.Warn("rolling back migrate", zap.String(logTask, t.Name().String()), zap.Error(cause))
	next := *t
	next.Journal = ""
	var extra func(tx *model.Store) error
	msg := cause.Error()
	if r.nodes.State(ctx, j.From) == cluster.NodeAlive && next.Version < model.MaxVersion {
		next.Version++
		next.Node = j.From
		next.State = model.StateStopped
		restoreDesired(&next, j)
		msg += "; moved back to " + string(j.From)
		extra = func(tx *model.Store) error {
			if err := tx.RebindProgress(ctx, next.Component, next.Version); err != nil {
				return err
			}
			return tx.StartIncarnation(ctx, &next, "migrate-rollback")
		}
	} else {
		msg += "; the old node " + string(j.From) + " is not alive, so the task stays here"
	}
	fin := finishAudit(ctx, j, model.ResultFailure, "MIGRATE_ROLLED_BACK", msg)
	wrote := r.writeIntent(ctx, t, &next, "migrate:rollback", func(tx *model.Store) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return fin(tx)
	})
	if wrote {
		r.wakeNode(ctx, next.Node)
	}
	return wrote
}

// restoreDesired puts back what the operator had asked before the
// operation: a task that was meant to run is resumed.
func restoreDesired(t *model.Task, j *journal) {
	if j.DesiredBefore == model.DesiredRunning && !t.State.Active() && t.State != model.StateFinished {
		if err := transition(t, model.EventResume); err == nil {
			return
		}
	}
	t.Desired = j.DesiredBefore
}

// beatSince reports whether the task's current incarnation has sent a
// heartbeat that shows it survived its start (see below).
func (r *Reconciler) beatSince(ctx context.Context, t *model.Task) bool {
	hbs, err := r.store.Heartbeats(ctx, []string{t.Component})
	if err != nil {
		return false
	}
	hb, ok := hbs[t.Component]
	// The committer beats once when the runner registers, before the
	// connector has done anything; only a later beat, half a heartbeat
	// period after RUNNING, shows the runner survived its start.
	return ok && hb.Version == t.Version && !hb.At.Before(t.UpdatedAt.Add(r.cfg.Committer.Heartbeat/2))
}

func lastError(t *model.Task) string {
	errs := t.Errors()
	if len(errs) == 0 {
		return "no error detail"
	}
	e := errs[len(errs)-1]
	return e.Code + ": " + e.Message
}
