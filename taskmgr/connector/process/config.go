package process

import (
	"fmt"
	"strings"
	"time"

	"github.com/connector-manager/cm/taskmgr/connector"
)

// Defaults of the optional source keys.
const (
	defaultGrace            = 10 * time.Second
	defaultHeartbeatTimeout = 30 * time.Second
)

// config is the source scope of a process connector, with the plugin it
// names.
type config struct {
	plugin           Plugin
	grace            time.Duration
	heartbeatTimeout time.Duration
}

// refusedKeys are source keys that would say what runs, or where: only a
// plugin manifest says that.
var refusedKeys = []string{"command", "workdir"}

// parseConfig validates the source scope of c without I/O and looks its
// plugin up in plugins.
func parseConfig(c connector.Config, plugins *Plugins) (config, error) {
	sc := c.Scope("source")
	var cfg config
	for _, k := range refusedKeys {
		if _, ok := sc[k]; ok {
			return cfg, fmt.Errorf("%w: source.%s is not accepted from a task: an admin declares the program in a plugin manifest "+
				"(a YAML file in the directory given to cm serve --plugin-dir: name, command, optional env and workdir) "+
				"and the task names it with source.plugin (see docs/connector-protocol.md)", connector.ErrCommandRefused, k)
		}
	}
	name := sc["plugin"]
	if name == "" {
		return cfg, fmt.Errorf("%w: source.plugin is required: the name of a plugin declared in cm serve --plugin-dir%s",
			connector.ErrUnknownPlugin, declared(plugins))
	}
	pl, ok := plugins.Lookup(name)
	if !ok {
		return cfg, fmt.Errorf("%w: source.plugin %q is not declared: add a manifest for it to cm serve --plugin-dir%s",
			connector.ErrUnknownPlugin, name, declared(plugins))
	}
	cfg.plugin = pl
	var err error
	if cfg.grace, err = duration(sc, "grace", defaultGrace); err != nil {
		return cfg, err
	}
	if cfg.heartbeatTimeout, err = duration(sc, "heartbeatTimeout", defaultHeartbeatTimeout); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// declared says which plugins there are, for an error message.
func declared(plugins *Plugins) string {
	names := plugins.Names()
	if len(names) == 0 {
		return " (none is declared)"
	}
	return " (declared: " + strings.Join(names, ", ") + ")"
}

func duration(sc map[string]string, key string, def time.Duration) (time.Duration, error) {
	v := sc[key]
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("source.%s %q must be a positive duration such as 10s", key, v)
	}
	return d, nil
}
