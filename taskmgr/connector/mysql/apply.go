package mysql

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"cm/taskmgr/connector"
)

const (
	// maxStatementRows bounds the rows of one multi-row statement.
	maxStatementRows = 1000
	// maxStatementBytes bounds one statement's size (also kept under half
	// the server's max_allowed_packet).
	maxStatementBytes = 4 << 20
)

// statement is one SQL statement of a batch's transaction.
type statement struct {
	query string
	args  []any
	table string
	rows  int
}

type applyKind uint8

const (
	kindUpsert applyKind = iota + 1
	kindDelete
)

// group is a run of same-kind changes to one table that becomes one
// multi-row statement.
type group struct {
	def     *tableDef // target
	kind    applyKind
	src     []string // the columns of the changes in the group
	columns []string // the columns the statement writes (upsert) or matches (delete)
	pick    []int    // indexes into a change's values, one per column
	args    []any
	rows    int
	bytes   int
}

// planner turns row changes into statements. Per-row order is kept where it
// matters: changes to one table are applied in order, consecutive changes of
// the same kind merged into one statement; a change of the other kind to
// the same table first closes the pending group. Changes to different
// tables commute (foreign key checks are off), so each table keeps its own
// pending group and groups of different tables interleave freely.
//
// Upserts (INSERT ... ON DUPLICATE KEY UPDATE every column) make inserts and
// updates idempotent. An update that changes the primary key deletes the old
// key first. Deletes are by primary key.
type planner struct {
	maxBytes int
	pending  map[TableRef]*group // by source table
	order    []TableRef          // tables with a pending group, first change first
	out      []statement
}

func plan(records []connector.Record, defs map[TableRef]*tableDef, maxBytes int) ([]statement, error) {
	p := &planner{maxBytes: maxBytes, pending: map[TableRef]*group{}}
	for i := range records {
		rc := records[i].Change
		ref := TableRef{DB: rc.Database, Name: rc.Table}
		def := defs[ref]
		if len(rc.PK) == 0 {
			return nil, noPrimaryKey("source", []string{ref.String()})
		}
		switch rc.Op {
		case connector.OpInsert:
			if err := p.upsert(ref, def, rc.Columns, rc.After); err != nil {
				return nil, err
			}
		case connector.OpUpdate:
			if keyChanged(rc) {
				p.delete(ref, def, rc.Columns, rc.PK, rc.Before)
			}
			if err := p.upsert(ref, def, rc.Columns, rc.After); err != nil {
				return nil, err
			}
		case connector.OpDelete:
			p.delete(ref, def, rc.Columns, rc.PK, rc.Before)
		default:
			return nil, fmt.Errorf("row change of %s has unknown op %d", ref, rc.Op)
		}
	}
	for _, ref := range p.order {
		if g := p.pending[ref]; g != nil {
			p.flush(ref, g)
		}
	}
	return p.out, nil
}

func (p *planner) upsert(ref TableRef, def *tableDef, columns []string, values []any) error {
	if len(values) != len(columns) {
		return fmt.Errorf("row change of %s has %d values for %d columns", ref, len(values), len(columns))
	}
	g := p.group(ref, def, kindUpsert, columns, func() ([]string, []int) {
		var names []string
		var pick []int
		for i, c := range columns {
			if j := def.index(c); j >= 0 && def.Generated[j] {
				continue // the target computes it
			}
			names = append(names, c)
			pick = append(pick, i)
		}
		return names, pick
	})
	p.add(ref, g, values)
	return nil
}

func (p *planner) delete(ref TableRef, def *tableDef, columns []string, pk []int, values []any) {
	keyCols := make([]string, len(pk))
	for i, k := range pk {
		keyCols[i] = columns[k]
	}
	g := p.group(ref, def, kindDelete, keyCols, func() ([]string, []int) { return keyCols, pk })
	p.add(ref, g, values)
}

// group returns the pending group of ref for kind and columns, flushing a
// pending group that does not fit.
func (p *planner) group(ref TableRef, def *tableDef, kind applyKind, columns []string,
	pick func() ([]string, []int)) *group {
	g := p.pending[ref]
	if g != nil && g.kind == kind && sameColumns(g.src, columns) {
		return g
	}
	if g != nil {
		p.flush(ref, g)
	}
	if !slices.Contains(p.order, ref) {
		p.order = append(p.order, ref)
	}
	names, idx := pick()
	g = &group{def: def, kind: kind, src: columns, columns: names, pick: idx}
	p.pending[ref] = g
	return g
}

// sameColumns compares column lists; the lists of one table map are
// shared, so the first check usually decides.
func sameColumns(a, b []string) bool {
	if len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) {
		return true
	}
	return slices.Equal(a, b)
}

func (p *planner) add(ref TableRef, g *group, values []any) {
	for _, i := range g.pick {
		v := values[i]
		g.args = append(g.args, v)
		g.bytes += valueSize(v)
	}
	g.rows++
	if g.rows >= maxStatementRows || g.bytes >= p.maxBytes {
		p.flush(ref, g)
	}
}

func (p *planner) flush(ref TableRef, g *group) {
	delete(p.pending, ref)
	if g.rows == 0 {
		return
	}
	var q strings.Builder
	table := g.def.Ref.quoted()
	n := len(g.columns)
	switch g.kind {
	case kindUpsert:
		q.WriteString("INSERT INTO " + table + " (")
		for i, c := range g.columns {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(quoteIdent(c))
		}
		q.WriteString(") VALUES ")
		row := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
		for i := 0; i < g.rows; i++ {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(row)
		}
		q.WriteString(" ON DUPLICATE KEY UPDATE ")
		for i, c := range g.columns {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(quoteIdent(c) + "=VALUES(" + quoteIdent(c) + ")")
		}
	case kindDelete:
		q.WriteString("DELETE FROM " + table + " WHERE ")
		if n == 1 {
			q.WriteString(quoteIdent(g.columns[0]) + " IN (" + strings.TrimSuffix(strings.Repeat("?,", g.rows), ",") + ")")
			break
		}
		// OR of ANDs rather than a row IN list: both servers turn it into
		// primary key lookups.
		var cond strings.Builder
		cond.WriteByte('(')
		for i, c := range g.columns {
			if i > 0 {
				cond.WriteString(" AND ")
			}
			cond.WriteString(quoteIdent(c) + "=?")
		}
		cond.WriteByte(')')
		for i := 0; i < g.rows; i++ {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString(cond.String())
		}
	}
	p.out = append(p.out, statement{query: q.String(), args: g.args, table: g.def.Ref.String(), rows: g.rows})
}

// keyChanged reports whether an update moved the row to another key.
func keyChanged(rc *connector.RowChange) bool {
	for _, k := range rc.PK {
		if !valueEqual(rc.Before[k], rc.After[k]) {
			return true
		}
	}
	return false
}

func valueEqual(a, b any) bool {
	ab, aok := a.([]byte)
	bb, bok := b.([]byte)
	if aok || bok {
		return aok && bok && bytes.Equal(ab, bb)
	}
	return a == b
}

// valueSize estimates a value's size in the statement text.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return 2*len(x) + 3
	case []byte:
		return 2*len(x) + 10
	default:
		return 24
	}
}
