package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// DDL replay (sink.ddl=apply). The source sends a schema statement of
// selected tables alone in its batch (connector.SchemaChange), so when
// Write gets it every row change before it is applied, and its position
// is checkpointed only after Write returns. The sink:
//
//   - parses it (ddlstmt.go) and qualifies every table name, mapping its
//     database through sink.databaseMap;
//   - compares it with the target: clauses whose effect the target already
//     shows (a column to add that exists, one to drop that does not, an
//     index that exists, a rename already done) are left out, and a
//     statement with nothing left is not run. So a statement met again
//     after a crash or a pullback converges instead of failing;
//   - runs what is left as text, with the target database selected;
//   - forgets what it knew of the tables it touched and records the
//     statement in the task's schema history (connector.SchemaHistory).
//
// TRUNCATE, DROP TABLE (as DROP TABLE IF EXISTS) and MODIFY are run again
// when met again: their effect on rows is what the replay needs (the rows
// after them come again too). A statement the target cannot take fails the
// task with MYSQL_DDL_APPLY at the statement: the checkpoint stays just
// before it.

// applied is the outcome of one schema statement on the target.
type applied struct {
	// Statements are the statements run on the target; none when the
	// target already had the statement's effect.
	Statements []string
	// Tables are the source tables whose definitions changed.
	Tables []tableRef
	// Recorded: the DDL history has the statement as applied before (a
	// replay).
	Recorded bool
}

// writeDDL applies the schema statement of rec on the target.
func (s *sink) writeDDL(ctx context.Context, rec connector.Record) error {
	c := rec.DDL
	start := time.Now()
	out, err := s.planDDL(ctx, c, rec.Subtopic)
	if err == nil {
		err = s.runDDL(ctx, c, out.Statements)
	}
	for _, r := range out.Tables {
		delete(s.tables, r)
	}
	replay := false
	if err != nil && movedOn(err) && out.Recorded {
		// The statement was applied before (this is a replay) and the
		// target has moved on: a later statement renamed or dropped what
		// it names. The later ones converge it.
		s.log.Info("DDL met again after the target moved past it; not run again",
			zap.String("statement", clip(c.Statement, 400)), zap.String(logPosition, c.After), zap.Error(err))
		err, replay, out.Statements = nil, true, nil
	}
	if err != nil {
		var ce *connector.Error
		if !errors.As(err, &ce) {
			ce = connector.Fail(codeDDLApply, "applying "+clip(c.Statement, 300)+" on the target failed", err.Error(),
				"change the target so it can take the statement, then resume; or apply it by hand and resume with skipDdl=true",
				true, err)
		}
		return ce
	}
	s.failpoint.Reach(s.log, failpoint.DDLApplied)
	s.log.Info("DDL applied", zap.String("statement", clip(c.Statement, 400)), zap.Strings("applied", out.Statements),
		zap.String(logPosition, c.After), zap.Duration("took", time.Since(start)))
	if s.history != nil {
		e := connector.SchemaEvent{
			Task: s.task, Subtopic: rec.Subtopic, TS: rec.TS, Before: c.Before, After: c.After,
			Database: c.Database, Statement: c.Statement, Applied: out.Statements, Replay: replay,
		}
		for _, r := range out.Tables {
			e.Tables = append(e.Tables, r.String())
		}
		if err := s.history.AppliedDDL(ctx, e); err != nil {
			// The statement is applied; only its record is missing. The
			// batch is not checkpointed, so the replay records it.
			return connector.Fail(codeApply, "recording an applied DDL failed", err.Error(), "", false, err)
		}
	}
	return nil
}

// runDDL runs stmts as text, with the target database of the statement's
// default database selected (unqualified references inside a definition,
// such as foreign keys, resolve there as on the source).
func (s *sink) runDDL(ctx context.Context, c *connector.SchemaChange, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
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
	if c.Database != "" {
		if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(s.cfg.TargetDB(c.Database))); err != nil && serverErrNo(err) != errBadDB {
			return sinkFailure("selecting the target database", err)
		}
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("running %s: %w", clip(q, 300), err)
		}
	}
	return nil
}

