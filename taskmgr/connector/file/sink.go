package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/connector-manager/cm/taskmgr/connector"
)

var _ connector.Sink = (*sink)(nil)

// sink appends records to a JSON-lines file, one line per record: the
// Payload as is, or, for a record with no Payload, its Change as a JSON
// object (see changeLine).
//
// It holds the file open only while it writes a batch: an idle task holds
// no descriptor. Each Write opens the path again, so a batch goes to the
// file the path names then (a file moved away and created again, as log
// rotation does, gets the batches from then on).
type sink struct {
	path  string
	roots *Roots
	// opened: Open succeeded and Close was not called yet. ident is the
	// file last written, to tell a new one (created, replaced).
	opened bool
	ident  os.FileInfo
	buf    []byte
	// err is sticky: a failed write may have left part of a batch, so the
	// sink refuses more until it is reopened (Open ends the torn line).
	err error
}

// newSink validates the sink scope of c without writing: its path must
// resolve inside roots (for a file that does not exist yet, its directory
// as far as it exists).
func newSink(c connector.Config, roots *Roots) (*sink, error) {
	path := c.Scopes.Get("sink", "path")
	if path == "" {
		return nil, errors.New("sink.path is required for sink.type=file")
	}
	if err := roots.Check("sink.path", path); err != nil {
		return nil, err
	}
	if c.Scopes.Get("source", "type") == typeName && filepath.Clean(c.Scopes.Get("source", "path")) == filepath.Clean(path) {
		return nil, fmt.Errorf("sink.path %q is also source.path: the task would read its own output", path)
	}
	return &sink{path: path, roots: roots}, nil
}

// Open creates the file and its directories if needed, and checks that it
// can be appended to. If the file does not end in '\n' (a write torn by a
// crash, whose batch will be replayed), Open ends that line so the next one
// stays whole.
func (s *sink) Open(ctx context.Context) error {
	if s.opened {
		return errors.New("file sink is already open")
	}
	s.ident = nil
	f, err := s.openFile()
	if err != nil {
		return err
	}
	s.opened, s.err = true, nil
	return f.Close()
}

// openFile opens the file for appending, creating it and its directories
// if needed. A file other than the one last written (new, or replaced)
// first gets its torn last line ended and its directory entry made
// durable.
func (s *sink) openFile() (*os.File, error) {
	// Checked again before anything is created: a symlink swapped in
	// since the config was accepted must not lead MkdirAll out of the
	// roots; and once open, where the descriptor leads.
	if err := s.roots.CheckAgain("sink.path", s.path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, ioError("creating the directory of", s.path, err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, ioError("opening", s.path, err)
	}
	if err := s.roots.CheckOpen("sink.path", s.path, f); err != nil {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ioError("checking", s.path, err)
	}
	if s.ident != nil && os.SameFile(fi, s.ident) {
		return f, nil
	}
	if err := endLine(f); err != nil {
		f.Close()
		return nil, ioError("repairing the end of", s.path, err)
	}
	// The file's directory entry must be durable too, or a crash could lose
	// a newly created file with every batch written to it.
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, ioError("syncing the directory of", s.path, err)
	}
	s.ident = fi
	return f, nil
}

// Write appends the batch's records and fsyncs once. It returns only when
// the batch is durable.
func (s *sink) Write(ctx context.Context, b connector.Batch) error {
	if !s.opened {
		return errors.New("file sink: Write before Open")
	}
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := s.buf[:0]
	for i := range b.Records {
		var err error
		if buf, err = appendLine(buf, &b.Records[i]); err != nil {
			return err
		}
	}
	if len(buf) == 0 {
		return nil
	}
	f, err := s.openFile()
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		s.err = ioError("writing", s.path, err)
		return s.err
	}
	if err := f.Sync(); err != nil {
		s.err = ioError("syncing", s.path, err)
		return s.err
	}
	if cap(buf) <= 4<<20 {
		s.buf = buf
	}
	return nil
}

// Close ends the sink; it holds no file between writes. It is safe to
// call more than once.
func (s *sink) Close() error {
	s.opened = false
	return nil
}

// changeLine is how a RowChange is written: a JSON object with a ts, so the
// file can be read back by a file source.
type changeLine struct {
	TS       int64    `json:"ts"`
	Subtopic string   `json:"subtopic,omitempty"`
	Database string   `json:"database"`
	Table    string   `json:"table"`
	Op       string   `json:"op"`
	Columns  []string `json:"columns"`
	PK       []int    `json:"pk,omitempty"`
	Before   []any    `json:"before,omitempty"`
	After    []any    `json:"after,omitempty"`
}

var opNames = map[connector.Op]string{connector.OpInsert: "insert", connector.OpUpdate: "update", connector.OpDelete: "delete"}

func appendLine(buf []byte, r *connector.Record) ([]byte, error) {
	bad := func(msg string) error {
		return connector.Fail(codeBadRecord, msg, "a file sink writes each record as one line",
			"use a source whose records are single-line payloads or row changes", true, nil)
	}
	switch {
	case len(r.Payload) > 0:
		if bytes.IndexByte(r.Payload, '\n') >= 0 {
			return buf, bad(fmt.Sprintf("a record of subtopic %q at ts %d has a newline in its payload", r.Subtopic, r.TS))
		}
		buf = append(buf, r.Payload...)
	case r.Change != nil:
		c := r.Change
		line, err := json.Marshal(changeLine{
			TS: r.TS, Subtopic: r.Subtopic, Database: c.Database, Table: c.Table, Op: opNames[c.Op],
			Columns: c.Columns, PK: c.PK, Before: c.Before, After: c.After,
		})
		if err != nil {
			return buf, bad(fmt.Sprintf("a change to %s.%s at ts %d cannot be encoded: %v", c.Database, c.Table, r.TS, err))
		}
		buf = append(buf, line...)
	default:
		return buf, bad(fmt.Sprintf("a record of subtopic %q at ts %d has neither a payload nor a change", r.Subtopic, r.TS))
	}
	return append(buf, '\n'), nil
}

// endLine appends a '\n' to f if it is not empty and does not end with one.
func endLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], fi.Size()-1); err != nil {
		return err
	}
	if b[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
