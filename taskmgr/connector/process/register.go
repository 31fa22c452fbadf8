package process

import "github.com/connector-manager/cm/taskmgr/connector"

// typeName is the source.type of this package.
const typeName = "process"

// Register adds the process source to r, running only the programs of
// plugins. It is self-contained: the program moves data itself and the
// task has no sink.
func Register(r *connector.Registry, plugins *Plugins) {
	r.AddSource(typeName, func(c connector.Config) (connector.Source, error) {
		s, err := newSource(c, plugins)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, true)
}
