// Package builtin assembles the registry of the connectors compiled into cm.
package builtin

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/taskmgr/connector"
	"github.com/connector-manager/cm/taskmgr/connector/file"
	"github.com/connector-manager/cm/taskmgr/connector/mysql"
	"github.com/connector-manager/cm/taskmgr/connector/process"
)

// Config is what confines the built-in connectors (docs/security.md,
// "Connectors").
type Config struct {
	// PluginDir holds the plugin manifests (DIR/*.yaml), the only programs
	// process tasks may run; "" declares none.
	PluginDir string
	// FileRoots are the directories file sources and sinks may use
	// (absolute); none accepts no path.
	FileRoots []string
	// LookupEnv reads cm's environment for the variables a plugin's
	// manifest passes to its program (os.LookupEnv in cm serve); nil
	// passes none.
	LookupEnv func(string) (string, bool)
	// MySQL is what the mysql connectors get from the node: where tasks
	// keep their schema history, and the crash tests' failpoint.
	MySQL mysql.Options
}

// Connectors is a registry with every built-in connector and the plugins
// its process sources run. Close it once no connector it built runs.
type Connectors struct {
	Registry *connector.Registry
	Plugins  *process.Plugins
	Roots    *file.Roots
	// files is the one file-system watch the file sources share.
	files *file.Watcher
}

// New loads the plugin manifests and resolves the file roots of cfg, and
// returns the registry. An invalid manifest, a duplicate plugin name or a
// root that cannot be resolved is refused, naming the file or the root.
func New(cfg Config, log *zap.Logger) (*Connectors, error) {
	plugins, err := process.LoadPlugins(cfg.PluginDir, cfg.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("--plugin-dir: %w", err)
	}
	roots, err := file.NewRoots(cfg.FileRoots...)
	if err != nil {
		return nil, fmt.Errorf("--file-root: %w", err)
	}
	r := connector.NewRegistry()
	files := file.NewWatcher(log)
	file.Register(r, roots, files)
	process.Register(r, plugins)
	mysql.Register(r, cfg.MySQL)
	return &Connectors{Registry: r, Plugins: plugins, Roots: roots, files: files}, nil
}

// Close stops what the connectors share (the file watcher). Sources still
// running fall back to polling.
func (c *Connectors) Close() error { return c.files.Close() }
