// Package builtin assembles the registry of the connectors compiled into cm.
package builtin

import (
	"github.com/connector-manager/cm/taskmgr/connector"
	"github.com/connector-manager/cm/taskmgr/connector/file"
	"github.com/connector-manager/cm/taskmgr/connector/mysql"
	"github.com/connector-manager/cm/taskmgr/connector/process"
)

// Registry returns a registry with every built-in connector.
func Registry() *connector.Registry {
	r := connector.NewRegistry()
	file.Register(r)
	process.Register(r)
	mysql.Register(r)
	return r
}
