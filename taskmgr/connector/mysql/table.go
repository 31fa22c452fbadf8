package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// tableRef names a table.
type tableRef struct {
	DB, Name string
}

func (r tableRef) String() string { return r.DB + "." + r.Name }

// quoted is `db`.`name`.
func (r tableRef) quoted() string { return quoteIdent(r.DB) + "." + quoteIdent(r.Name) }

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// selection is a parsed source.tables: "db.table" names one table, "db.*"
// every base table of db, including ones created later.
type selection struct {
	entries []tableRef // Name "*" for a whole database
}

// parseSelection parses a comma list of db.table and db.* entries.
func parseSelection(s string) (selection, error) {
	var sel selection
	seen := map[tableRef]bool{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		db, name, ok := strings.Cut(e, ".")
		if !ok || db == "" || name == "" || strings.Contains(name, ".") || db == "*" ||
			(strings.Contains(name, "*") && name != "*") {
			return selection{}, fmt.Errorf("entry %q is not db.table or db.*", e)
		}
		r := tableRef{DB: db, Name: name}
		if !seen[r] {
			seen[r] = true
			sel.entries = append(sel.entries, r)
		}
	}
	if len(sel.entries) == 0 {
		return selection{}, errors.New("no tables named")
	}
	return sel, nil
}

// Match reports whether table db.name is selected.
func (s selection) Match(db, name string) bool {
	for _, e := range s.entries {
		if e.DB == db && (e.Name == "*" || e.Name == name) {
			return true
		}
	}
	return false
}

// Databases lists the databases the selection touches.
func (s selection) Databases() []string {
	set := map[string]bool{}
	for _, e := range s.entries {
		set[e.DB] = true
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Named lists the tables named explicitly (not through db.*).
func (s selection) Named() []tableRef {
	var out []tableRef
	for _, e := range s.entries {
		if e.Name != "*" {
			out = append(out, e)
		}
	}
	return out
}

func (s selection) String() string {
	parts := make([]string, len(s.entries))
	for i, e := range s.entries {
		parts[i] = e.String()
	}
	return strings.Join(parts, ",")
}

// tableDef is what this package needs to know of a table's definition.
type tableDef struct {
	Ref       tableRef
	Columns   []string
	DataTypes []string // information_schema DATA_TYPE, lower case
	Unsigned  []bool
	Generated []bool // generated columns take no value on insert
	PK        []int  // indexes into Columns, in key order
	// UniqueSecondary: the table has a unique key besides the primary key,
	// so two different rows can conflict; the sink then applies changes in
	// source order instead of compacting them by primary key.
	UniqueSecondary bool
	// SourceColumns (a target table of an incremental sink that applies
	// DDL) are the columns the source table has now: a row's column that
	// neither the target nor the source table has any more is not written
	// (rows replayed from before a DROP COLUMN the target already has carry
	// it). A column the source has and the target lacks is an error, as
	// without DDL replay. Nil: every column is written.
	SourceColumns map[string]bool
}

func (d *tableDef) index(col string) int {
	for i, c := range d.Columns {
		if c == col {
			return i
		}
	}
	return -1
}

// compactable reports whether changes to the table may be reduced to the
// last change per primary key and applied deletes first: only the primary
// key is unique, and every key column compares exactly as the value that
// the binlog carries (integers, dates and times; not strings, whose
// collation may equate values Go tells apart, nor floats).
func (d *tableDef) compactable() bool {
	if d.UniqueSecondary || len(d.PK) == 0 {
		return false
	}
	for _, i := range d.PK {
		if i >= len(d.DataTypes) {
			return false
		}
		switch d.DataTypes[i] {
		case "tinyint", "smallint", "mediumint", "int", "bigint", "date", "datetime", "timestamp", "year":
		default:
			return false
		}
	}
	return true
}

// pkNames lists the primary key columns.
func (d *tableDef) pkNames() []string {
	out := make([]string, len(d.PK))
	for i, p := range d.PK {
		out[i] = d.Columns[p]
	}
	return out
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// loadTableDef reads a table's definition from information_schema; it
// returns nil and no error when the table does not exist.
func loadTableDef(ctx context.Context, q querier, ref tableRef) (*tableDef, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), UPPER(EXTRA)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, ref.DB, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", ref, err)
	}
	d := &tableDef{Ref: ref}
	for rows.Next() {
		var name, dataType, colType, extra string
		if err := rows.Scan(&name, &dataType, &colType, &extra); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading columns of %s: %w", ref, err)
		}
		d.Columns = append(d.Columns, name)
		d.DataTypes = append(d.DataTypes, dataType)
		d.Unsigned = append(d.Unsigned, strings.Contains(colType, "unsigned"))
		d.Generated = append(d.Generated, strings.Contains(extra, "VIRTUAL") ||
			strings.Contains(extra, "STORED") || strings.Contains(extra, "PERSISTENT"))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", ref, err)
	}
	if len(d.Columns) == 0 {
		return nil, nil
	}

	rows, err = q.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`, ref.DB, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("reading primary key of %s: %w", ref, err)
	}
	for rows.Next() {
		var index, name string
		if err := rows.Scan(&index, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading primary key of %s: %w", ref, err)
		}
		if index != "PRIMARY" {
			d.UniqueSecondary = true
			continue
		}
		if i := d.index(name); i >= 0 {
			d.PK = append(d.PK, i)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("reading primary key of %s: %w", ref, err)
	}
	return d, nil
}

// listTables lists the existing base tables the selection matches, sorted.
func listTables(ctx context.Context, q querier, sel selection) ([]tableRef, error) {
	dbs := sel.Databases()
	query := `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN (?` + strings.Repeat(",?", len(dbs)-1) + `)
		ORDER BY TABLE_SCHEMA, TABLE_NAME`
	args := make([]any, len(dbs))
	for i, d := range dbs {
		args[i] = d
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	defer rows.Close()
	var out []tableRef
	for rows.Next() {
		var r tableRef
		if err := rows.Scan(&r.DB, &r.Name); err != nil {
			return nil, fmt.Errorf("listing tables: %w", err)
		}
		if sel.Match(r.DB, r.Name) {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return out, nil
}

// resolveTables loads the definition of every selected table and refuses
// the selection when a named table is missing or a table has no primary key.
func resolveTables(ctx context.Context, q querier, sel selection) ([]*tableDef, error) {
	refs, err := listTables(ctx, q, sel)
	if err != nil {
		return nil, sourceFailure("resolving source.tables", err)
	}
	found := map[tableRef]bool{}
	for _, r := range refs {
		found[r] = true
	}
	var missing []string
	for _, r := range sel.Named() {
		if !found[r] {
			missing = append(missing, r.String())
		}
	}
	if len(missing) > 0 {
		return nil, tableNotFound("source", missing)
	}
	defs := make([]*tableDef, 0, len(refs))
	var noPK []string
	for _, r := range refs {
		d, err := loadTableDef(ctx, q, r)
		if err != nil {
			return nil, sourceFailure("resolving source.tables", err)
		}
		if d == nil { // dropped between the two queries
			continue
		}
		if len(d.PK) == 0 {
			noPK = append(noPK, r.String())
		}
		defs = append(defs, d)
	}
	if len(noPK) > 0 {
		return nil, noPrimaryKey("source", noPK)
	}
	return defs, nil
}
