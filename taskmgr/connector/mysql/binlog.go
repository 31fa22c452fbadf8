package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

const (
	// linger is how long Read waits for more events once it holds a whole
	// transaction: long enough to gather a burst, short enough to look idle.
	linger = 5 * time.Millisecond
	// maxBatchTxns bounds the transactions of one batch, so a stream of
	// transactions on other tables still moves the position regularly.
	maxBatchTxns = 10000
	// The server sends a heartbeat when idle; no event for stallTimeout
	// means the connection is dead. A heartbeat also says the server has
	// sent everything it has, so an idle source reports delay 0 within a
	// heartbeatPeriod.
	heartbeatPeriod = 5 * time.Second
	stallTimeout    = 60 * time.Second
	// eventBuffer is how many decoded events the dump goroutine may run ahead.
	eventBuffer = 16384
)

// metricDDLApplied is the detail metric counting the schema statements
// applied on the target since the task's runner started.
const metricDDLApplied = "ddlApplied"

// errLinger ends Read's wait for more events; errStall ends a wait that
// saw no event, not even a heartbeat, for stallTimeout.
var (
	errLinger = errors.New("linger over")
	errStall  = errors.New("no event from the source")
)

// binlogSource is the incremental mysql source: it reads row events of the
// selected tables from the binlog, as a replica does, and yields them in
// whole transactions. See doc.go for positions and DDL.
type binlogSource struct {
	cfg      sourceConfig
	task     model.TaskName
	log      *zap.Logger
	throttle *throttle
	// history keeps the definitions of the selected tables by position
	// (nil: rows are decoded with the current definitions; history.go).
	history connector.SchemaHistory

	db     *sql.DB
	syncer *syncer
	stream *replication.BinlogStreamer
	defs   *schemaCache
	shapes map[tableRef]*shape
	// versions is the schema history of the selected tables, renames the
	// renames the target already has (history.go).
	versions map[tableRef]versions
	renames  []rename

	file string // binlog file of the event being read
	txn  txn
	// skipBefore drops transactions that began before it, until the first
	// one at or after it: a rewind to a time starts reading at the
	// beginning of a binlog file.
	skipBefore int64
	// last is the end of the last whole transaction read.
	last   gomysql.Position
	lastTS int64
	// startAt is where a subtopic without a position starts (the binlog
	// end when it opened), for Start.
	startAt []checkpoint.Position
	// failed is returned by every Read once set: a DDL found after a batch
	// that was returned first.
	failed error
	// pending is a schema statement's batch, returned by the next Read:
	// it was read after rows that went out first.
	pending *connector.Batch
	// ddls counts the schema statements this source sent to the sink
	// since Open (metric ddlApplied: a batch's metrics count only once
	// its sink applied it).
	ddls int
	// fromTS is the time of the position Open started from (0: none).
	fromTS int64
	// meta is the server's binlog_row_metadata, read at Open.
	meta string
	// charsets caches the character set of client collation ids
	// (querycharset.go).
	charsets map[uint16]string
	// atEnd is set by a heartbeat received with no transaction open: the
	// server has sent everything it has, and everything is read. Any other
	// event clears it.
	atEnd bool
	// heartbeat is the period the server is asked to send heartbeats at
	// when idle, and stall how long without any event means the dump is
	// dead: heartbeatPeriod and stallTimeout (tests shorten them).
	heartbeat, stall time.Duration
}

// txn is the transaction being assembled from events.
type txn struct {
	open bool
	// explicit: the transaction ends with XID or COMMIT. Otherwise it is a
	// standalone statement (DDL), which is its own transaction.
	explicit bool
	skip     bool // began before skipBefore
	ts       int64
	// start is where the transaction's first event begins: reading from
	// there meets it again, and nothing before it is still to come.
	start   gomysql.Position
	records []connector.Record
	// ddl is the schema statement of a standalone transaction, to be
	// applied by the sink (sink.ddl=apply); learn the selected tables it
	// names, whose definitions after it are recorded in the schema
	// history, worked out from stmt (in database schema) when it is set
	// (derive.go), else marked unknown (a statement refused).
	ddl    *connector.SchemaChange
	learn  []tableRef
	stmt   *parsedDDL
	schema string
}

