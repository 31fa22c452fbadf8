package file

import "github.com/connector-manager/cm/taskmgr/connector"

// Type is the source.type and sink.type of this package.
const Type = "file"

// Register adds the file source and sink to r.
func Register(r *connector.Registry) {
	r.AddSource(Type, func(c connector.Config) (connector.Source, error) {
		s, err := NewSource(c)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, false)
	r.AddSink(Type, func(c connector.Config) (connector.Sink, error) {
		s, err := NewSink(c)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}
