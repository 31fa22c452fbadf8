package model

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// AppliedDDL is one schema statement a task's sink applied on its target
// (sink.ddl=apply), by the position just after it in the source's stream.
// The sink writes it after the statement ran and before the position is
// checkpointed; a replay of the statement (after a crash or a pullback)
// updates the row and counts in Replays. Rows belong to the component, so
// they outlive a pullback's new incarnation.
type AppliedDDL struct {
	ID        int64     `gorm:"primaryKey;autoIncrement" json:"id"`
	Component string    `gorm:"size:128;not null" json:"-"`
	Subtopic  string    `gorm:"size:191;not null" json:"subtopic"`
	After     string    `gorm:"column:after_token;size:128;not null" json:"after"`
	Before    string    `gorm:"column:before_token;size:128;not null" json:"before"`
	TS        int64     `gorm:"not null" json:"ts"`
	At        time.Time `gorm:"not null" json:"at"`
	// Task is the incarnation that applied it last.
	Task     string `gorm:"size:255;not null" json:"task"`
	Database string `gorm:"column:db;size:64" json:"database"`
	// Statement is the statement as the source logged it; Applied the
	// statements run on the target (JSON list; empty when the target
	// already had its effect); Tables the source tables it changed (JSON).
	Statement string `gorm:"type:text;not null" json:"statement"`
	Applied   string `gorm:"type:text" json:"applied"`
	Tables    string `gorm:"type:text" json:"tables"`
	Replays   int64  `gorm:"not null;default:0" json:"replays"`
}

// TableName fixes the table name.
func (AppliedDDL) TableName() string { return "ddl_history" }

// SchemaVersion is the definition of one source table from a position on,
// as a task's source learned it. Definition is the connector's own JSON;
// empty means the table does not exist from there on.
type SchemaVersion struct {
	Component  string    `gorm:"primaryKey;size:128"`
	Subtopic   string    `gorm:"primaryKey;size:191"`
	Token      string    `gorm:"primaryKey;size:128"`
	Tbl        string    `gorm:"primaryKey;size:130"`
	TS         int64     `gorm:"not null"`
	At         time.Time `gorm:"not null"`
	Definition string    `gorm:"type:text"`
}

// TableName fixes the table name.
func (SchemaVersion) TableName() string { return "schema_versions" }

// RecordDDL writes d, or, when the component already has a statement at
// that subtopic and position, updates it (Task, At, Applied) and counts a
// replay. audit, when set, is written in the same transaction: the
// applied statement in the task's operations.
func (s *Store) RecordDDL(ctx context.Context, d *AppliedDDL, audit *Audit) error {
	if d.At.IsZero() {
		d.At = time.Now().UTC()
	}
	return s.Tx(ctx, func(tx *Store) error {
		err := tx.with(ctx).Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "component"}, {Name: "subtopic"}, {Name: "after_token"}},
			DoUpdates: clause.Assignments(map[string]any{
				"task": d.Task, "at": d.At, "applied": d.Applied, "replays": clause.Expr{SQL: "replays + 1"},
			}),
		}).Create(d).Error
		if err != nil {
			return fmt.Errorf("recording an applied DDL: %w", translate(err))
		}
		if audit != nil {
			return tx.InsertAudit(ctx, audit)
		}
		return nil
	})
}

// DDLHistory lists the statements applied for component, oldest first.
func (s *Store) DDLHistory(ctx context.Context, component string) ([]AppliedDDL, error) {
	var out []AppliedDDL
	if err := s.with(ctx).Where("component = ?", component).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("reading the DDL history: %w", translate(err))
	}
	return out, nil
}

// AddSchemaVersions writes versions; one the component already has (same
// subtopic, position and table) is kept as it was: what a source learned
// first of a position is what it saw then.
func (s *Store) AddSchemaVersions(ctx context.Context, versions []SchemaVersion) error {
	if len(versions) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range versions {
		if versions[i].At.IsZero() {
			versions[i].At = now
		}
	}
	if err := s.with(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&versions).Error; err != nil {
		return fmt.Errorf("writing schema versions: %w", translate(err))
	}
	return nil
}

// SchemaVersions lists the schema versions of component.
func (s *Store) SchemaVersions(ctx context.Context, component string) ([]SchemaVersion, error) {
	var out []SchemaVersion
	if err := s.with(ctx).Where("component = ?", component).Order("subtopic, tbl, token").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("reading schema versions: %w", translate(err))
	}
	return out, nil
}