// shape is how the columns of one table map event read.
type shape struct {
	tm *replication.TableMapEvent
	// target is the table the rows go to: the event's, or, replaying rows
	// from before a rename the target already has, its later name
	// (history.go).
	target    tableRef
	columns   []string
	pk        []int
	dataTypes []string
	unsigned  []bool // nil when the event carried signedness
	dec       []int  // fractional digits of DATETIME and TIMESTAMP columns
	// gone: the rows are of a table the target no longer has under any
	// name (replayed from before a DROP whose name a later rename gave to
	// another table; history.go, Lineage). They are left out.
	gone bool
}

// newBinlogSource validates cfg without I/O.
func newBinlogSource(cfg connector.Config) (*binlogSource, error) {
	c, err := parseSourceConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &binlogSource{cfg: c, task: cfg.Task, log: log.Named("mysql.binlog"), throttle: newThrottle(c.ThrottleRPS),
		heartbeat: heartbeatPeriod, stall: stallTimeout}, nil
}

// Open checks the source server and the tables, finds the start position
// and starts the binlog dump. Without a position for the subtopic it starts
// at the current end of the binlog (not at its beginning: old binlog is not
// a consistent copy of anything; run a full import for existing rows).
func (s *binlogSource) Open(ctx context.Context, from map[string]checkpoint.Position) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.db, err = openDB(s.cfg.endpoint, sourceSession, false, 2); err != nil {
		return err
	}
	if err := ping(ctx, s.db, s.cfg.endpoint, scopeSource); err != nil {
		return err
	}
	meta, err := checkBinlogServer(ctx, s.db)
	if err != nil {
		return err
	}
	s.meta = meta
	if p, ok := from[s.cfg.Subtopic]; ok {
		s.fromTS = p.TS
	}
	if meta != "FULL" {
		s.log.Warn("binlog_row_metadata is not FULL; column names come from information_schema, so a replay across an ALTER may misname columns",
			zap.String("binlog_row_metadata", meta))
	}
	// The definitions are read after the binlog end: they are those of
	// that position or later (the schema history's first versions).
	seen, err := binlogEnd(ctx, s.db)
	if err != nil {
		return sourceFailure("reading the binlog end", err)
	}
	defs, err := resolveTables(ctx, s.db, s.cfg.Tables)
	if err != nil {
		return err
	}
	s.defs = newSchemaCache(s.db, defs)
	s.shapes = map[tableRef]*shape{}

	start, err := s.start(ctx, from)
	if err != nil {
		return err
	}
	s.last = start // rows before the first transaction's end are at or after it
	if err := s.loadHistory(ctx, defs, start, seen, max(s.lastTS, s.skipBefore)); err != nil {
		return err
	}
	s.syncer = s.newSyncer(s.cfg.ServerID)
	if s.stream, err = s.syncer.StartSync(start); err != nil {
		return sourceFailure("starting the binlog dump at "+formatToken(start), err)
	}
	s.file = start.Name
	s.log.Info("binlog dump started", zap.String(logPosition, formatToken(start)),
		zap.Int64("skip_before", s.skipBefore), zap.Uint32("server_id", s.cfg.ServerID), zap.Int(logTables, len(defs)))
	return nil
}

