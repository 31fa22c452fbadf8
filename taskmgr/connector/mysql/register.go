package mysql

import (
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// Type is the source.type and sink.type of this package.
const Type = "mysql"

// Register adds the mysql source (binlog for incr_trans, snapshot for
// full_trans; it needs a sink) and the mysql sink.
func Register(r *connector.Registry) {
	r.AddSource(Type, newSource, false)
	r.AddSink(Type, func(cfg connector.Config) (connector.Sink, error) { return NewSink(cfg) })
}

func newSource(cfg connector.Config) (connector.Source, error) {
	if cfg.Type == model.TypeFull {
		return NewSnapshotSource(cfg)
	}
	return NewBinlogSource(cfg)
}
