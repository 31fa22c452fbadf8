package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// lease0002 is a named lease held by one node until ExpiresAt (unix
// milliseconds, so compare-and-swap on it is exact on every backend).
type lease0002 struct {
	Name      string    `gorm:"primaryKey;size:64"`
	Holder    string    `gorm:"size:128;not null"`
	ExpiresAt int64     `gorm:"not null"`
	UpdatedAt time.Time `gorm:"not null"`
}

func (lease0002) TableName() string { return "leases" }

// jobRun0002 is the last run of a scheduled job, whichever node ran it.
type jobRun0002 struct {
	Name       string    `gorm:"primaryKey;size:64"`
	Node       string    `gorm:"size:128;not null"`
	StartedAt  time.Time `gorm:"not null"`
	DurationMS int64     `gorm:"not null"`
	Result     string    `gorm:"size:16;not null"`
	Summary    string    `gorm:"type:text"`
	Error      string    `gorm:"type:text"`
	Runs       int64     `gorm:"not null"`
}

func (jobRun0002) TableName() string { return "job_runs" }

func m0002Cluster() *gormigrate.Migration {
	tables := []any{&lease0002{}, &jobRun0002{}}
	return &gormigrate.Migration{
		ID: "0002_cluster",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(tables...)
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(tables...)
		},
	}
}