// start resolves where reading begins: an exact token, a time, or the end.
func (s *binlogSource) start(ctx context.Context, from map[string]checkpoint.Position) (gomysql.Position, error) {
	for sub := range from {
		if sub != s.cfg.Subtopic {
			s.log.Warn("ignoring a position of another subtopic", zap.String(logSubtopic, sub), zap.String("want", s.cfg.Subtopic))
		}
	}
	p, ok := from[s.cfg.Subtopic]
	switch {
	case ok && p.Exact():
		s.lastTS = p.TS
		pos, err := parseToken(p.Token)
		if err != nil {
			return pos, connector.Fail(codePositionPurged, "unreadable resume position", err.Error(),
				"rewind the task to a time", true, err)
		}
		return pos, s.checkTokenFile(ctx, pos)
	case ok:
		pos, err := s.startForTime(ctx, p.TS)
		s.skipBefore = p.TS
		return pos, err
	default:
		end, err := binlogEnd(ctx, s.db)
		if err != nil {
			return end, sourceFailure("reading the binlog end", err)
		}
		now, err := serverTime(ctx, s.db)
		if err != nil {
			return end, sourceFailure("reading the source's clock", err)
		}
		s.lastTS = now
		s.startAt = []checkpoint.Position{{Subtopic: s.cfg.Subtopic, TS: now, Token: formatToken(end)}}
		return end, nil
	}
}

// syncer is a binlog dump whose start and Close are bounded. The dump runs
// with no read timeout (see syncerConfig), so by itself a server that
// accepts connections but never answers would hold the handshake of
// StartSync, or of the connection Close opens to KILL the dump's thread,
// forever, and with it a start or a stop. So every connection gets a
// deadline when it is dialed: startTimeout while StartSync runs (lifted
// once the dump has begun; from then on Read watches the stream), and
// killTimeout once closing has begun.
type syncer struct {
	*replication.BinlogSyncer
	closing atomic.Bool

	mu       sync.Mutex
	starting []net.Conn // dialed during StartSync, deadline still set
}

const (
	startTimeout = 30 * time.Second
	killTimeout  = 5 * time.Second
)

func (s *binlogSource) newSyncer(serverID uint32) *syncer {
	dialer := &net.Dialer{Timeout: dialTimeout}
	y := &syncer{}
	cfg := s.syncerConfig(serverID)
	cfg.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if y.closing.Load() {
			_ = c.SetDeadline(time.Now().Add(killTimeout))
			return c, nil
		}
		_ = c.SetDeadline(time.Now().Add(startTimeout))
		y.mu.Lock()
		y.starting = append(y.starting, c)
		y.mu.Unlock()
		return c, nil
	}
	y.BinlogSyncer = replication.NewBinlogSyncer(cfg)
	return y
}

// StartSync starts the dump at pos and lifts the start deadline.
func (y *syncer) StartSync(pos gomysql.Position) (*replication.BinlogStreamer, error) {
	st, err := y.BinlogSyncer.StartSync(pos)
	y.mu.Lock()
	defer y.mu.Unlock()
	if err == nil {
		for _, c := range y.starting {
			_ = c.SetDeadline(time.Time{})
		}
	}
	y.starting = nil
	return st, err
}

func (y *syncer) Close() {
	y.closing.Store(true)
	y.BinlogSyncer.Close()
}

func (s *binlogSource) syncerConfig(serverID uint32) replication.BinlogSyncerConfig {
	return replication.BinlogSyncerConfig{
		ServerID:                serverID,
		Flavor:                  s.cfg.Flavor,
		Host:                    s.cfg.Host,
		Port:                    uint16(s.cfg.Port),
		User:                    s.cfg.User,
		Password:                s.cfg.Password,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		// Without UseDecimal the decoder yields a DECIMAL as its exact
		// text (scale kept: "12.50"), which is what the sink binds; with it
		// the text would be parsed into a decimal.Decimal only to be
		// printed again.
		UseDecimal: false,
		// DATETIME and TIMESTAMP values come as time.Time and are printed
		// by shape.values, much faster than the library prints them.
		ParseTime:       true,
		HeartbeatPeriod: s.heartbeat,
		// No ReadTimeout: the library would then set a socket deadline
		// for every packet (three system calls each). Read watches for a
		// silent server instead (see stallTimeout).
		// A broken dump is reported to the runtime, whose restart policy
		// reopens from the last checkpoint; no hidden retry loop here.
		DisableRetrySync:    true,
		FillZeroLogPos:      s.cfg.Flavor == flavorMariaDB,
		EventCacheCount:     eventBuffer,
		RowsEventDecodeFunc: newRowDecoder(s.cfg.Tables.Match).decode,
		Logger:              newSlog(s.log),
	}
}

