package model

import (
	"context"
	"errors"
	"testing"
)

// TestInterruptedStatementIsCanceled: a SQLite statement cut because its
// context ended (a client that went away mid-call: the sweep's truncated
// chunked body met it under -race) is context.Canceled, which the API
// answers 503 CANCELED, not 500. The error is the driver's own text.
func TestInterruptedStatementIsCanceled(t *testing.T) {
	err := translate(errors.New("interrupted (9)"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted statement = %v, want context.Canceled", err)
	}
}
