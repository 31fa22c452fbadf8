package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// The structs below are frozen copies of the schema as of this migration.
// They never change; later schema changes are new migrations.

type task0001 struct {
	ID           int64     `gorm:"primaryKey;autoIncrement"`
	Component    string    `gorm:"size:128;not null;uniqueIndex"`
	Project      string    `gorm:"size:64;not null;index"`
	Type         string    `gorm:"size:16;not null"`
	Node         string    `gorm:"size:128;not null;index"`
	Version      int64     `gorm:"not null"`
	Revision     int64     `gorm:"not null"`
	DesiredState string    `gorm:"size:16;not null"`
	State        string    `gorm:"size:16;not null;index"`
	Config       string    `gorm:"type:text;not null"`
	ErrorDetails string    `gorm:"type:text"`
	Journal      string    `gorm:"type:text"`
	CreatedAt    time.Time `gorm:"not null"`
	UpdatedAt    time.Time `gorm:"not null"`
}

func (task0001) TableName() string { return "tasks" }

type incarnation0001 struct {
	ID        int64     `gorm:"primaryKey;autoIncrement"`
	Component string    `gorm:"size:128;not null;uniqueIndex:ux_incarnation"`
	Version   int64     `gorm:"not null;uniqueIndex:ux_incarnation"`
	Name      string    `gorm:"size:255;not null"`
	Node      string    `gorm:"size:128;not null"`
	Reason    string    `gorm:"size:32;not null"`
	CreatedAt time.Time `gorm:"not null"`
	EndedAt   *time.Time
}

func (incarnation0001) TableName() string { return "task_incarnations" }

type checkpoint0001 struct {
	Component string    `gorm:"primaryKey;size:128"`
	Subtopic  string    `gorm:"primaryKey;size:255"`
	Version   int64     `gorm:"not null"`
	TS        int64     `gorm:"column:ts;not null"`
	Token     string    `gorm:"type:text"`
	UpdatedAt time.Time `gorm:"not null"`
}

func (checkpoint0001) TableName() string { return "task_checkpoints" }

type heartbeat0001 struct {
	Component string    `gorm:"primaryKey;size:128"`
	Version   int64     `gorm:"not null"`
	Node      string    `gorm:"size:128;not null"`
	At        time.Time `gorm:"not null"`
	Metrics   string    `gorm:"type:text"`
}

func (heartbeat0001) TableName() string { return "task_heartbeats" }

type audit0001 struct {
	ID          int64     `gorm:"primaryKey;autoIncrement"`
	At          time.Time `gorm:"not null;index"`
	Actor       string    `gorm:"size:255;not null"`
	Operation   string    `gorm:"size:32;not null"`
	Component   string    `gorm:"size:128;index"`
	TaskBefore  string    `gorm:"size:255"`
	TaskAfter   string    `gorm:"size:255"`
	StateBefore string    `gorm:"size:16"`
	StateAfter  string    `gorm:"size:16"`
	Params      string    `gorm:"type:text"`
	Detail      string    `gorm:"type:text"`
	Result      string    `gorm:"size:16;not null"`
	ErrCode     string    `gorm:"size:64"`
	ErrMsg      string    `gorm:"type:text"`
	DurationMS  int64
	RequestID   string `gorm:"size:64"`
}

func (audit0001) TableName() string { return "operation_audit_log" }

type param0001 struct {
	Key       string    `gorm:"primaryKey;size:128"`
	Value     string    `gorm:"type:text;not null"`
	UpdatedAt time.Time `gorm:"not null"`
}

func (param0001) TableName() string { return "system_params" }

type node0001 struct {
	ID        string `gorm:"primaryKey;size:128"`
	Addr      string `gorm:"size:255;not null"`
	Version   string `gorm:"size:64"`
	Capacity  int
	StartedAt time.Time `gorm:"not null"`
	SeenAt    time.Time `gorm:"not null;index"`
}

func (node0001) TableName() string { return "nodes" }

func m0001Init() *gormigrate.Migration {
	tables := []any{&task0001{}, &incarnation0001{}, &checkpoint0001{}, &heartbeat0001{}, &audit0001{}, &param0001{}, &node0001{}}
	return &gormigrate.Migration{
		ID: "0001_init",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(tables...)
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(tables...)
		},
	}
}
