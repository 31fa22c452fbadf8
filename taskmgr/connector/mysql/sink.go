package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// sink applies row changes to a MySQL or MariaDB server. A batch is one
// target transaction, or, when it is large, up to Parallelism transactions
// applied at once, split by primary key (see partition); rows are written
// as upserts and deletes by primary key, so applying a batch again (a
// replay after a crash or a rewind) converges to the same rows.
//
// When the task's source is also mysql, the sink creates missing target
// tables (and databases) from the source's current definition, with SHOW
// CREATE TABLE: at Open for the tables source.tables selects now, and at
// Write for tables that appear later (db.* selections).
type sink struct {
	cfg sinkConfig
	// task and history: where applied schema statements are recorded
	// (history nil: nowhere but the log).
	task    model.TaskName
	history connector.SchemaHistory
	// incr: the task is incremental (schema statements reach it).
	incr bool
	// failpoint: crash tests stop the process right after a schema
	// statement is applied, before its position is checkpointed.
	failpoint failpoint.Armed
	// src is the task's mysql source, where missing tables are copied from;
	// nil when the source is of another type.
	src *sourceConfig
	log *zap.Logger

	db    *sql.DB
	srcDB *sql.DB
	// textDB runs the CREATE TABLE statements, as text (see charset.go);
	// opened by the first one.
	textDB *sql.DB
	// tables holds target tables known to exist with a primary key, by
	// source table.
	tables   map[tableRef]*tableDef
	maxBytes int

	// prepared holds server-side prepared statements by query text, for
	// the statements that recur (full groups): parameters then travel in
	// the binary protocol, which costs the server about half as much as
	// parsing them from text. database/sql prepares each on a connection
	// the first time a transaction there uses it.
	stmtMu   sync.Mutex
	prepared map[string]*sql.Stmt
}

// maxPrepared bounds the statements a sink keeps prepared.
const maxPrepared = 64

// newSink validates cfg without I/O.
func newSink(cfg connector.Config) (*sink, error) {
	c, err := parseSinkConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &sink{cfg: c, log: log.Named("mysql.sink"), task: cfg.Task, incr: cfg.Type == model.TypeIncr}
	if cfg.Scopes.Get(scopeSource, "type") == "mysql" {
		if sc, err := parseSourceConfig(cfg); err == nil {
			s.src = &sc
		}
	}
	return s, nil
}

// Open connects, creates the missing target tables of the selected source
// tables (when the source is mysql) and refuses target tables without a
// primary key.
func (s *sink) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.tables = map[tableRef]*tableDef{}
	s.prepared = map[string]*sql.Stmt{}
	if s.db, err = openDB(s.cfg.endpoint, sinkSession, true, s.cfg.Parallelism+1); err != nil {
		return err
	}
	if err := ping(ctx, s.db, s.cfg.endpoint, scopeSink); err != nil {
		return err
	}
	var packet int
	if err := s.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		return sinkFailure("reading max_allowed_packet", err)
	}
	s.maxBytes = min(maxStatementBytes, packet/2)
	if s.src == nil {
		return nil
	}

	// Definitions only: read as text (see charset.go).
	if s.srcDB, err = openTextDB(s.src.endpoint, sourceSession, 1); err != nil {
		return err
	}
	refs, err := listTables(ctx, s.srcDB, s.src.Tables)
	if err != nil {
		return sourceFailure("listing source tables", err)
	}
	var noPK []string
	var inexact []tableRef
	for _, r := range refs {
		if _, err := s.table(ctx, r); err != nil {
			var ce *connector.Error
			switch {
			case errors.As(err, &ce) && ce.Detail.Code == codeNoPrimaryKey:
				noPK = append(noPK, s.target(r).String())
			case errors.As(err, &ce) && ce.Detail.Code == codeInexactDefinition:
				inexact = append(inexact, r)
			default:
				return err
			}
		}
	}
	if len(inexact) > 0 {
		if err := refuseInexact(ctx, s.srcDB, inexact); err != nil {
			return err // every such table named at once
		}
	}
	if len(noPK) > 0 {
		return noPrimaryKey("target", noPK)
	}
	return nil
}

// target maps a source table to its target table.
func (s *sink) target(src tableRef) tableRef {
	return tableRef{DB: s.cfg.TargetDB(src.DB), Name: src.Name}
}

