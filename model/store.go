package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Store is the persistence of tasks, their runtime progress, the audit log,
// system parameters and nodes. A Store made by Tx runs inside one
// transaction; every other Store runs each call on its own.
type Store struct {
	db      *gorm.DB
	dialect Dialect
	// obs is the observer (Observe), shared with the stores of Tx;
	// pending, in a store of Tx, what runs once the transaction commits.
	obs     *observerBox
	pending *[]func()
	// migrations is the DSN migrations run on (MySQL; DSN.Migrations).
	migrations string
}

func (s *Store) with(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// Tx runs fn in one transaction. fn must not do network calls, sleeps or
// anything with side effects outside the database: it may run again after a
// retryable error and its writes vanish on rollback.
//
// A transaction that loses a deadlock or a lock wait (MySQL 1213, 1205) is
// run again, up to txAttempts times with a short jittered pause, before its
// error (ErrUnavailable, retryable) reaches the caller.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		var pending []func()
		err = translate(s.with(ctx).Transaction(func(db *gorm.DB) error {
			return fn(&Store{db: db, dialect: s.dialect, obs: s.obs, pending: &pending})
		}))
		if err == nil {
			for _, f := range pending {
				s.afterCommit(f)
			}
		}
		if !errors.Is(err, errLockLost) || attempt >= txAttempts {
			return err
		}
		pause := time.NewTimer(time.Duration(attempt) * (2*time.Millisecond + time.Duration(rand.Int64N(int64(8*time.Millisecond)))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return err
		case <-pause.C:
		}
	}
}

// txAttempts bounds how often Tx runs a transaction that keeps losing
// deadlocks.
const txAttempts = 4

// GetTask loads a task by component.
func (s *Store) GetTask(ctx context.Context, component string) (*Task, error) {
	var t Task
	if err := s.with(ctx).Where("component = ?", component).Take(&t).Error; err != nil {
		return nil, fmt.Errorf("task %s: %w", component, translate(err))
	}
	return &t, nil
}

// CreateTask inserts a new task row; ErrAlreadyExists if the component exists.
func (s *Store) CreateTask(ctx context.Context, t *Task) error {
	now := time.Now().UTC()
	t.CreatedAt, t.UpdatedAt, t.Revision = now, now, 1
	if err := s.with(ctx).Create(t).Error; err != nil {
		return fmt.Errorf("creating task %s: %w", t.Component, translate(err))
	}
	return nil
}

// UpdateTask writes every mutable column of t if the row still has revision
// t.Revision, and bumps the revision. It returns ErrConflict when another
// writer got there first; t then keeps its old revision.
func (s *Store) UpdateTask(ctx context.Context, t *Task) error {
	now := time.Now().UTC()
	res := s.with(ctx).Model(&Task{}).
		Where("id = ? AND revision = ?", t.ID, t.Revision).
		Updates(map[string]any{
			"node":          t.Node,
			"version":       t.Version,
			"revision":      t.Revision + 1,
			"desired_state": t.Desired,
			"state":         t.State,
			"config":        t.Config,
			"error_details": t.ErrorDetails,
			"journal":       t.Journal,
			"auto_restarts": t.AutoRestarts,
			"type":          t.Type,
			"project":       t.Project,
			"updated_at":    now,
		})
	if res.Error != nil {
		return fmt.Errorf("updating task %s: %w", t.Component, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("updating task %s at revision %d: %w", t.Component, t.Revision, ErrConflict)
	}
	t.Revision++
	t.UpdatedAt = now
	return nil
}

// WriteTask is the one shape of a task state write: in one transaction, the
// compare-and-swap of t (UpdateTask), whatever extra writes belong with it,
// and the audit row. ErrConflict means another writer got there first.
func (s *Store) WriteTask(ctx context.Context, t *Task, audit *Audit, extra func(tx *Store) error) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.UpdateTask(ctx, t); err != nil {
			return err
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.InsertAudit(ctx, audit)
	})
}

// TaskFilter selects tasks for listing. Zero fields match everything.
type TaskFilter struct {
	Components []string
	States     []State
	Node       NodeID
	// ExceptNodes leaves out the tasks of these nodes.
	ExceptNodes []NodeID
	Project     string
	// IncludeDeleted lists DELETED tasks too.
	IncludeDeleted bool
	Offset, Limit  int
}

