package mysql

import (
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// typeName is the source.type and sink.type of this package.
const typeName = "mysql"

// Register adds the mysql source (binlog for incr_trans, snapshot for
// full_trans; it needs a sink) and the mysql sink.
func Register(r *connector.Registry) {
	r.AddSource(typeName, newSource, false)
	r.AddSink(typeName, func(cfg connector.Config) (connector.Sink, error) { return newSink(cfg) })
}

func newSource(cfg connector.Config) (connector.Source, error) {
	if cfg.Type == model.TypeFull {
		return newSnapshotSource(cfg)
	}
	return newBinlogSource(cfg)
}
