package model

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// Node is a registered cm serve process. A node id is held like a lease:
// the process that registered it writes its Instance (a random id drawn at
// start) into the row, and every heartbeat it makes is fenced by it, so a
// second process that takes the id over (ClaimNode) turns the first one's
// heartbeats into ErrConflict. An empty Instance means nobody holds the id: the
// holder released it at a clean shutdown, or a cm from before the lease
// wrote the row.
type Node struct {
	ID        NodeID    `gorm:"primaryKey;size:128"`
	Addr      string    `gorm:"size:255;not null"` // base URL of its API, the one other nodes call
	Version   string    `gorm:"size:64"`
	Capacity  int       ``
	StartedAt time.Time `gorm:"not null"`
	SeenAt    time.Time `gorm:"not null;index"`
	// Instance is the process holding the id; see Node.
	Instance string `gorm:"size:64;not null;default:''"`
	// Host and PID say where the holding process runs (os.Hostname and
	// its pid), for the operator and for telling a crashed holder on the
	// same host from a live one.
	Host string `gorm:"size:255;not null;default:''"`
	PID  int    `gorm:"column:pid;not null;default:0"`
}

// TableName fixes the table name.
func (Node) TableName() string { return "nodes" }

// Holder describes the process holding the id, for messages.
func (n *Node) Holder() string {
	if n.Instance == "" {
		return "nobody"
	}
	s := "instance " + n.Instance
	if n.Host != "" || n.PID != 0 {
		s += fmt.Sprintf(", pid %d on %s", n.PID, n.Host)
	}
	return s + ", address " + n.Addr
}

// nodeColumns are the columns a registration writes.
var nodeColumns = []string{"addr", "version", "capacity", "started_at", "seen_at", "instance", "host", "pid"}

func (n *Node) values() map[string]any {
	return map[string]any{"addr": n.Addr, "version": n.Version, "capacity": n.Capacity, "started_at": n.StartedAt.UTC(),
		"seen_at": n.SeenAt.UTC(), "instance": n.Instance, "host": n.Host, "pid": n.PID}
}

// UpsertNode writes n as it is, whoever holds the id. Nodes register with
// ClaimNode; this is for tools and tests.
func (s *Store) UpsertNode(ctx context.Context, n *Node) error {
	n.StartedAt, n.SeenAt = n.StartedAt.UTC(), n.SeenAt.UTC()
	err := s.with(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns(nodeColumns),
	}).Create(n).Error
	return translate(err)
}

// ClaimNode registers n.ID for the process n.Instance with one
// compare-and-swap on what the caller read of the row: seen is that row, or
// nil when there was none. With seen nil the row is inserted; otherwise it
// is taken only while it still names seen.Instance and, unless staleBefore
// is zero, while its seen_at is still before staleBefore (its holder has
// not heartbeaten since the caller judged it gone). ErrConflict when the
// row changed in between: two processes claiming one id cannot both win.
func (s *Store) ClaimNode(ctx context.Context, n *Node, seen *Node, staleBefore time.Time) error {
	if seen == nil {
		n.StartedAt, n.SeenAt = n.StartedAt.UTC(), n.SeenAt.UTC()
		err := translate(s.with(ctx).Create(n).Error)
		if errors.Is(err, ErrAlreadyExists) {
			return fmt.Errorf("node %s: registered meanwhile: %w", n.ID, ErrConflict)
		}
		return err
	}
	q := s.with(ctx).Model(&Node{}).Where("id = ? AND instance = ?", n.ID, seen.Instance)
	if !staleBefore.IsZero() {
		q = q.Where("seen_at < ?", staleBefore.UTC())
	}
	res := q.Updates(n.values())
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("node %s: changed meanwhile: %w", n.ID, ErrConflict)
	}
	return nil
}

// TouchNode records that the node is alive, if the process instance still
// holds its id: ErrConflict when another process has taken the id over,
// ErrNotFound when the row is gone.
func (s *Store) TouchNode(ctx context.Context, id NodeID, instance string, at time.Time) error {
	res := s.with(ctx).Model(&Node{}).Where("id = ? AND instance = ?", id, instance).Update("seen_at", at.UTC())
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	if _, err := s.GetNode(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("node %s is held by another process: %w", id, ErrConflict)
}

// ReleaseNode gives the id up at a clean shutdown, if instance still holds
// it, so the next process to start with it need not wait for the heartbeat
// to age. seen_at is left alone: the node still looks alive until it ages.
func (s *Store) ReleaseNode(ctx context.Context, id NodeID, instance string) error {
	return translate(s.with(ctx).Model(&Node{}).Where("id = ? AND instance = ?", id, instance).Update("instance", "").Error)
}

// Nodes lists registered nodes.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := s.with(ctx).Order("id").Find(&out).Error
	return out, translate(err)
}

// GetNode loads one node.
func (s *Store) GetNode(ctx context.Context, id NodeID) (*Node, error) {
	var n Node
	if err := s.with(ctx).Where("id = ?", id).Take(&n).Error; err != nil {
		return nil, fmt.Errorf("node %s: %w", id, translate(err))
	}
	return &n, nil
}
