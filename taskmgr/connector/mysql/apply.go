package mysql

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/connector-manager/cm/taskmgr/connector"
)

const (
	// maxStatementRows bounds the rows of one multi-row statement.
	maxStatementRows = 1000
	// maxPlaceholders is the most parameters one prepared statement may
	// have (the protocol counts them in 16 bits).
	maxPlaceholders = 65535
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
	// full: the statement has the most rows a group takes, so its text
	// recurs batch after batch and is worth keeping prepared.
	full bool
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
	records  int                 // in the batch: sizes the argument slices
	pending  map[tableRef]*group // by source table
	order    []tableRef          // tables with a pending group, first change first
	out      []statement
}

func plan(records []connector.Record, defs map[tableRef]*tableDef, maxBytes int) ([]statement, error) {
	p := &planner{maxBytes: maxBytes, pending: map[tableRef]*group{}, records: len(records)}
	if increasingInserts(records, defs) {
		// No key repeats: nothing to compact (a full import chunk).
		rc := records[0].Change
		ref := tableRef{DB: rc.Database, Name: rc.Table}
		for i := range records {
			if err := p.upsert(ref, defs[ref], records[i].Change.Columns, records[i].Change.After); err != nil {
				return nil, err
			}
		}
		if g := p.pending[ref]; g != nil {
			p.flush(ref, g)
		}
		return p.out, nil
	}
	compacted := map[tableRef]*compaction{}
	var compactOrder []tableRef
	for i := range records {
		rc := records[i].Change
		ref := tableRef{DB: rc.Database, Name: rc.Table}
		def := defs[ref]
		if len(rc.PK) == 0 {
			return nil, noPrimaryKey("source", []string{ref.String()})
		}
		if c := compacted[ref]; c != nil || sameKey(def, rc) {
			if c == nil {
				c = &compaction{last: map[rowKey]int{}}
				compacted[ref] = c
				compactOrder = append(compactOrder, ref)
			}
			if err := c.add(ref, rc); err != nil {
				return nil, err
			}
			continue
		}
		if err := p.change(ref, def, rc); err != nil {
			return nil, err
		}
	}
	for _, ref := range compactOrder {
		if err := p.compacted(ref, defs[ref], compacted[ref]); err != nil {
			return nil, err
		}
	}
	for _, ref := range p.order {
		if g := p.pending[ref]; g != nil {
			p.flush(ref, g)
		}
	}
	return p.out, nil
}

// change plans one row change in source order.
func (p *planner) change(ref tableRef, def *tableDef, rc *connector.RowChange) error {
	switch rc.Op {
	case connector.OpInsert:
		return p.upsert(ref, def, rc.Columns, rc.After)
	case connector.OpUpdate:
		if keyChanged(rc) {
			p.delete(ref, def, rc.Columns, rc.PK, rc.Before)
		}
		return p.upsert(ref, def, rc.Columns, rc.After)
	case connector.OpDelete:
		p.delete(ref, def, rc.Columns, rc.PK, rc.Before)
		return nil
	}
	return fmt.Errorf("row change of %s has unknown op %d", ref, rc.Op)
}

// compaction reduces the changes of one table in a batch to the last state
// of each primary key: the row (upsert) or its absence (delete). Within one
// target transaction only the final state of each key is visible, so when
// nothing but the primary key can make two rows conflict (see
// tableDef.compactable), applying every delete and then every upsert gives
// the same rows as applying the changes in order, in a few large
// statements instead of one or two per source transaction.
type compaction struct {
	last    map[rowKey]int // key -> index in entries of its last state
	entries []compactEntry
}

type compactEntry struct {
	rc     *connector.RowChange
	values []any // the row for an upsert, the old row (for its key) for a delete
	delete bool
	dead   bool // superseded by a later change of the same key
}

func (c *compaction) set(key rowKey, e compactEntry) {
	if i, ok := c.last[key]; ok {
		c.entries[i].dead = true
	}
	c.last[key] = len(c.entries)
	c.entries = append(c.entries, e)
}

