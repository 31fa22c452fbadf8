package taskmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/connector"
	"github.com/connector-manager/cm/taskmgr/params"
)

// Config tunes the operator use cases of this node.
type Config struct {
	// Node is this node's id: new tasks are created on it unless the call
	// names another node.
	Node model.NodeID
	// StopTimeout bounds how long stop and delete wait for a runner to exit.
	StopTimeout time.Duration
	// StartTimeout bounds how long create and resume wait for RUNNING.
	StartTimeout time.Duration
	// Failpoint, when set, kills the process right after the pullback call
	// commits. For crash tests only.
	Failpoint failpoint.Armed
}

// DefaultConfig returns the defaults for node.
func DefaultConfig(node model.NodeID) Config {
	return Config{Node: node, StopTimeout: 30 * time.Second, StartTimeout: 30 * time.Second}
}

// Validate refuses configs the use cases cannot work with.
func (c Config) Validate() error {
	if _, err := model.ParseNodeID(string(c.Node)); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := c.Failpoint.Validate(); err != nil {
		return err
	}
	if c.StopTimeout <= 0 || c.StartTimeout <= 0 {
		return fmt.Errorf("%w: the stop and start timeouts must be positive", model.ErrInvalidArgument)
	}
	return nil
}

// MaxWait caps the timeout a caller may ask for.
const MaxWait = 10 * time.Minute

// Call describes who makes an operator call, for the audit log.
type Call struct {
	Actor     string
	RequestID string
	// Params are the call's parameters as given; secrets are masked before
	// they are stored.
	Params map[string]string
	// again is set by the use cases whose change is a transition or a
	// config edit, with no I/O (stop, pause, delete, a plain resume, an
	// update): when one loses its compare-and-swap to a concurrent call
	// that asked for the same (two identical stops at once), it goes on
	// from the new row instead of failing busy.
	again bool
}

// Waker tells a task's owning node to reconcile now.
type Waker interface {
	Wake(ctx context.Context, node model.NodeID, components ...string)
}

// Manager carries out operator calls: it validates, writes the desired state
// with a compare-and-swap and an audit row in one transaction, wakes the
// owning node, and waits until the task converges.
type Manager struct {
	cfg      Config
	store    *model.Store
	registry *connector.Registry
	waker    Waker
	params   *params.Service
	nodes    *cluster.Nodes
	changes  *cluster.Changes
	log      *zap.Logger
	now      func() time.Time
	errCode  func(error) string
	refusals *model.Refusals
	// replacing takes config replaces of one task in turn (serial.go).
	replacing serial
}

// NewManager builds a manager. changes is shared with the local
// reconciler so waits wake on local state writes; nodes answers whether a
// node is alive.
func NewManager(cfg Config, store *model.Store, registry *connector.Registry, ps *params.Service, nodes *cluster.Nodes, waker Waker,
	changes *cluster.Changes, log *zap.Logger) *Manager {
	return &Manager{cfg: cfg, store: store, registry: registry, waker: waker, params: ps, nodes: nodes,
		changes: changes, log: log.Named("taskmgr"), now: time.Now, errCode: func(error) string { return "ERROR" }}
}

// SetErrorCoder sets how refused calls are coded in the audit log, so the
// audit shows the same errCode the API answers with.
func (m *Manager) SetErrorCoder(f func(error) string) { m.errCode = f }

// SetRefusals coalesces the audit rows of refused calls through r, so that
// a storm of refusals writes a bounded number of rows.
func (m *Manager) SetRefusals(r *model.Refusals) { m.refusals = r }

// CreateRequest is the body of create.
type CreateRequest struct {
	Component string       `json:"component"`
	Config    model.Config `json:"config"`
	Node      string       `json:"node"`
	// Start defaults to true.
	Start *bool `json:"start"`
}

