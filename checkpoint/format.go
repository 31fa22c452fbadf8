package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on a checkpoint. They bound the work one request can cause; a task
// reads a handful of subtopics, and subtopics are stored in a column of 255.
const (
	MaxSubtopics   = 1000
	MaxSubtopicLen = 255
)

// placeholder is the literal subtopic in the OMS documentation's pullback
// example; operators paste it unchanged often enough to deserve its own message.
const placeholder = "{subtopic}"

// example is the shape every "want" in a message points at.
const example = `{"subtopic":"1676286000"}`

// Parse reads an OMS checkpoint: a JSON object from subtopic to unix
// seconds, such as {"p_493po":"1676286000"}. Values may be JSON strings of
// digits, as OMS writes them, or JSON integers, as people type them.
//
// Errors wrap ErrInvalid, or ErrTimeUnit for values of 12 digits or more.
func Parse(s string) (map[string]int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty; want a JSON object such as %s", ErrInvalid, example)
	}
	// Validate the whole text first: Decoder.Token does not check every
	// syntax rule and stops at the end of the first value, so trailing
	// garbage would pass unnoticed.
	if err := json.Unmarshal([]byte(s), new(json.RawMessage)); err != nil {
		return nil, fmt.Errorf("%w: not JSON (%v); want a JSON object such as %s", ErrInvalid, err, example)
	}
	// Walk tokens instead of unmarshalling into a map so that a duplicate
	// subtopic is an error rather than silently last-one-wins, and so the
	// first bad entry reported is the first one in the text.
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: got %s; want a JSON object from subtopic to unix seconds such as %s",
			ErrInvalid, kindOf(tok), example)
	}
	m := make(map[string]int64)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		sub, ok := tok.(string)
		if !ok { // unreachable for valid JSON; kept so a decoder change cannot panic us
			return nil, fmt.Errorf("%w: object key is %s", ErrInvalid, kindOf(tok))
		}
		if err := checkSubtopic(sub); err != nil {
			return nil, err
		}
		if _, dup := m[sub]; dup {
			return nil, fmt.Errorf("%w: subtopic %q appears more than once", ErrInvalid, clip(sub))
		}
		if len(m) == MaxSubtopics {
			return nil, fmt.Errorf("%w: more than %d subtopics", ErrInvalid, MaxSubtopics)
		}
		if tok, err = dec.Token(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		ts, err := value(sub, tok)
		if err != nil {
			return nil, err
		}
		m[sub] = ts
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: no subtopics; want at least one, such as %s", ErrInvalid, example)
	}
	return m, nil
}

func checkSubtopic(sub string) error {
	switch {
	case sub == "":
		return fmt.Errorf("%w: empty subtopic", ErrInvalid)
	case len(sub) > MaxSubtopicLen:
		return fmt.Errorf("%w: subtopic %q is %d bytes; at most %d", ErrInvalid, clip(sub), len(sub), MaxSubtopicLen)
	case sub == placeholder:
		return fmt.Errorf("%w: subtopic %q is the documentation placeholder; use the subtopic from the task's configuration",
			ErrInvalid, sub)
	}
	return nil
}

// value turns one JSON value token into unix seconds.
func value(sub string, tok json.Token) (int64, error) {
	where := fmt.Sprintf("subtopic %q: ", clip(sub))
	switch v := tok.(type) {
	case string:
		if isInteger(v) {
			return seconds(where, v)
		}
		if looksLikeDateTime(v) {
			return 0, fmt.Errorf("%w: %s%q is a date-time; checkpoint values are unix seconds, such as \"1676286000\" for 2023-02-13 19:00:00 in Asia/Shanghai",
				ErrInvalid, where, clip(v))
		}
		return 0, fmt.Errorf("%w: %s%q is not unix seconds; want digits only, such as \"1676286000\"", ErrInvalid, where, clip(v))
	case json.Number:
		if isInteger(string(v)) {
			return seconds(where, string(v))
		}
		return fraction(where, string(v))
	default:
		return 0, fmt.Errorf("%w: %svalue is %s; want unix seconds as a string, such as \"1676286000\"", ErrInvalid, where, kindOf(tok))
	}
}

