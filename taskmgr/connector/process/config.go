package process

import (
	"encoding/json"
	"errors"
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

// config is the source scope of a process connector.
type config struct {
	command          []string
	workdir          string
	grace            time.Duration
	heartbeatTimeout time.Duration
}

// parseConfig validates the source scope of c without I/O.
func parseConfig(c connector.Config) (config, error) {
	sc := c.Scope("source")
	var cfg config
	raw := sc["command"]
	if raw == "" {
		return cfg, errors.New(`source.command is required: the argv as a JSON array, e.g. ["/usr/local/bin/my-connector","--verbose"]`)
	}
	if err := json.Unmarshal([]byte(raw), &cfg.command); err != nil {
		return cfg, fmt.Errorf("source.command must be a JSON array of strings: %w", err)
	}
	if len(cfg.command) == 0 || cfg.command[0] == "" {
		return cfg, errors.New("source.command must name a program first")
	}
	for _, a := range cfg.command {
		if strings.IndexByte(a, 0) >= 0 {
			return cfg, fmt.Errorf("source.command argument %q contains a NUL byte", a)
		}
	}
	cfg.workdir = sc["workdir"]
	var err error
	if cfg.grace, err = duration(sc, "grace", defaultGrace); err != nil {
		return cfg, err
	}
	if cfg.heartbeatTimeout, err = duration(sc, "heartbeatTimeout", defaultHeartbeatTimeout); err != nil {
		return cfg, err
	}
	return cfg, nil
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
