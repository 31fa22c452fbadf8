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
	var rs []rename
	for _, st := range []struct {
		q string
		n uint32
	}{
		{"ALTER TABLE t RENAME COLUMN a TO b", 100},
		{"ALTER TABLE t CHANGE b c INT, CHANGE x x BIGINT", 200},
		{"RENAME TABLE t TO u", 300},
		{"ALTER TABLE u RENAME COLUMN c TO d", 400},
		{"ALTER TABLE db2.u RENAME COLUMN d TO zz", 450}, // another table
		{"DROP TABLE u", 500},
		{"ALTER TABLE u RENAME COLUMN d TO e", 600}, // after the drop: another table of that name
	} {
		p, err := parseStatement(st.q)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, renamesOf(p, "db", pos(st.n))...)
	}
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
		got, gotCols := s.forward(from, in)
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