// Create makes a new task at version 1 (or revives a deleted component at
// its next version) and, unless Start is false, starts it.
func (m *Manager) Create(ctx context.Context, call Call, req CreateRequest) (string, error) {
	started := m.now()
	comp, err := model.ParseComponent(req.Component)
	if err != nil {
		return "", err
	}
	node := m.cfg.Node
	if req.Node != "" {
		if node, err = model.ParseNodeID(req.Node); err != nil {
			return "", err
		}
		if err := m.nodes.CheckLive(ctx, node); err != nil {
			return "", err
		}
	}
	if req.Config == nil {
		req.Config = model.Config{}
	}
	// A config copied from a detail carries masks: with nothing stored to
	// keep, they are refused rather than stored as secrets.
	if req.Config, err = req.Config.Unmask(nil); err != nil {
		return "", err
	}
	if err := m.validateConfig(comp, node, req.Config); err != nil {
		return "", err
	}
	start := req.Start == nil || *req.Start
	t := &model.Task{
		Component: comp.String(), Project: comp.Project, Type: comp.Type, Node: node, Version: 1,
		State: model.StateCreated, Desired: model.DesiredStopped,
	}
	t.SetConfig(req.Config)
	if start {
		t.State, t.Desired = model.StateStarting, model.DesiredRunning
	}
	call.Params = mergeParams(call.Params, map[string]string{"config": strings.Join(req.Config.Keys(), ",")})
	proto := *t
	var audit *model.Audit
	// Concurrent creates of one component race on its unique key (a new
	// component) or on its revision (a deleted one revived). A loser tries
	// again on the fresh row, which names the winner: every loser answers
	// TASK_EXISTS, whichever way it lost.
	for attempt := 0; ; attempt++ {
		t = new(model.Task)
		*t = proto
		audit = m.newAudit(call, "create", nil)
		err = m.store.Tx(ctx, func(tx *model.Store) error { return m.createTx(ctx, tx, t, audit) })
		if (errors.Is(err, model.ErrAlreadyExists) || errors.Is(err, model.ErrConflict)) && !errors.Is(err, ErrTaskExists) && attempt < 3 {
			continue
		}
		break
	}
	if err != nil {
		if errors.Is(err, model.ErrAlreadyExists) && !errors.Is(err, ErrTaskExists) {
			err = fmt.Errorf("%w: %s was created concurrently: %v", ErrTaskExists, comp, err)
		}
		err = mapStoreErr(err)
		m.auditFailure(ctx, call, "create", comp.String(), nil, err, started)
		return "", err
	}
	m.log.Info("task created", zap.String(logkey.Task, t.Name().String()), zap.Bool("start", start))
	if !start {
		m.finish(ctx, audit, nil, started)
		return t.Name().String(), nil
	}
	m.waker.Wake(ctx, t.Node, t.Component)
	werr := m.waitRunning(ctx, t, m.cfg.StartTimeout)
	m.finish(ctx, audit, werr, started)
	return t.Name().String(), werr
}

// createTx writes t as a new component, or as the next version of a deleted
// one, with its first incarnation and the audit row.
func (m *Manager) createTx(ctx context.Context, tx *model.Store, t *model.Task, audit *model.Audit) error {
	old, err := tx.GetTask(ctx, t.Component)
	switch {
	case errors.Is(err, model.ErrNotFound):
		t.ID = 0 // a transaction run again inserts afresh
		if err := tx.CreateTask(ctx, t); err != nil {
			return err
		}
	case err != nil:
		return err
	case old.State != model.StateDeleted:
		return fmt.Errorf("%w: %s is %s", ErrTaskExists, old.Name(), old.State)
	default:
		t.ID, t.Revision, t.Version = old.ID, old.Revision, old.Version+1
		if err := tx.UpdateTask(ctx, t); err != nil {
			return err
		}
		if err := tx.ResetProgress(ctx, t.Component); err != nil {
			return err
		}
	}
	if err := tx.StartIncarnation(ctx, t, "create"); err != nil {
		return err
	}
	audit.Component, audit.TaskAfter, audit.StateAfter = t.Component, t.Name().String(), t.State
	return tx.InsertAudit(ctx, audit)
}

// ResumeOptions are resume's flags.
type ResumeOptions struct {
	PullBack bool
	Restart  bool
	// Force lets a pullback move a subtopic forward past its progress.
	Force bool
	// SkipDDL continues right after the statement the task stopped at
	// (an error detail with a Position): the durable checkpoint must be
	// exactly before it, and moves to just after it in the transaction of
	// the resume. The operator has changed the target first.
	SkipDDL bool
	Timeout time.Duration
}