// Read returns one or more whole transactions: it stops at MaxBatchRows
// rows, or when no further event arrives within linger of the last
// transaction end. A batch of transactions on unselected tables carries
// only the position. A heartbeat from the server ends the batch too, and
// without anything read it is a batch of only the delay report, 0: the
// source is at the server's end.
func (s *binlogSource) Read(ctx context.Context) (connector.Batch, error) {
	if s.pending != nil {
		b := *s.pending
		s.pending = nil
		return s.finish(ctx, b)
	}
	if s.failed != nil {
		return connector.Batch{}, s.failed
	}
	// The server sends a heartbeat every heartbeatPeriod when it has
	// nothing else, so a stall period (s.stall) without any event is a dead
	// connection (a restarted server, a dropped route): the task fails and
	// its restart policy reopens the dump. The watch is one context per
	// period, not per event: when a period ends with events seen in it, the
	// next period begins, so silence is noticed after one to two periods.
	var (
		period struct{ cancel context.CancelFunc } // ends the current period
		live   context.Context
	)
	live, period.cancel = context.WithTimeoutCause(ctx, s.stall, errStall)
	defer func() { period.cancel() }()
	var (
		b    connector.Batch
		txns int
		// wait gains a deadline, linger, after the first whole transaction.
		wait = live
		// events counts the events read; armed is its value when the
		// current stall period began.
		events, armed int
	)
	for {
		ev, err := s.stream.GetEvent(wait)
		if err != nil {
			if ctx.Err() != nil {
				return connector.Batch{}, ctx.Err()
			}
			if wait != live && errors.Is(context.Cause(wait), errLinger) {
				return s.finish(ctx, b)
			}
			if !errors.Is(context.Cause(live), errStall) {
				return connector.Batch{}, s.streamFailure(err)
			}
			if len(b.Positions) > 0 {
				return s.finish(ctx, b) // the period ended while lingering
			}
			if events == armed {
				return connector.Batch{}, connector.Fail(codeBinlogStream, "the binlog dump went silent",
					fmt.Sprintf("no event and no heartbeat from the source for %s", s.stall), "", false, nil)
			}
			period.cancel()
			live, period.cancel = context.WithTimeoutCause(ctx, s.stall, errStall)
			wait, armed = live, events
			continue
		}
		events++
		if _, ok := ev.Event.(*replication.HeartbeatEvent); ok {
			// The dump sends a heartbeat only when it has waited a period
			// with nothing to send: the source is at the server's end.
			s.atEnd = !s.txn.open
			if s.atEnd {
				return s.finish(ctx, b)
			}
			continue
		}
		s.atEnd = false
		done, err := s.handle(ctx, ev, ev.Header.LogPos)
		if err != nil {
			s.failed = err
			if p := stoppedAt(err); p != nil {
				// Everything before the statement is read: the position
				// just before it goes with what came before, so the
				// durable checkpoint is there when resume skips it.
				b.Positions = []checkpoint.Position{{Subtopic: s.cfg.Subtopic, TS: s.beforeTS(p), Token: p.Before}}
			}
			if len(b.Positions) > 0 {
				return s.finish(ctx, b) // deliver what came before it first
			}
			return connector.Batch{}, err
		}
		if !done || s.txn.skip {
			continue
		}
		if c := s.txn.ddl; c != nil {
			// A schema statement goes alone in its batch, after everything
			// before it, so the sink applies it at its place.
			s.txn.ddl = nil
			c.After = formatToken(s.last)
			db := connector.Batch{
				Records:   []connector.Record{{Subtopic: s.cfg.Subtopic, TS: s.txn.ts, DDL: c}},
				Positions: []checkpoint.Position{{Subtopic: s.cfg.Subtopic, TS: s.lastTS, Token: c.After}},
			}
			s.ddls++
			if len(b.Positions) > 0 {
				s.pending = &db
				return s.finish(ctx, b)
			}
			return s.finish(ctx, db)
		}
		b.Records = append(b.Records, s.txn.records...)
		s.txn.records = nil
		b.Positions = []checkpoint.Position{{Subtopic: s.cfg.Subtopic, TS: s.lastTS, Token: formatToken(s.last)}}
		txns++
		if len(b.Records) >= s.cfg.MaxBatchRows || txns >= maxBatchTxns {
			return s.finish(ctx, b)
		}
		if wait == live {
			var cancel context.CancelFunc
			wait, cancel = context.WithTimeoutCause(live, linger, errLinger)
			defer cancel()
		}
	}
}

