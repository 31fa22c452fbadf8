package checkpoint

import (
	"errors"
	"fmt"
)

// Error categories. Each maps to exactly one errCode in the server's error
// mapping, so they stay distinct: none wraps another, and none wraps
// model.ErrInvalidArgument, which would make the mapping order-dependent.
var (
	// ErrInvalid: the checkpoint or time is malformed (errCode INVALID_CHECKPOINT).
	ErrInvalid = errors.New("invalid checkpoint")
	// ErrTimeUnit: a value is too large to be unix seconds and almost
	// certainly milliseconds or finer (errCode CHECKPOINT_TIME_UNIT). It is
	// kept apart from ErrInvalid because it is the most common mistake and
	// the message tells the operator the exact value to send instead.
	ErrTimeUnit = errors.New("checkpoint time unit")
	// ErrInFuture: a checkpoint is later than now (errCode CHECKPOINT_IN_FUTURE).
	ErrInFuture = errors.New("checkpoint in the future")
	// ErrUnknownSubtopic: a subtopic the task does not read (errCode UNKNOWN_SUBTOPIC).
	ErrUnknownSubtopic = errors.New("unknown subtopic")
	// ErrForward: a checkpoint past current progress, which would skip data
	// (errCode CHECKPOINT_FORWARD).
	ErrForward = errors.New("checkpoint moves forward")
	// ErrOutOfRange: a checkpoint older than the source still holds
	// (errCode CHECKPOINT_OUT_OF_RANGE). Returned as *OutOfRangeError.
	ErrOutOfRange = errors.New("checkpoint out of range")
)

// OutOfRangeError says a pullback asks for data the source no longer has,
// and carries the oldest time that can still be served so a client can
// retry with it.
type OutOfRangeError struct {
	Subtopic  string
	Requested int64
	Oldest    int64
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("%s: subtopic %q: %d (%s) is before the oldest available time %d (%s); pull back to %d or later",
		ErrOutOfRange, e.Subtopic, e.Requested, FormatUnix(e.Requested), e.Oldest, FormatUnix(e.Oldest), e.Oldest)
}

// Is makes errors.Is(err, ErrOutOfRange) hold without wrapping, so the
// typed error keeps its fields for errors.As.
func (e *OutOfRangeError) Is(target error) bool { return target == ErrOutOfRange }
