package mysql

import (
	"slices"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

func TestVersionsAt(t *testing.T) {
	p := func(file string, pos uint32) gomysql.Position { return gomysql.Position{Name: file, Pos: pos} }
	a, b := &tableDef{Columns: []string{"a"}}, &tableDef{Columns: []string{"b"}}
	vs := versions{{pos: p("binlog.000002", 100), def: a}, {pos: p("binlog.000003", 4), def: b}, {pos: p("binlog.000003", 900)}}
	for _, c := range []struct {
		at     gomysql.Position
		want   *tableDef
		newest bool
	}{
		{p("binlog.000001", 500), a, false}, // before the history: its first version
		{p("binlog.000002", 100), a, false},
		{p("binlog.000002", 99999), a, false},
		{p("binlog.000003", 4), b, false},
		{p("binlog.000003", 900), nil, true}, // dropped from there on
		{p("binlog.000010", 4), nil, true},
	} {
		v, ok := vs.at(c.at)
		if !ok || v.def != c.want || vs.newest(c.at) != c.newest {
			t.Errorf("at %v = %v %v, newest %v", c.at, v.def, ok, vs.newest(c.at))
		}
	}
	if _, ok := (versions{}).at(p("binlog.000001", 4)); ok {
		t.Error("a version from an empty history")
	}
}

func TestForwardRenames(t *testing.T) {
	pos := func(n uint32) gomysql.Position { return gomysql.Position{Name: "binlog.000001", Pos: n} }
	rs := renamesAt(t, []recorded{
		{"ALTER TABLE t RENAME COLUMN a TO b", 100},
		{"ALTER TABLE t CHANGE b c INT, CHANGE x x BIGINT", 200},
		{"RENAME TABLE t TO u", 300},
		{"ALTER TABLE u RENAME COLUMN c TO d", 400},
		{"ALTER TABLE db2.u RENAME COLUMN d TO zz", 450}, // another table
		{"DROP TABLE u", 500},
		{"ALTER TABLE u RENAME COLUMN d TO e", 600}, // after the drop: another table of that name
	})
	s := &binlogSource{renames: rs}
	cols := []string{"id", "a", "x"}
	for _, c := range []struct {
		at    uint32
		table string
		cols  []string
	}{
		{50, "u", []string{"id", "d", "x"}},
		{150, "u", []string{"id", "d", "x"}}, // a is b by now
		{250, "u", []string{"id", "a", "x"}}, // a (a new column) is no rename's
		{350, "t", nil},
		{700, "t", nil},
	} {
		s.last = pos(c.at)
		from := tableRef{DB: "db", Name: "t"}
		if c.at >= 300 {
			from = tableRef{DB: "db", Name: "u"}
		}
		in := cols
		if c.at >= 150 && c.at < 250 {
			in = []string{"id", "b", "x"}
		}
		if c.at >= 350 && c.at < 400 {
			in = []string{"id", "c", "x"}
		}
		got, gotCols, gone := s.forward(from, in)
		if gone {
			t.Errorf("at %d: gone", c.at)
		}
		if c.cols == nil {
			if c.at == 350 && (got.Name != "u" || !slices.Equal(gotCols, []string{"id", "d", "x"})) {
				t.Errorf("at %d: %v %v", c.at, got, gotCols)
			}
			if c.at == 700 && gotCols != nil {
				t.Errorf("at %d: %v %v, want no mapping", c.at, got, gotCols)
			}
			continue
		}
		if got.Name != c.table || !slices.Equal(gotCols, c.cols) {
			t.Errorf("at %d: %v %v, want %s %v", c.at, got, gotCols, c.table, c.cols)
		}
	}
	if !slices.Equal(cols, []string{"id", "a", "x"}) {
		t.Fatalf("forward changed its input: %v", cols)
	}
}

// TestLineage follows a table through renames to its name now, and knows
// it gone when it was dropped and its name given to another table by a
// later rename (a swap after a drop); rows replayed from before such a
// drop are left out.
func TestLineage(t *testing.T) {
	pos := func(n uint32) gomysql.Position { return gomysql.Position{Name: "binlog.000001", Pos: n} }
	rs := renamesAt(t, []recorded{
		{"DROP TABLE u", 100},
		{"CREATE TABLE u (id INT PRIMARY KEY)", 200},
		{"RENAME TABLE t TO tmp, u TO t, tmp TO u", 300},
		{"DROP TABLE v", 400},
		{"CREATE TABLE v (id INT PRIMARY KEY)", 500},
	})
	ref := func(n string) tableRef { return tableRef{DB: "db", Name: n} }
	for _, c := range []struct {
		table string
		at    uint32
		now   string
		gone  bool
	}{
		{"u", 50, "u", true},   // the u dropped at 100: its name went to t's table at 300
		{"u", 150, "t", false}, // the u created at 200 is t now
		{"t", 150, "u", false}, // t is u after the swap
		{"u", 350, "u", false}, // after the swap
		{"v", 350, "v", false}, // dropped at 400, its name given by a CREATE: replayed as before
		{"w", 50, "w", false},  // never renamed
	} {
		now, gone := lineage(rs, ref(c.table), pos(c.at))
		if now != ref(c.now) || gone != c.gone {
			t.Errorf("%s at %d: %s gone=%v, want %s gone=%v", c.table, c.at, now, gone, c.now, c.gone)
		}
	}
	s := &binlogSource{renames: rs, last: pos(50)}
	if _, _, gone := s.forward(ref("u"), []string{"id"}); !gone {
		t.Error("rows of the u dropped at 100 are not left out")
	}
}

// recorded is a statement applied, by the position just after it.
type recorded struct {
	q string
	n uint32
}

// renamesAt lists the renames and drops of statements on database db in
// binlog.000001.
func renamesAt(t *testing.T, stmts []recorded) []rename {
	t.Helper()
	var rs []rename
	for _, st := range stmts {
		p, err := parseStatement(st.q)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, renamesOf(p, "db", gomysql.Position{Name: "binlog.000001", Pos: st.n})...)
	}
	return rs
}
