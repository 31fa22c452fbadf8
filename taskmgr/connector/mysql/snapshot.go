package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// snapshotSource is the full-import mysql source: it copies the selected
// tables in primary key chunks. Chunk boundaries are found by keyset
// pagination (the key of every BatchSize-th row), Parallelism readers read
// chunks at once, and Read hands chunks over strictly in planning order, one
// chunk per batch. So everything before a table's last delivered chunk has
// been applied, and a table's position is just that chunk's upper key.
type snapshotSource struct {
	cfg      sourceConfig
	log      *zap.Logger
	throttle *throttle

	db      *sql.DB
	tables  []*snapTable
	startTS int64

	// Chunks in flight: the planner takes a slot before it hands out a
	// chunk, Read gives it back when it delivers the chunk. With as many
	// slots as readers, at most Parallelism chunks are read ahead, so a
	// crash loses at most that much reading and no applied work.
	slots   chan struct{}
	results chan chunkResult
	pending map[int]chunkResult // read but not yet due
	next    int                 // seq of the next chunk to deliver
	failed  error

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// snapTable is one table of the import and its progress.
type snapTable struct {
	def      *tableDef
	subtopic string
	prog     progress
}

// progress is a table's full-import token (JSON): the upper key of the last
// applied chunk, the rows copied and their checksum so far, and whether the
// table is done.
type progress struct {
	HW   key    `json:"hw,omitempty"`
	Rows int64  `json:"rows"`
	CRC  uint32 `json:"crc32"`
	Done bool   `json:"done,omitempty"`
}

type chunkResult struct {
	chunk chunk
	rows  [][]any
	crc   uint32
	err   error
}

// newSnapshotSource validates cfg without I/O.
func newSnapshotSource(cfg connector.Config) (*snapshotSource, error) {
	c, err := parseSourceConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &snapshotSource{cfg: c, log: log.Named("mysql.snapshot"), throttle: newThrottle(c.ThrottleRPS)}, nil
}

// Subtopics implements connector.Subtopicer: one subtopic per table, named
// db.table. Tables selected through db.* are known only after Open.
func (s *snapshotSource) Subtopics() []string {
	var out []string
	for _, r := range s.cfg.Tables.Named() {
		out = append(out, r.String())
	}
	return out
}

// Open resolves the tables, restores each table's progress from its
// position and starts the planner and the readers.
func (s *snapshotSource) Open(ctx context.Context, from map[string]checkpoint.Position) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.db, err = openDB(s.cfg.endpoint, sourceSession, false, s.cfg.Parallelism+1); err != nil {
		return err
	}
	if err := ping(ctx, s.db, s.cfg.endpoint, scopeSource); err != nil {
		return err
	}
	defs, err := resolveTables(ctx, s.db, s.cfg.Tables)
	if err != nil {
		return err
	}
	s.startTS = time.Now().Unix()
	for _, p := range from {
		if p.TS > 0 && p.TS < s.startTS {
			s.startTS = p.TS // the import's start time survives restarts
		}
	}
	var todo []*snapTable
	for _, d := range defs {
		t := &snapTable{def: d, subtopic: d.Ref.String()}
		if p, ok := from[t.subtopic]; ok && p.Token != "" {
			if err := json.Unmarshal([]byte(p.Token), &t.prog); err != nil || (t.prog.HW != nil && len(t.prog.HW) != len(d.PK)) {
				return connector.Fail(codePositionPurged, "unreadable full import position of "+t.subtopic,
					fmt.Sprintf("token %q", p.Token), "restart the full import from scratch", true, err)
			}
		}
		s.tables = append(s.tables, t)
		if !t.prog.Done {
			todo = append(todo, t)
		}
	}

	s.slots = make(chan struct{}, s.cfg.Parallelism)
	s.results = make(chan chunkResult)
	s.pending = map[int]chunkResult{}
	jobs := make(chan chunk)
	run, cancel := context.WithCancel(context.Background())
	s.cancel = cancel

	var readers sync.WaitGroup
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(jobs)
		s.plan(run, todo, jobs)
	}()
	for range s.cfg.Parallelism {
		readers.Add(1)
		go func() {
			defer readers.Done()
			s.read(run, jobs)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		readers.Wait()
		close(s.results)
	}()
	s.log.Info("full import started", zap.Int(logTables, len(defs)), zap.Int("remaining", len(todo)),
		zap.Int("chunk_rows", s.cfg.BatchSize), zap.Int("readers", s.cfg.Parallelism))
	return nil
}

