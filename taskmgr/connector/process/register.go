package process

import "github.com/connector-manager/cm/taskmgr/connector"

// Type is the source.type of this package.
const Type = "process"

// Register adds the process source to r. It is self-contained: the program
// moves data itself and the task has no sink.
func Register(r *connector.Registry) {
	r.AddSource(Type, func(c connector.Config) (connector.Source, error) {
		s, err := NewSource(c)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, true)
}
