package mysql

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
)

// Schema history (sink.ddl=apply, with a connector.SchemaHistory). The
// source keeps, per task component, the definition of each selected table
// from a position on: the definition the server showed when the task first
// opened (at the binlog end it read just before), and after every schema
// statement on the table the definition the statement leaves, worked out
// from the statement and the version before it (derive.go), recorded the
// first time the statement is read (a replay finds it recorded and reads
// nothing). A row is decoded with the version of its position, so without
// column names in the binlog (binlog_row_metadata NO_LOG or MINIMAL) rows
// logged before a column change still land in the columns of their time:
// also when the task reads the statement long after it ran, and across a
// pullback.
//
// Versions are used in apply mode only: there every schema statement on a
// selected table goes through the source and is recorded. A statement the
// source refuses (in either mode) marks its tables unknown from its end:
// rows after it, until the next statement the history follows, decode
// with the server's current definition, as without a history. The same
// holds after a statement the history cannot follow (CREATE TABLE ...
// SELECT): the definition after it is read from the server.

// unknownDefinition is the stored definition of a version the history
// cannot tell (a refused statement).
const unknownDefinition = "unknown"

// version is one table's definition from a position on; def nil: the
// table does not exist from there, or, unknown, its definition is not
// known from there.
type version struct {
	pos     gomysql.Position
	def     *tableDef
	unknown bool
}

// versions are a table's versions in position order.
type versions []version

// at is the version in force at p: the newest at or before it, or, for a
// position before the history began, its first (what the task saw
// first is the best account of earlier rows); false when there is none.
func (vs versions) at(p gomysql.Position) (version, bool) {
	for i := len(vs) - 1; i >= 0; i-- {
		if !before(p, vs[i].pos) {
			return vs[i], true
		}
	}
	if len(vs) > 0 {
		return vs[0], true
	}
	return version{}, false
}

// newest reports whether vs has nothing after p.
func (vs versions) newest(p gomysql.Position) bool {
	return len(vs) == 0 || !before(p, vs[len(vs)-1].pos)
}

// loadHistory reads the task's versions for this subtopic and records the
// definitions of tables (defs: the server's, read after the binlog end
// `at`) that the history has no version of, at `at`: rows before it (a
// start in the past) decode with them too, what the task saw first being
// the best account of earlier rows. A table the history knows is taken as
// it says: a definition on the server that differs is one that a
// statement after the start makes, still to be read.
func (s *binlogSource) loadHistory(ctx context.Context, defs []*tableDef, start, at gomysql.Position, ts int64) error {
	if err := s.readHistory(ctx); err != nil || s.history == nil || !s.cfg.ApplyDDL {
		return err
	}
	var add []version
	var refs []tableRef
	for _, d := range defs {
		vs := s.versions[d.Ref]
		if len(vs) == 0 {
			add = append(add, version{pos: at, def: d})
			refs = append(refs, d.Ref)
			continue
		}
		if v, ok := vs.at(start); ok && v.def != nil && vs.newest(start) && !sameDef(v.def, d) {
			s.log.Info("schema history: the server's definition differs from the one at the start position; "+
				"a schema statement after it is still to be read", zap.String(logTable, d.Ref.String()))
		}
	}
	return s.addVersions(ctx, refs, add, ts)
}

// rename is a rename the target already has: a column (Column set) or a
// table renamed by a statement recorded as applied, at the position after
// it. A drop ends what a name meant (Drop).
type rename struct {
	pos      gomysql.Position
	table    tableRef
	from, to string   // column names
	toTable  tableRef // table renames
	column   bool
	drop     bool
}

// readRenames reads the statements the task's sink applied and keeps
// their renames and drops, in position order.
func (s *binlogSource) readRenames(ctx context.Context) error {
	applied, err := s.history.DDLHistory(ctx, s.task)
	if err != nil {
		return sourceFailure("reading the DDL history", err)
	}
	s.renames = renamesFrom(applied, s.cfg.Subtopic)
	return nil
}

// renamesFrom lists the renames and drops of the recorded statements of
// one subtopic, in position order (the pairs of one statement in theirs).
func renamesFrom(applied []model.AppliedDDL, subtopic string) []rename {
	var out []rename
	for _, a := range applied {
		if a.Subtopic != subtopic {
			continue
		}
		pos, err := parseToken(a.After)
		if err != nil {
			continue
		}
		p, err := parseStatement(a.Statement)
		if err != nil {
			continue
		}
		out = append(out, renamesOf(p, a.Database, pos)...)
	}
	slices.SortStableFunc(out, func(a, b rename) int {
		switch {
		case before(a.pos, b.pos):
			return -1
		case before(b.pos, a.pos):
			return 1
		}
		return 0
	})
	return out
}

