package model_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/migrations"
	"github.com/connector-manager/cm/model"
)

// TestMigration0007Backfill: a store at 0006 whose audit log holds a
// task's automatic restarts gets them counted on the task row by 0007, so
// a detail after the upgrade still shows them.
func TestMigration0007Backfill(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		dsn, err := model.ParseDSN(url)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := model.Open(ctx, dsn, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		opts := *gormigrate.DefaultOptions
		opts.TableName = migrations.TableName
		m := gormigrate.New(s.DB(), &opts, migrations.All())
		if err := m.MigrateTo("0006_ddl_history"); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO tasks (component, project, type, node, version, revision, desired_state, state, config, created_at, updated_at) VALUES (?, 'p', 'incr_trans', 'n', 1, 1, 'RUNNING', 'RUNNING', '{}', ?, ?)", []any{"p-incr_trans-1-0", now, now}},
			{"INSERT INTO tasks (component, project, type, node, version, revision, desired_state, state, config, created_at, updated_at) VALUES (?, 'p', 'incr_trans', 'n', 1, 1, 'RUNNING', 'RUNNING', '{}', ?, ?)", []any{"p-incr_trans-2-0", now, now}},
		} {
			if err := s.DB().Exec(q.sql, q.args...).Error; err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			if err := s.InsertAudit(ctx, &model.Audit{Actor: "job:auto-restart", Operation: model.OpAutoRestart, Component: "p-incr_trans-1-0", Result: model.ResultSuccess}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InsertAudit(ctx, &model.Audit{Actor: "op", Operation: "stop", Component: "p-incr_trans-2-0", Result: model.ResultSuccess}); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(); err != nil {
			t.Fatal(err)
		}
		for comp, want := range map[string]int64{"p-incr_trans-1-0": 3, "p-incr_trans-2-0": 0} {
			task, err := s.GetTask(ctx, comp)
			if err != nil {
				t.Fatal(err)
			}
			if task.AutoRestarts != want {
				t.Errorf("%s: %d automatic restarts after the migration, want %d", comp, task.AutoRestarts, want)
			}
		}
	})
}