// ListTasks returns the tasks matching f, ordered by component, and the total
// count ignoring Offset and Limit.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter) ([]Task, int64, error) {
	q := s.with(ctx).Model(&Task{})
	if len(f.Components) > 0 {
		q = q.Where("component IN ?", f.Components)
	}
	if len(f.States) > 0 {
		q = q.Where("state IN ?", f.States)
	} else if !f.IncludeDeleted {
		q = q.Where("state <> ?", StateDeleted)
	}
	if f.Node != "" {
		q = q.Where("node = ?", f.Node)
	}
	if len(f.ExceptNodes) > 0 {
		q = q.Where("node NOT IN ?", f.ExceptNodes)
	}
	if f.Project != "" {
		q = q.Where("project = ?", f.Project)
	}
	var total int64
	paged := f.Limit > 0 || f.Offset > 0
	if paged {
		// Without a page, the count is the length of the list.
		if err := q.Count(&total).Error; err != nil {
			return nil, 0, fmt.Errorf("counting tasks: %w", translate(err))
		}
	}
	q = q.Order("component")
	if f.Limit > 0 {
		q = q.Offset(f.Offset).Limit(f.Limit)
	} else if f.Offset > 0 {
		q = q.Offset(f.Offset).Limit(math.MaxInt32)
	}
	var out []Task
	if err := q.Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("listing tasks: %w", translate(err))
	}
	if !paged {
		total = int64(len(out))
	}
	return out, total, nil
}

// InsertAudit appends an audit row.
func (s *Store) InsertAudit(ctx context.Context, a *Audit) error {
	if a.At.IsZero() {
		a.At = time.Now().UTC()
	}
	if a.Calls == 0 {
		a.Calls = 1
	}
	if err := s.with(ctx).Create(a).Error; err != nil {
		return fmt.Errorf("writing audit row: %w", translate(err))
	}
	s.noteTransition(a)
	return nil
}

// FinishAudit records how an accepted operation ended, as a row of its own:
// the operation's audit row is never updated once written. An operation
// ends once; a second ending is refused (ErrAlreadyExists).
func (s *Store) FinishAudit(ctx context.Context, id int64, result, errCode, errMsg string, took time.Duration) error {
	r := AuditResult{AuditID: id, At: time.Now().UTC(), Result: result, ErrCode: errCode, ErrMsg: errMsg, DurationMS: took.Milliseconds()}
	if err := s.with(ctx).Create(&r).Error; err != nil {
		return fmt.Errorf("recording how operation %d ended: %w", id, translate(err))
	}
	return nil
}

