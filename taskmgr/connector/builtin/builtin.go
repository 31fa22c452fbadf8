// Package builtin assembles the registry of connectors cm ships with.
package builtin

import (
	"cm/taskmgr/connector"
	"cm/taskmgr/connector/file"
	"cm/taskmgr/connector/process"
)

// Registry returns a registry with every built-in connector.
func Registry() *connector.Registry {
	r := connector.NewRegistry()
	file.Register(r)
	process.Register(r)
	return r
}
