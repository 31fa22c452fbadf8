package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// auditResult0004 is how an accepted operator call ended, written once when
// it ends, so the call's audit row is never updated after it was written.
type auditResult0004 struct {
	AuditID    int64     `gorm:"primaryKey;autoIncrement:false"`
	At         time.Time `gorm:"not null"`
	Result     string    `gorm:"size:16;not null"`
	ErrCode    string    `gorm:"size:64"`
	ErrMsg     string    `gorm:"type:text"`
	DurationMS int64
}

func (auditResult0004) TableName() string { return "operation_audit_results" }

func m0004AuditResults() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "0004_audit_results",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&auditResult0004{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&auditResult0004{})
		},
	}
}