func (c *compaction) add(ref tableRef, rc *connector.RowChange) error {
	switch rc.Op {
	case connector.OpInsert:
		c.set(keyOf(rc.After, rc.PK), compactEntry{rc: rc, values: rc.After})
	case connector.OpUpdate:
		before, after := keyOf(rc.Before, rc.PK), keyOf(rc.After, rc.PK)
		if before != after {
			c.set(before, compactEntry{rc: rc, values: rc.Before, delete: true})
		}
		c.set(after, compactEntry{rc: rc, values: rc.After})
	case connector.OpDelete:
		c.set(keyOf(rc.Before, rc.PK), compactEntry{rc: rc, values: rc.Before, delete: true})
	default:
		return fmt.Errorf("row change of %s has unknown op %d", ref, rc.Op)
	}
	return nil
}

// compacted plans a compacted table: its deletes, then its upserts.
func (p *planner) compacted(ref tableRef, def *tableDef, c *compaction) error {
	for _, e := range c.entries {
		if e.delete && !e.dead {
			p.delete(ref, def, e.rc.Columns, e.rc.PK, e.values)
		}
	}
	for _, e := range c.entries {
		if !e.delete && !e.dead {
			if err := p.upsert(ref, def, e.rc.Columns, e.values); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameKey reports whether changes of the table may be compacted: the
// target table is compactable and its primary key is the change's.
func sameKey(def *tableDef, rc *connector.RowChange) bool {
	if def == nil || !def.compactable() || len(def.PK) != len(rc.PK) {
		return false
	}
	for i, k := range rc.PK {
		if k >= len(rc.Columns) || rc.Columns[k] != def.Columns[def.PK[i]] {
			return false
		}
	}
	return true
}

// parallelMinRows is the smallest batch split into parallel transactions:
// below it the extra transactions cost more than they save.
const parallelMinRows = 1000

// partition splits a batch into at most n parts that can be applied as
// independent transactions in parallel, or returns it whole. Changes of a
// compactable table (see sameKey) go to a part by primary key: an update
// that moves its key becomes a delete of the old key and an insert of the
// new one, which compaction makes equivalent. Changes of any other table
// all go, in order, to one part chosen by table. Within a part the source
// order is kept.
func partition(records []connector.Record, defs map[tableRef]*tableDef, n int) [][]connector.Record {
	if n <= 1 || len(records) < parallelMinRows {
		return [][]connector.Record{records}
	}
	if increasingInserts(records, defs) {
		// Distinct keys: any split keeps each key in one part; contiguous
		// blocks keep each part's inserts in key order.
		out := make([][]connector.Record, 0, n)
		size := (len(records) + n - 1) / n
		for lo := 0; lo < len(records); lo += size {
			out = append(out, records[lo:min(lo+size, len(records))])
		}
		return out
	}
	parts := make([][]connector.Record, n)
	tableHash := map[tableRef]uint64{}
	put := func(ref tableRef, key rowKey, r connector.Record) {
		th, ok := tableHash[ref]
		if !ok {
			h := fnv.New64a()
			h.Write([]byte(ref.DB))
			h.Write([]byte{0})
			h.Write([]byte(ref.Name))
			th = h.Sum64()
			tableHash[ref] = th
		}
		i := key.hash(th) % uint64(n)
		parts[i] = append(parts[i], r)
	}
	for _, r := range records {
		rc := r.Change
		ref := tableRef{DB: rc.Database, Name: rc.Table}
		if !sameKey(defs[ref], rc) {
			put(ref, rowKey{}, r)
			continue
		}
		switch rc.Op {
		case connector.OpInsert:
			put(ref, keyOf(rc.After, rc.PK), r)
		case connector.OpDelete:
			put(ref, keyOf(rc.Before, rc.PK), r)
		case connector.OpUpdate:
			fallthrough
		default:
			before, after := keyOf(rc.Before, rc.PK), keyOf(rc.After, rc.PK)
			if before == after {
				put(ref, after, r)
				continue
			}
			del, ins := *rc, *rc
			del.Op, del.After = connector.OpDelete, nil
			ins.Op, ins.Before = connector.OpInsert, nil
			put(ref, before, connector.Record{Subtopic: r.Subtopic, TS: r.TS, Change: &del})
			put(ref, after, connector.Record{Subtopic: r.Subtopic, TS: r.TS, Change: &ins})
		}
	}
	out := parts[:0]
	for _, p := range parts {
		if len(p) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// increasingInserts reports whether records are all inserts into one
// compactable table (see sameKey) with a one-column integer primary key,
// in strictly increasing key order, so that no key repeats: what a full
// import chunk is. One pass, no allocation; it gives up at the first
// record that does not fit.
func increasingInserts(records []connector.Record, defs map[tableRef]*tableDef) bool {
	if len(records) == 0 {
		return false
	}
	first := records[0].Change
	if first == nil || !sameKey(defs[tableRef{DB: first.Database, Name: first.Table}], first) {
		return false
	}
	var last int64
	for i := range records {
		rc := records[i].Change
		if rc == nil || rc.Op != connector.OpInsert || len(rc.PK) != 1 || rc.Table != first.Table || rc.Database != first.Database {
			return false
		}
		var k int64
		switch v := rc.After[rc.PK[0]].(type) {
		case int64:
			k = v
		case int32:
			k = int64(v)
		case uint32:
			k = int64(v)
		case uint64:
			if v > math.MaxInt64 {
				return false
			}
			k = int64(v)
		default:
			return false
		}
		if i > 0 && k <= last {
			return false
		}
		last = k
	}
	return true
}

// rowKey is a row's primary key as a map key: a one-column integer key in
// i (the common case, no allocation), any other key encoded in s. One
// table's keys all take the same form, so the two never meet.
type rowKey struct {
	i int64
	s string
}

func keyOf(values []any, pk []int) rowKey {
	if len(pk) == 1 {
		switch v := values[pk[0]].(type) {
		case int64:
			return rowKey{i: v}
		case int32:
			return rowKey{i: int64(v)}
		case uint32:
			return rowKey{i: int64(v)}
		case int16:
			return rowKey{i: int64(v)}
		case uint16:
			return rowKey{i: int64(v)}
		case int8:
			return rowKey{i: int64(v)}
		case uint8:
			return rowKey{i: int64(v)}
		}
	}
	return rowKey{s: keyString(values, pk)}
}

// hash mixes k with a table's hash (FNV-1a over the key's bytes).
func (k rowKey) hash(h uint64) uint64 {
	const prime = 1099511628211
	if k.s == "" {
		for i := 0; i < 8; i++ {
			h ^= uint64(byte(k.i >> (8 * i)))
			h *= prime
		}
		return h
	}
	for i := 0; i < len(k.s); i++ {
		h ^= uint64(k.s[i])
		h *= prime
	}
	return h
}

// keyString encodes the primary key values of a row as a map key. Values
// of one column have one Go type, so the type-tagged text is exact.
func keyString(values []any, pk []int) string {
	var b []byte
	for _, k := range pk {
		switch v := values[k].(type) {
		case int64:
			b = strconv.AppendInt(append(b, 'i'), v, 10)
		case int32:
			b = strconv.AppendInt(append(b, 'i'), int64(v), 10)
		case uint64:
			b = strconv.AppendUint(append(b, 'u'), v, 10)
		case uint32:
			b = strconv.AppendUint(append(b, 'u'), uint64(v), 10)
		case string:
			b = append(append(b, 's'), v...)
		case []byte:
			b = append(append(b, 'b'), v...)
		default:
			b = fmt.Appendf(append(b, 'v'), "%T:%v", v, v)
		}
		b = append(b, 0)
	}
	return string(b)
}

func (p *planner) upsert(ref tableRef, def *tableDef, columns []string, values []any) error {
	if len(values) != len(columns) {
		return fmt.Errorf("row change of %s has %d values for %d columns", ref, len(values), len(columns))
	}
	g := p.group(ref, def, kindUpsert, columns, func() ([]string, []int) {
		var names []string
		var pick []int
		for i, c := range columns {
			j := def.index(c)
			if j >= 0 && def.Generated[j] {
				continue // the target computes it
			}
			if j < 0 && def.SourceColumns != nil && !def.SourceColumns[c] {
				continue // replayed from before the column was dropped
			}
			names = append(names, c)
			pick = append(pick, i)
		}
		return names, pick
	})
	p.add(ref, g, values)
	return nil
}

func (p *planner) delete(ref tableRef, def *tableDef, columns []string, pk []int, values []any) {
	keyCols := make([]string, len(pk))
	for i, k := range pk {
		keyCols[i] = columns[k]
	}
	g := p.group(ref, def, kindDelete, keyCols, func() ([]string, []int) { return keyCols, pk })
	p.add(ref, g, values)
}

// group returns the pending group of ref for kind and columns, flushing a
// pending group that does not fit.
func (p *planner) group(ref tableRef, def *tableDef, kind applyKind, columns []string,
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
	g.args = make([]any, 0, min(g.maxRows(), p.records)*len(names))
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

func (p *planner) add(ref tableRef, g *group, values []any) {
	for _, i := range g.pick {
		v := values[i]
		g.args = append(g.args, v)
		g.bytes += valueSize(v)
	}
	g.rows++
	if g.rows >= g.maxRows() || g.bytes >= p.maxBytes {
		p.flush(ref, g)
	}
}

// maxRows is the most rows a statement of g takes: maxStatementRows, fewer
// for wide tables so the placeholders fit in one prepared statement.
func (g *group) maxRows() int {
	return max(1, min(maxStatementRows, maxPlaceholders/max(1, len(g.columns))))
}

// preparedSizes are the statement sizes (in rows, below a group's
// maxRows) that a group's remainder is cut into, so that statement texts
// recur and stay prepared; the last fewer than 10 rows go unprepared.
var preparedSizes = []int{200, 50, 10}

func (p *planner) flush(ref tableRef, g *group) {
	delete(p.pending, ref)
	per := len(g.columns) // arguments per row
	rows, args := g.rows, g.args
	emit := func(n int, full bool) {
		p.out = append(p.out, statement{query: g.query(n), args: args[: n*per : n*per], table: g.def.Ref.String(),
			rows: n, full: full})
		rows, args = rows-n, args[n*per:]
	}
	if rows == g.maxRows() {
		emit(rows, true)
		return
	}
	for _, size := range preparedSizes {
		for size < g.maxRows() && rows >= size {
			emit(size, true)
		}
	}
	if rows > 0 {
		emit(rows, false)
	}
}

// query is the statement text of g for n rows.
func (g *group) query(n int) string {
	var q strings.Builder
	table := g.def.Ref.quoted()
	cols := len(g.columns)
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
		row := g.placeholders()
		for i := 0; i < n; i++ {
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
		if cols == 1 {
			q.WriteString(quoteIdent(g.columns[0]) + " IN (" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")")
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
		for i := 0; i < n; i++ {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString(cond.String())
		}
	}
	return q.String()
}

// placeholders is one row's parameters of an upsert. The sink's
// connections talk binary (see charset.go), and MySQL makes no JSON value
// from a binary string, so a JSON column takes its text as utf8mb4 (the
// JSON text the sources yield is UTF-8). MariaDB's JSON is a text column
// (DATA_TYPE longtext) and needs nothing.
func (g *group) placeholders() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range g.columns {
		if i > 0 {
			b.WriteByte(',')
		}
		if j := g.def.index(c); j >= 0 && j < len(g.def.DataTypes) && g.def.DataTypes[j] == "json" {
			b.WriteString("CONVERT(? USING utf8mb4)")
		} else {
			b.WriteByte('?')
		}
	}
	b.WriteByte(')')
	return b.String()
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
