package process

import "github.com/connector-manager/cm/taskmgr/connector"

// typeName is the source.type of this package.
const typeName = "process"

// Register adds the process source to r. It is self-contained: the program
// moves data itself and the task has no sink.
func Register(r *connector.Registry) {
	r.AddSource(typeName, func(c connector.Config) (connector.Source, error) {
		s, err := newSource(c)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, true)
}
