package checkpoint

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CheckPullback holds the guard rails of a pullback to target, a parsed
// checkpoint. It is pure so that the API can refuse a bad request before
// stopping anything, and the runner can run the same checks again.
//
//   - current: where the task stands now, by subtopic; may miss subtopics.
//   - known: the subtopics the task reads; empty skips the check.
//   - oldest: the oldest time the source still holds, by subtopic; may miss subtopics.
//   - force: allows moving past current progress, which skips data.
//
// Checks run in this order, each over all subtopics in sorted order, so the
// error reported is the most fundamental one: unknown subtopic
// (ErrUnknownSubtopic), time unit or future (ErrTimeUnit, ErrInvalid,
// ErrInFuture), out of range (*OutOfRangeError), forward (ErrForward).
func CheckPullback(current map[string]Position, target map[string]int64, known []string, oldest map[string]int64, force bool, now time.Time) error {
	if len(target) == 0 {
		return fmt.Errorf("%w: no subtopics to pull back", ErrInvalid)
	}
	subs := make([]string, 0, len(target))
	for sub := range target {
		subs = append(subs, sub)
	}
	slices.Sort(subs)

	if len(known) > 0 {
		var unknown []string
		for _, sub := range subs {
			if !slices.Contains(known, sub) {
				unknown = append(unknown, sub)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("%w: %s; the task reads %s", ErrUnknownSubtopic, quoteList(unknown), quoteList(known))
		}
	}
	for _, sub := range subs {
		ts, where := target[sub], fmt.Sprintf("subtopic %q: ", clip(sub))
		switch {
		case ts < 0:
			return fmt.Errorf("%w: %s%d: unix seconds cannot be negative", ErrInvalid, where, ts)
		case ts > maxSeconds:
			return unitError(where, strconv.FormatInt(ts, 10))
		}
		if err := future(where, ts, now); err != nil {
			return err
		}
	}
	for _, sub := range subs {
		if old, ok := oldest[sub]; ok && target[sub] < old {
			return &OutOfRangeError{Subtopic: sub, Requested: target[sub], Oldest: old}
		}
	}
	if force {
		return nil
	}
	for _, sub := range subs {
		if cur, ok := current[sub]; ok && target[sub] > cur.TS {
			ts := target[sub]
			return fmt.Errorf("%w: subtopic %q: %d (%s) is after current progress %d (%s); moving forward would skip data, set force=true to do it anyway",
				ErrForward, clip(sub), ts, FormatUnix(ts), cur.TS, FormatUnix(cur.TS))
		}
	}
	return nil
}

// quoteList renders subtopics for a message, sorted and capped so that a
// task with a thousand subtopics does not produce a thousand-line error.
func quoteList(subs []string) string {
	const limit = 20
	s := slices.Clone(subs)
	slices.Sort(s)
	var b strings.Builder
	for i, sub := range s {
		if i == limit {
			fmt.Fprintf(&b, " and %d more", len(s)-limit)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", clip(sub))
	}
	return b.String()
}