// table returns the target definition for a source table, creating the
// target table from the source when it is missing.
func (s *sink) table(ctx context.Context, src tableRef) (*tableDef, error) {
	if d := s.tables[src]; d != nil {
		return d, nil
	}
	ref := s.target(src)
	d, err := loadTableDef(ctx, s.db, ref)
	if err != nil {
		return nil, sinkFailure("reading the definition of "+ref.String(), err)
	}
	if d == nil {
		if err := s.create(ctx, src, ref); err != nil {
			return nil, err
		}
		if d, err = loadTableDef(ctx, s.db, ref); err != nil {
			return nil, sinkFailure("reading the definition of "+ref.String(), err)
		}
		if d == nil {
			return nil, tableNotFound("target", []string{ref.String()})
		}
	}
	if len(d.PK) == 0 {
		return nil, noPrimaryKey("target", []string{ref.String()})
	}
	if s.cfg.DDL == ddlApply && s.incr && s.srcDB != nil {
		sd, err := loadTableDef(ctx, s.srcDB, src)
		if err != nil {
			return nil, sourceFailure("reading the definition of "+src.String(), err)
		}
		d.SourceColumns = map[string]bool{}
		if sd != nil {
			for _, c := range sd.Columns {
				d.SourceColumns[c] = true
			}
		}
	}
	s.tables[src] = d
	return d, nil
}

// create copies the definition of src to ref, unless the server does not
// show it exactly (see charset.go). The statement runs as text on a
// connection of its own (the sink's pool talks binary), with the target
// database selected, so unqualified references in it (foreign keys)
// resolve there, as they did on the source.
func (s *sink) create(ctx context.Context, src, ref tableRef) error {
	if s.srcDB == nil {
		return tableNotFound("target", []string{ref.String()})
	}
	if err := refuseInexact(ctx, s.srcDB, []tableRef{src}); err != nil {
		return err
	}
	var name, stmt string
	if err := s.srcDB.QueryRowContext(ctx, "SHOW CREATE TABLE "+src.quoted()).Scan(&name, &stmt); err != nil {
		if serverErrNo(err) == errNoSuchTable {
			return tableNotFound("source", []string{src.String()})
		}
		return sourceFailure("reading the definition of "+src.String(), err)
	}
	const prefix = "CREATE TABLE "
	if !strings.HasPrefix(stmt, prefix) {
		return connector.Fail(codeApplySchema, "cannot copy the definition of "+src.String(),
			"SHOW CREATE TABLE returned "+clip(stmt, 80), "create the target table by hand", true, nil)
	}
	stmt = prefix + "IF NOT EXISTS " + stmt[len(prefix):]

	if s.textDB == nil {
		db, err := openTextDB(s.cfg.endpoint, sinkSession, 1)
		if err != nil {
			return err
		}
		s.textDB = db
	}
	conn, err := s.textDB.Conn(ctx)
	if err != nil {
		return sinkFailure("connecting", err)
	}
	defer conn.Close()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(ref.DB),
		"USE " + quoteIdent(ref.DB),
		stmt,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return sinkFailure("creating "+ref.String(), err)
		}
	}
	s.log.Info("created target table from the source definition", zap.String(logTable, ref.String()), zap.String("from", src.String()))
	return nil
}

// Write applies b in one transaction and returns after it committed.
func (s *sink) Write(ctx context.Context, b connector.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	if b.Records[0].DDL != nil {
		if len(b.Records) != 1 {
			return connector.Fail(codeUnsupportedInput, "the mysql sink got a DDL record together with other records",
				"a schema statement travels alone in its batch", "", true, nil)
		}
		return s.writeDDL(ctx, b.Records[0])
	}
	// Tables are resolved (maybe created) first: DDL would commit the
	// transaction.
	defs := map[tableRef]*tableDef{}
	for i := range b.Records {
		rc := b.Records[i].Change
		if rc == nil {
			return connector.Fail(codeUnsupportedInput, "the mysql sink got a record without a row change",
				"it applies database row changes only", "pair sink.type=mysql with a database source", true, nil)
		}
		ref := tableRef{DB: rc.Database, Name: rc.Table}
		if _, seen := defs[ref]; !seen {
			d, err := s.table(ctx, ref)
			if err != nil && !s.gone(err) {
				return err
			}
			defs[ref] = d
		}
	}
	records := b.Records
	for ref, d := range defs {
		if d == nil {
			records = s.without(records, ref)
		}
	}
	if len(records) == 0 {
		return nil
	}
	parts := partition(records, defs, s.cfg.Parallelism)
	if len(parts) == 1 {
		return s.apply(ctx, parts[0], defs)
	}
	// Each part is its own transaction; every change of a key (and every
	// change of a table that cannot be split by key) is in one part, in
	// order. A failure or crash between the commits leaves some parts
	// applied; the batch is not checkpointed, so it is replayed and the
	// idempotent apply completes it.
	g, gctx := errgroup.WithContext(ctx)
	for _, part := range parts {
		g.Go(func() error { return s.apply(gctx, part, defs) })
	}
	return g.Wait()
}