// Resume starts a task again. A plain resume keeps the version and continues
// from the durable progress; pullBack and restart start a new incarnation
// from the configured checkpoint or from the beginning.
func (m *Manager) Resume(ctx context.Context, call Call, ref string, opt ResumeOptions) (string, error) {
	started := m.now()
	op := "resume"
	var newVersion bool
	var detail map[string]any
	var reset []string
	var skip *model.ErrorDetail
	call.again = !opt.PullBack && !opt.Restart
	t, audit, err := m.mutate(ctx, call, op, ref, func(t *model.Task) error {
		if opt.PullBack && opt.Restart {
			return fmt.Errorf("%w: pullBackFlag and restartFlag cannot both be true", model.ErrInvalidArgument)
		}
		if opt.SkipDDL {
			if opt.PullBack || opt.Restart {
				return fmt.Errorf("%w: skipDdl=true is a plain resume; it cannot be combined with pullBackFlag or restartFlag", model.ErrInvalidArgument)
			}
			// Before transition: starting clears the error details.
			d, err := stoppedAtStatement(t)
			if err != nil {
				return err
			}
			skip = d
		}
		if opt.PullBack && t.Type != model.TypeIncr {
			return fmt.Errorf("%w: pullBackFlag=true applies to incr_trans tasks; %s is %s", model.ErrInvalidArgument, t.Component, t.Type)
		}
		if opt.Restart && t.Type != model.TypeFull {
			return fmt.Errorf("%w: restartFlag=true applies to full_trans tasks; %s is %s", model.ErrInvalidArgument, t.Component, t.Type)
		}
		ev := model.EventResume
		if opt.PullBack || opt.Restart {
			ev = model.EventRestart
		}
		if err := transition(t, ev); err != nil {
			return err
		}
		if ev == model.EventRestart {
			d, subs, err := m.prepareRestart(ctx, t, opt.PullBack, opt.Force)
			if err != nil {
				return err
			}
			detail, reset, newVersion = d, subs, true
		}
		return nil
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		if skip != nil {
			return skipStatement(ctx, tx, t, a, skip)
		}
		if !newVersion {
			return nil
		}
		a.Detail = jsonString(detail)
		if opt.PullBack {
			if err := tx.ResetSubtopics(ctx, t.Component, reset, t.Version); err != nil {
				return err
			}
		} else if err := tx.ResetProgress(ctx, t.Component); err != nil {
			return err
		}
		reason := "restart"
		if opt.PullBack {
			reason = "pullback"
		}
		return tx.StartIncarnation(ctx, t, reason)
	})
	if err != nil {
		return "", err
	}
	werr := m.waitRunning(ctx, t, pick(opt.Timeout, m.cfg.StartTimeout))
	m.finish(ctx, audit, werr, started)
	return t.Name().String(), werr
}

// stoppedAtStatement returns the error detail of the statement a task is
// stopped at: the task is STOPPED or EXCEPTION, and its latest error (not
// a warning) carries the statement's position.
func stoppedAtStatement(t *model.Task) (*model.ErrorDetail, error) {
	if t.State.Transitional() {
		return nil, fmt.Errorf("%w: %s is %s; retry when it settles", ErrBusy, t.Component, t.State)
	}
	if t.State != model.StateStopped && t.State != model.StateException {
		return nil, fmt.Errorf("%w: %s is %s; skipDdl=true resumes a task stopped at a DDL statement", ErrSkipDDL, t.Component, t.State)
	}
	errs := t.Errors()
	for i := len(errs) - 1; i >= 0; i-- {
		if errs[i].Level == model.LevelWarning {
			continue
		}
		if errs[i].Position == nil {
			break
		}
		d := errs[i]
		return &d, nil
	}
	return nil, fmt.Errorf("%w: %s did not stop at a statement it can skip (its last error has no statement position); "+
		"skipDdl=true applies after MYSQL_DDL_UNSUPPORTED", ErrSkipDDL, t.Component)
}

