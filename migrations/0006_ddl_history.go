package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// ddlHistory0006 is one schema statement a task's sink applied on its
// target (sink.ddl=apply): where it was in the source's stream, the
// statement as the source logged it and what the sink ran for it. One row
// per component, subtopic and position: a replay updates it.
type ddlHistory0006 struct {
	ID        int64     `gorm:"primaryKey;autoIncrement"`
	Component string    `gorm:"size:128;not null;uniqueIndex:ddl_history_position,priority:1"`
	Subtopic  string    `gorm:"size:191;not null;uniqueIndex:ddl_history_position,priority:2"`
	After     string    `gorm:"column:after_token;size:128;not null;uniqueIndex:ddl_history_position,priority:3"`
	Before    string    `gorm:"column:before_token;size:128;not null"`
	TS        int64     `gorm:"not null"`
	At        time.Time `gorm:"not null"`
	Task      string    `gorm:"size:255;not null"`
	Database  string    `gorm:"column:db;size:64"`
	Statement string    `gorm:"type:text;not null"`
	Applied   string    `gorm:"type:text"` // JSON list
	Tables    string    `gorm:"type:text"` // JSON list
	Replays   int64     `gorm:"not null;default:0"`
}

func (ddlHistory0006) TableName() string { return "ddl_history" }

// schemaVersion0006 is the definition of one source table from a position
// on, as a task's source learned it: at the task's start and after every
// schema statement on the table. Rows are decoded with the version of
// their position.
type schemaVersion0006 struct {
	Component  string    `gorm:"primaryKey;size:128"`
	Subtopic   string    `gorm:"primaryKey;size:191"`
	Token      string    `gorm:"primaryKey;size:128"`
	Tbl        string    `gorm:"primaryKey;size:130"`
	TS         int64     `gorm:"not null"`
	At         time.Time `gorm:"not null"`
	Definition string    `gorm:"type:text"` // JSON; empty: the table does not exist from here on
}

func (schemaVersion0006) TableName() string { return "schema_versions" }

func m0006DDLHistory() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "0006_ddl_history",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&ddlHistory0006{}); err != nil {
				return err
			}
			return tx.Migrator().CreateTable(&schemaVersion0006{})
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropTable(&schemaVersion0006{}); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&ddlHistory0006{})
		},
	}
}
