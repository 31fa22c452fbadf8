package mysql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/charset"
	pmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	"github.com/pingcap/tidb/pkg/parser/types"
)

// The definition a table has after a schema statement (schema history,
// history.go) is worked out from the statement, applied to the table's
// version just before it. It is not read from the server: the server shows
// the definition of now, and a source that reads the statement later than
// it ran (a task lagging behind, stopped, or replaying) would record for it
// a definition some later statement made. Only what decoding a row needs is
// followed: column names and order, data types, signedness, generated
// columns and the primary key.
//
// A statement whose effect is not worked out here (CREATE TABLE ... SELECT,
// an ALTER clause outside the ones below, or one that does not fit the
// version before it: a column it names is missing, one it adds exists) is
// underived for its tables, and the source reads their definitions from
// the server, as it does for tables it has no version of.

// prevDef is a table's definition before a statement: known false when
// the history cannot tell (no version, or one after a statement it could
// not follow); def nil when the table does not exist then.
type prevDef func(ref tableRef) (def *tableDef, known bool)

// derivation is what a statement leaves of the tables it names.
type derivation struct {
	// defs are the definitions after the statement (nil: no such table).
	defs map[tableRef]*tableDef
	// underived are the tables whose definition after it is not known
	// from the statement, with the reason.
	underived map[tableRef]string
}

// derive works out the definitions after p of the tables it names
// (unqualified names are in schema). mariadb: JSON columns are LONGTEXT
// there.
func derive(p parsedDDL, schema string, prev prevDef, mariadb bool) derivation {
	d := derivation{defs: map[tableRef]*tableDef{}, underived: map[tableRef]string{}}
	// get is a table's definition as the statement has left it so far.
	get := func(r tableRef) (*tableDef, bool) {
		if _, ok := d.underived[r]; ok {
			return nil, false
		}
		if def, ok := d.defs[r]; ok {
			return def, true
		}
		return prev(r)
	}
	fail := func(r tableRef, format string, args ...any) {
		delete(d.defs, r)
		d.underived[r] = fmt.Sprintf(format, args...)
	}
	// same: the statement leaves the table's columns as they were.
	same := func(r tableRef) {
		if def, known := get(r); known && def != nil {
			d.defs[r] = def
		} else {
			fail(r, "no earlier version of the table")
		}
	}
	switch n := p.Node.(type) {
	case *ast.AlterTableStmt:
		r := refOf(n.Table, schema)
		def, known := get(r)
		switch {
		case !known:
			fail(r, "no earlier version of the table")
		case def == nil:
			fail(r, "the table does not exist before the statement")
		default:
			to, out, err := alterDef(def, r, n.Specs, schema, mariadb)
			if err != nil {
				fail(r, "%v", err)
				break
			}
			d.defs[r] = out
			if to != r {
				d.defs[r] = nil
				out.Ref = to
				d.defs[to] = out
			}
		}
	case *ast.RenameTableStmt:
		for _, tt := range n.TableToTables {
			from, to := refOf(tt.OldTable, schema), refOf(tt.NewTable, schema)
			def, known := get(from)
			d.defs[from] = nil
			delete(d.underived, from)
			switch {
			case !known:
				fail(to, "no earlier version of %s", from)
			case def == nil:
				fail(to, "%s does not exist before the statement", from)
			default:
				c := def.clone()
				c.Ref = to
				d.defs[to] = c
				delete(d.underived, to)
			}
		}
	case *ast.DropTableStmt:
		for _, t := range n.Tables {
			r := refOf(t, schema)
			d.defs[r] = nil
			delete(d.underived, r)
		}
	case *ast.TruncateTableStmt:
		same(refOf(n.Table, schema))
	case *ast.CreateTableStmt:
		r := refOf(n.Table, schema)
		old, known := get(r)
		switch {
		case n.IfNotExists && !p.Replace && (!known || old != nil):
			if known {
				d.defs[r] = old // it existed: the statement did nothing
			} else {
				fail(r, "CREATE TABLE IF NOT EXISTS of a table with no earlier version")
			}
		case n.ReferTable != nil:
			like := refOf(n.ReferTable, schema)
			if def, known := get(like); known && def != nil {
				c := def.clone()
				c.Ref = r
				d.defs[r] = c
			} else {
				fail(r, "CREATE TABLE LIKE %s, which has no known definition", like)
			}
		case n.Select != nil:
			fail(r, "CREATE TABLE ... SELECT takes its columns from the query")
		default:
			def, err := createDef(r, n, mariadb)
			if err != nil {
				fail(r, "%v", err)
			} else {
				d.defs[r] = def
			}
		}
	// Indexes other than the primary key do not change how a row decodes.
	case *ast.CreateIndexStmt:
		same(refOf(n.Table, schema))
	case *ast.DropIndexStmt:
		same(refOf(n.Table, schema))
	default:
		for _, t := range namesOf(p.Node) {
			fail(refOf(t, schema), "a %T is not followed", p.Node)
		}
	}
	return d
}