// skipStatement moves the durable checkpoint of the statement's subtopic
// from just before it to just after it, in the transaction of the resume.
// It is refused unless the checkpoint is exactly before it: then nothing
// between the two can be skipped by mistake.
func skipStatement(ctx context.Context, tx *model.Store, t *model.Task, a *model.Audit, d *model.ErrorDetail) error {
	p := d.Position
	rows, err := tx.Checkpoints(ctx, t.Component)
	if err != nil {
		return err
	}
	durable := "none"
	var ts int64
	for _, r := range rows {
		if r.Subtopic == p.Subtopic {
			durable, ts = fmt.Sprintf("%q (version %d)", r.Token, r.Version), r.TS
		}
	}
	moved, err := tx.MoveCheckpoint(ctx, t.Component, t.Version, p.Before,
		model.CheckpointPosition{Subtopic: p.Subtopic, TS: max(ts, p.TS), Token: p.After})
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("%w: the durable checkpoint of %s/%s is %s, not %q just before the statement; "+
			"resume without skipDdl: the task reads up to the statement and stops there again, then skip it",
			ErrSkipDDL, t.Component, p.Subtopic, durable, p.Before)
	}
	a.Detail = jsonString(map[string]any{"skipDdl": map[string]any{
		"code": d.Code, "statement": d.Message, "subtopic": p.Subtopic,
		"checkpointBefore": p.Before, "checkpointAfter": p.After, "ts": p.TS,
	}})
	return nil
}

// prepareRestart checks a pullback's configured checkpoint against the
// guard rails and bumps the version of t. It returns the audit detail and
// the subtopics whose progress the new incarnation drops (nil: all).
func (m *Manager) prepareRestart(ctx context.Context, t *model.Task, pullBack, force bool) (map[string]any, []string, error) {
	detail := map[string]any{"versionBefore": t.Version}
	var reset []string
	if pullBack {
		cfg, err := t.ParsedConfig()
		if err != nil {
			return nil, nil, err
		}
		raw := cfg.Get("source", "checkpoint")
		if raw == "" {
			return nil, nil, fmt.Errorf("%w: pullBackFlag=true needs source.checkpoint in the config; set it with update first", checkpoint.ErrInvalid)
		}
		plan, err := m.planRewind(ctx, t, func([]string) (map[string]int64, error) { return checkpoint.Parse(raw) }, force, true)
		if err != nil {
			return nil, nil, err
		}
		for s := range plan.target {
			reset = append(reset, s)
		}
		detail["progressBefore"] = plan.progressBefore
		detail["checkpointAfter"] = raw
	}
	if t.Version >= model.MaxVersion {
		return nil, nil, fmt.Errorf("%w: %s has reached the last version", model.ErrInvalidArgument, t.Component)
	}
	t.Version++
	detail["versionAfter"] = t.Version
	return detail, reset, nil
}

// Stop stops a task and returns once its runner has exited and its last
// checkpoint is durable.
func (m *Manager) Stop(ctx context.Context, call Call, ref string, timeout time.Duration) (string, error) {
	started := m.now()
	call.again = true
	t, audit, err := m.mutate(ctx, call, "stop", ref, func(t *model.Task) error {
		return transition(t, model.EventStop)
	}, nil)
	if err != nil {
		return "", err
	}
	werr := m.waitQuiet(ctx, t, pick(timeout, m.cfg.StopTimeout), ErrStopTimeout)
	m.finish(ctx, audit, werr, started)
	return t.Name().String(), werr
}

// Pause holds a task still: its runner keeps its connections, resources and
// position but moves no data, and its checkpoint is durable. It returns once
// the runner reports PAUSED. A task without a runner (stopped, failed,
// created) starts paused. Resume moves it again.
func (m *Manager) Pause(ctx context.Context, call Call, ref string, timeout time.Duration) (string, error) {
	started := m.now()
	call.again = true
	t, audit, err := m.mutate(ctx, call, "pause", ref, func(t *model.Task) error {
		return transition(t, model.EventPause)
	}, nil)
	if err != nil {
		return "", err
	}
	werr := m.waitPaused(ctx, t, pick(timeout, m.cfg.StopTimeout))
	m.finish(ctx, audit, werr, started)
	return t.Name().String(), werr
}

// Delete stops a task if needed and keeps it as history in state DELETED.
func (m *Manager) Delete(ctx context.Context, call Call, ref string, timeout time.Duration) (string, error) {
	started := m.now()
	call.again = true
	t, audit, err := m.mutate(ctx, call, "delete", ref, func(t *model.Task) error {
		return transition(t, model.EventDelete)
	}, nil)
	if err != nil {
		return "", err
	}
	werr := m.waitQuiet(ctx, t, pick(timeout, m.cfg.StopTimeout), ErrStopTimeout)
	m.finish(ctx, audit, werr, started)
	return t.Name().String(), werr
}

