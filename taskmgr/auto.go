package taskmgr

import (
	"context"
	"fmt"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// AutoResume resumes an EXCEPTION task whose desired state is RUNNING on
// behalf of the auto-restart job, audited as model.OpAutoRestart with
// detail. It does not wait for the task to run.
func (m *Manager) AutoResume(ctx context.Context, t *model.Task, detail map[string]any) error {
	started := m.now()
	call := Call{Actor: "job:" + params.JobAutoRestart}
	_, audit, err := m.mutate(ctx, call, model.OpAutoRestart, t.Name().String(), func(t *model.Task) error {
		if t.State != model.StateException || t.Desired != model.DesiredRunning {
			return fmt.Errorf("%w: %s is now %s", ErrBusy, t.Component, t.State)
		}
		if err := transition(t, model.EventResume); err != nil {
			return err
		}
		t.AutoRestarts++
		return nil
	}, func(_ *model.Store, _ *model.Task, a *model.Audit) error {
		a.Detail = jsonString(detail)
		return nil
	})
	if err != nil {
		return err // audited by mutate
	}
	m.finish(ctx, audit, nil, started)
	return nil
}

// MoveOff starts migrating t off its dead node to the least loaded live
// node on behalf of the node-liveness job (ha.enable). It does not wait.
func (m *Manager) MoveOff(ctx context.Context, t *model.Task, reason string) error {
	to, err := m.pickNode(ctx, t.Node, MigrateTarget{})
	if err != nil {
		return err
	}
	call := Call{Actor: "job:" + params.JobNodeLiveness, Params: map[string]string{"reason": reason, "ha.enable": "true"}}
	_, _, err = m.startMigrate(ctx, call, t.Name().String(), to)
	return err
}
