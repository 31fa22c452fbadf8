package model_test

import (
	"context"
	"testing"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// TestListTasksFilters: a list without a page counts what it lists; a page
// counts them all; ExceptNodes leaves out the tasks of those nodes.
func TestListTasksFilters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		s := open(t, url)
		ctx := context.Background()
		for i, node := range []model.NodeID{"127.0.0.1-1", "127.0.0.1-2", "127.0.0.1-2", "127.0.0.1-3"} {
			tk := newTask("f" + string(rune('a'+i)) + "-incr_trans-1-0")
			tk.Node = node
			if err := s.CreateTask(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		all, n, err := s.ListTasks(ctx, model.TaskFilter{})
		if err != nil || len(all) != 4 || n != 4 {
			t.Fatalf("all: %d rows, total %d, %v", len(all), n, err)
		}
		page, n, err := s.ListTasks(ctx, model.TaskFilter{Offset: 1, Limit: 2})
		if err != nil || len(page) != 2 || n != 4 || page[0].Component != "fb-incr_trans-1-0" {
			t.Fatalf("page: %+v, total %d, %v", page, n, err)
		}
		rest, n, err := s.ListTasks(ctx, model.TaskFilter{Offset: 3})
		if err != nil || len(rest) != 1 || n != 4 || rest[0].Component != "fd-incr_trans-1-0" {
			t.Fatalf("offset without limit: %+v, total %d, %v", rest, n, err)
		}
		others, n, err := s.ListTasks(ctx, model.TaskFilter{ExceptNodes: []model.NodeID{"127.0.0.1-2", "127.0.0.1-3"}})
		if err != nil || len(others) != 1 || n != 1 || others[0].Node != "127.0.0.1-1" {
			t.Fatalf("except nodes 2 and 3: %+v, total %d, %v", others, n, err)
		}
	})
}
