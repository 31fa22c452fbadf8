package migrations

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// task0007 adds to a task how many automatic restarts it has had (over
// all its incarnations): a detail reads the restarts' audit rows only for
// a task that has had some.
type task0007 struct {
	AutoRestarts int64 `gorm:"not null;default:0"`
}

func (task0007) TableName() string { return "tasks" }

func m0007TaskAutoRestarts() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "0007_task_auto_restarts",
		Migrate: func(tx *gorm.DB) error {
			if !tx.Migrator().HasColumn(&task0007{}, "AutoRestarts") {
				if err := tx.Migrator().AddColumn(&task0007{}, "AutoRestarts"); err != nil {
					return err
				}
			}
			// The restarts so far, from the audit log.
			return tx.Exec(`UPDATE tasks SET auto_restarts = (SELECT COUNT(*) FROM operation_audit_log a
				WHERE a.component = tasks.component AND a.operation = ?)`, "auto-restart").Error
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropColumn(&task0007{}, "AutoRestarts")
		},
	}
}