// Update deletes the named scope.key entries, then merges patch, in one
// transaction. Only a STOPPED or EXCEPTION task can be updated.
func (m *Manager) Update(ctx context.Context, call Call, ref string, deletes []string, patch model.Config) (string, error) {
	started := m.now()
	var before, after model.Config
	call.again = true
	t, audit, err := m.mutate(ctx, call, "update", ref, func(t *model.Task) error {
		if len(deletes) == 0 && len(patch) == 0 {
			return fmt.Errorf("%w: nothing to update: give deleteParams or a JSON body {\"scope\":{\"key\":\"value\"}}", model.ErrInvalidArgument)
		}
		if err := checkState(t, "update (allowed when STOPPED or EXCEPTION)", updateStates...); err != nil {
			return err
		}
		if err := patch.Validate(); err != nil {
			return err
		}
		cfg, err := t.ParsedConfig()
		if err != nil {
			return err
		}
		before = cfg.Clone()
		// A mask sent back (as detail shows it) keeps the stored secret.
		patch, err := patch.Unmask(before)
		if err != nil {
			return err
		}
		for _, d := range deletes {
			scope, key, err := SplitParam(d)
			if err != nil {
				return err
			}
			cfg.Delete(scope, key)
		}
		cfg.Merge(patch)
		if raw := cfg.Get("source", "checkpoint"); raw != "" && raw != before.Get("source", "checkpoint") {
			target, err := checkpoint.Parse(raw)
			if err != nil {
				return err
			}
			for sub, ts := range target {
				if err := checkpoint.CheckNotFuture(ts, m.now()); err != nil {
					return fmt.Errorf("subtopic %s: %w", sub, err)
				}
			}
		}
		if err := m.validateConfig(t.Name().Component, t.Node, cfg); err != nil {
			return err
		}
		after = cfg
		t.SetConfig(cfg)
		return nil
	}, func(_ *model.Store, _ *model.Task, a *model.Audit) error {
		a.Detail = jsonString(map[string]any{"configBefore": before.Masked(), "configAfter": after.Masked()})
		return nil
	})
	if err != nil {
		return "", err
	}
	m.finish(ctx, audit, nil, started)
	return t.Name().String(), nil
}

// SplitParam splits a deleteParams entry scope.key and checks its grammar.
func SplitParam(s string) (scope, key string, err error) {
	scope, key, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok || !model.ValidScope(scope) || !model.ValidKey(key) {
		return "", "", fmt.Errorf("%w: deleteParams entry %q is not scope.key (e.g. source.checkpoint)", model.ErrInvalidArgument, s)
	}
	return scope, key, nil
}

// mutate is the one path of an operator write: load, check the name, apply
// change to a copy, and in one transaction compare-and-swap the row and
// write the audit row (plus whatever extra adds). Conflicts with runtime
// writes (observed state only) are retried; conflicts with other operator
// writes answer ErrBusy. Failures are audited too.
func (m *Manager) mutate(ctx context.Context, call Call, op, ref string,
	change func(t *model.Task) error,
	extra func(tx *model.Store, t *model.Task, a *model.Audit) error,
) (*model.Task, *model.Audit, error) {
	started := m.now()
	var before *model.Task
	for attempt := 0; ; attempt++ {
		cur, err := m.load(ctx, ref, true)
		if err != nil {
			m.auditFailure(ctx, call, op, componentOf(ref), before, err, started)
			return nil, nil, err
		}
		if before != nil && !sameIntent(before, cur) && (!call.again || !carries(cur, change)) {
			err := fmt.Errorf("%w: %s was changed by a concurrent operation", ErrBusy, cur.Name())
			m.auditFailure(ctx, call, op, cur.Component, cur, err, started)
			return nil, nil, err
		}
		snapshot := *cur
		before = &snapshot
		if cur.Journal != "" {
			err := fmt.Errorf("%w: %s has an operation in flight", ErrBusy, cur.Name())
			m.auditFailure(ctx, call, op, cur.Component, cur, err, started)
			return nil, nil, err
		}
		t := *cur
		if err := change(&t); err != nil {
			m.auditFailure(ctx, call, op, cur.Component, cur, err, started)
			return nil, nil, err
		}
		audit := m.newAudit(call, op, cur)
		audit.Component, audit.TaskAfter, audit.StateAfter = t.Component, t.Name().String(), t.State
		// The extra writes and the audit row come first, so the row (and a
		// journal, which names the audit row) is written once, by the
		// compare-and-swap that ends the transaction.
		err = m.store.Tx(ctx, func(tx *model.Store) error {
			if extra != nil {
				if err := extra(tx, &t, audit); err != nil {
					return err
				}
			}
			if err := tx.InsertAudit(ctx, audit); err != nil {
				return err
			}
			if err := stampAuditID(&t, audit.ID); err != nil {
				return err
			}
			return tx.UpdateTask(ctx, &t)
		})
		if errors.Is(err, model.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			err = mapStoreErr(err)
			m.auditFailure(ctx, call, op, cur.Component, cur, err, started)
			return nil, nil, err
		}
		m.log.Info("task "+op, zap.String(logkey.Task, t.Name().String()), zap.String(logkey.State, string(t.State)), zap.String(logkey.RequestID, call.RequestID))
		// The row as committed, for this node's reconciler and waiters.
		m.changes.Publish(&t)
		if t.State != cur.State || t.Desired != cur.Desired || t.Node != cur.Node || t.Version != cur.Version {
			m.waker.Wake(ctx, t.Node, t.Component)
			if cur.Node != t.Node {
				m.waker.Wake(ctx, cur.Node, cur.Component)
			}
		}
		return &t, audit, nil
	}
}

