package checkpoint

import (
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		name, value, tz string
		want            int64
	}{
		{"seed example", "2023-02-13 19:00:00", "Asia/Shanghai", 1676286000},
		{"seed with T", "2023-02-13T19:00:00", "Asia/Shanghai", 1676286000},
		{"seed in UTC", "2023-02-13 11:00:00", "UTC", 1676286000},
		{"empty zone is UTC", "2023-02-13 11:00:00", "", 1676286000},
		{"utc in lower case", "2023-02-13 11:00:00", "utc", 1676286000},
		{"default zone", "2023-02-13 11:00:00", defaultTZ, 1676286000},
		{"Etc name", "2023-02-13 11:00:00", "Etc/UTC", 1676286000},
		{"zone west of UTC", "2023-02-13 06:00:00", "America/New_York", 1676286000},
		{"unix seconds", "1676286000", "", 1676286000},
		{"unix seconds ignore zone", "1676286000", "Asia/Shanghai", 1676286000},
		{"surrounding whitespace", "  1676286000\n", "", 1676286000},
		{"whitespace around date-time", " 2023-02-13 19:00:00 ", "Asia/Shanghai", 1676286000},
		{"epoch", "0", "", 0},
		{"epoch as date-time", "1970-01-01 00:00:00", "", 0},
		{"largest seconds", "99999999999", "", 99999999999},
		{"zero fraction", "2023-02-13 11:00:00.000", "", 1676286000},
		{"RFC 3339 with offset", "2023-02-13T19:00:00+08:00", "", 1676286000},
		{"RFC 3339 in UTC", "2023-02-13T11:00:00Z", "", 1676286000},
		{"RFC 3339 west of UTC", "2023-02-13T06:00:00-05:00", "", 1676286000},
		{"RFC 3339 with a space", "2023-02-13 19:00:00+08:00", "", 1676286000},
		{"RFC 3339 and its zone", "2023-02-13T19:00:00+08:00", "Asia/Shanghai", 1676286000},
		{"RFC 3339 and its offset", "2023-02-13T19:00:00+08:00", "+08:00", 1676286000},
		{"Z and UTC", "2023-02-13T11:00:00Z", "UTC", 1676286000},
		{"offset zone", "2023-02-13 19:00:00", "+08:00", 1676286000},
		{"offset zone with T", "2023-02-13T19:00:00", "+08:00", 1676286000},
		{"negative offset zone", "2023-02-13 06:00:00", "-05:00", 1676286000},
		{"half-hour offset zone", "2023-02-13 16:30:00", "+05:30", 1676286000},
		{"zero offset zone", "2023-02-13 11:00:00", "+00:00", 1676286000},
		{"Z as zone", "2023-02-13 11:00:00", "Z", 1676286000},
		{"unescaped + in tz", "2023-02-13 19:00:00", " 08:00", 1676286000},
		{"unescaped + in value", "2023-02-13T19:00:00 08:00", "", 1676286000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTime(tt.value, tt.tz)
			if err != nil {
				t.Fatalf("ParseTime(%q, %q): %v", tt.value, tt.tz, err)
			}
			if got != tt.want {
				t.Fatalf("ParseTime(%q, %q) = %d, want %d", tt.value, tt.tz, got, tt.want)
			}
		})
	}
}