// planDDL works out the statements that bring the target to the effect of
// c, from the target as it is now.
func (s *sink) planDDL(ctx context.Context, c *connector.SchemaChange, subtopic string) (applied, error) {
	var out applied
	p, err := parseStatement(c.Statement)
	if err != nil {
		return out, s.unsupportedDDL(c, err.Error())
	}
	h, err := s.replayOf(ctx, c, subtopic)
	if err != nil {
		return out, err
	}
	out.Recorded = h.recorded
	// Qualify every name, mapping its database; src remembers the source
	// table of each name. A statement met again (recorded as applied) names
	// the tables it changed by their names now: it follows them through
	// the renames recorded after it (history.go, Lineage), and is left out
	// when one of them is gone.
	src := map[*ast.TableName]tableRef{}
	follow := h.recorded && followsLineage(p.Node)
	for _, t := range namesOf(p.Node) {
		r := refOf(t, c.Database)
		if follow {
			now, gone := lineage(h.renames, r, h.after)
			if gone {
				s.log.Info("DDL met again on a table the target no longer has; not run",
					zap.String("statement", clip(c.Statement, 400)), zap.String(logTable, r.String()))
				return applied{Tables: []tableRef{r}, Recorded: true}, nil
			}
			r = now
		}
		src[t] = r
		t.Schema = ast.NewCIStr(s.cfg.TargetDB(r.DB))
		t.Name = ast.NewCIStr(r.Name)
	}
	target := func(t *ast.TableName) tableRef { return s.target(src[t]) }
	print := func(n ast.Node) error {
		q, err := restore(n)
		if err != nil {
			return s.unsupportedDDL(c, err.Error())
		}
		out.Statements = append(out.Statements, q)
		return nil
	}

	switch n := p.Node.(type) {
	case *ast.CreateTableStmt:
		out.Tables = []tableRef{src[n.Table]}
		if !p.Replace {
			// A table the target has is left as it is (a replay, or one
			// made by hand): nothing is run, and the history shows it.
			if ok, err := s.targetExists(ctx, target(n.Table)); err != nil || ok {
				return out, err
			}
		}
		if p.Replace {
			out.Statements = append(out.Statements, "DROP TABLE IF EXISTS "+target(n.Table).quoted())
		}
		n.IfNotExists = true
		if err := print(n); err != nil {
			return out, err
		}
		db := target(n.Table).DB
		out.Statements = append([]string{"CREATE DATABASE IF NOT EXISTS " + quoteIdent(db)}, out.Statements...)
	case *ast.DropTableStmt:
		if n.IsView || n.TemporaryKeyword != ast.TemporaryNone {
			return out, nil
		}
		// Only the selected tables: the others of the statement are not
		// this task's on the target. Met again, a table whose name a later
		// rename gave to another table is left alone: that one is under
		// the name now.
		var keep []*ast.TableName
		for _, t := range n.Tables {
			if s.selected(src[t]) {
				out.Tables = append(out.Tables, src[t])
				if h.recorded && renamedInto(h.renames, src[t], h.after) {
					continue
				}
				keep = append(keep, t)
			}
		}
		if len(keep) == 0 {
			return out, nil
		}
		n.Tables, n.IfExists = keep, true
		return out, print(n)
	case *ast.TruncateTableStmt:
		out.Tables = []tableRef{src[n.Table]}
		return out, print(n)
	case *ast.RenameTableStmt:
		// The pairs in order, judged one after the other on the names the
		// target has as the pairs before leave them (a swap a→tmp, b→a,
		// tmp→b renames a name the first pair frees); a pair already done
		// (the old name gone, the new one there) is left out. The rest run
		// as one statement, which the server applies all or nothing.
		var pairs []string
		var tables []tableRef
		exists := map[tableRef]bool{}
		has := func(r tableRef) (bool, error) {
			if v, ok := exists[r]; ok {
				return v, nil
			}
			v, err := s.targetExists(ctx, r)
			exists[r] = v
			return v, err
		}
		for _, tt := range n.TableToTables {
			if !s.selected(src[tt.OldTable]) {
				continue // not this task's (the source refuses a rename across the selection)
			}
			out.Tables = append(out.Tables, src[tt.OldTable], src[tt.NewTable])
			tables = append(tables, src[tt.OldTable], src[tt.NewTable])
			from, to := target(tt.OldTable), target(tt.NewTable)
			hasFrom, err := has(from)
			if err != nil {
				return out, err
			}
			hasTo, err := has(to)
			if err != nil {
				return out, err
			}
			if !hasFrom && hasTo {
				continue
			}
			exists[from], exists[to] = false, true
			pairs = append(pairs, from.quoted()+" TO "+to.quoted())
		}
		if len(pairs) == 0 {
			return out, nil
		}
		if h.replayed(tables...) {
			// Recorded as applied: the target has the renames (rows
			// replayed from before them are written under the names it
			// has); running them again would undo a swap.
			return out, nil
		}
		out.Statements = append(out.Statements, "RENAME TABLE "+strings.Join(pairs, ", "))
	case *ast.CreateIndexStmt:
		out.Tables = []tableRef{src[n.Table]}
		sh, err := s.targetShape(ctx, target(n.Table))
		if err != nil || sh == nil {
			return out, err
		}
		if sh.hasIndex(n.IndexName) {
			return out, nil
		}
		return out, print(n)
	case *ast.DropIndexStmt:
		out.Tables = []tableRef{src[n.Table]}
		sh, err := s.targetShape(ctx, target(n.Table))
		if err != nil || sh == nil {
			return out, err
		}
		if !sh.hasIndex(n.IndexName) {
			return out, nil
		}
		return out, print(n)
	case *ast.AlterTableStmt:
		out.Tables = []tableRef{src[n.Table]}
		sh, err := s.targetShape(ctx, target(n.Table))
		if err != nil {
			return out, err
		}
		if sh == nil {
			// No such target table: converged only when it was renamed and
			// the new name exists (a replay of ALTER ... RENAME TO).
			for _, spec := range n.Specs {
				if spec.Tp == ast.AlterTableRenameTable && spec.NewTable != nil {
					out.Tables = append(out.Tables, src[spec.NewTable])
					if ok, err := s.targetExists(ctx, target(spec.NewTable)); err != nil || ok {
						return out, err
					}
				}
			}
			return out, fmt.Errorf("%w: the target table %s does not exist", errTargetMoved, target(n.Table))
		}
		specs := n.Specs
		if h.replayed(src[n.Table]) {
			specs = withoutColumnChanges(specs)
		}
		keep, err := sh.pending(specs)
		if err != nil {
			return out, s.unsupportedDDL(c, err.Error())
		}
		for _, spec := range keep {
			if spec.Tp == ast.AlterTableRenameTable && spec.NewTable != nil {
				out.Tables = append(out.Tables, src[spec.NewTable])
			}
		}
		if len(keep) == 0 {
			return out, nil
		}
		n.Specs = keep
		return out, print(n)
	default:
		return out, s.unsupportedDDL(c, fmt.Sprintf("the sink does not apply %T statements", p.Node))
	}
	return out, nil
}