func (s *binlogSource) finish(ctx context.Context, b connector.Batch) (connector.Batch, error) {
	if err := s.throttle.wait(ctx, len(b.Records)); err != nil {
		return connector.Batch{}, err
	}
	// The delay: 0 at the server's end (a heartbeat), else the age of the
	// last transaction read.
	now := time.Now()
	if s.atEnd {
		b.Metrics = model.DelayMetrics(0, now)
	} else {
		b.Metrics = model.DelayMetrics(now.Sub(time.Unix(s.lastTS, 0)), now)
	}
	if s.ddls > 0 {
		b.Metrics[metricDDLApplied] = float64(s.ddls)
	}
	return b, nil
}

func (s *binlogSource) streamFailure(err error) error {
	if serverErrNo(err) != 0 {
		return sourceFailure("reading the binlog", err)
	}
	return connector.Fail(codeBinlogStream, "the binlog dump broke", err.Error(), "", false, err)
}

// handle folds one event into the transaction being assembled and reports
// whether it ended one. endPos is the offset just after the event (for the
// events inside a compressed payload, after the payload).
func (s *binlogSource) handle(ctx context.Context, ev *replication.BinlogEvent, endPos uint32) (bool, error) {
	ts := int64(ev.Header.Timestamp)
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		s.file = string(e.NextLogName)
	case *replication.MariadbGTIDEvent:
		// A standalone group (DDL) has no COMMIT: its statement ends it.
		s.begin(ts, !e.IsStandalone())
		s.txn.start = s.eventStart(ev)
	case *replication.GTIDEvent, *replication.GtidTaggedLogEvent:
		// MySQL (anonymous GTIDs too): a BEGIN query follows for a
		// transaction, a DDL for a statement.
		s.begin(ts, false)
		s.txn.start = s.eventStart(ev)
	case *replication.QueryEvent:
		return s.query(ctx, ts, e, s.eventStart(ev), endPos)
	case *replication.RowsEvent:
		return false, s.rows(ctx, ts, e)
	case *replication.XIDEvent:
		return s.end(endPos), nil
	case *replication.TransactionPayloadEvent:
		done := false
		for _, inner := range e.Events {
			d, err := s.handle(ctx, inner, endPos)
			if err != nil {
				return false, err
			}
			done = done || d
		}
		return done, nil
	}
	return false, nil
}

func (s *binlogSource) begin(ts int64, explicit bool) {
	if s.txn.open && len(s.txn.records) > 0 {
		s.log.Warn("a transaction began before the previous one ended; dropping its rows",
			zap.Int(logRows, len(s.txn.records)), zap.String("file", s.file))
	}
	if s.skipBefore != 0 && ts >= s.skipBefore {
		s.skipBefore = 0 // from here on everything is delivered
	}
	s.txn = txn{open: true, explicit: explicit, ts: ts, skip: s.skipBefore != 0}
}