// gone reports whether err says a table exists neither on the target nor
// on the source. With sink.ddl=apply its rows are replayed from before a
// DROP TABLE (or a rename not in the task's history) that the target
// already reflects; they are not written (the statement, met again next,
// converges).
func (s *sink) gone(err error) bool {
	var ce *connector.Error
	return s.cfg.DDL == ddlApply && s.incr && errors.As(err, &ce) && ce.Detail.Code == codeTableNotFound &&
		strings.HasPrefix(ce.Detail.Message, "source")
}

// without returns records without the changes of ref (a new slice).
func (s *sink) without(records []connector.Record, ref tableRef) []connector.Record {
	out := make([]connector.Record, 0, len(records))
	for _, r := range records {
		if r.Change.Database != ref.DB || r.Change.Table != ref.Name {
			out = append(out, r)
		}
	}
	s.log.Info("rows of a table that exists neither on the source nor on the target are not written",
		zap.String(logTable, ref.String()), zap.Int(logRows, len(records)-len(out)))
	return out
}

// deadlockRetries bounds how often a transaction the server rolled back
// as a deadlock victim (or after a lock wait timeout) is applied again.
const deadlockRetries = 5

// apply plans records and applies them in one transaction, again when the
// server chose it as a deadlock victim: parallel parts of one batch touch
// different keys of a table but may still meet on index pages and gaps.
func (s *sink) apply(ctx context.Context, records []connector.Record, defs map[tableRef]*tableDef) error {
	stmts, err := plan(records, defs, s.maxBytes)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := s.applyOnce(ctx, stmts)
		if err == nil || attempt >= deadlockRetries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		s.log.Debug("applying again after a deadlock", zap.Int("attempt", attempt+1), zap.Error(err))
		select {
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// applyOnce runs stmts in one READ COMMITTED transaction: the sink writes
// by primary key only, and without gap locks parallel parts rarely block
// each other.
func (s *sink) applyOnce(ctx context.Context, stmts []statement) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return sinkFailure("beginning a transaction", err)
	}
	for _, st := range stmts {
		var err error
		if ps := s.stmt(ctx, st); ps != nil {
			_, err = tx.StmtContext(ctx, ps).ExecContext(ctx, st.args...)
		} else {
			_, err = tx.ExecContext(ctx, st.query, st.args...)
		}
		if err != nil {
			_ = tx.Rollback()
			return sinkFailure(fmt.Sprintf("applying %d rows to %s", st.rows, st.table), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return sinkFailure("committing", err)
	}
	return nil
}

// stmt returns the prepared statement for st, preparing it if it recurs
// and there is room; nil means run st unprepared.
func (s *sink) stmt(ctx context.Context, st statement) *sql.Stmt {
	if !st.full {
		return nil
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if ps := s.prepared[st.query]; ps != nil {
		return ps
	}
	if len(s.prepared) >= maxPrepared {
		return nil
	}
	ps, err := s.db.PrepareContext(ctx, st.query)
	if err != nil {
		s.log.Debug("preparing a statement; running it unprepared", zap.String(logTable, st.table), zap.Error(err))
		return nil
	}
	s.prepared[st.query] = ps
	return ps
}

// retryable: the server rolled the transaction back and it may be run
// again as it is.
func retryable(err error) bool {
	switch serverErrNo(err) {
	case errDeadlock, errLockWaitTimeout:
		return true
	}
	return false
}

// Close closes the connections; safe on a sink that is not open.
func (s *sink) Close() error {
	var errs []error
	if s.srcDB != nil {
		errs = append(errs, s.srcDB.Close())
		s.srcDB = nil
	}
	if s.textDB != nil {
		errs = append(errs, s.textDB.Close())
		s.textDB = nil
	}
	for q, ps := range s.prepared {
		errs = append(errs, ps.Close())
		delete(s.prepared, q)
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	return errors.Join(errs...)
}