// Lineage. A name means one table from its CREATE (or the rename that
// gives it the name) to its DROP (or the rename that takes the name away).
// Replaying the statements and rows of a table on a target that went
// through the statements after them, cm follows the table, not the name:
// through the renames recorded after a position to the name it has now
// (lineage), or to the DROP that ended it. When a later rename gave that
// name to another table (a swap after a drop), nothing of the ended table
// is on the target under any name: its rows and statements are left out
// of the replay, for under its name is the other table now.

// lineage follows the table named ref just after p through the table
// renames recorded after p: the name it has at the end, or gone when a
// later DROP ended it and a rename after that drop gave the name to
// another table.
func lineage(rs []rename, ref tableRef, p gomysql.Position) (tableRef, bool) {
	cur := ref
	for _, r := range rs {
		if !before(p, r.pos) || r.column || r.table != cur {
			continue
		}
		if r.drop {
			return cur, renamedInto(rs, cur, r.pos)
		}
		cur = r.toTable
	}
	return cur, false
}

// renamedInto reports whether a statement after p renames a table to ref.
func renamedInto(rs []rename, ref tableRef, p gomysql.Position) bool {
	return slices.ContainsFunc(rs, func(r rename) bool {
		return before(p, r.pos) && !r.column && !r.drop && r.toTable == ref
	})
}

// renamesOf lists the renames and drops of a statement.
func renamesOf(p parsedDDL, db string, pos gomysql.Position) []rename {
	var out []rename
	switch n := p.Node.(type) {
	case *ast.RenameTableStmt:
		for _, tt := range n.TableToTables {
			out = append(out, rename{pos: pos, table: refOf(tt.OldTable, db), toTable: refOf(tt.NewTable, db)})
		}
	case *ast.DropTableStmt:
		for _, t := range n.Tables {
			out = append(out, rename{pos: pos, table: refOf(t, db), drop: true})
		}
	case *ast.CreateTableStmt:
		if p.Replace {
			out = append(out, rename{pos: pos, table: refOf(n.Table, db), drop: true})
		}
	case *ast.AlterTableStmt:
		t := refOf(n.Table, db)
		for _, spec := range n.Specs {
			switch spec.Tp { //nolint:exhaustive // only renames matter here
			case ast.AlterTableRenameColumn:
				out = append(out, rename{pos: pos, table: t, column: true, from: spec.OldColumnName.Name.O, to: spec.NewColumnName.Name.O})
			case ast.AlterTableChangeColumn:
				if len(spec.NewColumns) > 0 && spec.OldColumnName.Name.L != spec.NewColumns[0].Name.Name.L {
					out = append(out, rename{pos: pos, table: t, column: true, from: spec.OldColumnName.Name.O, to: spec.NewColumns[0].Name.Name.O})
				}
			case ast.AlterTableRenameTable:
				if spec.NewTable != nil {
					out = append(out, rename{pos: pos, table: t, toTable: refOf(spec.NewTable, db)})
				}
			}
		}
	}
	return out
}

// forward maps a table and its columns at the current position through
// the renames the target already has after it: rows replayed from before a
// RENAME COLUMN or RENAME TABLE that the target shows go to the names it
// has. cols nil: nothing to map. A drop of the table ends the mapping (the
// statement is replayed, and what the name means comes again), unless a
// rename after the drop gave the name to another table: then the rows are
// of a table the target no longer has (gone; see Lineage).
func (s *binlogSource) forward(ref tableRef, columns []string) (tableRef, []string, bool) {
	var cols []string
	cur := ref
	for _, r := range s.renames {
		if !before(s.last, r.pos) || r.table != cur {
			continue
		}
		if r.drop {
			if renamedInto(s.renames, cur, r.pos) {
				return cur, nil, true
			}
			break
		}
		if !r.column {
			cur = r.toTable
			continue
		}
		for i, c := range columns {
			if cols != nil {
				c = cols[i]
			}
			if strings.EqualFold(c, r.from) {
				if cols == nil {
					cols = slices.Clone(columns)
				}
				cols[i] = r.to
			}
		}
	}
	if cur == ref && cols == nil {
		return ref, nil, false
	}
	if cols == nil {
		cols = columns
	}
	return cur, cols, false
}

// readHistory reads the task's versions of this subtopic and the renames
// it applied (apply mode).
func (s *binlogSource) readHistory(ctx context.Context) error {
	s.versions = map[tableRef]versions{}
	if s.history == nil || !s.cfg.ApplyDDL {
		return nil
	}
	if err := s.readRenames(ctx); err != nil {
		return err
	}
	rows, err := s.history.SchemaVersions(ctx, s.task)
	if err != nil {
		return sourceFailure("reading the schema history", err)
	}
	for _, r := range rows {
		if r.Subtopic != s.cfg.Subtopic {
			continue
		}
		pos, err := parseToken(r.Token)
		if err != nil {
			continue
		}
		v := version{pos: pos, unknown: r.Definition == unknownDefinition}
		if r.Definition != "" && !v.unknown {
			v.def = &tableDef{}
			if err := json.Unmarshal([]byte(r.Definition), v.def); err != nil {
				continue
			}
		}
		ref := refFromString(r.Tbl)
		s.versions[ref] = append(s.versions[ref], v)
	}
	for ref, vs := range s.versions {
		slices.SortFunc(vs, func(a, b version) int {
			switch {
			case before(a.pos, b.pos):
				return -1
			case before(b.pos, a.pos):
				return 1
			}
			return 0
		})
		s.versions[ref] = vs
	}
	return nil
}