// withResults fills in how each accepted row ended, from its result row.
func (s *Store) withResults(ctx context.Context, rows []Audit) error {
	var ids []int64
	for _, a := range rows {
		if a.Result == ResultAccepted {
			ids = append(ids, a.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var results []AuditResult
	if err := s.with(ctx).Where("audit_id IN ?", ids).Find(&results).Error; err != nil {
		return translate(err)
	}
	byID := make(map[int64]AuditResult, len(results))
	for _, r := range results {
		byID[r.AuditID] = r
	}
	for i := range rows {
		if r, ok := byID[rows[i].ID]; ok {
			rows[i].Result, rows[i].ErrCode, rows[i].ErrMsg, rows[i].DurationMS = r.Result, r.ErrCode, r.ErrMsg, r.DurationMS
		}
	}
	return nil
}

// AuditFilter selects audit rows.
type AuditFilter struct {
	Component string
	// Components, when set, selects rows of any of these components.
	Components []string
	// Operation, when set, selects rows of that operation only.
	Operation string
	Since     time.Time
	Limit     int
}

// ListAudit returns audit rows, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]Audit, error) {
	q := s.with(ctx).Model(&Audit{})
	if f.Component != "" {
		q = q.Where("component = ?", f.Component)
	}
	if len(f.Components) > 0 {
		q = q.Where("component IN ?", f.Components)
	}
	if f.Operation != "" {
		q = q.Where("operation = ?", f.Operation)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []Audit
	if err := q.Order("id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, translate(err)
	}
	return out, s.withResults(ctx, out)
}

// PurgeAudit deletes at most limit rows older than before and reports how many.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time, limit int) (int64, error) {
	var ids []int64
	if err := s.with(ctx).Model(&Audit{}).Where("at < ?", before.UTC()).Order("id").Limit(limit).Pluck("id", &ids).Error; err != nil {
		return 0, translate(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := s.with(ctx).Where("audit_id IN ?", ids).Delete(&AuditResult{}).Error; err != nil {
		return 0, translate(err)
	}
	res := s.with(ctx).Where("id IN ?", ids).Delete(&Audit{})
	return res.RowsAffected, translate(res.Error)
}

// StartIncarnation records a new version of a component and closes the previous one.
//
// The open incarnation is found with a plain read and closed by its key: an
// UPDATE by component on a new component would lock the index gap where
// every other new component's first incarnation is inserted, and two
// independent creates would deadlock on it. (Writers of one component are
// serialized by the task row's compare-and-swap.)
func (s *Store) StartIncarnation(ctx context.Context, t *Task, reason string) error {
	now := time.Now().UTC()
	var open []int64
	if err := s.with(ctx).Model(&Incarnation{}).Where("component = ? AND ended_at IS NULL", t.Component).Pluck("id", &open).Error; err != nil {
		return translate(err)
	}
	if len(open) > 0 {
		if err := s.with(ctx).Model(&Incarnation{}).Where("id IN ?", open).Update("ended_at", now).Error; err != nil {
			return translate(err)
		}
	}
	inc := Incarnation{Component: t.Component, Version: t.Version, Name: t.Name().String(), Node: t.Node, Reason: reason, CreatedAt: now}
	return translate(s.with(ctx).Create(&inc).Error)
}

// ListIncarnations lists a component's versions, oldest first.
func (s *Store) ListIncarnations(ctx context.Context, component string) ([]Incarnation, error) {
	var out []Incarnation
	err := s.with(ctx).Where("component = ?", component).Order("version").Find(&out).Error
	return out, translate(err)
}

// Checkpoints returns the durable progress of a component, by subtopic order.
func (s *Store) Checkpoints(ctx context.Context, component string) ([]Checkpoint, error) {
	var out []Checkpoint
	err := s.with(ctx).Where("component = ?", component).Order("subtopic").Find(&out).Error
	return out, translate(err)
}

// CheckpointsOf returns the durable progress of many components.
func (s *Store) CheckpointsOf(ctx context.Context, components []string) (map[string][]Checkpoint, error) {
	out := map[string][]Checkpoint{}
	if len(components) == 0 {
		return out, nil
	}
	var rows []Checkpoint
	if err := s.with(ctx).Where("component IN ?", components).Order("component, subtopic").Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	for _, r := range rows {
		out[r.Component] = append(out[r.Component], r)
	}
	return out, nil
}

// ResetProgress drops a component's runtime progress and heartbeat: the next
// incarnation starts from the configured checkpoint. Called in the
// transaction that bumps the version.
func (s *Store) ResetProgress(ctx context.Context, component string) error {
	if err := s.with(ctx).Where("component = ?", component).Delete(&Checkpoint{}).Error; err != nil {
		return translate(err)
	}
	return translate(s.with(ctx).Where("component = ?", component).Delete(&Heartbeat{}).Error)
}

// ResetSubtopics starts a new incarnation at version: the progress of the
// named subtopics is dropped (they restart from the configured checkpoint),
// the others carry over to the new version, and the old heartbeat goes.
// Called in the transaction that bumps the version.
func (s *Store) ResetSubtopics(ctx context.Context, component string, subtopics []string, version int64) error {
	if len(subtopics) > 0 {
		if err := s.with(ctx).Where("component = ? AND subtopic IN ?", component, subtopics).Delete(&Checkpoint{}).Error; err != nil {
			return translate(err)
		}
	}
	return s.RebindProgress(ctx, component, version)
}

// RebindProgress hands a component's progress to a new version (migrate):
// the new incarnation continues from it, and the old one is fenced off.
func (s *Store) RebindProgress(ctx context.Context, component string, version int64) error {
	if err := s.with(ctx).Model(&Checkpoint{}).Where("component = ?", component).Update("version", version).Error; err != nil {
		return translate(err)
	}
	return translate(s.with(ctx).Where("component = ?", component).Delete(&Heartbeat{}).Error)
}

// MoveCheckpoint sets the durable position of one subtopic of incarnation
// version to `to`, only if it is exactly at token from, and reports whether
// it was. It is an operator's exact skip (resume with skipDdl), called in
// the transaction of the resume's compare-and-swap; to.TS should not be
// below the stored time.
func (s *Store) MoveCheckpoint(ctx context.Context, component string, version int64, from string, to CheckpointPosition) (bool, error) {
	res := s.with(ctx).Model(&Checkpoint{}).
		Where("component = ? AND subtopic = ? AND version = ? AND token = ?", component, to.Subtopic, version, from).
		Updates(map[string]any{"ts": to.TS, "token": to.Token, "updated_at": time.Now().UTC()})
	if res.Error != nil {
		return false, translate(res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Progress is one fenced runtime report of a task incarnation.
type Progress struct {
	Component string
	Version   int64
	Positions []CheckpointPosition
	// Beat, when non-zero, records a heartbeat at that time.
	Beat    time.Time
	Metrics string
}

// CheckpointPosition is a subtopic position as the store keeps it.
type CheckpointPosition struct {
	Subtopic string
	TS       int64
	Token    string
}

// SaveProgress writes reports in one transaction. Each report is fenced by
// its version: a report from a superseded incarnation is skipped and its
// component returned in fenced, while the others commit. Within an
// incarnation a subtopic's time never moves back: a report with a lower
// time moves the token and keeps the stored time, so one task's clock can
// never fail the transaction of every task on the node.
//
// The heartbeats of all reports are one UPDATE per beatChunk tasks (the
// node's flush is one write for its idle tasks, not one per task); the
// positions are written per subtopic.
func (s *Store) SaveProgress(ctx context.Context, reports []Progress) (fenced []string, err error) {
	if len(reports) == 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	if beatsOnly(reports) {
		// One statement (per beatChunk): no transaction around it.
		return s.saveBeats(ctx, reports)
	}
	err = s.Tx(ctx, func(tx *Store) error {
		fenced = fenced[:0]
		var beats []Progress
		for _, r := range reports {
			ok, err := tx.savePositions(ctx, r, now)
			if err != nil {
				return err
			}
			if !ok {
				fenced = append(fenced, r.Component)
				continue
			}
			if !r.Beat.IsZero() {
				beats = append(beats, r)
			}
		}
		f, err := tx.saveBeats(ctx, beats)
		fenced = append(fenced, f...)
		return err
	})
	return fenced, err
}

// beatsOnly reports whether reports are heartbeats without positions that
// one UPDATE writes.
func beatsOnly(reports []Progress) bool {
	if len(reports) > beatChunk {
		return false
	}
	for _, r := range reports {
		if len(r.Positions) > 0 || r.Beat.IsZero() {
			return false
		}
	}
	return true
}

// beatChunk is how many heartbeats one UPDATE writes at most.
const beatChunk = 500

// saveBeats writes the heartbeats of reports, fenced by version, and
// returns the components whose row is at another version (superseded).
func (s *Store) saveBeats(ctx context.Context, reports []Progress) (fenced []string, err error) {
	for len(reports) > 0 {
		n := min(len(reports), beatChunk)
		chunk := reports[:n]
		reports = reports[n:]
		// Reports of one flush beat at one time; group in case they do not.
		byAt := map[time.Time][]Progress{}
		for _, r := range chunk {
			byAt[r.Beat.UTC()] = append(byAt[r.Beat.UTC()], r)
		}
		for at, group := range byAt {
			f, err := s.saveBeatGroup(ctx, at, group)
			if err != nil {
				return nil, err
			}
			fenced = append(fenced, f...)
		}
	}
	return fenced, nil
}

func (s *Store) saveBeatGroup(ctx context.Context, at time.Time, group []Progress) ([]string, error) {
	var metrics, version, in strings.Builder
	args := make([]any, 0, 1+5*len(group))
	margs := make([]any, 0, 2*len(group))
	vargs := make([]any, 0, 2*len(group))
	comps := make([]any, 0, len(group))
	for i, r := range group {
		metrics.WriteString(" WHEN ? THEN ?")
		margs = append(margs, r.Component, r.Metrics)
		version.WriteString(" WHEN ? THEN ?")
		vargs = append(vargs, r.Component, r.Version)
		if i > 0 {
			in.WriteString(",")
		}
		in.WriteString("?")
		comps = append(comps, r.Component)
	}
	args = append(args, at)
	args = append(args, margs...)
	args = append(args, comps...)
	args = append(args, vargs...)
	res := s.with(ctx).Exec("UPDATE task_heartbeats SET at = ?, metrics = CASE component"+metrics.String()+" ELSE metrics END "+
		"WHERE component IN ("+in.String()+") AND version = CASE component"+version.String()+" END", args...)
	if res.Error != nil {
		return nil, translate(res.Error)
	}
	if res.RowsAffected == int64(len(group)) {
		return nil, nil
	}
	// Some rows are at another version (or gone): find which.
	var rows []Heartbeat
	if err := s.with(ctx).Where("component IN ?", comps).Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	at2 := map[string]int64{}
	for _, h := range rows {
		at2[h.Component] = h.Version
	}
	var fenced []string
	for _, r := range group {
		if v, ok := at2[r.Component]; !ok || v != r.Version {
			fenced = append(fenced, r.Component)
		}
	}
	return fenced, nil
}

// savePositions writes the positions of r, fenced by its version; false
// when the incarnation is superseded.
func (s *Store) savePositions(ctx context.Context, r Progress, now time.Time) (bool, error) {
	db := s.with(ctx)
	for _, p := range r.Positions {
		res := db.Model(&Checkpoint{}).
			Where("component = ? AND subtopic = ? AND version = ?", r.Component, p.Subtopic, r.Version).
			Updates(map[string]any{
				"ts":         gorm.Expr("CASE WHEN ts > ? THEN ts ELSE ? END", p.TS, p.TS),
				"token":      p.Token,
				"updated_at": now,
			})
		if res.Error != nil {
			return false, translate(res.Error)
		}
		if res.RowsAffected == 1 {
			continue
		}
		// No row of this version: a first position for this subtopic, or a
		// superseded incarnation. Insert only while the task is still at
		// this version, in one statement; a row left by another version
		// makes the insert collide.
		res = db.Exec("INSERT INTO task_checkpoints (component, subtopic, version, ts, token, updated_at) "+
			"SELECT ?, ?, ?, ?, ?, ? FROM tasks WHERE component = ? AND version = ? "+
			"AND NOT EXISTS (SELECT 1 FROM task_checkpoints WHERE component = ? AND subtopic = ?)",
			r.Component, p.Subtopic, r.Version, p.TS, p.Token, now, r.Component, r.Version, r.Component, p.Subtopic)
		if res.Error != nil {
			return false, translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return false, nil
		}
	}
	return true, nil
}

// ClaimHeartbeat creates or takes over the heartbeat row for a starting
// incarnation on node. It is fenced like a checkpoint write: it lands only
// while the task row is still at that version on that node, and it never
// moves the row back to an older version, so a node that read the task
// before a migrate or a restart cannot take the heartbeat back. ErrFenced
// when the incarnation is no longer current.
//
// Each of its statements is fenced on its own, so they need no transaction
// around them: the row is taken over (the usual case, one statement), or
// created; a claim that races another's creation tries the take-over again.
func (s *Store) ClaimHeartbeat(ctx context.Context, component string, version int64, node NodeID) error {
	now := time.Now().UTC()
	db := s.with(ctx)
	for attempt := 0; ; attempt++ {
		res := db.Exec("UPDATE task_heartbeats SET version = ?, node = ?, at = ?, metrics = '' "+
			"WHERE component = ? AND version <= ? AND EXISTS (SELECT 1 FROM tasks WHERE component = ? AND version = ? AND node = ?)",
			version, node, now, component, version, component, version, node)
		if res.Error != nil {
			return translate(res.Error)
		}
		if res.RowsAffected == 1 {
			return nil
		}
		res = db.Exec("INSERT INTO task_heartbeats (component, version, node, at, metrics) "+
			"SELECT ?, ?, ?, ?, '' FROM tasks WHERE component = ? AND version = ? AND node = ? "+
			"AND NOT EXISTS (SELECT 1 FROM task_heartbeats WHERE component = ?)",
			component, version, node, now, component, version, node, component)
		if err := translate(res.Error); errors.Is(err, ErrAlreadyExists) && attempt == 0 {
			continue // created meanwhile: take it over
		} else if err != nil {
			return err
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("claiming the heartbeat of %s at version %d on %s: %w", component, version, node, ErrFenced)
		}
		return nil
	}
}

// Heartbeats returns heartbeat rows by component.
func (s *Store) Heartbeats(ctx context.Context, components []string) (map[string]Heartbeat, error) {
	out := map[string]Heartbeat{}
	if len(components) == 0 {
		return out, nil
	}
	var rows []Heartbeat
	if err := s.with(ctx).Where("component IN ?", components).Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	for _, r := range rows {
		out[r.Component] = r
	}
	return out, nil
}

// QuietTasks returns the tasks in one of states whose current
// incarnation's heartbeat is older than before (the row's last update
// standing in for a heartbeat it has not written yet), with that heartbeat
// when there is one: one query that reads only the tasks the liveness job
// must judge, not every running task and its heartbeat.
func (s *Store) QuietTasks(ctx context.Context, states []State, before time.Time) ([]Task, map[string]Heartbeat, error) {
	var tasks []Task
	err := s.with(ctx).Table("tasks AS t").Select("t.*").
		Joins("LEFT JOIN task_heartbeats h ON h.component = t.component AND h.version = t.version").
		Where("t.state IN ? AND COALESCE(h.at, t.updated_at) < ?", states, before.UTC()).
		Find(&tasks).Error
	if err != nil {
		return nil, nil, translate(err)
	}
	// Sorted here: an ORDER BY over this join would make MariaDB build an
	// on-disk (Aria) temporary table for every call, the rows having TEXT
	// columns.
	slices.SortFunc(tasks, func(a, b Task) int { return strings.Compare(a.Component, b.Component) })
	hbs, err := s.Heartbeats(ctx, Components(tasks))
	if err != nil {
		return nil, nil, err
	}
	return tasks, hbs, nil
}

// ProgressOf is CheckpointsOf and Heartbeats of the tasks named by components
// in one statement: a task with its heartbeat and checkpoints joined. A
// component with no task row has none.
func (s *Store) ProgressOf(ctx context.Context, components []string) (map[string][]Checkpoint, map[string]Heartbeat, error) {
	cps, hbs := map[string][]Checkpoint{}, map[string]Heartbeat{}
	if len(components) == 0 {
		return cps, hbs, nil
	}
	var rows []progressRow
	err := s.withProgress(ctx, "t.component AS component").Where("t.component IN ?", components).Scan(&rows).Error
	if err != nil {
		return nil, nil, translate(err)
	}
	// Sorted here, not by the join (see QuietTasks).
	slices.SortFunc(rows, func(a, b progressRow) int {
		if c := strings.Compare(a.Component, b.Component); c != 0 {
			return c
		}
		return strings.Compare(deref(a.Joined.CpSubtopic), deref(b.Joined.CpSubtopic))
	})
	for _, r := range rows {
		if hb := r.Joined.heartbeat(r.Component); hb != nil {
			hbs[r.Component] = *hb
		}
		if cp := r.Joined.checkpoint(r.Component); cp != nil {
			cps[r.Component] = append(cps[r.Component], *cp)
		}
	}
	return cps, hbs, nil
}

// TaskRevision is a task's component and revision.
type TaskRevision struct {
	Component string
	Revision  int64
}

// TaskRevisions lists the component and revision of every task of node
// (DELETED ones aside): what tells a reconciler which of its copies of the
// rows are still current, without reading the rows.
func (s *Store) TaskRevisions(ctx context.Context, node NodeID) ([]TaskRevision, error) {
	var out []TaskRevision
	err := s.with(ctx).Model(&Task{}).Select("component, revision").
		Where("node = ? AND state <> ?", node, StateDeleted).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("listing task revisions: %w", translate(err))
	}
	return out, nil
}

// TaskWithProgress reads a task with its checkpoints and heartbeat in one
// statement (the task row LEFT JOIN its heartbeat and checkpoints): what a
// detail reads. ErrNotFound when there is no such task.
func (s *Store) TaskWithProgress(ctx context.Context, component string) (*Task, []Checkpoint, *Heartbeat, error) {
	var rows []taskProgressRow
	err := s.withProgress(ctx, "t.id AS id, t.component AS component, t.project AS project, t.type AS type, t.node AS node, t.version AS version, "+
		"t.revision AS revision, t.desired_state AS desired_state, t.state AS state, t.config AS config, t.error_details AS error_details, "+
		"t.journal AS journal, t.auto_restarts AS auto_restarts, t.created_at AS created_at, t.updated_at AS updated_at").
		Where("t.component = ?", component).Scan(&rows).Error
	if err != nil {
		return nil, nil, nil, fmt.Errorf("task %s: %w", component, translate(err))
	}
	if len(rows) == 0 {
		return nil, nil, nil, fmt.Errorf("task %s: %w", component, ErrNotFound)
	}
	// Sorted here, not by the join (see QuietTasks).
	slices.SortFunc(rows, func(a, b taskProgressRow) int {
		return strings.Compare(deref(a.Joined.CpSubtopic), deref(b.Joined.CpSubtopic))
	})
	r := rows[0]
	t := &Task{ID: r.ID, Component: r.Component, Project: r.Project, Type: r.Type, Node: r.Node, Version: r.Version,
		Revision: r.Revision, Desired: r.DesiredState, State: r.State, Config: r.Config, AutoRestarts: r.AutoRestarts,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.ErrorDetails != nil {
		t.ErrorDetails = *r.ErrorDetails
	}
	if r.Journal != nil {
		t.Journal = *r.Journal
	}
	hb := r.Joined.heartbeat(r.Component)
	var cps []Checkpoint
	for _, r := range rows {
		if cp := r.Joined.checkpoint(r.Component); cp != nil {
			cps = append(cps, *cp)
		}
	}
	return t, cps, hb, nil
}

// Params returns all system parameters.
func (s *Store) Params(ctx context.Context) ([]Param, error) {
	var out []Param
	err := s.with(ctx).Order("`key`").Find(&out).Error
	return out, translate(err)
}

// SetParam upserts a system parameter.
func (s *Store) SetParam(ctx context.Context, key, value string) error {
	p := Param{Key: key, Value: value, UpdatedAt: time.Now().UTC()}
	err := s.with(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"}),
	}).Create(&p).Error
	return translate(err)
}

// GetAudit loads one audit row.
func (s *Store) GetAudit(ctx context.Context, id int64) (*Audit, error) {
	var a Audit
	if err := s.with(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		return nil, fmt.Errorf("audit row %d: %w", id, translate(err))
	}
	rows := []Audit{a}
	if err := s.withResults(ctx, rows); err != nil {
		return nil, err
	}
	return &rows[0], nil
}

// DeleteParam removes a system parameter, so its default applies again.
func (s *Store) DeleteParam(ctx context.Context, key string) error {
	return translate(s.with(ctx).Where("`key` = ?", key).Delete(&Param{}).Error)
}

// TaskCount is how many tasks a node has in one state.
type TaskCount struct {
	Node  NodeID
	State State
	N     int64
}

// CountTasks counts the tasks of every node by state, DELETED left out.
func (s *Store) CountTasks(ctx context.Context) ([]TaskCount, error) {
	var out []TaskCount
	err := s.with(ctx).Model(&Task{}).Select("node, state, COUNT(*) AS n").
		Where("state <> ?", StateDeleted).Group("node, state").Order("node, state").Scan(&out).Error
	return out, translate(err)
}

// AcquireLease takes the lease name for holder until now+ttl, or renews it,
// with one compare-and-swap: it succeeds when the row still holds what the
// caller last wrote (holder and expiry prev, 0 for a first try) or when the
// lease has expired. It reports whether holder now has the lease and until
// when. Clocks of the nodes must agree to well within ttl.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, prev int64, now time.Time, ttl time.Duration) (bool, int64, error) {
	exp := now.Add(ttl).UnixMilli()
	res := s.with(ctx).Model(&Lease{}).
		Where("name = ? AND ((holder = ? AND expires_at = ?) OR expires_at < ?)", name, holder, prev, now.UnixMilli()).
		Updates(map[string]any{"holder": holder, "expires_at": exp, "updated_at": now.UTC()})
	if res.Error != nil {
		return false, 0, translate(res.Error)
	}
	if res.RowsAffected == 1 {
		return true, exp, nil
	}
	// No row yet, or someone else holds it: only an insert can still win.
	err := s.with(ctx).Create(&Lease{Name: name, Holder: holder, ExpiresAt: exp, UpdatedAt: now.UTC()}).Error
	switch err = translate(err); {
	case err == nil:
		return true, exp, nil
	case errors.Is(err, ErrAlreadyExists):
		return false, 0, nil
	default:
		return false, 0, err
	}
}

// ReleaseLease gives the lease up, if holder still has it at expiry prev.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, prev int64) error {
	return translate(s.with(ctx).Model(&Lease{}).Where("name = ? AND holder = ? AND expires_at = ?", name, holder, prev).
		Updates(map[string]any{"expires_at": 0, "updated_at": time.Now().UTC()}).Error)
}

// GetLease loads a lease; ErrNotFound if it was never taken.
func (s *Store) GetLease(ctx context.Context, name string) (*Lease, error) {
	var l Lease
	if err := s.with(ctx).Where("name = ?", name).Take(&l).Error; err != nil {
		return nil, fmt.Errorf("lease %s: %w", name, translate(err))
	}
	return &l, nil
}

// SaveJobRun records the last run of a job.
func (s *Store) SaveJobRun(ctx context.Context, r *JobRun) error {
	err := s.with(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "name"}},
		DoUpdates: clause.Assignments(map[string]any{
			"node": r.Node, "started_at": r.StartedAt.UTC(), "duration_ms": r.DurationMS, "result": r.Result,
			"summary": r.Summary, "error": r.Error, "runs": gorm.Expr("runs + 1"),
		}),
	}).Create(r).Error
	return translate(err)
}

// JobRuns lists the last run of every job that ran.
func (s *Store) JobRuns(ctx context.Context) ([]JobRun, error) {
	var out []JobRun
	err := s.with(ctx).Order("name").Find(&out).Error
	return out, translate(err)
}

// withProgress selects cols of tasks t with the columns of its heartbeat
// and checkpoints LEFT JOINed (joinedProgress): one row per checkpoint.
func (s *Store) withProgress(ctx context.Context, cols string) *gorm.DB {
	return s.with(ctx).Table("tasks AS t").
		Select(cols + ", h.version AS hb_version, h.node AS hb_node, h.at AS hb_at, h.metrics AS hb_metrics, " +
			"c.subtopic AS cp_subtopic, c.version AS cp_version, c.ts AS cp_ts, c.token AS cp_token, c.updated_at AS cp_updated_at").
		Joins("LEFT JOIN task_heartbeats h ON h.component = t.component").
		Joins("LEFT JOIN task_checkpoints c ON c.component = t.component")
}

// joinedProgress are the heartbeat and checkpoint columns of withProgress;
// nil where the task has none.
type joinedProgress struct {
	HbVersion   *int64
	HbNode      *string
	HbAt        *time.Time
	HbMetrics   *string
	CpSubtopic  *string
	CpVersion   *int64
	CpTS        *int64 `gorm:"column:cp_ts"`
	CpToken     *string
	CpUpdatedAt *time.Time
}

// progressRow is a row of ProgressOf's join.
type progressRow struct {
	Component string
	Joined    joinedProgress `gorm:"embedded"`
}

// taskProgressRow is a row of TaskWithProgress's join.
type taskProgressRow struct {
	ID           int64
	Component    string
	Project      string
	Type         TaskType
	Node         NodeID
	Version      int64
	Revision     int64
	DesiredState Desired
	State        State
	Config       string
	ErrorDetails *string
	Journal      *string
	AutoRestarts int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Joined       joinedProgress `gorm:"embedded"`
}

// heartbeat is the joined heartbeat, nil when the task has none.
func (j joinedProgress) heartbeat(component string) *Heartbeat {
	if j.HbVersion == nil || j.HbAt == nil {
		return nil
	}
	return &Heartbeat{Component: component, Version: *j.HbVersion, At: *j.HbAt, Node: NodeID(deref(j.HbNode)), Metrics: deref(j.HbMetrics)}
}

// checkpoint is the joined checkpoint, nil when the row has none.
func (j joinedProgress) checkpoint(component string) *Checkpoint {
	if j.CpSubtopic == nil || j.CpVersion == nil || j.CpTS == nil || j.CpUpdatedAt == nil {
		return nil
	}
	return &Checkpoint{Component: component, Subtopic: *j.CpSubtopic, Version: *j.CpVersion, TS: *j.CpTS,
		Token: deref(j.CpToken), UpdatedAt: *j.CpUpdatedAt}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