// draft is a definition being changed, its primary key by column name.
type draft struct {
	cols []draftColumn
	pk   []string
	uniq bool
}

type draftColumn struct {
	name      string
	dataType  string
	unsigned  bool
	generated bool
}

func draftOf(d *tableDef) *draft {
	out := &draft{pk: d.pkNames(), uniq: d.UniqueSecondary}
	for i, c := range d.Columns {
		dc := draftColumn{name: c}
		if i < len(d.DataTypes) {
			dc.dataType = d.DataTypes[i]
		}
		if i < len(d.Unsigned) {
			dc.unsigned = d.Unsigned[i]
		}
		if i < len(d.Generated) {
			dc.generated = d.Generated[i]
		}
		out.cols = append(out.cols, dc)
	}
	return out
}

func (d *draft) def(ref tableRef) *tableDef {
	out := &tableDef{Ref: ref, UniqueSecondary: d.uniq}
	for _, c := range d.cols {
		out.Columns = append(out.Columns, c.name)
		out.DataTypes = append(out.DataTypes, c.dataType)
		out.Unsigned = append(out.Unsigned, c.unsigned)
		out.Generated = append(out.Generated, c.generated)
	}
	for _, k := range d.pk {
		if i := d.find(k); i >= 0 {
			out.PK = append(out.PK, i)
		}
	}
	return out
}

// find is the index of a column (names compare as the server compares
// them: without case), or -1.
func (d *draft) find(name string) int {
	return slices.IndexFunc(d.cols, func(c draftColumn) bool { return strings.EqualFold(c.name, name) })
}

// place puts c where pos says: first, after a column, or (no position) at
// the end for a new column and where it was for a changed one (at: its
// index before, -1 for a new one).
func (d *draft) place(c draftColumn, at int, pos *ast.ColumnPosition) error {
	if at >= 0 {
		d.cols = slices.Delete(d.cols, at, at+1)
	}
	i := at
	switch {
	case pos != nil && pos.Tp == ast.ColumnPositionFirst:
		i = 0
	case pos != nil && pos.Tp == ast.ColumnPositionAfter:
		j := d.find(pos.RelativeColumn.Name.O)
		if j < 0 {
			return fmt.Errorf("column %s (AFTER) is not in the table", pos.RelativeColumn.Name.O)
		}
		i = j + 1
	case at < 0:
		i = len(d.cols)
	}
	d.cols = slices.Insert(d.cols, i, c)
	return nil
}

// renameKey renames a column in the primary key.
func (d *draft) renameKey(from, to string) {
	for i, k := range d.pk {
		if strings.EqualFold(k, from) {
			d.pk[i] = to
		}
	}
}

