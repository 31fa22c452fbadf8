package checkpoint

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]int64
	}{
		{"seed example", `{"p_493po":"1676286000"}`, map[string]int64{"p_493po": 1676286000}},
		{"several subtopics", `{"b":"200","a":"100"}`, map[string]int64{"a": 100, "b": 200}},
		{"JSON number", `{"p":1676286000}`, map[string]int64{"p": 1676286000}},
		{"mixed string and number", `{"p":1,"q":"2"}`, map[string]int64{"p": 1, "q": 2}},
		{"surrounding whitespace", " \n\t{ \"p\" : \"5\" }\r\n ", map[string]int64{"p": 5}},
		{"zero", `{"p":"0"}`, map[string]int64{"p": 0}},
		{"leading zeros", `{"p":"0001676286000"}`, map[string]int64{"p": 1676286000}},
		{"largest seconds", `{"p":"99999999999"}`, map[string]int64{"p": 99999999999}},
		{"escaped key", `{"p\u005fx":"1"}`, map[string]int64{"p_x": 1}},
		{"unicode key", `{"主题":"1"}`, map[string]int64{"主题": 1}},
		{"key of 255 bytes", `{"` + strings.Repeat("k", 255) + `":"1"}`, map[string]int64{strings.Repeat("k", 255): 1}},
		{"1000 subtopics", manySubtopics(1000), manyMap(1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", clip(tt.in), err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", clip(tt.in), got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
		msg  string // must appear in the message
	}{
		{"empty", "", ErrInvalid, "empty"},
		{"blank", "  \n ", ErrInvalid, "empty"},
		{"malformed", `{"p":"1"`, ErrInvalid, "not JSON"},
		{"single quotes", `{'p':'1'}`, ErrInvalid, "not JSON"},
		{"trailing data", `{"p":"1"} x`, ErrInvalid, "not JSON"},
		{"two objects", `{"p":"1"}{"q":"2"}`, ErrInvalid, "not JSON"},
		{"array", `["p","1"]`, ErrInvalid, "got an array"},
		{"string", `"1676286000"`, ErrInvalid, "got a string"},
		{"number", `1676286000`, ErrInvalid, "got a number"},
		{"null", `null`, ErrInvalid, "got null"},
		{"bare word", `p_493po`, ErrInvalid, "not JSON"},
		{"empty object", `{}`, ErrInvalid, "no subtopics"},
		{"empty subtopic", `{"":"1"}`, ErrInvalid, "empty subtopic"},
		{"subtopic too long", `{"` + strings.Repeat("k", 256) + `":"1"}`, ErrInvalid, "256 bytes"},
		{"documentation placeholder", `{"{subtopic}":"1676286000"}`, ErrInvalid, "placeholder"},
		{"duplicate subtopic", `{"p":"1","p":"2"}`, ErrInvalid, `"p" appears more than once`},
		{"duplicate after unescaping", `{"p":"1","\u0070":"2"}`, ErrInvalid, "more than once"},
		{"too many subtopics", manySubtopics(1001), ErrInvalid, "more than 1000"},
		{"boolean value", `{"p":true}`, ErrInvalid, "a boolean"},
		{"null value", `{"p":null}`, ErrInvalid, "null"},
		{"array value", `{"p":["1"]}`, ErrInvalid, "an array"},
		{"object value", `{"p":{"ts":"1"}}`, ErrInvalid, "an object"},
		{"empty string value", `{"p":""}`, ErrInvalid, "not unix seconds"},
		{"letters", `{"p":"abc"}`, ErrInvalid, "not unix seconds"},
		{"digits with space", `{"p":" 1676286000"}`, ErrInvalid, "not unix seconds"},
		{"plus sign", `{"p":"+1676286000"}`, ErrInvalid, "not unix seconds"},
		{"fraction in string", `{"p":"1676286000.5"}`, ErrInvalid, "not unix seconds"},
		{"date-time in string", `{"p":"2023-02-13 19:00:00"}`, ErrInvalid, "is a date-time"},
		{"negative string", `{"p":"-1"}`, ErrInvalid, "negative"},
		{"negative number", `{"p":-1676286000}`, ErrInvalid, "negative"},
		{"negative fraction", `{"p":-1.5}`, ErrInvalid, "negative"},
		{"negative huge exponent", `{"p":-1e400}`, ErrInvalid, "negative"},
		{"tiny exponent", `{"p":1e-400}`, ErrInvalid, "without a fraction"},
		{"fraction number", `{"p":1676286000.5}`, ErrInvalid, "without a fraction"},
		{"exponent number", `{"p":1.676286e9}`, ErrInvalid, "without a fraction"},
		{"bad value after good one", `{"a":"1","b":"x"}`, ErrInvalid, `subtopic "b"`},
		{"milliseconds", `{"p":"1676286000000"}`, ErrTimeUnit,
			"1676286000000 looks like milliseconds; give unix seconds such as 1676286000"},
		{"milliseconds number", `{"p":1676286000000}`, ErrTimeUnit, "looks like milliseconds"},
		{"12 digits", `{"p":"100000000000"}`, ErrTimeUnit, "looks like milliseconds; give unix seconds such as 100000000"},
		{"microseconds", `{"p":"1676286000000000"}`, ErrTimeUnit,
			"looks like microseconds; give unix seconds such as 1676286000"},
		{"nanoseconds", `{"p":"1676286000000000000"}`, ErrTimeUnit,
			"looks like nanoseconds; give unix seconds such as 1676286000"},
		{"beyond int64", `{"p":"99999999999999999999"}`, ErrTimeUnit, "looks like nanoseconds"},
		{"absurdly long", `{"p":"` + strings.Repeat("9", 100) + `"}`, ErrTimeUnit, "far too large"},
		{"milliseconds with exponent", `{"p":1.676286e12}`, ErrTimeUnit, "looks like milliseconds; give unix seconds such as 1676286000"},
		{"huge exponent", `{"p":1e400}`, ErrTimeUnit, "far too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, %v; want error %v", clip(tt.in), got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse(%q) error %q does not mention %q", clip(tt.in), err, tt.msg)
			}
			if len(err.Error()) > 600 {
				t.Errorf("Parse(%q) error is %d bytes; user input should be clipped", clip(tt.in), len(err.Error()))
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   map[string]int64
		want string
	}{
		{nil, `{}`},
		{map[string]int64{"p_493po": 1676286000}, `{"p_493po":"1676286000"}`},
		{map[string]int64{"b": 200, "a": 100}, `{"a":"100","b":"200"}`},
		{map[string]int64{`q"uote\`: 1}, `{"q\"uote\\":"1"}`},
		{map[string]int64{"<&>": 1}, `{"<&>":"1"}`},
		{map[string]int64{"主题": 0}, `{"主题":"0"}`},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for _, m := range []map[string]int64{
		{"p_493po": 1676286000},
		{"a": 0, "b": 99999999999, "c": 1},
		{`q"uote\`: 1, "<&>": 2, "tab\t": 3, "主题": 4, "\u2028": 5},
		manyMap(1000),
	} {
		s := Format(m)
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(Format(%v)) = %v", m, err)
		}
		if !maps.Equal(got, m) {
			t.Fatalf("Parse(Format(m)) = %v, want %v", got, m)
		}
		if again := Format(got); again != s {
			t.Fatalf("Format is not canonical: %s then %s", s, again)
		}
	}
}

func TestPositions(t *testing.T) {
	m := map[string]int64{"b": 2, "a": 1, "c": 3}
	ps := toPositions(m)
	want := []Position{{Subtopic: "a", TS: 1}, {Subtopic: "b", TS: 2}, {Subtopic: "c", TS: 3}}
	if !slices.Equal(ps, want) {
		t.Fatalf("ToPositions = %v, want %v", ps, want)
	}
	for _, p := range ps {
		if p.Exact() {
			t.Errorf("ToPositions(%v) has a token; a parsed checkpoint is a time, not an exact point", p)
		}
	}
	if got := fromPositions(ps); !maps.Equal(got, m) {
		t.Fatalf("FromPositions(ToPositions(m)) = %v, want %v", got, m)
	}
	withToken := []Position{{Subtopic: "a", TS: 1, Token: "binlog.000001:4"}, {Subtopic: "a", TS: 7}}
	if got := fromPositions(withToken); !maps.Equal(got, map[string]int64{"a": 7}) {
		t.Fatalf("FromPositions(%v) = %v, want the last position of a repeated subtopic", withToken, got)
	}
	if got := toPositions(nil); len(got) != 0 {
		t.Fatalf("ToPositions(nil) = %v, want empty", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"p_493po":"1676286000"}`,
		`{"a":"100","b":"200"}`,
		`{"p":1676286000}`,
		`{"p":"1676286000000"}`,
		`{"p":1.5e12}`,
		`{"p":"-1"}`,
		`{"":"1"}`,
		`{}`,
		`[]`,
		`{"p":"1","p":"2"}`,
		`{"\u00e9\ud800":"1"}`,
		" {\"p\":\"0\"} ",
		`{"p":"2023-02-13 19:00:00"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTimeUnit) {
				t.Fatalf("Parse(%q) error %v is neither ErrInvalid nor ErrTimeUnit", s, err)
			}
			return
		}
		if len(m) == 0 || len(m) > MaxSubtopics {
			t.Fatalf("Parse(%q) accepted %d subtopics", s, len(m))
		}
		for sub, ts := range m {
			if sub == "" || len(sub) > MaxSubtopicLen || ts < 0 || ts > maxSeconds {
				t.Fatalf("Parse(%q) accepted %q=%d", s, sub, ts)
			}
		}
		canon := Format(m)
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v; canonical form %s", s, err, canon)
		}
		if !maps.Equal(again, m) {
			t.Fatalf("round trip of %q: %v then %v", s, m, again)
		}
		if Format(again) != canon {
			t.Fatalf("Format not canonical for %q: %s then %s", s, canon, Format(again))
		}
	})
}

func manySubtopics(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"s%04d":"%d"`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

func manyMap(n int) map[string]int64 {
	m := make(map[string]int64, n)
	for i := range n {
		m[fmt.Sprintf("s%04d", i)] = int64(i)
	}
	return m
}
