package mysql

import (
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// typeName is the source.type and sink.type of this package.
const typeName = "mysql"

// Options are what the node gives the mysql connectors beyond a task's
// config.
type Options struct {
	// History keeps each task's schema history: the statements its sink
	// applied and the definitions its source learned (nil: none is kept;
	// rows are decoded with the current definitions, and a statement met
	// again after the target moved past it fails the task).
	History connector.SchemaHistory
	// Failpoint lets crash tests kill the process at an exact step
	// (internal/failpoint); empty in production.
	Failpoint failpoint.Armed
}

// Register adds the mysql source (binlog for incr_trans, snapshot for
// full_trans; it needs a sink) and the mysql sink.
func Register(r *connector.Registry, opts Options) {
	r.AddSource(typeName, func(cfg connector.Config) (connector.Source, error) {
		if cfg.Type == model.TypeFull {
			return newSnapshotSource(cfg)
		}
		src, err := newBinlogSource(cfg)
		if err != nil {
			return nil, err
		}
		src.history = opts.History
		return src, nil
	}, false)
	r.AddSink(typeName, func(cfg connector.Config) (connector.Sink, error) {
		s, err := newSink(cfg)
		if err != nil {
			return nil, err
		}
		s.history, s.failpoint = opts.History, opts.Failpoint
		return s, nil
	})
}
