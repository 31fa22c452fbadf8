package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/connector-manager/cm/internal/metrics"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// schemaHistory is the mysql connectors' connector.SchemaHistory over the
// store: an applied schema statement is a ddl_history row and, in the same
// transaction, a runtime:ddl audit row (so it is in the task's
// operations), and is counted in the node's metrics; the source's table
// definitions are schema_versions rows.
type schemaHistory struct {
	store   *model.Store
	node    model.NodeID
	metrics *metrics.Metrics // set once built, before any task runs
}

// ddlDetail is the audit row's detail of an applied statement.
type ddlDetail struct {
	Position  model.StatementPosition `json:"position"`
	Database  string                  `json:"database"`
	Statement string                  `json:"statement"`
	Applied   []string                `json:"applied"`
	Tables    []string                `json:"tables"`
	Replay    bool                    `json:"replay,omitempty"`
}

func (h *schemaHistory) AppliedDDL(ctx context.Context, e connector.SchemaEvent) error {
	applied, tables := e.Applied, e.Tables
	if applied == nil {
		applied = []string{}
	}
	if tables == nil {
		tables = []string{}
	}
	a, _ := json.Marshal(applied)
	t, _ := json.Marshal(tables)
	// The audit row shows the statements with any password they carry
	// (a connection URL in a comment) masked; the history row keeps them
	// as logged, for replays, and is masked where it is read.
	var scrub *model.Scrubber
	shown := make([]string, len(applied))
	for i, q := range applied {
		shown[i] = scrub.String(q)
	}
	detail, err := json.Marshal(ddlDetail{
		Position: model.StatementPosition{Subtopic: e.Subtopic, Before: e.Before, After: e.After, TS: e.TS},
		Database: e.Database, Statement: scrub.String(e.Statement), Applied: shown, Tables: tables, Replay: e.Replay,
	})
	if err != nil {
		return fmt.Errorf("encoding a DDL record: %w", err)
	}
	comp := e.Task.Component.String()
	d := &model.AppliedDDL{Component: comp, Subtopic: e.Subtopic, Before: e.Before, After: e.After, TS: e.TS,
		Task: e.Task.String(), Database: e.Database, Statement: e.Statement, Applied: string(a), Tables: string(t)}
	audit := &model.Audit{Actor: "node:" + string(h.node), Operation: opDDL, Component: comp,
		TaskBefore: e.Task.String(), TaskAfter: e.Task.String(), Detail: string(detail), Result: model.ResultSuccess}
	if err := h.store.RecordDDL(ctx, d, audit); err != nil {
		return err
	}
	if h.metrics != nil {
		h.metrics.DDLApplied(comp)
	}
	return nil
}

// opDDL is the audit operation of an applied schema statement.
const opDDL = "runtime:ddl"

func (h *schemaHistory) DDLHistory(ctx context.Context, task model.TaskName) ([]model.AppliedDDL, error) {
	return h.store.DDLHistory(ctx, task.Component.String())
}

func (h *schemaHistory) SchemaVersions(ctx context.Context, task model.TaskName) ([]model.SchemaVersion, error) {
	return h.store.SchemaVersions(ctx, task.Component.String())
}

func (h *schemaHistory) AddSchemaVersions(ctx context.Context, task model.TaskName, v []model.SchemaVersion) error {
	for i := range v {
		v[i].Component = task.Component.String()
	}
	return h.store.AddSchemaVersions(ctx, v)
}