// A replay (after a crash or a pullback) meets statements the target went
// through already, and those after them too. Their ADD and DROP clauses
// are judged on the target as on a first run: they decide which columns
// the replayed rows land in, and a column dropped and added again must
// come back with the values of the second. Their MODIFY and CHANGE
// clauses are not run again: the target has them and what later
// statements made of the columns since, and running one again would move
// a column back to the place it had then, or narrow its type to one the
// data no longer fits. Unless the table was made again since the
// statement last ran (a DROP or CREATE run again earlier in the replay):
// then every clause is judged, as on a first run.

// replay is what the DDL history says of a statement met again.
type replay struct {
	// recorded: the history has the statement (at its position after),
	// applied; last is when it last ran.
	recorded bool
	after    gomysql.Position
	last     time.Time
	rows     []model.AppliedDDL
	subtopic string
	// renames are the recorded renames and drops (history.go).
	renames []rename
}

// replayOf reads the DDL history for c (nothing without a history, or
// when c's position does not parse).
func (s *sink) replayOf(ctx context.Context, c *connector.SchemaChange, subtopic string) (replay, error) {
	h := replay{subtopic: subtopic}
	if s.history == nil {
		return h, nil
	}
	at, err := parseToken(c.After)
	if err != nil {
		return h, nil
	}
	rows, err := s.history.DDLHistory(ctx, s.task)
	if err != nil {
		return h, sinkFailure("reading the DDL history", err)
	}
	h.rows, h.after = rows, at
	if i := slices.IndexFunc(rows, func(r model.AppliedDDL) bool { return r.Subtopic == subtopic && r.After == c.After }); i >= 0 {
		h.recorded, h.last = true, rows[i].At
		h.renames = renamesFrom(rows, subtopic)
	}
	return h, nil
}

// replayed reports whether the statement is recorded as applied, on
// tables (the source's names) that no statement before it made again
// since it last ran.
func (h replay) replayed(tables ...tableRef) bool {
	if !h.recorded {
		return false
	}
	for _, r := range h.rows {
		pos, err := parseToken(r.After)
		if err != nil || r.Subtopic != h.subtopic || !before(pos, h.after) || !r.At.After(h.last) {
			continue
		}
		if slices.ContainsFunc(tables, func(t tableRef) bool { return remade(r, t) }) {
			return false
		}
	}
	return true
}

