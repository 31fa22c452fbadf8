package model_test

import (
	"context"
	"slices"
	"testing"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestDDLHistory: an applied statement is recorded once per component,
// subtopic and position, with its audit row; a replay updates it and
// counts; schema versions keep what was written first of a position.
func TestDDLHistory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		const comp = "p-incr_trans-1-0"
		d := &model.AppliedDDL{Component: comp, Subtopic: "h-3306", Before: "binlog.000001:100", After: "binlog.000001:200", TS: 7,
			Task: "n:" + comp + ":0000000001", Database: "src", Statement: "ALTER TABLE t ADD c INT",
			Applied: `["ALTER TABLE dst.t ADD COLUMN c INT"]`, Tables: `["src.t"]`}
		audit := &model.Audit{Actor: "node:n", Operation: "runtime:ddl", Component: comp, Result: model.ResultSuccess}
		if err := s.RecordDDL(ctx, d, audit); err != nil {
			t.Fatal(err)
		}
		again := *d
		again.ID, again.Applied, again.Task = 0, `[]`, "n:"+comp+":0000000002"
		if err := s.RecordDDL(ctx, &again, nil); err != nil {
			t.Fatal(err)
		}
		other := *d
		other.ID, other.After = 0, "binlog.000001:300"
		if err := s.RecordDDL(ctx, &other, nil); err != nil {
			t.Fatal(err)
		}
		h, err := s.DDLHistory(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || h[0].Replays != 1 || h[0].Applied != `[]` || h[0].Task != again.Task || h[0].Statement != d.Statement ||
			h[1].After != other.After || h[1].Replays != 0 {
			t.Fatalf("history %+v", h)
		}
		for _, c := range []struct {
			after string
			want  bool
		}{{"binlog.000001:200", true}, {"binlog.000001:300", true}, {"binlog.000001:250", false}} {
			ok := slices.ContainsFunc(h, func(a model.AppliedDDL) bool { return a.Subtopic == "h-3306" && a.After == c.after })
			if ok != c.want {
				t.Errorf("recorded at %s: %v, want %v", c.after, ok, c.want)
			}
		}
		ops, err := s.ListAudit(ctx, model.AuditFilter{Component: comp, Operation: "runtime:ddl"})
		if err != nil || len(ops) != 1 {
			t.Fatalf("audit rows %+v %v", ops, err)
		}

		v := []model.SchemaVersion{{Component: comp, Subtopic: "h-3306", Token: "binlog.000001:4", Tbl: "src.t", Definition: "first"},
			{Component: comp, Subtopic: "h-3306", Token: "binlog.000001:200", Tbl: "src.t", Definition: "second"}}
		if err := s.AddSchemaVersions(ctx, v); err != nil {
			t.Fatal(err)
		}
		v[1].Definition = "rewritten"
		if err := s.AddSchemaVersions(ctx, v[1:]); err != nil {
			t.Fatal(err)
		}
		got, err := s.SchemaVersions(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Definition != "second" && got[1].Definition != "second" {
			t.Fatalf("versions %+v", got)
		}
		for _, g := range got {
			if g.Definition == "rewritten" {
				t.Fatalf("a version was rewritten: %+v", got)
			}
		}
		if other, err := s.SchemaVersions(ctx, "q-incr_trans-1-0"); err != nil || len(other) != 0 {
			t.Fatalf("another component's versions: %+v %v", other, err)
		}
	})
}
