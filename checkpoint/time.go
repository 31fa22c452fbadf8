package checkpoint

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// Embedded zone data: the service runs from minimal images without
	// /usr/share/zoneinfo, and a pullback to "19:00 Asia/Shanghai" must not
	// depend on what the host happens to have installed.
	_ "time/tzdata"
)

// DefaultTZ is the zone for date-times given without one. UTC rather than
// the host's zone, so that the same request means the same instant on every node.
const DefaultTZ = "UTC"

// dateTimeLayouts are the accepted date-time forms: the one the OMS
// documentation uses, and its ISO 8601 twin that browsers' datetime inputs send.
var dateTimeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05"}

// ParseTime reads a pullback time: unix seconds ("1676286000") or a
// date-time "YYYY-MM-DD HH:MM:SS" (or with a T) in the IANA zone tz, UTC
// when tz is empty. Errors wrap ErrInvalid, or ErrTimeUnit for values of 12
// digits or more.
func ParseTime(value, tz string) (int64, error) {
	loc, err := location(tz)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(value)
	if v == "" {
		return 0, fmt.Errorf("%w: empty time; want unix seconds such as 1676286000 or YYYY-MM-DD HH:MM:SS", ErrInvalid)
	}
	if isInteger(v) {
		return seconds("", v)
	}
	for _, layout := range dateTimeLayouts {
		t, err := time.ParseInLocation(layout, v, loc)
		if err != nil {
			continue
		}
		// time.Parse accepts a fraction after the seconds even when the
		// layout has none; checkpoints have one-second resolution, so a
		// fraction would be silently dropped.
		if t.Nanosecond() != 0 {
			return 0, fmt.Errorf("%w: time %q has a fraction of a second; checkpoints are whole seconds", ErrInvalid, clip(v))
		}
		ts := t.Unix()
		switch {
		case ts < 0:
			return 0, fmt.Errorf("%w: time %q in %s is before 1970-01-01 00:00:00 UTC", ErrInvalid, clip(v), loc)
		case ts > maxSeconds:
			return 0, fmt.Errorf("%w: time %q in %s is after %s, the latest accepted", ErrInvalid, clip(v), loc, FormatUnix(maxSeconds))
		}
		return ts, nil
	}
	return 0, fmt.Errorf("%w: time %q is neither unix seconds such as 1676286000 nor YYYY-MM-DD HH:MM:SS", ErrInvalid, clip(v))
}

func location(tz string) (*time.Location, error) {
	if tz == "" || strings.EqualFold(tz, "UTC") {
		return time.UTC, nil
	}
	// "Local" would mean whatever zone the node serving the request runs
	// in, so the same request could land on different instants.
	if tz == "Local" {
		return nil, fmt.Errorf("%w: time zone %q depends on the server; give an IANA name such as Asia/Shanghai", ErrInvalid, tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%w: unknown time zone %q; want an IANA name such as Asia/Shanghai or UTC", ErrInvalid, clip(tz))
	}
	return loc, nil
}

// FormatUnix renders unix seconds for messages: "2023-02-13 11:00:00 UTC".
func FormatUnix(ts int64) string {
	return time.Unix(ts, 0).UTC().Format("2006-01-02 15:04:05 UTC")
}

// CheckNotFuture refuses a time after now. No clock skew is allowed: a
// checkpoint in the future would make the source wait for, or skip to,
// data that does not exist yet.
func CheckNotFuture(ts int64, now time.Time) error {
	return future("", ts, now)
}

func future(where string, ts int64, now time.Time) error {
	if n := now.Unix(); ts > n {
		return fmt.Errorf("%w: %s%d (%s) is after now, %d (%s)", ErrInFuture, where, ts, FormatUnix(ts), n, FormatUnix(n))
	}
	return nil
}

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