// knows reports whether the history has the definition of ref right after
// the statement that ended at pos.
func (s *binlogSource) knows(ref tableRef, pos gomysql.Position) bool {
	return slices.ContainsFunc(s.versions[ref], func(v version) bool { return v.pos == pos })
}

// learn records the definitions of refs after a schema statement that
// ended at pos, unless the history has them (a replay): those the
// statement (stmt, in database schema) leaves, worked out from the
// versions before it, else the server's.
func (s *binlogSource) learn(ctx context.Context, refs []tableRef, stmt *parsedDDL, schema string, pos gomysql.Position, ts int64) error {
	if s.history == nil || !s.cfg.ApplyDDL || stmt == nil {
		return nil
	}
	d := derive(*stmt, schema, s.before(pos), s.cfg.Flavor == flavorMariaDB)
	var add []version
	var which []tableRef
	for _, r := range refs {
		if !s.versions[r].newest(pos) || s.knows(r, pos) {
			continue
		}
		def, ok := d.defs[r]
		if !ok {
			why, underived := d.underived[r]
			if !underived {
				continue // named, not changed (LIKE, a foreign key)
			}
			var err error
			if def, err = loadTableDef(ctx, s.db, r); err != nil {
				return sourceFailure("reading the definition of "+r.String(), err)
			}
			s.log.Info("schema history: the definition after a statement is read from the server",
				zap.String(logTable, r.String()), zap.String("reason", why))
		}
		add = append(add, version{pos: pos, def: def})
		which = append(which, r)
	}
	return s.addVersions(ctx, which, add, ts)
}

// markUnknown records that the definitions of refs are not known from
// pos on (a statement refused).
func (s *binlogSource) markUnknown(ctx context.Context, refs []tableRef, pos gomysql.Position, ts int64) error {
	if s.history == nil {
		return nil
	}
	var add []version
	var which []tableRef
	for _, r := range refs {
		if !slices.Contains(which, r) && s.versions[r].newest(pos) && !s.knows(r, pos) {
			add = append(add, version{pos: pos, unknown: true})
			which = append(which, r)
		}
	}
	return s.addVersions(ctx, which, add, ts)
}

// before is the history's account of tables just before pos: the newest
// version at or before it.
func (s *binlogSource) before(pos gomysql.Position) prevDef {
	return func(r tableRef) (*tableDef, bool) {
		vs := s.versions[r]
		for i := len(vs) - 1; i >= 0; i-- {
			if before(vs[i].pos, pos) {
				return vs[i].def, !vs[i].unknown
			}
		}
		return nil, false
	}
}

func (s *binlogSource) addVersions(ctx context.Context, refs []tableRef, vs []version, ts int64) error {
	if len(vs) == 0 {
		return nil
	}
	rows := make([]model.SchemaVersion, len(vs))
	for i, v := range vs {
		rows[i] = model.SchemaVersion{Subtopic: s.cfg.Subtopic, Token: formatToken(v.pos), Tbl: refs[i].String(), TS: ts}
		switch {
		case v.unknown:
			rows[i].Definition = unknownDefinition
		case v.def != nil:
			b, err := json.Marshal(v.def)
			if err != nil {
				return err
			}
			rows[i].Definition = string(b)
		}
	}
	if err := s.history.AddSchemaVersions(ctx, s.task, rows); err != nil {
		return sourceFailure("recording the schema history", err)
	}
	for i, v := range vs {
		s.versions[refs[i]] = append(s.versions[refs[i]], v)
	}
	s.log.Info("schema history: definitions recorded", zap.Int(logTables, len(vs)), zap.String(logPosition, formatToken(vs[0].pos)))
	return nil
}

// defAt is the definition of ref at the current position from the
// history, or nil when it has none.
func (s *binlogSource) defAt(ref tableRef) *tableDef {
	v, ok := s.versions[ref].at(s.last)
	if !ok {
		return nil
	}
	return v.def
}

func sameDef(a, b *tableDef) bool {
	return slices.Equal(a.Columns, b.Columns) && slices.Equal(a.DataTypes, b.DataTypes) &&
		slices.Equal(a.Unsigned, b.Unsigned) && slices.Equal(a.PK, b.PK)
}

// refFromString parses "db.table" (the database name holds no dot).
func refFromString(s string) tableRef {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return tableRef{DB: s[:i], Name: s[i+1:]}
		}
	}
	return tableRef{Name: s}
}