// sameIntent reports whether only runtime columns changed between a and b:
// an operator's write changes the desired state, config, node, version or journal.
func sameIntent(a, b *model.Task) bool {
	return a.Desired == b.Desired && a.Config == b.Config && a.Node == b.Node &&
		a.Version == b.Version && a.Journal == b.Journal
}

// carries reports whether cur already has the intent change would give
// it (Call.again).
func carries(cur *model.Task, change func(t *model.Task) error) bool {
	t := *cur
	return change(&t) == nil && sameIntent(&t, cur)
}

// mapStoreErr turns a lost compare-and-swap into ErrBusy.
func mapStoreErr(err error) error {
	if errors.Is(err, model.ErrConflict) {
		return fmt.Errorf("%w: %v", ErrBusy, err)
	}
	return err
}

// The states update and pullback run from (docs/api.md, States). A
// pullback stops and restarts the task: while STOPPING it would restart a
// task the operator is stopping or deleting, and while STARTING it would
// race the call that is starting it.
var (
	updateStates   = []model.State{model.StateStopped, model.StateException}
	pullbackStates = []model.State{model.StateCreated, model.StateRunning, model.StatePaused, model.StateStopped, model.StateException, model.StateFinished}
)

// checkState is the state check of a call that is not an event of the
// transition table (update, pullback): allowed lists the states it runs
// from. A transitional state answers ErrBusy, as transition does, since the
// same call may succeed once the task settles; any other state outside
// allowed is an *IllegalTransitionError.
func checkState(t *model.Task, op string, allowed ...model.State) error {
	if slices.Contains(allowed, t.State) {
		return nil
	}
	if t.State.Transitional() {
		return busyIn(t)
	}
	return &model.IllegalTransitionError{From: t.State, Op: op}
}

// busyIn is the refusal of a call while t is STARTING or STOPPING.
func busyIn(t *model.Task) error {
	return fmt.Errorf("%w: %s is %s; retry when it settles", ErrBusy, t.Component, t.State)
}

// transition applies an operator event; in a transitional state a refusal
// is ErrBusy, since the same call may succeed once the task settles.
func transition(t *model.Task, ev model.Event) error {
	if err := t.Apply(ev); err != nil {
		if t.State.Transitional() {
			return busyIn(t)
		}
		return err
	}
	return nil
}

// load resolves what a caller named (Resolve).
func (m *Manager) load(ctx context.Context, ref string, write bool) (*model.Task, error) {
	return Resolve(ctx, m.store, ref, write)
}