// fraction handles JSON numbers written with a fraction or an exponent.
// They are refused, but a huge one still gets the time-unit hint because
// 1.676286e12 is milliseconds just as much as 1676286000000 is.
func fraction(where, num string) (int64, error) {
	// The JSON decoder has checked the syntax, so the only possible error
	// is a range error, and then f is ±Inf, which the cases below handle.
	f, _ := strconv.ParseFloat(num, 64)
	switch {
	case f < 0:
		return 0, fmt.Errorf("%w: %s%s: unix seconds cannot be negative", ErrInvalid, where, clip(num))
	case f >= 1e20:
		return 0, fmt.Errorf("%w: %s%s is far too large for unix seconds; give unix seconds such as 1676286000", ErrTimeUnit, where, clip(num))
	case f > maxSeconds:
		return 0, unitError(where, strconv.FormatFloat(f, 'f', 0, 64))
	}
	return 0, fmt.Errorf("%w: %s%s: want whole unix seconds without a fraction or exponent, such as 1676286000", ErrInvalid, where, clip(num))
}

// Format writes m in the canonical form: keys sorted, values as JSON
// strings, no spaces, e.g. {"a":"100","b":"200"}. For any m that Parse
// accepts, Parse(Format(m)) equals m. Format does not validate: an empty map
// gives "{}", which Parse refuses.
func Format(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	// HTML escaping would turn < > & in a subtopic into \u003c and friends:
	// still valid, but the stored text should read like what was sent.
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		_ = enc.Encode(k) // a string always encodes
		buf.Truncate(buf.Len() - 1)
		buf.WriteString(`:"`)
		buf.WriteString(strconv.FormatInt(m[k], 10))
		buf.WriteByte('"')
	}
	buf.WriteByte('}')
	return buf.String()
}

// fromPositions keeps the time of each position and drops its token. If a
// subtopic repeats, the last position wins.
func fromPositions(ps []Position) map[string]int64 {
	m := make(map[string]int64, len(ps))
	for _, p := range ps {
		m[p.Subtopic] = p.TS
	}
	return m
}

// toPositions turns a parsed checkpoint into time positions (no token),
// sorted by subtopic so that callers and tests see a stable order.
func toPositions(m map[string]int64) []Position {
	ps := make([]Position, 0, len(m))
	for sub, ts := range m {
		ps = append(ps, Position{Subtopic: sub, TS: ts})
	}
	slices.SortFunc(ps, func(a, b Position) int { return strings.Compare(a.Subtopic, b.Subtopic) })
	return ps
}

// maxSeconds is the largest accepted value, 5138-11-16 09:46:39 UTC. Unix
// seconds have had 10 digits since 2001 and keep 11 until the year 5138,
// while milliseconds since 1973 have 12 or more, so the digit count alone
// tells a unit mistake apart from a real time.
const maxSeconds = 99_999_999_999

// seconds converts an optionally signed string of ASCII digits.
func seconds(where, s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%w: %s%s: unix seconds cannot be negative", ErrInvalid, where, clip(s))
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ts > maxSeconds { // the only possible ParseInt error here is overflow
		return 0, unitError(where, s)
	}
	return ts, nil
}

// unitError explains a value too large for seconds by naming the unit it
// most likely is and the seconds value it stands for.
func unitError(where, digits string) error {
	digits = strings.TrimLeft(digits, "0")
	var unit string
	var shift int
	switch n := len(digits); {
	case n <= 14:
		unit, shift = "milliseconds", 3
	case n <= 17:
		unit, shift = "microseconds", 6
	case n <= 20:
		unit, shift = "nanoseconds", 9
	default:
		return fmt.Errorf("%w: %s%s is far too large for unix seconds; give unix seconds such as 1676286000", ErrTimeUnit, where, clip(digits))
	}
	// Cutting digits off the string cannot overflow, unlike dividing an int64.
	return fmt.Errorf("%w: %s%s looks like %s; give unix seconds such as %s",
		ErrTimeUnit, where, digits, unit, digits[:len(digits)-shift])
}

// isInteger reports whether s is an optional minus sign and ASCII digits.
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func looksLikeDateTime(s string) bool {
	for _, layout := range dateTimeLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func kindOf(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// clip shortens user input echoed in a message; a megabyte-long subtopic
// should not come back as a megabyte-long error.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