func (s *binlogSource) end(pos uint32) bool {
	s.txn.open = false
	if pos != 0 {
		s.last = gomysql.Position{Name: s.file, Pos: pos}
	}
	if !s.txn.skip {
		// A transaction's time is its first event's: a long transaction
		// that commits after short ones carries an earlier time. Reported
		// times never go back; the token still moves on.
		s.lastTS = max(s.lastTS, s.txn.ts)
	}
	return true
}

func (s *binlogSource) query(ctx context.Context, ts int64, e *replication.QueryEvent, start gomysql.Position, endPos uint32) (bool, error) {
	q := strings.TrimSpace(string(e.Query))
	switch u := strings.ToUpper(firstWords(q, 2)); {
	case u == "BEGIN" || u == "START TRANSACTION" || strings.HasPrefix(u, "XA START"):
		if !s.txn.open {
			s.begin(ts, true)
		}
		s.txn.explicit = true
		return false, nil
	case u == "COMMIT" || u == "ROLLBACK" || strings.HasPrefix(u, "XA COMMIT"):
		if !s.txn.open {
			s.begin(ts, true)
		}
		return s.end(endPos), nil
	case strings.HasPrefix(u, "SAVEPOINT") || strings.HasPrefix(u, "ROLLBACK TO") ||
		strings.HasPrefix(u, "RELEASE SAVEPOINT") || strings.HasPrefix(u, "XA "):
		return false, nil
	}
	if s.txn.open && s.txn.explicit {
		return false, nil // a statement logged inside a transaction
	}
	if !s.txn.open {
		s.begin(ts, false)
		s.txn.start = start
	}
	text, err := s.statementText(ctx, e.Query, e.StatusVars)
	if err != nil {
		return false, err
	}
	q = strings.TrimSpace(text)
	if err := s.ddl(ctx, string(e.Schema), q); err != nil {
		err = s.atStatement(err, ts, endPos)
		if at := stoppedAt(err); at != nil && len(s.txn.learn) > 0 {
			// Refused: what the tables are after it is not known here
			// (a resume with skipDdl continues after it).
			if merr := s.markUnknown(ctx, s.txn.learn, gomysql.Position{Name: s.file, Pos: endPos}, ts); merr != nil {
				s.log.Warn("schema history: could not mark a refused statement", zap.Error(merr))
			}
		}
		return false, err
	}
	done := s.end(endPos)
	if learn := s.txn.learn; len(learn) > 0 {
		s.txn.learn = nil
		if err := s.learn(ctx, learn, s.txn.stmt, s.txn.schema, s.last, ts); err != nil {
			return false, err
		}
	}
	return done, nil
}