// Resolve loads the task a caller named: a component, or a full task name.
// For writes, a superseded full name is refused with the current name
// (*SupersededError); reads answer for the current incarnation. A name of
// no incarnation is ErrTaskNotFound.
func Resolve(ctx context.Context, store *model.Store, ref string, write bool) (*model.Task, error) {
	r, err := model.ParseTaskRef(ref)
	if err != nil {
		return nil, err
	}
	t, err := store.GetTask(ctx, r.Component.String())
	if err := CheckRef(r, t, err, write); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckRef answers for ref what Resolve answers, given the task row read
// for its component (t, or the error reading it).
func CheckRef(r model.TaskRef, t *model.Task, readErr error, write bool) error {
	if errors.Is(readErr, model.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrTaskNotFound, r.Component)
	}
	if readErr != nil {
		return readErr
	}
	if r.Name == nil {
		return nil
	}
	switch {
	case r.Name.Version < t.Version:
		if write {
			return &SupersededError{Given: r.Name.String(), Current: t.Name().String()}
		}
	case r.Name.Version > t.Version || r.Name.Node != t.Node:
		return fmt.Errorf("%w: no incarnation %s (current is %s)", ErrTaskNotFound, r.Name, t.Name())
	}
	return nil
}

func componentOf(ref string) string {
	r, err := model.ParseTaskRef(ref)
	if err != nil {
		return ""
	}
	return r.Component.String()
}

// validateConfig checks scope grammar and that the connectors build.
// ${env:} and ${file:} references are checked for grammar only and stand
// in as a placeholder: they are resolved by the runner at start, on the
// task's node. A factory's error is scrubbed of the config's secrets (it
// may quote a DSN).
func (m *Manager) validateConfig(comp model.Component, node model.NodeID, cfg model.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.CheckReferences(); err != nil {
		return err
	}
	t := &model.Task{Component: comp.String(), Type: comp.Type, Node: node, Version: 1}
	if _, _, err := m.registry.Build(m.connectorConfig(t, cfg.WithPlaceholders())); err != nil {
		return fmt.Errorf("%w: %s", configError(err), model.ScrubberOf(cfg).Error(err))
	}
	return nil
}

// scrubberOf is the scrubber of t's config secrets (nil t: by shape only).
func scrubberOf(t *model.Task) *model.Scrubber {
	if t == nil {
		return nil
	}
	cfg, err := t.ParsedConfig()
	if err != nil {
		return nil
	}
	return model.ScrubberOf(cfg)
}

func (m *Manager) connectorConfig(t *model.Task, cfg model.Config) connector.Config {
	return connector.Config{Task: t.Name(), Type: t.Type, Scopes: cfg, Logger: m.log}
}

func (m *Manager) newAudit(call Call, op string, t *model.Task) *model.Audit {
	a := &model.Audit{
		At: m.now().UTC(), Actor: call.Actor, Operation: op, Result: model.ResultAccepted,
		RequestID: call.RequestID, Params: jsonString(model.MaskParams(call.Params)),
	}
	if t != nil {
		a.Component, a.TaskBefore, a.StateBefore = t.Component, t.Name().String(), t.State
	}
	return a
}

// auditFailure records a refused call. It is best effort: the caller's error
// matters more than a lost audit row, which is logged.
func (m *Manager) auditFailure(ctx context.Context, call Call, op, component string, t *model.Task, cause error, started time.Time) {
	a := m.newAudit(call, op, t)
	if a.Component == "" {
		a.Component = component
	}
	a.Result = model.ResultFailure
	a.ErrCode = m.errCode(cause)
	a.ErrMsg = scrubberOf(t).Error(cause)
	a.DurationMS = m.now().Sub(started).Milliseconds()
	if t != nil {
		a.TaskAfter, a.StateAfter = a.TaskBefore, a.StateBefore
	}
	write := m.store.InsertAudit
	if m.refusals != nil {
		write = m.refusals.Record
	}
	if err := write(context.WithoutCancel(ctx), a); err != nil {
		m.log.Warn("writing audit row", zap.String("operation", op), zap.Error(err))
	}
}

// finish records how an accepted call ended. The row keeps the state its
// own write produced; the runtime's later writes have rows of their own.
func (m *Manager) finish(ctx context.Context, a *model.Audit, err error, started time.Time) {
	result, code, msg := model.ResultSuccess, "", ""
	if err != nil {
		result, code, msg = model.ResultFailure, m.errCode(err), (*model.Scrubber)(nil).Error(err)
	}
	if ferr := m.store.FinishAudit(context.WithoutCancel(ctx), a.ID, result, code, msg, m.now().Sub(started)); ferr != nil {
		m.log.Warn("finishing audit row", zap.Int64("audit", a.ID), zap.Error(ferr))
	}
}

func mergeParams(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func pick(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	if d > MaxWait {
		return MaxWait
	}
	return d
}
