package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/taskmgr/connector"
)

func TestPlan(t *testing.T) {
	def := &tableDef{Ref: tableRef{DB: "dst", Name: "t"}, Columns: []string{"id", "v", "g"}, PK: []int{0},
		Generated: []bool{false, false, true}}
	def2 := &tableDef{Ref: tableRef{DB: "dst", Name: "u"}, Columns: []string{"a", "b"}, PK: []int{0, 1},
		Generated: []bool{false, false}}
	cols, cols2 := []string{"id", "v", "g"}, []string{"a", "b"}
	rec := func(table string, op connector.Op, before, after []any) connector.Record {
		c, pk := cols, []int{0}
		if table == "u" {
			c, pk = cols2, []int{0, 1}
		}
		return connector.Record{Change: &connector.RowChange{Database: "src", Table: table, Op: op, Columns: c, PK: pk, Before: before, After: after}}
	}
	defs := map[tableRef]*tableDef{{DB: "src", Name: "t"}: def, {DB: "src", Name: "u"}: def2}

	records := []connector.Record{
		rec("t", connector.OpInsert, nil, []any{1, "a", 2}),
		rec("u", connector.OpDelete, []any{7, "x"}, nil),
		rec("t", connector.OpUpdate, []any{1, "a", 2}, []any{1, "b", 2}), // merges with the insert
		rec("u", connector.OpDelete, []any{8, "y"}, nil),
		rec("t", connector.OpDelete, []any{2, "c", 4}, nil),              // kind changes: flush t's upserts
		rec("t", connector.OpUpdate, []any{3, "d", 6}, []any{4, "d", 8}), // key moves: delete 3, upsert 4
	}
	stmts, err := plan(records, defs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range stmts {
		got = append(got, s.query)
	}
	want := []string{
		"INSERT INTO `dst`.`t` (`id`,`v`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`),`v`=VALUES(`v`)",
		"DELETE FROM `dst`.`t` WHERE `id` IN (?,?)",
		"INSERT INTO `dst`.`t` (`id`,`v`) VALUES (?,?) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`),`v`=VALUES(`v`)",
		"DELETE FROM `dst`.`u` WHERE (`a`=? AND `b`=?) OR (`a`=? AND `b`=?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if a := stmts[1].args; len(a) != 2 || a[0] != 2 || a[1] != 3 {
		t.Errorf("delete args %v", a)
	}

	// Large runs split into statements of at most maxStatementRows rows.
	var many []connector.Record
	for i := 0; i < 2*maxStatementRows+1; i++ {
		many = append(many, rec("t", connector.OpInsert, nil, []any{i, "v", 0}))
	}
	if stmts, _ := plan(many, defs, 1<<20); len(stmts) != 3 || stmts[2].rows != 1 {
		t.Errorf("%d statements for %d rows", len(stmts), len(many))
	}
}

func TestKeyCodec(t *testing.T) {
	for _, v := range []any{int64(-5), uint64(18446744073709551615), []byte{0, 0xff, 'a'}, 1.5, nil} {
		s := encodeValue(v)
		back, err := decodeValue(s)
		if err != nil || encodeValue(back) != s {
			t.Errorf("%v -> %q -> %v, %v", v, s, back, err)
		}
	}
	where, args, err := rangeWhere([]string{"a", "b"}, key{"i:1", "b:78"}, key{"i:5", "b:79"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "((`a` > ?) OR (`a` = ? AND `b` > ?)) AND ((`a` < ?) OR (`a` = ? AND `b` <= ?))"
	if where != want || len(args) != 6 {
		t.Errorf("rangeWhere = %s %v", where, args)
	}
}

func TestBinlogValue(t *testing.T) {
	tests := []struct {
		in       any
		dataType string
		unsigned bool
		want     any
	}{
		{int32(-1), "int", true, uint32(4294967295)},
		{int32(-1), "mediumint", true, uint32(16777215)},
		{int8(-1), "tinyint", true, uint8(255)},
		{int64(-1), "bigint", true, uint64(18446744073709551615)},
		{int32(-1), "int", false, int32(-1)},
		{"x", "varchar", false, "x"},
	}
	for _, tt := range tests {
		if got := binlogValue(tt.in, tt.dataType, tt.unsigned); got != tt.want {
			t.Errorf("binlogValue(%v, %s, %v) = %v (%T); want %v", tt.in, tt.dataType, tt.unsigned, got, got, tt.want)
		}
	}
}

func TestAppendDatetime(t *testing.T) {
	for _, tt := range []struct {
		t    time.Time
		dec  int
		want string
	}{
		{time.Date(2024, 2, 29, 12, 0, 0, 123_000_000, time.UTC), 3, "2024-02-29 12:00:00.123"},
		{time.Date(2024, 2, 29, 12, 0, 0, 123_000_000, time.UTC), 0, "2024-02-29 12:00:00"},
		{time.Date(1969, 7, 20, 20, 17, 40, 5_000, time.UTC), 6, "1969-07-20 20:17:40.000005"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC), 6, "9999-12-31 23:59:59.999999"},
		{time.Date(5, 1, 2, 3, 4, 5, 100_000_000, time.UTC), 1, "0005-01-02 03:04:05.1"},
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 4, "2000-01-01 00:00:00.0000"},
	} {
		if got := datetimeText(tt.t, tt.dec); got != tt.want {
			t.Errorf("datetimeText(%v, %d) = %q, want %q", tt.t, tt.dec, got, tt.want)
		}
	}
}

func TestAsUnsigned(t *testing.T) {
	for _, tt := range []struct {
		in    any
		int24 bool
		want  any
	}{
		{int8(-1), false, uint8(255)},
		{int16(-1), false, uint16(65535)},
		{int32(-1), true, uint32(16777215)},
		{int32(-1), false, uint32(4294967295)},
		{int64(-1), false, uint64(18446744073709551615)},
		{int32(5), true, uint32(5)},
		{"text", false, "text"},
		{nil, false, nil},
	} {
		if got := asUnsigned(tt.in, tt.int24); got != tt.want {
			t.Errorf("asUnsigned(%v, %v) = %v (%T), want %v (%T)", tt.in, tt.int24, got, got, tt.want, tt.want)
		}
	}
}

// The sink talks binary; a MySQL JSON column takes its value as utf8mb4
// text, the other columns as they are.
func TestPlanJSONAsText(t *testing.T) {
	def := &tableDef{Ref: tableRef{DB: "dst", Name: "t"}, Columns: []string{"id", "doc", "v"}, PK: []int{0},
		DataTypes: []string{"int", "json", "varchar"}, Generated: []bool{false, false, false}}
	defs := map[tableRef]*tableDef{{DB: "src", Name: "t"}: def}
	rc := &connector.RowChange{Database: "src", Table: "t", Op: connector.OpInsert, Columns: def.Columns, PK: []int{0},
		After: []any{1, []byte(`{"k": "é"}`), "v"}}
	stmts, err := plan([]connector.Record{{Change: rc}}, defs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := "INSERT INTO `dst`.`t` (`id`,`doc`,`v`) VALUES (?,CONVERT(? USING utf8mb4),?) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`),`doc`=VALUES(`doc`),`v`=VALUES(`v`)"
	if len(stmts) != 1 || stmts[0].query != want {
		t.Errorf("statements %+v\nwant %s", stmts, want)
	}
}
