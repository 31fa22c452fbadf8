package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

func openSink(t *testing.T, path string) *sink {
	t.Helper()
	c := model.Config{}
	c.Set("sink", "type", typeName)
	c.Set("sink", "path", path)
	s, err := newSink(connector.Config{Scopes: c}, anywhere)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func payloads(p ...string) connector.Batch {
	var b connector.Batch
	for i, s := range p {
		b.Records = append(b.Records, connector.Record{TS: int64(i), Payload: []byte(s)})
	}
	return b
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
}

func TestSinkAppendsAndSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "out.jsonl")
	ctx := timeout(t, 5*time.Second)
	s := openSink(t, path)
	if err := s.Write(ctx, payloads(`{"ts":1}`, `{"ts":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, connector.Batch{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	wantFile(t, path, "{\"ts\":1}\n{\"ts\":2}\n")

	s = openSink(t, path)
	if err := s.Write(ctx, payloads(`{"ts":3}`)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "{\"ts\":1}\n{\"ts\":2}\n{\"ts\":3}\n")
}

func TestSinkEndsATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	writeFile(t, path, "{\"ts\":1}\n{\"ts\":2,\"v\":")
	s := openSink(t, path)
	if err := s.Write(timeout(t, 5*time.Second), payloads(`{"ts":2}`)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "{\"ts\":1}\n{\"ts\":2,\"v\":\n{\"ts\":2}\n")
}

func TestSinkRejectsBadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s := openSink(t, path)
	for _, b := range []connector.Batch{
		payloads(`{"ts":1}`, "{\"ts\":2}\n{\"ts\":3}"),
		{Records: []connector.Record{{TS: 1}}},
	} {
		wantCode(t, s.Write(timeout(t, 5*time.Second), b), codeBadRecord, true)
	}
	wantFile(t, path, "")
}

func TestSinkWritesRowChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s := openSink(t, path)
	b := connector.Batch{Records: []connector.Record{{
		Subtopic: "db1", TS: 42,
		Change: &connector.RowChange{Database: "db1", Table: "t", Op: connector.OpUpdate,
			Columns: []string{"id", "v"}, PK: []int{0}, Before: []any{1, "a"}, After: []any{1, "b"}},
	}}}
	if err := s.Write(timeout(t, 5*time.Second), b); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, `{"ts":42,"subtopic":"db1","database":"db1","table":"t","op":"update","columns":["id","v"],"pk":[0],"before":[1,"a"],"after":[1,"b"]}`+"\n")
}

func TestNewSink(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    model.Config
		ok   bool
	}{
		{"no path", model.Config{"sink": {"type": "file"}}, false},
		{"path", model.Config{"sink": {"type": "file", "path": "/tmp/out"}}, true},
		{"own source", model.Config{"source": {"type": "file", "path": "/tmp/x/../out"}, "sink": {"type": "file", "path": "/tmp/out"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newSink(connector.Config{Scopes: tc.c}, anywhere); (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSinkHoldsNoDescriptor: between writes the sink holds no descriptor,
// and a file moved away (log rotation) gets no more batches: the next goes
// to a new file at the path.
func TestSinkHoldsNoDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	ctx := timeout(t, 5*time.Second)
	s := openSink(t, path)
	if n := fdsOn(t, path); n != 0 {
		t.Fatalf("%d descriptors on the file after Open, want 0", n)
	}
	if err := s.Write(ctx, payloads(`{"ts":1}`)); err != nil {
		t.Fatal(err)
	}
	if n := fdsOn(t, path); n != 0 {
		t.Fatalf("%d descriptors on the file after Write, want 0", n)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, payloads(`{"ts":2}`)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path+".1", "{\"ts\":1}\n")
	wantFile(t, path, "{\"ts\":2}\n")
}
