package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// audit0005 adds to the audit log how many calls a row stands for: 1, but
// for the summary row of identical refusals coalesced within a window
// (model.Refusals), which counts the refusals after the window's first.
type audit0005 struct {
	Calls int64 `gorm:"not null;default:1"`
}

func (audit0005) TableName() string { return "operation_audit_log" }

// idempotencyKey0005 is one Idempotency-Key of one client: the request it
// was first sent with (a hash), and once that call ended, its answer. A
// row with Status 0 is a call still running, claimed by Owner.
type idempotencyKey0005 struct {
	Actor       string    `gorm:"primaryKey;size:255"`
	Key         string    `gorm:"column:idem_key;primaryKey;size:128"`
	Fingerprint string    `gorm:"size:64;not null"`
	Owner       string    `gorm:"size:32;not null"`
	Status      int       `gorm:"not null"`
	Answer      string    `gorm:"type:text"`
	CreatedAt   time.Time `gorm:"not null"`
	ExpiresAt   time.Time `gorm:"not null;index"`
}

func (idempotencyKey0005) TableName() string { return "idempotency_keys" }

func m0005RefusalsIdempotency() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "0005_refusals_idempotency",
		Migrate: func(tx *gorm.DB) error {
			if !tx.Migrator().HasColumn(&audit0005{}, "Calls") {
				if err := tx.Migrator().AddColumn(&audit0005{}, "Calls"); err != nil {
					return err
				}
			}
			return tx.Migrator().CreateTable(&idempotencyKey0005{})
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropTable(&idempotencyKey0005{}); err != nil {
				return err
			}
			return tx.Migrator().DropColumn(&audit0005{}, "Calls")
		},
	}
}
