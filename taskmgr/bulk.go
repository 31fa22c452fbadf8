package taskmgr

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/connector-manager/cm/model"
)

// MaxBulk is the most tasks one bulk call acts on; a filter that matches
// more is refused, so a console cannot stop a whole cluster by a slip.
const MaxBulk = 200

// bulkWorkers bounds how many of a bulk call's tasks are stopped or
// resumed at once: each waits for its runner, and the owners' reconcilers
// take them in turn anyway.
const bulkWorkers = 4

// BulkFilter selects the tasks of a bulk call. At least one field must be
// set, and Confirm must be true.
type BulkFilter struct {
	Project string
	Node    string
	State   string
	// Names are components or full task names.
	Names   []string
	Confirm bool
}

// BulkResult is what became of one task of a bulk call.
type BulkResult struct {
	Task    string `json:"taskName"`
	Success bool   `json:"isSuccess"`
	ErrCode string `json:"errCode,omitempty"`
	ErrMsg  string `json:"errMsg,omitempty"`
}

// BulkStop stops every task f selects, each through Stop (audited per
// task, with bulk=stop in its parameters), and answers one result per task.
func (m *Manager) BulkStop(ctx context.Context, call Call, f BulkFilter, timeout time.Duration) ([]BulkResult, error) {
	return m.bulk(ctx, call, "stop", f, func(ctx context.Context, call Call, ref string) (string, error) {
		return m.Stop(ctx, call, ref, timeout)
	})
}

// BulkResume resumes every task f selects, each through a plain Resume.
func (m *Manager) BulkResume(ctx context.Context, call Call, f BulkFilter, timeout time.Duration) ([]BulkResult, error) {
	return m.bulk(ctx, call, "resume", f, func(ctx context.Context, call Call, ref string) (string, error) {
		return m.Resume(ctx, call, ref, ResumeOptions{Timeout: timeout})
	})
}

func (m *Manager) bulk(ctx context.Context, call Call, op string, f BulkFilter,
	each func(ctx context.Context, call Call, ref string) (string, error)) ([]BulkResult, error) {
	tasks, err := m.bulkTasks(ctx, f)
	if err != nil {
		return nil, err
	}
	call.Params = mergeParams(call.Params, map[string]string{"bulk": op})
	out := make([]BulkResult, len(tasks))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(bulkWorkers, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ref := tasks[i].Name().String()
				c := call
				c.Params = mergeParams(call.Params, map[string]string{"taskName": ref})
				name, err := each(ctx, c, ref)
				if name == "" {
					name = ref
				}
				out[i] = BulkResult{Task: name, Success: err == nil}
				if err != nil {
					out[i].ErrCode, out[i].ErrMsg = m.errCode(err), (*model.Scrubber)(nil).Error(err)
				}
			}
		}()
	}
	for i := range tasks {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, nil
}

// bulkTasks lists what f selects, refusing an unconfirmed call, an empty
// filter and one that matches more than MaxBulk tasks.
func (m *Manager) bulkTasks(ctx context.Context, f BulkFilter) ([]model.Task, error) {
	if !f.Confirm {
		return nil, fmt.Errorf("%w: a bulk call acts on every task its filter selects; send confirm=true", model.ErrInvalidArgument)
	}
	if f.Project == "" && f.Node == "" && f.State == "" && len(f.Names) == 0 {
		return nil, fmt.Errorf("%w: give at least one of project, node, state, taskNames", model.ErrInvalidArgument)
	}
	q := model.TaskFilter{Project: f.Project, Node: model.NodeID(f.Node), Limit: MaxBulk + 1}
	if f.State != "" {
		s, err := model.ParseState(f.State)
		if err != nil {
			return nil, err
		}
		q.States = []model.State{s}
	}
	for _, n := range f.Names {
		r, err := model.ParseTaskRef(n)
		if err != nil {
			return nil, err
		}
		q.Components = append(q.Components, r.Component.String())
	}
	tasks, total, err := m.store.ListTasks(ctx, q)
	if err != nil {
		return nil, err
	}
	if total > MaxBulk {
		return nil, fmt.Errorf("%w: the filter selects %d tasks; a bulk call acts on at most %d: narrow it", model.ErrInvalidArgument, total, MaxBulk)
	}
	return tasks, nil
}
