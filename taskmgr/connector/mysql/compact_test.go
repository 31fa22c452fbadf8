package mysql

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/connector-manager/cm/taskmgr/connector"
)

func compactDef() (*tableDef, map[tableRef]*tableDef) {
	def := &tableDef{Ref: tableRef{DB: "dst", Name: "t"}, Columns: []string{"id", "v"}, DataTypes: []string{"bigint", "varchar"},
		PK: []int{0}, Generated: []bool{false, false}}
	return def, map[tableRef]*tableDef{{DB: "src", Name: "t"}: def}
}

func change(op connector.Op, before, after []any) connector.Record {
	return connector.Record{Change: &connector.RowChange{Database: "src", Table: "t", Op: op,
		Columns: []string{"id", "v"}, PK: []int{0}, Before: before, After: after}}
}

// TestPlanCompacts: a table whose only unique key is an integer primary key
// gets one delete and one upsert statement per batch, with only each key's
// last state.
func TestPlanCompacts(t *testing.T) {
	_, defs := compactDef()
	records := []connector.Record{
		change(connector.OpInsert, nil, []any{int64(1), "a"}),
		change(connector.OpUpdate, []any{int64(1), "a"}, []any{int64(1), "b"}),
		change(connector.OpDelete, []any{int64(2), "x"}, nil),
		change(connector.OpInsert, nil, []any{int64(2), "y"}),
		change(connector.OpUpdate, []any{int64(3), "m"}, []any{int64(4), "m"}), // key moves
		change(connector.OpDelete, []any{int64(5), "z"}, nil),
		change(connector.OpInsert, nil, []any{int64(6), "short"}),
		change(connector.OpDelete, []any{int64(6), "short"}, nil),
	}
	stmts, err := plan(records, defs, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range stmts {
		got = append(got, fmt.Sprint(s.query, s.args))
	}
	want := []string{
		"DELETE FROM `dst`.`t` WHERE `id` IN (?,?,?)[3 5 6]",
		"INSERT INTO `dst`.`t` (`id`,`v`) VALUES (?,?),(?,?),(?,?) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`),`v`=VALUES(`v`)[1 b 2 y 4 m]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A unique secondary key or a string key keeps source order.
	for _, mod := range []func(*tableDef){
		func(d *tableDef) { d.UniqueSecondary = true },
		func(d *tableDef) { d.DataTypes = []string{"varchar", "varchar"} },
	} {
		def, defs := compactDef()
		mod(def)
		stmts, err := plan(records, defs, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(stmts) < 5 {
			t.Errorf("%+v: %d statements; want the changes in order", def, len(stmts))
		}
		var many []connector.Record
		for len(many) < parallelMinRows {
			many = append(many, records...)
		}
		if parts := partition(many, defs, 4); len(parts) != 1 {
			t.Errorf("a table that cannot be split was split in %d parts", len(parts))
		}
	}
}

// TestCompactedApplyConverges applies random change streams three ways to a
// model of the target: in source order, as the planner's statements, and
// as parallel parts applied in a random order. All must end equal to the
// source.
func TestCompactedApplyConverges(t *testing.T) {
	_, defs := compactDef()
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		src := map[int64]string{}
		for k := int64(0); k < 20; k++ {
			if r.IntN(2) == 0 {
				src[k] = "init"
			}
		}
		target := maps.Clone(src)
		var records []connector.Record
		for i := 0; i < 50+r.IntN(parallelMinRows*2); i++ {
			k := int64(r.IntN(40))
			old, exists := src[k]
			switch {
			case !exists:
				v := fmt.Sprint("ins", i)
				src[k] = v
				records = append(records, change(connector.OpInsert, nil, []any{k, v}))
			case r.IntN(3) == 0:
				delete(src, k)
				records = append(records, change(connector.OpDelete, []any{k, old}, nil))
			default:
				nk := k
				if r.IntN(4) == 0 {
					nk = int64(40 + r.IntN(40))
					if _, taken := src[nk]; taken {
						nk = k
					}
				}
				v := fmt.Sprint("upd", i)
				delete(src, k)
				src[nk] = v
				records = append(records, change(connector.OpUpdate, []any{k, old}, []any{nk, v}))
			}
		}
		stmts, err := plan(records, defs, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := maps.Clone(target)
		run(got, stmts)
		if !maps.Equal(got, src) {
			t.Fatalf("seed %d: planned apply gives %v, source %v", seed, got, src)
		}

		parts := partition(records, defs, 4)
		if len(records) >= parallelMinRows && len(parts) < 2 {
			t.Fatalf("seed %d: %d records not split", seed, len(records))
		}
		got = maps.Clone(target)
		for _, i := range r.Perm(len(parts)) {
			stmts, err := plan(parts[i], defs, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			run(got, stmts)
		}
		if !maps.Equal(got, src) {
			t.Fatalf("seed %d: parallel apply gives %v, source %v", seed, got, src)
		}
	}
}

// run applies the statements of the test table to a model of it.
func run(rows map[int64]string, stmts []statement) {
	for _, s := range stmts {
		switch {
		case strings.HasPrefix(s.query, "DELETE"):
			for _, a := range s.args {
				delete(rows, a.(int64))
			}
		case strings.HasPrefix(s.query, "INSERT"):
			for i := 0; i+1 < len(s.args); i += 2 {
				rows[s.args[i].(int64)] = s.args[i+1].(string)
			}
		default:
			panic(s.query)
		}
	}
}

// TestIncreasingInserts: a run of inserts with increasing integer keys (a
// full import chunk) is applied without compaction and split into
// contiguous blocks; anything else takes the general path.
func TestIncreasingInserts(t *testing.T) {
	_, defs := compactDef()
	var recs []connector.Record
	for i := 0; i < 2500; i++ {
		recs = append(recs, change(connector.OpInsert, nil, []any{int64(i * 2), "v"}))
	}
	if !increasingInserts(recs, defs) {
		t.Fatal("increasing inserts not recognised")
	}
	parts := partition(recs, defs, 4)
	if len(parts) != 4 || len(parts[0]) != 625 || parts[1][0].Change.After[0] != int64(1250) {
		t.Fatalf("parts: %d, first %d", len(parts), len(parts[0]))
	}
	stmts, err := plan(recs, defs, 1<<30)
	if err != nil || len(stmts) != 6 || stmts[0].rows != 1000 || stmts[2].rows != 200 {
		t.Fatalf("%d statements, %v", len(stmts), err)
	}
	for _, bad := range [][]connector.Record{
		append(recs[:10:10], change(connector.OpInsert, nil, []any{int64(4), "again"})),
		append(recs[:10:10], change(connector.OpDelete, []any{int64(100), "v"}, nil)),
		{change(connector.OpInsert, nil, []any{"s", "v"})},
	} {
		if increasingInserts(bad, defs) {
			t.Errorf("%d records taken for increasing inserts", len(bad))
		}
	}
}
