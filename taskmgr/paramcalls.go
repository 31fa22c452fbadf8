package taskmgr

import (
	"context"

	"github.com/connector-manager/cm/taskmgr/params"
)

// ListParams lists the system parameters (for the API).
func (m *Manager) ListParams(ctx context.Context) ([]params.View, error) { return m.params.List(ctx) }

// UpdateParam validates and sets a system parameter (for the API).
func (m *Manager) UpdateParam(ctx context.Context, call Call, key, value string) error {
	return m.params.Update(ctx, call.Actor, call.RequestID, key, value)
}
