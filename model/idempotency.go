package model

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IdempotencyKey is one Idempotency-Key of one client (Actor): a hash of
// the request it was first sent with and, once that call ended, its
// answer. While the first call runs, Status is 0 and Owner names the claim,
// so that only the claimant completes or releases it. Rows are shared by
// every node, so a retry that lands on another node finds the answer too.
type IdempotencyKey struct {
	Actor       string    `gorm:"primaryKey;size:255"`
	Key         string    `gorm:"column:idem_key;primaryKey;size:128"`
	Fingerprint string    `gorm:"size:64;not null"`
	Owner       string    `gorm:"size:32;not null"`
	Status      int       `gorm:"not null"`
	Answer      string    `gorm:"type:text"`
	CreatedAt   time.Time `gorm:"not null"`
	ExpiresAt   time.Time `gorm:"not null;index"`
}

// TableName fixes the table name.
func (IdempotencyKey) TableName() string { return "idempotency_keys" }

// Pending reports whether the key's first call has not ended yet.
func (k *IdempotencyKey) Pending() bool { return k.Status == 0 }

// ClaimIdempotencyKey claims k.Actor's k.Key for a call about to run. It
// answers the row as it now stands and whether this call claimed it; when
// not, the row is another call's: its fingerprint tells whether it was the
// same request, its status whether it ended. An expired row is replaced.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, k IdempotencyKey) (*IdempotencyKey, bool, error) {
	if k.Status != 0 || k.Owner == "" {
		return nil, false, fmt.Errorf("%w: a claim is pending and names its owner", ErrInvalidArgument)
	}
	// Two rounds: the second after an expired row was dropped.
	for range 2 {
		err := s.with(ctx).Create(&k).Error
		if err == nil {
			return &k, true, nil
		}
		if err = translate(err); !errors.Is(err, ErrAlreadyExists) {
			return nil, false, fmt.Errorf("claiming idempotency key: %w", err)
		}
		var cur IdempotencyKey
		if err := s.with(ctx).Where("actor = ? AND idem_key = ?", k.Actor, k.Key).Take(&cur).Error; err != nil {
			err = translate(err)
			if errors.Is(err, ErrNotFound) {
				continue // released or purged meanwhile
			}
			return nil, false, fmt.Errorf("reading idempotency key: %w", err)
		}
		if !cur.ExpiresAt.Before(k.CreatedAt) {
			return &cur, false, nil
		}
		if err := s.dropKey(ctx, cur.Actor, cur.Key, cur.Owner); err != nil {
			return nil, false, err
		}
	}
	return nil, false, fmt.Errorf("%w: idempotency key %q changed hands twice while claiming it", ErrConflict, k.Key)
}

// CompleteIdempotencyKey records the answer of the call that claimed the
// key as owner. A claim taken over meanwhile (AbandonIdempotencyKey) is
// ErrConflict.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, actor, key, owner string, status int, answer string) error {
	if status == 0 {
		return fmt.Errorf("%w: an ended call has a status", ErrInvalidArgument)
	}
	res := s.with(ctx).Model(&IdempotencyKey{}).Where("actor = ? AND idem_key = ? AND owner = ? AND status = 0", actor, key, owner).
		Updates(map[string]any{"status": status, "answer": answer})
	if res.Error != nil {
		return fmt.Errorf("recording the answer of idempotency key: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("%w: idempotency key %q is no longer claimed by this call", ErrConflict, key)
	}
	return nil
}

// ReleaseIdempotencyKey drops owner's pending claim, so that the next call
// with the key runs: for a call whose answer is not kept (retryable).
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, actor, key, owner string) error {
	return s.dropKey(ctx, actor, key, owner)
}

// AbandonIdempotencyKey drops a pending claim whose call cannot answer any
// more (older than any exchange may last: its node died), if owner still
// holds it, so that a waiting retry may claim the key.
func (s *Store) AbandonIdempotencyKey(ctx context.Context, actor, key, owner string) error {
	res := s.with(ctx).Where("actor = ? AND idem_key = ? AND owner = ? AND status = 0", actor, key, owner).Delete(&IdempotencyKey{})
	if res.Error != nil {
		return fmt.Errorf("abandoning idempotency key: %w", translate(res.Error))
	}
	return nil
}

func (s *Store) dropKey(ctx context.Context, actor, key, owner string) error {
	if err := s.with(ctx).Where("actor = ? AND idem_key = ? AND owner = ?", actor, key, owner).Delete(&IdempotencyKey{}).Error; err != nil {
		return fmt.Errorf("dropping idempotency key: %w", translate(err))
	}
	return nil
}

// PurgeIdempotencyKeys deletes the keys expired before before.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	res := s.with(ctx).Where("expires_at < ?", before.UTC()).Delete(&IdempotencyKey{})
	if res.Error != nil {
		return 0, fmt.Errorf("purging idempotency keys: %w", translate(res.Error))
	}
	return res.RowsAffected, nil
}
