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

// offsetLayouts are the forms of a date-time that carries its own offset:
// RFC 3339 ("2023-02-13T19:00:00+08:00", "2023-02-13T11:00:00Z") and the
// same with a space instead of the T.
var offsetLayouts = []string{time.RFC3339, "2006-01-02 15:04:05Z07:00"}

// ParseTime reads a pullback time: unix seconds ("1676286000"), a
// date-time "YYYY-MM-DD HH:MM:SS" (or with a T) in the zone tz (UTC when tz
// is empty), or an RFC 3339 date-time with its offset
// ("2023-02-13T19:00:00+08:00"). tz is an IANA name (Asia/Shanghai), UTC, or
// a fixed offset "±HH:MM". A value with an offset needs no tz; given both,
// tz must have that offset at that instant. Errors wrap ErrInvalid, or
// ErrTimeUnit for values of 12 digits or more.
func ParseTime(value, tz string) (int64, error) {
	// An unescaped '+' in a query string arrives as a space:
	// tz=+08:00 reads " 08:00", and ...T19:00:00+08:00 reads "...T19:00:00 08:00".
	if len(tz) == 6 && tz[0] == ' ' && tz[3] == ':' {
		tz = "+" + tz[1:]
	}
	loc, err := location(tz)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(value)
	if len(v) == 25 && v[19] == ' ' && v[22] == ':' {
		v = v[:19] + "+" + v[20:]
	}
	if v == "" {
		return 0, fmt.Errorf("%w: empty time; want unix seconds such as 1676286000, YYYY-MM-DD HH:MM:SS or RFC 3339 such as 2023-02-13T19:00:00+08:00", ErrInvalid)
	}
	if isInteger(v) {
		return seconds("", v)
	}
	for _, layout := range offsetLayouts {
		t, err := time.Parse(layout, v)
		if err != nil {
			continue
		}
		if tz != "" {
			if _, want := t.In(loc).Zone(); want != offsetOf(t) {
				return 0, fmt.Errorf("%w: time %q has offset %s but zone %q is %s at that instant; give the offset or the zone, not both",
					ErrInvalid, clip(v), formatOffset(offsetOf(t)), clip(tz), formatOffset(want))
			}
		}
		return checkRange(t, v, "")
	}
	for _, layout := range dateTimeLayouts {
		t, err := time.ParseInLocation(layout, v, loc)
		if err != nil {
			continue
		}
		return checkRange(t, v, " in "+loc.String())
	}
	return 0, fmt.Errorf("%w: time %q is neither unix seconds such as 1676286000, YYYY-MM-DD HH:MM:SS, nor RFC 3339 such as 2023-02-13T19:00:00+08:00", ErrInvalid, clip(v))
}

// checkRange returns t as unix seconds if it is a whole second within the
// accepted range; in names the zone for messages.
func checkRange(t time.Time, v, in string) (int64, error) {
	// time.Parse accepts a fraction after the seconds even when the
	// layout has none; checkpoints have one-second resolution, so a
	// fraction would be silently dropped.
	if t.Nanosecond() != 0 {
		return 0, fmt.Errorf("%w: time %q has a fraction of a second; checkpoints are whole seconds", ErrInvalid, clip(v))
	}
	ts := t.Unix()
	switch {
	case ts < 0:
		return 0, fmt.Errorf("%w: time %q%s is before 1970-01-01 00:00:00 UTC", ErrInvalid, clip(v), in)
	case ts > maxSeconds:
		return 0, fmt.Errorf("%w: time %q%s is after %s, the latest accepted", ErrInvalid, clip(v), in, FormatUnix(maxSeconds))
	}
	return ts, nil
}

func offsetOf(t time.Time) int {
	_, off := t.Zone()
	return off
}

// formatOffset renders an offset in seconds east of UTC as ±HH:MM.
func formatOffset(off int) string {
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("%c%02d:%02d", sign, off/3600, off%3600/60)
}

// maxOffset bounds a fixed tz offset; real zones lie within -12:00..+14:00.
const maxOffset = 18 * time.Hour

func location(tz string) (*time.Location, error) {
	if tz == "" || strings.EqualFold(tz, "UTC") || tz == "Z" {
		return time.UTC, nil
	}
	// "Local" would mean whatever zone the node serving the request runs
	// in, so the same request could land on different instants.
	if tz == "Local" {
		return nil, fmt.Errorf("%w: time zone %q depends on the server; give an IANA name such as Asia/Shanghai or an offset such as +08:00", ErrInvalid, tz)
	}
	if tz[0] == '+' || tz[0] == '-' {
		return fixedOffset(tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%w: unknown time zone %q; want an IANA name such as Asia/Shanghai, UTC, or an offset such as +08:00", ErrInvalid, clip(tz))
	}
	return loc, nil
}

// fixedOffset reads a tz of the form ±HH:MM.
func fixedOffset(tz string) (*time.Location, error) {
	bad := fmt.Errorf("%w: time zone offset %q is not of the form ±HH:MM, such as +08:00 or -05:30", ErrInvalid, clip(tz))
	if len(tz) != 6 || tz[3] != ':' || !isDigits(tz[1:3]) || !isDigits(tz[4:6]) {
		return nil, bad
	}
	h, m := int(tz[1]-'0')*10+int(tz[2]-'0'), int(tz[4]-'0')*10+int(tz[5]-'0')
	if m > 59 {
		return nil, bad
	}
	off := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if off > maxOffset {
		return nil, fmt.Errorf("%w: time zone offset %q is beyond ±18:00", ErrInvalid, clip(tz))
	}
	if tz[0] == '-' {
		off = -off
	}
	return time.FixedZone(tz, int(off/time.Second)), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FormatRFC3339 renders unix seconds as RFC 3339 in UTC,
// "2023-02-13T11:00:00Z": the form every time in an API response takes.
func FormatRFC3339(ts int64) string {
	return time.Unix(ts, 0).UTC().Format(time.RFC3339)
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
