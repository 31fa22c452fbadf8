package file

import "github.com/connector-manager/cm/taskmgr/connector"

// typeName is the source.type and sink.type of this package.
const typeName = "file"

// Register adds the file source and sink to r, confined to roots. Idle
// sources wait on w, which the caller closes once no source runs.
func Register(r *connector.Registry, roots *Roots, w *Watcher) {
	r.AddSource(typeName, func(c connector.Config) (connector.Source, error) {
		s, err := newSource(c, roots, w)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, false)
	r.AddSink(typeName, func(c connector.Config) (connector.Sink, error) {
		s, err := newSink(c, roots)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}