func TestParseTimeErrors(t *testing.T) {
	tests := []struct {
		name, value, tz string
		want            error
		msg             string
	}{
		{"empty", "", "", ErrInvalid, "empty time"},
		{"blank", "   ", "", ErrInvalid, "empty time"},
		{"garbage", "yesterday", "", ErrInvalid, "neither unix seconds"},
		{"date only", "2023-02-13", "", ErrInvalid, "neither unix seconds"},
		{"slashes", "2023/02/13 19:00:00", "", ErrInvalid, "neither unix seconds"},
		{"offset without colon", "2023-02-13T19:00:00+0800", "", ErrInvalid, "neither unix seconds"},
		{"fraction with offset", "2023-02-13T19:00:00.5+08:00", "", ErrInvalid, "fraction of a second"},
		{"offset and another zone", "2023-02-13T19:00:00+08:00", "America/New_York", ErrInvalid,
			`has offset +08:00 but zone "America/New_York" is -05:00 at that instant`},
		{"offset and UTC", "2023-02-13T19:00:00+08:00", "UTC", ErrInvalid, "is +00:00 at that instant"},
		{"offset and another offset", "2023-02-13T19:00:00+08:00", "+09:00", ErrInvalid, "is +09:00 at that instant"},
		{"RFC 3339 before 1970", "1970-01-01T07:59:59+08:00", "", ErrInvalid, "before 1970"},
		{"offset zone without colon", "2023-02-13 19:00:00", "+0800", ErrInvalid, "not of the form ±HH:MM"},
		{"offset zone hours only", "2023-02-13 19:00:00", "+08", ErrInvalid, "not of the form ±HH:MM"},
		{"offset zone bad minutes", "2023-02-13 19:00:00", "+08:60", ErrInvalid, "not of the form ±HH:MM"},
		{"offset zone letters", "2023-02-13 19:00:00", "+ab:cd", ErrInvalid, "not of the form ±HH:MM"},
		{"offset zone too far", "2023-02-13 19:00:00", "+19:00", ErrInvalid, "beyond ±18:00"},
		{"impossible date", "2023-02-30 19:00:00", "", ErrInvalid, "neither unix seconds"},
		{"plus sign", "+1676286000", "", ErrInvalid, "neither unix seconds"},
		{"fraction of seconds", "1676286000.5", "", ErrInvalid, "neither unix seconds"},
		{"fraction in date-time", "2023-02-13 19:00:00.5", "", ErrInvalid, "fraction of a second"},
		{"negative", "-1", "", ErrInvalid, "negative"},
		{"before 1970", "1969-12-31 23:59:59", "", ErrInvalid, "before 1970"},
		{"before 1970 by zone", "1970-01-01 00:00:00", "Asia/Shanghai", ErrInvalid, "before 1970"},
		{"year 9999", "9999-12-31 23:59:59", "", ErrInvalid, "latest accepted"},
		{"unknown zone", "2023-02-13 19:00:00", "Mars/Olympus", ErrInvalid, `unknown time zone "Mars/Olympus"`},
		{"unknown zone with seconds", "1676286000", "Mars/Olympus", ErrInvalid, "unknown time zone"},
		{"path as zone", "1676286000", "../../etc/passwd", ErrInvalid, "unknown time zone"},
		{"host zone", "2023-02-13 19:00:00", "Local", ErrInvalid, "depends on the server"},
		{"milliseconds", "1676286000000", "", ErrTimeUnit,
			"1676286000000 looks like milliseconds; give unix seconds such as 1676286000"},
		{"12 digits", "100000000000", "", ErrTimeUnit, "looks like milliseconds"},
		{"microseconds", "1676286000000000", "", ErrTimeUnit, "looks like microseconds; give unix seconds such as 1676286000"},
		{"nanoseconds", "1676286000000000000", "", ErrTimeUnit, "looks like nanoseconds; give unix seconds such as 1676286000"},
		{"beyond int64", "99999999999999999999", "", ErrTimeUnit, "looks like nanoseconds"},
		{"absurdly long", strings.Repeat("9", 200), "", ErrTimeUnit, "far too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTime(tt.value, tt.tz)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseTime(%q, %q) = %d, %v; want error %v", tt.value, tt.tz, got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseTime(%q, %q) error %q does not mention %q", tt.value, tt.tz, err, tt.msg)
			}
		})
	}
}

// TestParseTimeFormsAgree: the same instant written in every accepted
// form lands on the same unix second.
func TestParseTimeFormsAgree(t *testing.T) {
	const want = 1676286000
	for _, f := range []struct{ value, tz string }{
		{"1676286000", ""},
		{"2023-02-13 19:00:00", "Asia/Shanghai"},
		{"2023-02-13 19:00:00", "+08:00"},
		{"2023-02-13T19:00:00", "+08:00"},
		{"2023-02-13T19:00:00+08:00", ""},
		{"2023-02-13T19:00:00+08:00", "+08:00"},
		{"2023-02-13T19:00:00+08:00", "Asia/Shanghai"},
		{"2023-02-13T11:00:00Z", ""},
		{"2023-02-13 11:00:00", ""},
		{FormatRFC3339(want), ""},
	} {
		got, err := ParseTime(f.value, f.tz)
		if err != nil || got != want {
			t.Errorf("ParseTime(%q, %q) = %d, %v; want %d", f.value, f.tz, got, err, want)
		}
	}
}

func TestFormatRFC3339(t *testing.T) {
	if got := FormatRFC3339(1676286000); got != "2023-02-13T11:00:00Z" {
		t.Errorf("FormatRFC3339 = %q", got)
	}
	if _, err := time.Parse(time.RFC3339, FormatRFC3339(0)); err != nil {
		t.Errorf("FormatRFC3339(0) is not RFC 3339: %v", err)
	}
}