// followsLineage reports whether a statement met again is applied to its
// tables by their names now: statements that change a table in place.
// Renames and drops are judged on the names as they are (they change
// what a name means).
func followsLineage(n ast.StmtNode) bool {
	switch n := n.(type) {
	case *ast.CreateTableStmt, *ast.TruncateTableStmt, *ast.CreateIndexStmt, *ast.DropIndexStmt:
		return true
	case *ast.AlterTableStmt:
		return !slices.ContainsFunc(n.Specs, func(s *ast.AlterTableSpec) bool { return s.Tp == ast.AlterTableRenameTable })
	}
	return false
}

// remade reports whether a recorded statement ran a DROP or CREATE of
// table (a source name) when it last ran.
func remade(r model.AppliedDDL, table tableRef) bool {
	var applied, tables []string
	if json.Unmarshal([]byte(r.Applied), &applied) != nil || len(applied) == 0 ||
		json.Unmarshal([]byte(r.Tables), &tables) != nil || !slices.Contains(tables, table.String()) {
		return false
	}
	p, err := parseStatement(r.Statement)
	if err != nil {
		return false
	}
	switch p.Node.(type) {
	case *ast.CreateTableStmt, *ast.DropTableStmt:
		return true
	}
	return false
}

// withoutColumnChanges is specs without MODIFY and CHANGE clauses.
func withoutColumnChanges(specs []*ast.AlterTableSpec) []*ast.AlterTableSpec {
	return slices.DeleteFunc(slices.Clone(specs), func(spec *ast.AlterTableSpec) bool {
		return spec.Tp == ast.AlterTableModifyColumn || spec.Tp == ast.AlterTableChangeColumn
	})
}

// errTargetMoved: the target lacks what a statement names.
var errTargetMoved = errors.New("the target does not have what the statement changes")

// movedOn reports whether err says the target lacks what a statement
// names or already has what it adds: no such table or column, a duplicate
// column or key, nothing to drop.
func movedOn(err error) bool {
	if errors.Is(err, errTargetMoved) {
		return true
	}
	switch serverErrNo(err) {
	case errNoSuchTable, errBadField, errDupFieldName, errDupKeyName, errCantDropField, errTableExists, errKeyColumnMissing:
		return true
	}
	return false
}

// selected reports whether the source selects table r (every table when
// the sink does not know the source's selection).
func (s *sink) selected(r tableRef) bool {
	return s.src == nil || s.src.Tables.Match(r.DB, r.Name)
}

func (s *sink) unsupportedDDL(c *connector.SchemaChange, why string) error {
	return connector.Fail(codeDDLApply, "the target cannot be given "+clip(c.Statement, 300), why,
		"apply the same change to the target by hand, then resume with skipDdl=true", true, nil)
}

func (s *sink) targetExists(ctx context.Context, ref tableRef) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		ref.DB, ref.Name).Scan(&n)
	if err != nil {
		return false, sinkFailure("reading the target's tables", err)
	}
	return n > 0, nil
}

// shape is what a target table looks like to the DDL planner: its columns
// and its indexes with their columns.
type targetShape struct {
	columns map[string]bool
	indexes map[string][]string // lower-case name -> columns
}

// targetShape reads the columns and indexes of ref; nil when the table
// does not exist.
func (s *sink) targetShape(ctx context.Context, ref tableRef) (*targetShape, error) {
	sh := &targetShape{columns: map[string]bool{}, indexes: map[string][]string{}}
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, ref.DB, ref.Name)
	if err != nil {
		return nil, sinkFailure("reading the definition of "+ref.String(), err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, sinkFailure("reading the definition of "+ref.String(), err)
		}
		sh.columns[strings.ToLower(c)] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, sinkFailure("reading the definition of "+ref.String(), err)
	}
	if len(sh.columns) == 0 {
		return nil, nil
	}
	rows, err = s.db.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, ref.DB, ref.Name)
	if err != nil {
		return nil, sinkFailure("reading the indexes of "+ref.String(), err)
	}
	for rows.Next() {
		var ix, c string
		if err := rows.Scan(&ix, &c); err != nil {
			rows.Close()
			return nil, sinkFailure("reading the indexes of "+ref.String(), err)
		}
		k := strings.ToLower(ix)
		sh.indexes[k] = append(sh.indexes[k], strings.ToLower(c))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, sinkFailure("reading the indexes of "+ref.String(), err)
	}
	return sh, nil
}