// alterDef applies an ALTER TABLE's clauses, in order, to def. It returns
// the table's name after the statement (RENAME TO) and its definition.
func alterDef(def *tableDef, ref tableRef, specs []*ast.AlterTableSpec, schema string, mariadb bool) (tableRef, *tableDef, error) {
	d := draftOf(def)
	to := ref
	for _, spec := range specs {
		switch spec.Tp { //nolint:exhaustive // the clauses that change no column are listed; any other is not followed
		case ast.AlterTableAddColumns:
			for _, cd := range spec.NewColumns {
				c, key, uniq, err := columnOf(cd, mariadb)
				if err != nil {
					return to, nil, err
				}
				if d.find(c.name) >= 0 {
					if spec.IfNotExists {
						continue
					}
					return to, nil, fmt.Errorf("column %s to add is in the table already", c.name)
				}
				if err := d.place(c, -1, spec.Position); err != nil {
					return to, nil, err
				}
				if key {
					d.pk = []string{c.name}
				}
				d.uniq = d.uniq || uniq
			}
			for _, con := range spec.NewConstraints {
				addConstraint(d, con)
			}
		case ast.AlterTableDropColumn:
			name := spec.OldColumnName.Name.O
			i := d.find(name)
			if i < 0 {
				if spec.IfExists {
					continue
				}
				return to, nil, fmt.Errorf("column %s to drop is not in the table", name)
			}
			d.cols = slices.Delete(d.cols, i, i+1)
			d.pk = slices.DeleteFunc(d.pk, func(k string) bool { return strings.EqualFold(k, name) })
		case ast.AlterTableModifyColumn, ast.AlterTableChangeColumn:
			if len(spec.NewColumns) != 1 {
				return to, nil, fmt.Errorf("a column change with %d definitions", len(spec.NewColumns))
			}
			c, key, uniq, err := columnOf(spec.NewColumns[0], mariadb)
			if err != nil {
				return to, nil, err
			}
			old := c.name
			if spec.Tp == ast.AlterTableChangeColumn {
				old = spec.OldColumnName.Name.O
			}
			i := d.find(old)
			if i < 0 {
				if spec.IfExists {
					continue
				}
				return to, nil, fmt.Errorf("column %s to change is not in the table", old)
			}
			if j := d.find(c.name); j >= 0 && j != i {
				return to, nil, fmt.Errorf("column %s is in the table already", c.name)
			}
			if spec.Tp == ast.AlterTableModifyColumn {
				c.name = d.cols[i].name // MODIFY keeps the name as it was
			}
			if err := d.place(c, i, spec.Position); err != nil {
				return to, nil, err
			}
			d.renameKey(old, c.name)
			if key {
				d.pk = []string{c.name}
			}
			d.uniq = d.uniq || uniq
		case ast.AlterTableRenameColumn:
			from, name := spec.OldColumnName.Name.O, spec.NewColumnName.Name.O
			i := d.find(from)
			if i < 0 {
				return to, nil, fmt.Errorf("column %s to rename is not in the table", from)
			}
			if j := d.find(name); j >= 0 && j != i {
				return to, nil, fmt.Errorf("column %s is in the table already", name)
			}
			d.cols[i].name = name
			d.renameKey(from, name)
		case ast.AlterTableAddConstraint:
			addConstraint(d, spec.Constraint)
		case ast.AlterTableDropPrimaryKey:
			d.pk = nil
		case ast.AlterTableRenameTable:
			if spec.NewTable != nil {
				to = refOf(spec.NewTable, schema)
			}
		case ast.AlterTableOption, ast.AlterTableDropIndex, ast.AlterTableDropForeignKey, ast.AlterTableAlterColumn,
			ast.AlterTableLock, ast.AlterTableAlgorithm, ast.AlterTableRenameIndex, ast.AlterTableForce,
			ast.AlterTableEnableKeys, ast.AlterTableDisableKeys, ast.AlterTableIndexInvisible,
			ast.AlterTableAlterCheck, ast.AlterTableDropCheck, ast.AlterTableOrderByColumns, ast.AlterTableWriteable:
			// No column changes.
		default:
			return to, nil, fmt.Errorf("ALTER TABLE clause %d is not followed", spec.Tp)
		}
	}
	return to, d.def(to), nil
}

