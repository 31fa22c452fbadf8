package checkpoint

import (
	"fmt"
	"strings"
	"time"
	// Embedded zone data: the service runs from minimal images without
	// /usr/share/zoneinfo, and a pullback to "19:00 Asia/Shanghai" must not
	// depend on what the host happens to have installed.
	_ "time/tzdata"
)

// defaultTZ is the zone for date-times given without one. UTC rather than
// the host's zone, so that the same request means the same instant on every node.
const defaultTZ = "UTC"

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
