package model_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

func open(t *testing.T, url string) *model.Store {
	t.Helper()
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newTask(comp string) *model.Task {
	t := &model.Task{Component: comp, Project: "p", Type: model.TypeIncr, Node: "127.0.0.1-8088", Version: 1,
		State: model.StateCreated, Desired: model.DesiredStopped}
	t.SetConfig(model.Config{"source": {"type": "file"}})
	return t
}

// TestStoreContract runs the same contract on SQLite and MariaDB.
func TestStoreContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)

		t.Run("migrations are recorded and re-running is a no-op", func(t *testing.T) {
			if err := s.Migrate(); err != nil {
				t.Fatal(err)
			}
			ids, err := s.AppliedMigrations(ctx)
			if err != nil || len(ids) == 0 || ids[0] != "0001_init" {
				t.Fatalf("applied = %v, %v", ids, err)
			}
		})

		t.Run("create, get, duplicate", func(t *testing.T) {
			tk := newTask("p-incr_trans-1-0")
			if err := s.CreateTask(ctx, tk); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetTask(ctx, tk.Component)
			if err != nil || got.Revision != 1 || got.State != model.StateCreated {
				t.Fatalf("get = %+v, %v", got, err)
			}
			if err := s.CreateTask(ctx, newTask(tk.Component)); !errors.Is(err, model.ErrAlreadyExists) {
				t.Fatalf("duplicate create = %v, want ErrAlreadyExists", err)
			}
			if _, err := s.GetTask(ctx, "nope-incr_trans-1-0"); !errors.Is(err, model.ErrNotFound) {
				t.Fatalf("missing = %v, want ErrNotFound", err)
			}
		})

		t.Run("compare and swap", func(t *testing.T) {
			a, _ := s.GetTask(ctx, "p-incr_trans-1-0")
			b, _ := s.GetTask(ctx, "p-incr_trans-1-0")
			a.State = model.StateStarting
			if err := s.UpdateTask(ctx, a); err != nil {
				t.Fatal(err)
			}
			b.State = model.StateDeleted
			if err := s.UpdateTask(ctx, b); !errors.Is(err, model.ErrConflict) {
				t.Fatalf("stale update = %v, want ErrConflict", err)
			}
			// Rewriting identical values still counts as a hit.
			if err := s.UpdateTask(ctx, a); err != nil {
				t.Fatalf("identical rewrite: %v", err)
			}
			got, _ := s.GetTask(ctx, a.Component)
			if got.State != model.StateStarting || got.Revision != 3 {
				t.Fatalf("after CAS: %s rev %d", got.State, got.Revision)
			}
		})

		t.Run("a failed transaction leaves nothing", func(t *testing.T) {
			boom := errors.New("boom")
			err := s.Tx(ctx, func(tx *model.Store) error {
				if err := tx.CreateTask(ctx, newTask("q-incr_trans-1-0")); err != nil {
					return err
				}
				if err := tx.InsertAudit(ctx, &model.Audit{Actor: "t", Operation: "create", Result: model.ResultAccepted}); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("tx = %v", err)
			}
			if _, err := s.GetTask(ctx, "q-incr_trans-1-0"); !errors.Is(err, model.ErrNotFound) {
				t.Fatalf("rolled back task exists: %v", err)
			}
		})

		t.Run("list filters", func(t *testing.T) {
			for _, c := range []string{"r-full_trans-1-0", "r-incr_trans-2-0"} {
				tk := newTask(c)
				tk.Project = "r"
				if err := s.CreateTask(ctx, tk); err != nil {
					t.Fatal(err)
				}
			}
			got, total, err := s.ListTasks(ctx, model.TaskFilter{Project: "r", Limit: 1})
			if err != nil || total != 2 || len(got) != 1 || got[0].Component != "r-full_trans-1-0" {
				t.Fatalf("list = %v total %d, %v", got, total, err)
			}
			got, _, _ = s.ListTasks(ctx, model.TaskFilter{States: []model.State{model.StateStarting}})
			if len(got) != 1 || got[0].Component != "p-incr_trans-1-0" {
				t.Fatalf("by state = %v", got)
			}
		})

		t.Run("progress is fenced by version and monotonic", func(t *testing.T) {
			comp := "p-incr_trans-1-0"
			if err := s.ClaimHeartbeat(ctx, comp, 1, "127.0.0.1-8088"); err != nil {
				t.Fatal(err)
			}
			save := func(version, ts int64) []string {
				t.Helper()
				fenced, err := s.SaveProgress(ctx, []model.Progress{{Component: comp, Version: version, Beat: time.Now(),
					Positions: []model.CheckpointPosition{{Subtopic: "a", TS: ts, Token: "tok"}}}})
				if err != nil {
					t.Fatal(err)
				}
				return fenced
			}
			if f := save(1, 100); len(f) != 0 {
				t.Fatalf("first write fenced: %v", f)
			}
			if f := save(1, 150); len(f) != 0 {
				t.Fatalf("forward write fenced: %v", f)
			}
			// A backward time moves the token and keeps the time; it fails
			// nothing, not even in a batch with another task's report.
			other := newTask("q-incr_trans-1-0")
			if err := s.CreateTask(ctx, other); err != nil {
				t.Fatal(err)
			}
			if err := s.ClaimHeartbeat(ctx, other.Component, 1, "127.0.0.1-8088"); err != nil {
				t.Fatal(err)
			}
			beat := time.Now().Add(time.Minute).Truncate(time.Second)
			fenced, err := s.SaveProgress(ctx, []model.Progress{
				{Component: comp, Version: 1, Positions: []model.CheckpointPosition{{Subtopic: "a", TS: 120, Token: "tok2"}}},
				{Component: other.Component, Version: 1, Beat: beat, Positions: []model.CheckpointPosition{{Subtopic: "b", TS: 7, Token: "x"}}},
			})
			if err != nil || len(fenced) != 0 {
				t.Fatalf("batch with a backward report = %v, fenced %v", err, fenced)
			}
			cps, _ := s.Checkpoints(ctx, comp)
			if len(cps) != 1 || cps[0].TS != 150 || cps[0].Token != "tok2" {
				t.Fatalf("after a backward report: %+v, want ts 150 (held) and token tok2", cps)
			}
			ocps, _ := s.Checkpoints(ctx, other.Component)
			hbs, _ := s.Heartbeats(ctx, []string{other.Component})
			if len(ocps) != 1 || ocps[0].TS != 7 || !hbs[other.Component].At.Equal(beat) {
				t.Fatalf("the other task's report did not land: %+v %+v", ocps, hbs)
			}
			// A new incarnation: version 2, progress reset.
			tk, _ := s.GetTask(ctx, comp)
			tk.Version = 2
			if err := s.Tx(ctx, func(tx *model.Store) error {
				if err := tx.UpdateTask(ctx, tk); err != nil {
					return err
				}
				return tx.ResetProgress(ctx, comp)
			}); err != nil {
				t.Fatal(err)
			}
			if f := save(1, 200); len(f) != 1 || f[0] != comp {
				t.Fatalf("stale write not fenced: %v", f)
			}
			cps, _ = s.Checkpoints(ctx, comp)
			if len(cps) != 0 {
				t.Fatalf("stale write landed: %+v", cps)
			}
			if err := s.ClaimHeartbeat(ctx, comp, 2, "127.0.0.1-8088"); err != nil {
				t.Fatal(err)
			}
			// A node that read the task before the bump cannot take the
			// heartbeat back to the old version, nor claim it elsewhere.
			if err := s.ClaimHeartbeat(ctx, comp, 1, "127.0.0.1-8088"); !errors.Is(err, model.ErrFenced) {
				t.Fatalf("stale claim = %v, want ErrFenced", err)
			}
			if err := s.ClaimHeartbeat(ctx, comp, 2, "127.0.0.2-8088"); !errors.Is(err, model.ErrFenced) {
				t.Fatalf("claim from another node = %v, want ErrFenced", err)
			}
			if hb := mustHeartbeat(t, s, comp); hb.Version != 2 || hb.Node != "127.0.0.1-8088" {
				t.Fatalf("heartbeat after stale claims = %+v", hb)
			}
			if f := save(2, 50); len(f) != 0 {
				t.Fatalf("current write fenced: %v", f)
			}
			if err := s.RebindProgress(ctx, comp, 3); err != nil {
				t.Fatal(err)
			}
			if f := save(2, 60); len(f) != 1 {
				t.Fatalf("write after rebind not fenced: %v", f)
			}
			cps, _ = s.Checkpoints(ctx, comp)
			if len(cps) != 1 || cps[0].TS != 50 || cps[0].Version != 3 {
				t.Fatalf("checkpoints = %+v", cps)
			}
		})

		t.Run("audit insert, list newest first, purge in batches", func(t *testing.T) {
			old := time.Now().Add(-48 * time.Hour)
			for i := 0; i < 5; i++ {
				if err := s.InsertAudit(ctx, &model.Audit{At: old, Actor: "a", Operation: "stop", Component: "z-incr_trans-1-0", Result: model.ResultSuccess}); err != nil {
					t.Fatal(err)
				}
			}
			a := &model.Audit{Actor: "a", Operation: "resume", Component: "z-incr_trans-1-0", Result: model.ResultAccepted}
			if err := s.InsertAudit(ctx, a); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishAudit(ctx, a.ID, model.ResultFailure, "TASK_BUSY", "busy", time.Second); err != nil {
				t.Fatal(err)
			}
			rows, _ := s.ListAudit(ctx, model.AuditFilter{Component: "z-incr_trans-1-0", Limit: 3})
			if len(rows) != 3 || rows[0].Operation != "resume" || rows[0].ErrCode != "TASK_BUSY" || rows[0].DurationMS != 1000 {
				t.Fatalf("list = %+v", rows)
			}
			// The row itself was written once: the ending is a row of its own,
			// and an operation ends once.
			var raw model.Audit
			if err := s.DB().WithContext(ctx).Where("id = ?", a.ID).Take(&raw).Error; err != nil || raw.Result != model.ResultAccepted || raw.ErrCode != "" {
				t.Fatalf("the audit row was updated: %+v %v", raw, err)
			}
			if got, err := s.GetAudit(ctx, a.ID); err != nil || got.Result != model.ResultFailure || got.ErrCode != "TASK_BUSY" {
				t.Fatalf("get = %+v %v", got, err)
			}
			if err := s.FinishAudit(ctx, a.ID, model.ResultSuccess, "", "", time.Second); !errors.Is(err, model.ErrAlreadyExists) {
				t.Fatalf("a second ending = %v, want ErrAlreadyExists", err)
			}
			n, err := s.PurgeAudit(ctx, time.Now().Add(-time.Hour), 3)
			if err != nil || n != 3 {
				t.Fatalf("purge = %d, %v", n, err)
			}
			n, _ = s.PurgeAudit(ctx, time.Now().Add(-time.Hour), 3)
			if n != 2 {
				t.Fatalf("second purge = %d", n)
			}
			rows, _ = s.ListAudit(ctx, model.AuditFilter{Component: "z-incr_trans-1-0"})
			if len(rows) != 1 {
				t.Fatalf("left %d rows", len(rows))
			}
			// Purging an ended row purges its ending too.
			if n, err := s.PurgeAudit(ctx, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
				t.Fatalf("purge of the ended row = %d, %v", n, err)
			}
			var left int64
			if err := s.DB().WithContext(ctx).Model(&model.AuditResult{}).Count(&left).Error; err != nil || left != 0 {
				t.Fatalf("%d audit results left after their rows were purged (%v)", left, err)
			}
		})

		t.Run("params and nodes", func(t *testing.T) {
			if err := s.SetParam(ctx, "ha.enable", "false"); err != nil {
				t.Fatal(err)
			}
			if err := s.SetParam(ctx, "ha.enable", "true"); err != nil {
				t.Fatal(err)
			}
			ps, _ := s.Params(ctx)
			if len(ps) != 1 || ps[0].Value != "true" {
				t.Fatalf("params = %+v", ps)
			}
			now := time.Now()
			if err := s.UpsertNode(ctx, &model.Node{ID: "127.0.0.1-1", Addr: "http://127.0.0.1:1", Instance: "i1", StartedAt: now, SeenAt: now}); err != nil {
				t.Fatal(err)
			}
			if err := s.TouchNode(ctx, "127.0.0.1-1", "i1", now.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := s.TouchNode(ctx, "127.0.0.1-2", "i1", now); !errors.Is(err, model.ErrNotFound) {
				t.Fatalf("touch unknown = %v", err)
			}
			n, err := s.GetNode(ctx, "127.0.0.1-1")
			if err != nil || n.SeenAt.Before(now) {
				t.Fatalf("node = %+v, %v", n, err)
			}
		})
	})
}