// addConstraint notes a primary or unique key.
func addConstraint(d *draft, c *ast.Constraint) {
	if c == nil {
		return
	}
	switch c.Tp { //nolint:exhaustive // only keys that decide uniqueness matter
	case ast.ConstraintPrimaryKey:
		d.pk = nil
		for _, k := range c.Keys {
			if k.Column != nil {
				d.pk = append(d.pk, k.Column.Name.O)
			}
		}
	case ast.ConstraintUniq, ast.ConstraintUniqKey, ast.ConstraintUniqIndex:
		d.uniq = true
	}
}

// createDef is the definition a CREATE TABLE with columns makes.
func createDef(ref tableRef, n *ast.CreateTableStmt, mariadb bool) (*tableDef, error) {
	d := &draft{}
	for _, cd := range n.Cols {
		c, key, uniq, err := columnOf(cd, mariadb)
		if err != nil {
			return nil, err
		}
		if d.find(c.name) >= 0 {
			return nil, fmt.Errorf("column %s twice", c.name)
		}
		d.cols = append(d.cols, c)
		if key {
			d.pk = []string{c.name}
		}
		d.uniq = d.uniq || uniq
	}
	for _, con := range n.Constraints {
		addConstraint(d, con)
	}
	if len(d.cols) == 0 {
		return nil, fmt.Errorf("CREATE TABLE %s names no columns", ref)
	}
	return d.def(ref), nil
}

// columnOf reads a column definition: the column, and whether it is
// declared the primary key or unique in place.
func columnOf(cd *ast.ColumnDef, mariadb bool) (draftColumn, bool, bool, error) {
	c := draftColumn{name: cd.Name.Name.O}
	if cd.Tp == nil {
		return c, false, false, fmt.Errorf("column %s has no type", c.name)
	}
	c.dataType = dataTypeOf(cd.Tp, mariadb)
	c.unsigned = pmysql.HasUnsignedFlag(cd.Tp.GetFlag())
	var key, uniq bool
	for _, o := range cd.Options {
		switch o.Tp { //nolint:exhaustive // the options that matter to decoding
		case ast.ColumnOptionPrimaryKey:
			key = true
		case ast.ColumnOptionUniqKey:
			uniq = true
		case ast.ColumnOptionGenerated:
			c.generated = true
		}
	}
	return c, key, uniq, nil
}

// dataTypeOf is the information_schema DATA_TYPE of a column type, lower
// case.
func dataTypeOf(ft *types.FieldType, mariadb bool) string {
	tp := ft.GetType()
	if tp == pmysql.TypeBlob && ft.GetFlen() > 0 {
		// BLOB(n) and TEXT(n) are the smallest type that holds n bytes,
		// or n characters of the column's character set (of the table's
		// when it names none: taken as utf8mb4's four bytes).
		n := ft.GetFlen()
		if cs := ft.GetCharset(); cs != charset.CharsetBin {
			width := 4
			if info, err := charset.GetCharsetInfo(cs); cs != "" && err == nil {
				width = info.Maxlen
			}
			n *= width
		}
		switch {
		case n < 1<<8:
			tp = pmysql.TypeTinyBlob
		case n < 1<<16:
		case n < 1<<24:
			tp = pmysql.TypeMediumBlob
		default:
			tp = pmysql.TypeLongBlob
		}
	}
	if tp == pmysql.TypeJSON && mariadb {
		return "longtext" // MariaDB's JSON is an alias
	}
	return types.TypeToStr(tp, ft.GetCharset())
}

// clone copies a definition.
func (d *tableDef) clone() *tableDef {
	c := *d
	c.Columns = slices.Clone(d.Columns)
	c.DataTypes = slices.Clone(d.DataTypes)
	c.Unsigned = slices.Clone(d.Unsigned)
	c.Generated = slices.Clone(d.Generated)
	c.PK = slices.Clone(d.PK)
	c.SourceColumns = nil
	return &c
}