// plan walks each unfinished table from its high-water key and hands out
// chunks in key order, one slot each.
func (s *snapshotSource) plan(ctx context.Context, tables []*snapTable, jobs chan<- chunk) {
	seq := 0
	for _, t := range tables {
		lo := t.prog.HW
		for {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			hi, err := nextBoundary(ctx, s.db, t.def, lo, s.cfg.BatchSize)
			c := chunk{seq: seq, table: t, lo: lo, hi: hi}
			seq++
			if err != nil {
				s.send(ctx, chunkResult{chunk: c, err: sourceFailure("planning chunks of "+t.subtopic, err)})
				return
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
			if hi == nil {
				break
			}
			lo = hi
		}
	}
}

func (s *snapshotSource) read(ctx context.Context, jobs <-chan chunk) {
	for c := range jobs {
		rows, crc, err := readChunk(ctx, s.db, c.table.def, c.lo, c.hi)
		if err != nil {
			err = sourceFailure("reading a chunk of "+c.table.subtopic, err)
		} else {
			err = s.throttle.wait(ctx, len(rows))
		}
		if !s.send(ctx, chunkResult{chunk: c, rows: rows, crc: crc, err: err}) {
			return
		}
	}
}

func (s *snapshotSource) send(ctx context.Context, r chunkResult) bool {
	select {
	case s.results <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// Read returns the next chunk in order as one batch of inserts, with the
// table's position after it. It returns io.EOF when every table is done.
func (s *snapshotSource) Read(ctx context.Context) (connector.Batch, error) {
	if s.failed != nil {
		return connector.Batch{}, s.failed
	}
	for {
		if r, ok := s.pending[s.next]; ok {
			delete(s.pending, s.next)
			s.next++
			<-s.slots
			return s.deliver(r), nil
		}
		select {
		case r, ok := <-s.results:
			if !ok {
				if len(s.pending) > 0 {
					s.failed = errors.New("full import: chunk readers stopped with chunks missing")
					return connector.Batch{}, s.failed
				}
				return connector.Batch{}, io.EOF
			}
			if r.err != nil {
				s.failed = r.err
				return connector.Batch{}, r.err
			}
			s.pending[r.chunk.seq] = r
		case <-ctx.Done():
			return connector.Batch{}, ctx.Err()
		}
	}
}

func (s *snapshotSource) deliver(r chunkResult) connector.Batch {
	t := r.chunk.table
	def := t.def
	b := connector.Batch{Records: make([]connector.Record, len(r.rows))}
	// One allocation for the chunk's changes rather than one per row.
	changes := make([]connector.RowChange, len(r.rows))
	for i, row := range r.rows {
		changes[i] = connector.RowChange{Database: def.Ref.DB, Table: def.Ref.Name, Op: connector.OpInsert,
			Columns: def.Columns, PK: def.PK, After: row}
		b.Records[i] = connector.Record{Subtopic: t.subtopic, TS: s.startTS, Change: &changes[i]}
	}
	t.prog.HW = r.chunk.hi
	t.prog.Done = r.chunk.hi == nil
	t.prog.Rows += int64(len(r.rows))
	t.prog.CRC += r.crc
	token, _ := json.Marshal(t.prog) // strings and numbers only: cannot fail
	b.Positions = []checkpoint.Position{{Subtopic: t.subtopic, TS: s.startTS, Token: string(token)}}
	b.Metrics = map[string]float64{
		"rows." + t.subtopic:  float64(t.prog.Rows),
		"crc32." + t.subtopic: float64(t.prog.CRC),
	}
	if t.prog.Done {
		s.log.Info("table copied", zap.String(logTable, t.subtopic), zap.Int64(logRows, t.prog.Rows), zap.Uint32("crc32", t.prog.CRC))
	}
	return b
}

// Close stops the planner and readers and closes the connections.
func (s *snapshotSource) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	return err
}
