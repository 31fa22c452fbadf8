package model_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

func TestIdempotencyKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Now().UTC().Truncate(time.Second)
		k := model.IdempotencyKey{Actor: "ops", Key: "k1", Fingerprint: "fp", Owner: "o1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}

		got, claimed, err := s.ClaimIdempotencyKey(ctx, k)
		if err != nil || !claimed || !got.Pending() {
			t.Fatalf("first claim = %+v, %v, %v", got, claimed, err)
		}
		second := k
		second.Owner = "o2"
		got, claimed, err = s.ClaimIdempotencyKey(ctx, second)
		if err != nil || claimed || got.Owner != "o1" || !got.Pending() {
			t.Fatalf("second claim = %+v, %v, %v; want o1's pending claim", got, claimed, err)
		}
		// Keys are per actor.
		other := k
		other.Actor, other.Owner = "viewer", "o3"
		if _, claimed, err := s.ClaimIdempotencyKey(ctx, other); err != nil || !claimed {
			t.Fatalf("another actor's claim of the same key = %v, %v", claimed, err)
		}
		if err := s.CompleteIdempotencyKey(ctx, "ops", "k1", "o2", 200, "{}"); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("completing another's claim = %v, want ErrConflict", err)
		}
		if err := s.CompleteIdempotencyKey(ctx, "ops", "k1", "o1", 200, `{"isSuccess":true}`); err != nil {
			t.Fatal(err)
		}
		got, claimed, err = s.ClaimIdempotencyKey(ctx, second)
		if err != nil || claimed || got.Pending() || got.Status != 200 || got.Answer != `{"isSuccess":true}` {
			t.Fatalf("claim after the answer = %+v, %v, %v", got, claimed, err)
		}
		if err := s.CompleteIdempotencyKey(ctx, "ops", "k1", "o1", 409, "{}"); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("a second answer = %v, want ErrConflict", err)
		}

		// A released claim lets the next call run.
		k2 := k
		k2.Key = "k2"
		if _, claimed, _ := s.ClaimIdempotencyKey(ctx, k2); !claimed {
			t.Fatal("k2 not claimed")
		}
		if err := s.ReleaseIdempotencyKey(ctx, "ops", "k2", "o1"); err != nil {
			t.Fatal(err)
		}
		k2.Owner = "o2"
		if _, claimed, err := s.ClaimIdempotencyKey(ctx, k2); err != nil || !claimed {
			t.Fatalf("claim after release = %v, %v", claimed, err)
		}
		// An abandoned claim (its node died) is taken over; the old owner
		// can no longer answer.
		if err := s.AbandonIdempotencyKey(ctx, "ops", "k2", "o2"); err != nil {
			t.Fatal(err)
		}
		k2.Owner = "o3"
		if _, claimed, err := s.ClaimIdempotencyKey(ctx, k2); err != nil || !claimed {
			t.Fatalf("claim after abandon = %v, %v", claimed, err)
		}
		if err := s.CompleteIdempotencyKey(ctx, "ops", "k2", "o2", 200, "{}"); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("the abandoned owner's answer = %v, want ErrConflict", err)
		}

		// An expired key is replaced by the next claim, and purged.
		later := k
		later.Owner, later.Fingerprint = "o9", "other"
		later.CreatedAt, later.ExpiresAt = now.Add(2*time.Hour), now.Add(3*time.Hour)
		got, claimed, err = s.ClaimIdempotencyKey(ctx, later)
		if err != nil || !claimed || got.Fingerprint != "other" {
			t.Fatalf("claim of an expired key = %+v, %v, %v", got, claimed, err)
		}
		n, err := s.PurgeIdempotencyKeys(ctx, now.Add(2*time.Hour))
		if err != nil || n != 2 { // viewer's k1 and ops' k2 expired at now+1h
			t.Fatalf("purge = %d, %v; want 2", n, err)
		}
	})
}
