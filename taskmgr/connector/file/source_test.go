package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func sourceConfig(typ model.TaskType, kv ...string) connector.Config {
	c := model.Config{}
	c.Set("source", "type", typeName)
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set("source", kv[i], kv[i+1])
	}
	return connector.Config{Type: typ, Scopes: c}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func lines(ts ...int64) string {
	var b strings.Builder
	for _, v := range ts {
		fmt.Fprintf(&b, "{\"ts\":%d,\"v\":\"x%d\"}\n", v, v)
	}
	return b.String()
}

func openSource(t *testing.T, typ model.TaskType, path string, from map[string]checkpoint.Position) *source {
	t.Helper()
	s, err := newSource(sourceConfig(typ, "path", path), anywhere, testWatcher(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), from); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readTS reads until n records arrived and returns their ts and the last position.
func readTS(t *testing.T, s *source, n int) ([]int64, checkpoint.Position) {
	t.Helper()
	ctx := timeout(t, 5*time.Second)
	var got []int64
	var last checkpoint.Position
	for len(got) < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if len(b.Records) == 0 && len(b.Positions) == 0 {
			continue // at the end of the file: only the delay report
		}
		for _, r := range b.Records {
			got = append(got, r.TS)
		}
		if len(b.Positions) != 1 {
			t.Fatalf("batch has %d positions, want 1", len(b.Positions))
		}
		last = b.Positions[0]
	}
	return got, last
}

func wantCode(t *testing.T, err error, code string, permanent bool) model.ErrorDetail {
	t.Helper()
	var ce *connector.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *connector.Error", err)
	}
	if ce.Detail.Code != code || ce.Permanent != permanent {
		t.Fatalf("got %s permanent=%v (%v), want %s permanent=%v", ce.Detail.Code, ce.Permanent, err, code, permanent)
	}
	return ce.Detail
}

func TestSourceReadsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2, 3))
	s := openSource(t, model.TypeIncr, path, nil)

	b, err := s.Read(timeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 3 {
		t.Fatalf("got %d records, want 3", len(b.Records))
	}
	for i, r := range b.Records {
		want := fmt.Sprintf("{\"ts\":%d,\"v\":\"x%d\"}", i+1, i+1)
		if r.TS != int64(i+1) || string(r.Payload) != want || r.Subtopic != "in.jsonl" {
			t.Errorf("record %d = %+v, want ts %d payload %s", i, r, i+1, want)
		}
	}
	want := checkpoint.Position{Subtopic: "in.jsonl", TS: 3, Token: strconv.Itoa(len(lines(1, 2, 3)))}
	if len(b.Positions) != 1 || b.Positions[0] != want {
		t.Fatalf("positions %+v, want %+v", b.Positions, want)
	}
}

func TestSourceBatchesLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	ts := make([]int64, 1200)
	for i := range ts {
		ts[i] = int64(i / 10)
	}
	writeFile(t, path, lines(ts...))
	s := openSource(t, model.TypeFull, path, nil)
	ctx := timeout(t, 5*time.Second)
	var sizes []int
	var prev int64
	for {
		b, err := s.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(b.Records))
		off, _ := strconv.ParseInt(b.Positions[0].Token, 10, 64)
		if off <= prev {
			t.Fatalf("token went from %d to %d", prev, off)
		}
		prev = off
	}
	if fmt.Sprint(sizes) != "[512 512 176]" {
		t.Fatalf("batch sizes %v, want [512 512 176]", sizes)
	}
}

func TestSourceTailsAppendedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1))
	s := openSource(t, model.TypeIncr, path, nil)
	readTS(t, s, 1)

	// A line without its newline is not emitted yet.
	appendFile(t, path, `{"ts":2`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if b, err := s.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on a partial line = %+v, %v; want deadline exceeded", b, err)
	}

	// Read waits at the end of the file and wakes up for the appended lines.
	type result struct {
		b   connector.Batch
		err error
	}
	done := make(chan result)
	go func() {
		ctx := timeout(t, 5*time.Second)
		for {
			b, err := s.Read(ctx)
			if err == nil && len(b.Records) == 0 {
				continue // at the end of the file: only the delay report
			}
			done <- result{b, err}
			return
		}
	}()
	appendFile(t, path, "}\n"+lines(3))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := []int64{}
	for _, rec := range r.b.Records {
		got = append(got, rec.TS)
	}
	if len(got) == 1 {
		more, _ := readTS(t, s, 1)
		got = append(got, more...)
	}
	if fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("tailed %v, want [2 3]", got)
	}
}

func TestSourceResumesFromToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2, 3, 4))
	first := openSource(t, model.TypeFull, path, nil)
	b, err := first.Read(timeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	end := b.Positions[0]

	// Resume after line 2, as a checkpoint taken there would.
	after2 := checkpoint.Position{Subtopic: "in.jsonl", TS: 2, Token: strconv.Itoa(len(lines(1, 2)))}
	s := openSource(t, model.TypeIncr, path, map[string]checkpoint.Position{"in.jsonl": after2})
	if got, _ := readTS(t, s, 2); fmt.Sprint(got) != "[3 4]" {
		t.Fatalf("resumed with %v, want [3 4]", got)
	}

	// Resume at the end: only new lines come.
	s = openSource(t, model.TypeIncr, path, map[string]checkpoint.Position{"in.jsonl": end})
	appendFile(t, path, lines(5))
	if got, _ := readTS(t, s, 1); fmt.Sprint(got) != "[5]" {
		t.Fatalf("resumed at the end with %v, want [5]", got)
	}
}

func TestSourceRejectsBadToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2))
	for _, token := range []string{"abc", "-1", "5", strconv.Itoa(len(lines(1, 2)) + 1)} {
		t.Run(token, func(t *testing.T) {
			s, err := newSource(sourceConfig(model.TypeIncr, "path", path), anywhere, testWatcher(t))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Open(context.Background(), map[string]checkpoint.Position{"in.jsonl": {Subtopic: "in.jsonl", Token: token}})
			wantCode(t, err, codeCheckpointInvalid, true)
			if s.Close() != nil {
				t.Fatal("Close after a failed Open")
			}
		})
	}
}

func TestSourceStartsAtTS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2, 2, 3, 5))
	for _, tc := range []struct {
		from int64
		want string
	}{
		{0, "[1 2 2 3 5]"},
		{2, "[2 2 3 5]"},
		{4, "[5]"},
		{6, "[]"},
	} {
		t.Run(strconv.FormatInt(tc.from, 10), func(t *testing.T) {
			s := openSource(t, model.TypeFull, path, map[string]checkpoint.Position{"in.jsonl": {Subtopic: "in.jsonl", TS: tc.from}})
			got := []int64{}
			ctx := timeout(t, 5*time.Second)
			for {
				b, err := s.Read(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range b.Records {
					got = append(got, r.TS)
				}
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("from ts %d read %v, want %s", tc.from, got, tc.want)
			}
		})
	}
}

func TestSourceRejectsBadLines(t *testing.T) {
	for _, tc := range []struct {
		name, line, code string
	}{
		{"not json", `ts=3`, codeBadLine},
		{"array", `[3]`, codeBadLine},
		{"null", `null`, codeBadLine},
		{"no ts", `{"time":3}`, codeBadLine},
		{"float ts", `{"ts":3.5}`, codeBadLine},
		{"string ts", `{"ts":"3"}`, codeBadLine},
		{"empty", ``, codeBadLine},
		{"out of order", `{"ts":1}`, codeOutOfOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			writeFile(t, path, lines(1, 2)+tc.line+"\n"+lines(4))
			s := openSource(t, model.TypeIncr, path, nil)
			// The good lines before the bad one are delivered first.
			got, pos := readTS(t, s, 2)
			if fmt.Sprint(got) != "[1 2]" || pos.Token != strconv.Itoa(len(lines(1, 2))) {
				t.Fatalf("read %v up to %+v before the bad line", got, pos)
			}
			_, err := s.Read(timeout(t, 5*time.Second))
			detail := wantCode(t, err, tc.code, true)
			if !strings.Contains(detail.Message, "line 3 ") {
				t.Fatalf("message %q does not name line 3", detail.Message)
			}
			if _, again := s.Read(timeout(t, time.Second)); !errors.Is(again, err) {
				t.Fatalf("second Read returned %v, want the same error", again)
			}
		})
	}
}

func TestSourceReadsLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	long := `{"ts":2,"v":"` + strings.Repeat("y", 3*readChunk) + "\"}\n"
	writeFile(t, path, lines(1)+long+lines(3))
	s := openSource(t, model.TypeIncr, path, nil)
	if got, _ := readTS(t, s, 3); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("read %v", got)
	}
}

func TestFullSourceEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2))
	s := openSource(t, model.TypeFull, path, nil)
	readTS(t, s, 2)
	for range 2 {
		if _, err := s.Read(timeout(t, 5*time.Second)); !errors.Is(err, io.EOF) {
			t.Fatalf("Read at the end of a full import: %v, want io.EOF", err)
		}
	}

	// A full import never drops a last line that lacks its newline.
	appendFile(t, path, `{"ts":3}`)
	s = openSource(t, model.TypeFull, path, nil)
	readTS(t, s, 2)
	_, err := s.Read(timeout(t, 5*time.Second))
	wantCode(t, err, codeIncompleteLine, false)
}

func TestSourceNoticesTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2))
	s := openSource(t, model.TypeIncr, path, nil)
	readTS(t, s, 2)
	writeFile(t, path, lines(1))
	_, err := s.Read(timeout(t, 5*time.Second))
	wantCode(t, err, codeTruncated, true)
}

func TestSourceMissingFile(t *testing.T) {
	s, err := newSource(sourceConfig(model.TypeIncr, "path", filepath.Join(t.TempDir(), "nope.jsonl")), anywhere, testWatcher(t))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Open(context.Background(), nil), codeNotFound, false)
	_, err = s.Oldest(context.Background())
	wantCode(t, err, codeNotFound, false)
}

