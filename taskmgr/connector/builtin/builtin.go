// Package builtin assembles the registry of the connectors compiled into cm.
package builtin

import (
	"cm/taskmgr/connector"
	"cm/taskmgr/connector/file"
	"cm/taskmgr/connector/mysql"
	"cm/taskmgr/connector/process"
)

// Registry returns a registry with every built-in connector.
func Registry() *connector.Registry {
	r := connector.NewRegistry()
	file.Register(r)
	process.Register(r)
	mysql.Register(r)
	return r
}