func TestParseDSN(t *testing.T) {
	d, err := model.ParseDSN("mysql://cm:s3cret@127.0.0.1:3306/cm?tx_isolation=%27READ-COMMITTED%27")
	if err != nil || d.Dialect != model.MySQL {
		t.Fatal(d, err)
	}
	if want := "mysql://cm:xxxxx@127.0.0.1:3306/cm?tx_isolation=%27READ-COMMITTED%27"; d.Redacted != want {
		t.Errorf("redacted = %q, want %q", d.Redacted, want)
	}
	// The store's I/O timeouts: on by default, off for migrations, set by
	// the URL.
	if !strings.Contains(d.Driver, "readTimeout=10s") || !strings.Contains(d.Driver, "writeTimeout=10s") || !strings.Contains(d.Driver, "timeout=5s") ||
		strings.Contains(d.Migrations, "readTimeout") || strings.Contains(d.Migrations, "writeTimeout") {
		t.Errorf("timeouts: driver %q, migrations %q", d.Driver, d.Migrations)
	}
	if d, err := model.ParseDSN("mysql://cm@h:1/cm?readTimeout=0&writeTimeout=1m"); err != nil || strings.Contains(d.Driver, "readTimeout") ||
		!strings.Contains(d.Driver, "writeTimeout=1m") {
		t.Errorf("timeouts from the URL: %q %v", d.Driver, err)
	}
	for _, bad := range []string{"", "postgres://x", "sqlite:", "mysql://127.0.0.1:3306/", "mysql:///db", "mysql://h:1/cm?readTimeout=soon", "mysql://h:1/cm?timeout=-1s"} {
		if _, err := model.ParseDSN(bad); !errors.Is(err, model.ErrInvalidArgument) {
			t.Errorf("ParseDSN(%q) = %v", bad, err)
		}
	}
}

func mustHeartbeat(t *testing.T, s *model.Store, comp string) model.Heartbeat {
	t.Helper()
	hbs, err := s.Heartbeats(context.Background(), []string{comp})
	if err != nil {
		t.Fatal(err)
	}
	hb, ok := hbs[comp]
	if !ok {
		t.Fatalf("no heartbeat row for %s", comp)
	}
	return hb
}