func TestSourceOldest(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       string
		code       string
	}{
		{"lines", lines(7, 8, 9), "map[in.jsonl:7]", ""},
		{"empty", "", "map[]", ""},
		{"partial line", `{"ts":7}`, "map[]", ""},
		{"bad first line", "{}\n", "", codeBadLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			writeFile(t, path, tc.data)
			s, err := newSource(sourceConfig(model.TypeIncr, "path", path), anywhere, testWatcher(t))
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Oldest(context.Background())
			if tc.code != "" {
				wantCode(t, err, tc.code, true)
				return
			}
			if err != nil || fmt.Sprint(got) != tc.want {
				t.Fatalf("Oldest = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestNewSource(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kv       []string
		subtopic string
		ok       bool
	}{
		{"no path", nil, "", false},
		{"default subtopic", []string{"path", "/data/orders.jsonl"}, "orders.jsonl", true},
		{"subtopic", []string{"path", "/data/orders.jsonl", "subtopic", "orders"}, "orders", true},
		{"long subtopic", []string{"path", "/x", "subtopic", strings.Repeat("s", 256)}, "", false},
		{"poll interval", []string{"path", "/x.jsonl", "pollInterval", "30s"}, "x.jsonl", true},
		{"poll interval too short", []string{"path", "/x", "pollInterval", "10ms"}, "", false},
		{"poll interval not a duration", []string{"path", "/x", "pollInterval", "5"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newSource(sourceConfig(model.TypeIncr, tc.kv...), anywhere, testWatcher(t))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && fmt.Sprint(s.Subtopics()) != "["+tc.subtopic+"]" {
				t.Fatalf("subtopics %v, want [%s]", s.Subtopics(), tc.subtopic)
			}
		})
	}
}

func FuzzLineTS(f *testing.F) {
	for _, s := range []string{`{"ts":1}`, `{"ts":-3,"a":[1]}`, `{"ts":1e3}`, `{"ts":"1"}`, `[]`, `null`, `{"ts":99999999999999999999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ts, err := lineTS(line)
		if err != nil {
			return
		}
		if !strings.Contains(string(line), strconv.FormatInt(ts, 10)) {
			t.Fatalf("ts %d parsed from %q", ts, line)
		}
	})
}

// TestSourceReportsDelay: a batch that ends at the end of the file reports
// delay 0 however old its lines are, a tail idle there keeps reporting 0,
// and a batch with more of the file behind it reports now minus its last ts.
func TestSourceReportsDelay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	ts := make([]int64, maxBatch+10)
	for i := range ts {
		ts[i] = int64(1000 + i)
	}
	writeFile(t, path, lines(ts...))
	s := openSource(t, model.TypeIncr, path, nil)
	clock := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return clock }
	ctx := timeout(t, 5*time.Second)
	delay := func(b connector.Batch) (float64, float64) {
		t.Helper()
		d, okD := b.Metrics[model.MetricDelaySeconds]
		at, okAt := b.Metrics[model.MetricDelayAt]
		if !okD || !okAt {
			t.Fatalf("batch of %d records has metrics %v, want a delay report", len(b.Records), b.Metrics)
		}
		return d, at
	}

	b, err := s.Read(ctx)
	if err != nil || len(b.Records) != maxBatch {
		t.Fatalf("first read: %d records, %v", len(b.Records), err)
	}
	if d, at := delay(b); d != float64(clock.Unix()-ts[maxBatch-1]) || at != float64(clock.Unix()) {
		t.Fatalf("a batch with more behind it reports delay %v at %v, want %d at %d", d, at, clock.Unix()-ts[maxBatch-1], clock.Unix())
	}
	b, err = s.Read(ctx)
	if err != nil || len(b.Records) != 10 {
		t.Fatalf("second read: %d records, %v", len(b.Records), err)
	}
	if d, _ := delay(b); d != 0 {
		t.Fatalf("the batch that reaches the end of the file reports delay %v, want 0", d)
	}

	// Idle at the end: a report of 0 once reportEvery has passed, with no
	// records and no position.
	clock = clock.Add(reportEvery)
	b, err = s.Read(ctx)
	if err != nil || len(b.Records) != 0 || len(b.Positions) != 0 {
		t.Fatalf("idle read: %d records, %d positions, %v; want only a report", len(b.Records), len(b.Positions), err)
	}
	if d, at := delay(b); d != 0 || at != float64(clock.Unix()) {
		t.Fatalf("idle at the end reports delay %v at %v, want 0 at %d", d, at, clock.Unix())
	}
	// Within reportEvery of that report the tail only waits.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if b, err := s.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read right after a report = %+v, %v; want it waiting", b, err)
	}

	// A partial line at the end is not the end of the data: no report.
	appendFile(t, path, `{"ts":5000`)
	clock = clock.Add(reportEvery)
	short2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if b, err := s.Read(short2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read at a partial line = %+v, %v; want it waiting", b, err)
	}
}

// TestFullImportEndsWithoutReport: a full import ends at the end of the
// file with io.EOF, not with idle reports.
func TestFullImportEndsWithoutReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, lines(1, 2))
	s := openSource(t, model.TypeFull, path, nil)
	ctx := timeout(t, 5*time.Second)
	b, err := s.Read(ctx)
	if err != nil || len(b.Records) != 2 || b.Metrics[model.MetricDelaySeconds] != 0 {
		t.Fatalf("read: %+v, %v", b, err)
	}
	if _, err := s.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end of a full import: %v, want io.EOF", err)
	}
}