func (sh *targetShape) hasColumn(name string) bool { return sh.columns[strings.ToLower(name)] }

func (sh *targetShape) hasIndex(name string) bool {
	_, ok := sh.indexes[strings.ToLower(name)]
	return ok
}

// hasIndexOn reports whether an index covers exactly cols, in order.
func (sh *targetShape) hasIndexOn(cols []string) bool {
	for _, ix := range sh.indexes {
		if slices.Equal(ix, cols) {
			return true
		}
	}
	return false
}

// pending returns the ALTER clauses whose effect the target does not show
// yet, in order. Clauses that only say how to run the statement
// (ALGORITHM, LOCK) are kept only with others. A clause the planner
// cannot judge is an error.
func (sh *targetShape) pending(specs []*ast.AlterTableSpec) ([]*ast.AlterTableSpec, error) {
	var keep, how []*ast.AlterTableSpec
	for _, spec := range specs {
		switch spec.Tp { //nolint:exhaustive // the parser's long enum: the default refuses the rest
		case ast.AlterTableAlgorithm, ast.AlterTableLock, ast.AlterTableForce:
			how = append(how, spec)
		case ast.AlterTableAddColumns:
			var cols []*ast.ColumnDef
			for _, c := range spec.NewColumns {
				if !sh.hasColumn(c.Name.Name.O) {
					cols = append(cols, c)
				}
			}
			if len(cols) > 0 {
				spec.NewColumns = cols
				keep = append(keep, spec)
			}
		case ast.AlterTableDropColumn:
			if sh.hasColumn(spec.OldColumnName.Name.O) {
				keep = append(keep, spec)
			}
		case ast.AlterTableModifyColumn, ast.AlterTableAlterColumn:
			// Run again when the column is there (same definition, same
			// result); gone, a later statement renamed or dropped it.
			if len(spec.NewColumns) > 0 && sh.hasColumn(spec.NewColumns[0].Name.Name.O) {
				keep = append(keep, spec)
			}
		case ast.AlterTableChangeColumn:
			if len(spec.NewColumns) > 0 && sh.hasColumn(spec.OldColumnName.Name.O) {
				keep = append(keep, spec)
			}
		case ast.AlterTableRenameColumn:
			if sh.hasColumn(spec.OldColumnName.Name.O) && !sh.hasColumn(spec.NewColumnName.Name.O) {
				keep = append(keep, spec)
			}
		case ast.AlterTableAddConstraint:
			c := spec.Constraint
			if c == nil {
				return nil, errors.New("an ADD clause without its constraint")
			}
			switch c.Tp { //nolint:exhaustive // the default refuses the rest
			case ast.ConstraintPrimaryKey:
				if !sh.hasIndex("PRIMARY") {
					keep = append(keep, spec)
				}
			case ast.ConstraintKey, ast.ConstraintIndex, ast.ConstraintUniq, ast.ConstraintUniqKey, ast.ConstraintUniqIndex, ast.ConstraintFulltext:
				if c.Name != "" {
					if !sh.hasIndex(c.Name) {
						keep = append(keep, spec)
					}
					continue
				}
				var cols []string
				for _, k := range c.Keys {
					if k.Column == nil {
						return nil, errors.New("an index on an expression")
					}
					cols = append(cols, k.Column.Name.L)
				}
				if !sh.hasIndexOn(cols) {
					keep = append(keep, spec)
				}
			case ast.ConstraintForeignKey, ast.ConstraintCheck:
				keep = append(keep, spec) // foreign_key_checks is off on the sink
			default:
				return nil, fmt.Errorf("an ADD clause of constraint type %d", c.Tp)
			}
		case ast.AlterTableDropIndex:
			if sh.hasIndex(spec.Name) {
				keep = append(keep, spec)
			}
		case ast.AlterTableDropPrimaryKey:
			if sh.hasIndex("PRIMARY") {
				keep = append(keep, spec)
			}
		case ast.AlterTableRenameIndex:
			if sh.hasIndex(spec.FromKey.O) && !sh.hasIndex(spec.ToKey.O) {
				keep = append(keep, spec)
			}
		case ast.AlterTableOption, ast.AlterTableRenameTable, ast.AlterTableDropForeignKey, ast.AlterTableDropCheck:
			keep = append(keep, spec)
		default:
			return nil, fmt.Errorf("ALTER TABLE clause of type %d is not applied by the sink", spec.Tp)
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	return append(keep, how...), nil
}
