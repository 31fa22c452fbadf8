package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// node0003 is the nodes table with the columns that make a node id a lease:
// the process holding the id (a random instance id drawn at start) and,
// for operators, where that process runs. Every heartbeat is fenced by
// Instance; an empty one means nobody holds the id (released at a clean
// shutdown, or written before this migration).
type node0003 struct {
	ID        string `gorm:"primaryKey;size:128"`
	Addr      string `gorm:"size:255;not null"`
	Version   string `gorm:"size:64"`
	Capacity  int
	StartedAt time.Time `gorm:"not null"`
	SeenAt    time.Time `gorm:"not null;index"`
	Instance  string    `gorm:"size:64;not null;default:''"`
	Host      string    `gorm:"size:255;not null;default:''"`
	PID       int       `gorm:"column:pid;not null;default:0"`
}

func (node0003) TableName() string { return "nodes" }

var node0003Columns = []string{"Instance", "Host", "PID"}

func m0003NodeInstance() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "0003_node_instance",
		Migrate: func(tx *gorm.DB) error {
			for _, c := range node0003Columns {
				if tx.Migrator().HasColumn(&node0003{}, c) {
					continue
				}
				if err := tx.Migrator().AddColumn(&node0003{}, c); err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for _, c := range node0003Columns {
				if err := tx.Migrator().DropColumn(&node0003{}, c); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