// ddl reacts to a schema statement: it forgets the cached definitions of
// the selected tables it touches and refuses the statements that change
// what later row events mean (see doc.go).
func (s *binlogSource) ddl(_ context.Context, schema, q string) error {
	d := parseDDL(q, schema)
	if d.Kind == ddlNone {
		return nil
	}
	// refs are the selected tables touched, which a refused statement
	// marks unknown in the schema history (query).
	var touched []string
	var refs []tableRef
	if d.Kind == ddlDropDatabase {
		for _, db := range s.cfg.Tables.Databases() {
			if db == d.DB {
				s.defs.forgetDB(db)
				clear(s.shapes)
				touched = append(touched, db+".*")
				for r := range s.versions {
					if r.DB == db {
						refs = append(refs, r)
					}
				}
			}
		}
	}
	for _, r := range d.Tables {
		if s.cfg.Tables.Match(r.DB, r.Name) {
			s.defs.forget(r)
			delete(s.shapes, r)
			touched = append(touched, r.String())
			refs = append(refs, r)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	if s.cfg.ApplyDDL && !s.txn.skip {
		s.txn.learn = refs
		return s.applyDDL(d, schema, q, touched)
	}
	if s.cfg.ApplyDDL {
		// Before the rewind time: the target has its effect, and the
		// schema history still follows it.
		if p, err := parseStatement(q); err == nil {
			s.noteStatement(p, schema)
		}
		return nil
	}
	switch d.Kind {
	case ddlCreate, ddlIndex:
		s.log.Info("DDL on selected tables", zap.String("kind", d.Kind.String()), zap.Strings(logTables, touched))
		return nil
	case ddlNone, ddlAlter, ddlDrop, ddlRename, ddlTruncate, ddlReplace, ddlDropDatabase:
		// Later row events may not mean what they did: refused below.
		// (ddlNone returned above.)
	}
	if s.txn.skip {
		return nil // before the rewind time: its effects are already in the data
	}
	s.txn.learn = refs
	return connector.Fail(codeDDLUnsupported,
		fmt.Sprintf("%s on selected table(s) %s: %s", d.Kind, strings.Join(touched, ", "), clip(q, 400)),
		"row changes after this statement may not fit the target table, and the sink does not replay DDL",
		"apply the same change to the target, then resume with skipDdl=true: the task continues right after this statement (docs/runbooks.md)",
		true, nil)
}

func (s *binlogSource) rows(ctx context.Context, ts int64, e *replication.RowsEvent) error {
	ref := tableRef{DB: string(e.Table.Schema), Name: string(e.Table.Table)}
	if !s.cfg.Tables.Match(ref.DB, ref.Name) {
		return nil
	}
	if !s.txn.open {
		s.begin(ts, true)
	}
	if s.txn.skip {
		return nil
	}
	sh, err := s.shape(ctx, ref, e.Table)
	if err != nil {
		return err
	}
	if sh.gone {
		return nil
	}
	for _, skipped := range e.SkippedColumns {
		if len(skipped) > 0 {
			return connector.Fail(codeBinlogFormat, fmt.Sprintf("a row event of %s lacks columns", ref),
				"the event was written with binlog_row_image other than FULL",
				"SET GLOBAL binlog_row_image=FULL; rewind to a time after the change", true, nil)
		}
	}
	var op connector.Op
	step := 1
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		op = connector.OpInsert
	case replication.EnumRowsEventTypeUpdate:
		op, step = connector.OpUpdate, 2
	case replication.EnumRowsEventTypeDelete:
		op = connector.OpDelete
	case replication.EnumRowsEventTypeUnknown:
		return nil // not a row change
	default:
		return nil // no value go-mysql names: not a row change either
	}
	// One allocation for the event's changes rather than one per row.
	changes := make([]connector.RowChange, len(e.Rows)/step)
	for i := 0; i+step <= len(e.Rows); i += step {
		rc := &changes[i/step]
		*rc = connector.RowChange{Database: sh.target.DB, Table: sh.target.Name, Op: op, Columns: sh.columns, PK: sh.pk}
		switch op {
		case connector.OpInsert:
			rc.After = sh.values(e.Rows[i])
		case connector.OpDelete:
			rc.Before = sh.values(e.Rows[i])
		case connector.OpUpdate:
			rc.Before, rc.After = sh.values(e.Rows[i]), sh.values(e.Rows[i+1])
		}
		s.txn.records = append(s.txn.records, connector.Record{Subtopic: s.cfg.Subtopic, TS: s.txn.ts, Change: rc})
	}
	return nil
}

// shape works out column names and the primary key of a table map event:
// from the event when the server logs full row metadata, else from the
// table definition (read again once if it does not fit).
func (s *binlogSource) shape(ctx context.Context, ref tableRef, tm *replication.TableMapEvent) (*shape, error) {
	if sh := s.shapes[ref]; sh != nil && (sh.tm == tm || sameTableMap(sh.tm, tm)) {
		// The server logs a new table map in every transaction; one that
		// says the same as the last needs no new shape.
		sh.tm = tm
		return sh, nil
	}
	n := int(tm.ColumnCount)
	// The schema history's definition of the row's time, else the
	// current one.
	def := s.defAt(ref)
	var err error
	if def == nil || len(def.Columns) != n {
		if def, err = s.defs.get(ctx, ref); err != nil {
			return nil, sourceFailure("reading the definition of "+ref.String(), err)
		}
	}
	if def != nil && len(def.Columns) != n && def != s.defAt(ref) {
		s.defs.forget(ref)
		if def, err = s.defs.get(ctx, ref); err != nil {
			return nil, sourceFailure("reading the definition of "+ref.String(), err)
		}
	}
	fits := def != nil && len(def.Columns) == n
	sh := &shape{tm: tm}
	if len(tm.ColumnName) == n {
		sh.columns = tm.ColumnNameString()
	} else if fits {
		sh.columns = def.Columns
	} else {
		return nil, connector.Fail(codeSchemaMismatch,
			fmt.Sprintf("a row event of %s has %d columns but the table has %d", ref, n, columnCount(def)),
			"the table changed since the event was written and the binlog carries no column names",
			"SET GLOBAL binlog_row_metadata=FULL, or rewind to a time after the change", true, nil)
	}
	if len(tm.PrimaryKey) > 0 {
		for _, p := range tm.PrimaryKey {
			sh.pk = append(sh.pk, int(p))
		}
	} else if def != nil {
		for _, name := range def.pkNames() {
			for i, c := range sh.columns {
				if c == name {
					sh.pk = append(sh.pk, i)
				}
			}
		}
	}
	if len(sh.pk) == 0 {
		return nil, noPrimaryKey("source", []string{ref.String()})
	}
	if fits {
		sh.dataTypes = def.DataTypes
		if !carriesSignedness(tm) {
			sh.unsigned = def.Unsigned
		}
	}
	sh.target = ref
	t, cols, gone := s.forward(ref, sh.columns)
	if cols != nil {
		sh.target, sh.columns = t, cols
	}
	sh.gone = gone
	sh.dec = make([]int, n)
	for i, t := range tm.ColumnType {
		switch t {
		case gomysql.MYSQL_TYPE_DATETIME2, gomysql.MYSQL_TYPE_TIMESTAMP2:
			if i < n {
				sh.dec[i] = int(tm.ColumnMeta[i])
			}
		}
	}
	s.shapes[ref] = sh
	return sh, nil
}

// sameTableMap reports whether two table map events describe the same
// columns in the same way.
func sameTableMap(a, b *replication.TableMapEvent) bool {
	return a.TableID == b.TableID && a.ColumnCount == b.ColumnCount &&
		bytes.Equal(a.Schema, b.Schema) && bytes.Equal(a.Table, b.Table) &&
		bytes.Equal(a.ColumnType, b.ColumnType) && slices.Equal(a.ColumnMeta, b.ColumnMeta) &&
		carriesSignedness(a) == carriesSignedness(b) &&
		slices.Equal(a.PrimaryKey, b.PrimaryKey) &&
		slices.EqualFunc(a.ColumnName, b.ColumnName, bytes.Equal)
}

// values converts a decoded row in place: the decoder made the slice for
// this event alone, and reusing it saves an allocation per row.
func (sh *shape) values(row []any) []any {
	out := row
	for i, v := range row {
		if t, ok := v.(time.Time); ok {
			out[i] = datetimeText(t.UTC(), sh.dec[i])
			continue
		}
		var dt string
		var unsigned bool
		if sh.dataTypes != nil {
			dt = sh.dataTypes[i]
		}
		if sh.unsigned != nil {
			unsigned = sh.unsigned[i]
		}
		out[i] = binlogValue(v, dt, unsigned)
	}
	return out
}

// Close stops the dump and closes connections. It is safe to call on a
// source that is not (or only partly) open.
func (s *binlogSource) Close() error {
	if s.syncer != nil {
		s.syncer.Close()
		s.syncer = nil
	}
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	return err
}

func columnCount(d *tableDef) int {
	if d == nil {
		return 0
	}
	return len(d.Columns)
}

// firstWords returns up to n leading words of q, single-spaced.
func firstWords(q string, n int) string {
	f := strings.Fields(q)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