func TestFormatUnix(t *testing.T) {
	tests := []struct {
		ts   int64
		want string
	}{
		{0, "1970-01-01 00:00:00 UTC"},
		{1676286000, "2023-02-13 11:00:00 UTC"},
		{99999999999, "5138-11-16 09:46:39 UTC"},
	}
	for _, tt := range tests {
		if got := FormatUnix(tt.ts); got != tt.want {
			t.Errorf("FormatUnix(%d) = %q, want %q", tt.ts, got, tt.want)
		}
	}
}

func TestCheckNotFuture(t *testing.T) {
	now := time.Unix(1676286000, 900_000_000) // the fraction must not widen the window
	tests := []struct {
		ts   int64
		want error
	}{
		{0, nil},
		{1676285999, nil},
		{1676286000, nil},
		{1676286001, ErrInFuture},
		{99999999999, ErrInFuture},
	}
	for _, tt := range tests {
		err := CheckNotFuture(tt.ts, now)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("CheckNotFuture(%d) = %v, want %v", tt.ts, err, tt.want)
		}
	}
	err := CheckNotFuture(1676286060, now)
	for _, part := range []string{"1676286060", "2023-02-13 11:01:00 UTC", "1676286000", "2023-02-13 11:00:00 UTC"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("CheckNotFuture error %q does not mention %q", err, part)
		}
	}
}

// The server maps each sentinel to its own errCode with errors.Is, so no
// sentinel may match another, or the mapping would depend on its order.
func TestSentinelsDistinct(t *testing.T) {
	sentinels := []error{ErrInvalid, ErrTimeUnit, ErrInFuture, ErrUnknownSubtopic, ErrForward, ErrOutOfRange}
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = true", a, b)
			}
		}
	}
	oor := &OutOfRangeError{Subtopic: "p", Requested: 1, Oldest: 2}
	for _, s := range sentinels {
		if got := errors.Is(oor, s); got != errors.Is(s, ErrOutOfRange) {
			t.Errorf("errors.Is(*OutOfRangeError, %v) = %v", s, got)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, seed := range []struct{ value, tz string }{
		{"2023-02-13 19:00:00", "Asia/Shanghai"},
		{"2023-02-13T19:00:00", "UTC"},
		{"1676286000", ""},
		{"1676286000000", ""},
		{"-1", ""},
		{"0", "Local"},
		{"1970-01-01 00:00:00", "America/New_York"},
		{"9999-12-31 23:59:59", ""},
		{"2023-02-13 19:00:00.123", "Europe/Berlin"},
		{"2023-02-13 19:00:00", "../etc/passwd"},
		{"2023-02-13T19:00:00+08:00", ""},
		{"2023-02-13T19:00:00+08:00", "Asia/Shanghai"},
		{"2023-02-13 19:00:00", "+08:00"},
		{"2023-02-13T11:00:00Z", "-23:59"},
	} {
		f.Add(seed.value, seed.tz)
	}
	f.Fuzz(func(t *testing.T, value, tz string) {
		ts, err := ParseTime(value, tz)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTimeUnit) {
				t.Fatalf("ParseTime(%q, %q) error %v is neither ErrInvalid nor ErrTimeUnit", value, tz, err)
			}
			return
		}
		if ts < 0 || ts > maxSeconds {
			t.Fatalf("ParseTime(%q, %q) = %d, outside [0, %d]", value, tz, ts, int64(maxSeconds))
		}
		// Whatever ParseTime accepts must survive a checkpoint round trip
		// and read back the same as plain unix seconds.
		m := map[string]int64{"p": ts}
		got, err := Parse(Format(m))
		if err != nil || !maps.Equal(got, m) {
			t.Fatalf("ParseTime(%q, %q) = %d, but Parse(Format) = %v, %v", value, tz, ts, got, err)
		}
		if again, err := ParseTime(strconv.FormatInt(ts, 10), ""); err != nil || again != ts {
			t.Fatalf("ParseTime(%q, %q) = %d, but as unix seconds it reads %d, %v", value, tz, ts, again, err)
		}
		if again, err := ParseTime(FormatRFC3339(ts), ""); err != nil || again != ts {
			t.Fatalf("FormatRFC3339(%d) = %q reads back %d, %v", ts, FormatRFC3339(ts), again, err)
		}
		if _, err := ParseTime(FormatUnix(ts)[:19], ""); err != nil {
			t.Fatalf("FormatUnix(%d) = %q does not parse back: %v", ts, FormatUnix(ts), err)
		}
	})
}
