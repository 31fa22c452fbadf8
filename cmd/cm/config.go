package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// fileConfig is the optional YAML file given with --config. Keys match the
// flag names.
type fileConfig struct {
	Listen    string `yaml:"listen"`
	DB        string `yaml:"db"`
	Advertise string `yaml:"advertise"`
	LogLevel  string `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`
	DataDir   string `yaml:"data-dir"`

	ReconcileInterval string `yaml:"reconcile-interval"`
	NodeHeartbeat     string `yaml:"node-heartbeat"`
	LeaseTTL          string `yaml:"lease-ttl"`
	LeaseRenew        string `yaml:"lease-renew"`
	GCPercent         string `yaml:"gc-percent"`

	AuthFile       string   `yaml:"auth-file"`
	NodeTokenFile  string   `yaml:"node-token-file"`
	Insecure       string   `yaml:"insecure"`
	TrustedProxies []string `yaml:"trusted-proxies"`

	PluginDir string   `yaml:"plugin-dir"`
	FileRoots []string `yaml:"file-root"`

	RateLimit      string `yaml:"rate-limit"`
	RateBurst      string `yaml:"rate-burst"`
	IdempotencyTTL string `yaml:"idempotency-ttl"`
}

// serveConfig is the resolved configuration of cm serve.
type serveConfig struct {
	Listen    string
	DB        string
	Advertise string
	LogLevel  string
	LogFormat string
	DataDir   string

	ReconcileInterval time.Duration
	NodeHeartbeat     time.Duration
	LeaseTTL          time.Duration
	LeaseRenew        time.Duration
	// GCPercent is the Go collector's target (as GOGC); see defaultGCPercent.
	GCPercent int
	// RateLimit and RateBurst bound each client's mutating calls;
	// IdempotencyTTL keeps Idempotency-Key answers (server.Config).
	RateLimit      float64
	RateBurst      int
	IdempotencyTTL time.Duration

	// AuthFile holds the tokens and roles (docs/security.md); empty
	// serves without authentication, which only a loopback --listen or
	// Insecure allows (checkPosture).
	AuthFile      string
	NodeTokenFile string
	Insecure      bool
	// TrustedProxies are the CIDRs whose forwarding headers count.
	TrustedProxies []string

	// PluginDir holds the plugin manifests, the only programs process
	// tasks run; FileRoots confine file sources and sinks (none given: the
	// data dir). docs/security.md, "Connectors".
	PluginDir string
	FileRoots []string

	// hostIPs lists the addresses of this host's interfaces that are up,
	// for a wildcard --listen without --advertise; nil means hostIPs.
	hostIPs func() ([]net.IP, error)
}

// envOf maps flags to their environment variables.
var envOf = map[string]string{
	"listen":     "CM_LISTEN",
	"db":         "CM_DB",
	"advertise":  "CM_ADVERTISE",
	"log-level":  "CM_LOG_LEVEL",
	"log-format": "CM_LOG_FORMAT",
	"data-dir":   "CM_DATA_DIR",
	"config":     "CM_CONFIG",

	"reconcile-interval": "CM_RECONCILE_INTERVAL",
	"node-heartbeat":     "CM_NODE_HEARTBEAT",
	"lease-ttl":          "CM_LEASE_TTL",
	"lease-renew":        "CM_LEASE_RENEW",
	"gc-percent":         "CM_GC_PERCENT",

	"auth-file":       "CM_AUTH_FILE",
	"node-token-file": "CM_NODE_TOKEN_FILE",
	"insecure":        "CM_INSECURE",
	"trusted-proxies": "CM_TRUSTED_PROXIES",

	"plugin-dir": "CM_PLUGIN_DIR",
	"file-root":  "CM_FILE_ROOT",

	"rate-limit":      "CM_RATE_LIMIT",
	"rate-burst":      "CM_RATE_BURST",
	"idempotency-ttl": "CM_IDEMPOTENCY_TTL",
}

// defaultGCPercent lets the heap grow to five times the live data between
// collections (Go's default is twice). cm's live heap is small (about
// 150 KB per idle task) while the MySQL connectors allocate per row, so
// collections, not work, took about a quarter of the CPU of a binlog
// catch-up; at 400 the catch-up and full import run about 25 % faster for a
// few tens of MB more RSS under load (docs/benchmarks.md). internal/cmtest
// runs test nodes with the same value.
const defaultGCPercent = 400

func addServeFlags(fs *pflag.FlagSet, c *serveConfig) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8088", "address to serve the API on (env CM_LISTEN)")
	fs.StringVar(&c.DB, "db", "sqlite:./data/cm.db", "store: sqlite:PATH or mysql://user:pass@host:3306/db?param=... (env CM_DB)")
	fs.StringVar(&c.Advertise, "advertise", "", "this node's id IP-PORT, also where other nodes call it; default from --listen, see docs/cluster.md for a wildcard --listen (env CM_ADVERTISE)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (env CM_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or console (env CM_LOG_FORMAT)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for per-task files (env CM_DATA_DIR)")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", 5*time.Second, "period of the reconciler's pass over every task of the node; wake-ups name their tasks and are handled at once (env CM_RECONCILE_INTERVAL)")
	fs.DurationVar(&c.NodeHeartbeat, "node-heartbeat", 3*time.Second, "how often this node records it is alive; keep below node.suspectAfter (env CM_NODE_HEARTBEAT)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 10*time.Second, "leader lease duration (env CM_LEASE_TTL)")
	fs.IntVar(&c.GCPercent, "gc-percent", defaultGCPercent, "Go garbage collector target, as GOGC; ignored when GOGC is set (env CM_GC_PERCENT)")
	fs.DurationVar(&c.LeaseRenew, "lease-renew", 3*time.Second, "leader lease renewal period; at most half the TTL (env CM_LEASE_RENEW)")
	fs.StringVar(&c.AuthFile, "auth-file", "", "YAML file of API tokens (name, role, sha256), reloaded on SIGHUP; required on a non-loopback --listen unless --insecure; see docs/security.md (env CM_AUTH_FILE)")
	fs.StringVar(&c.NodeTokenFile, "node-token-file", "", "file holding the token (role node or admin) this node sends when it wakes other nodes, reloaded on SIGHUP (env CM_NODE_TOKEN_FILE)")
	fs.BoolVar(&c.Insecure, "insecure", false, "serve without --auth-file on a non-loopback --listen: anyone who reaches the port may do anything (env CM_INSECURE)")
	fs.StringSliceVar(&c.TrustedProxies, "trusted-proxies", nil, "CIDRs (or addresses) of proxies whose X-Forwarded-For / X-Real-IP name the client; comma-separated or repeated (env CM_TRUSTED_PROXIES)")
	fs.StringVar(&c.PluginDir, "plugin-dir", "", "directory of plugin manifests (*.yaml: name, command, env, workdir), the only programs process tasks may run; see docs/connector-protocol.md (env CM_PLUGIN_DIR)")
	fs.StringSliceVar(&c.FileRoots, "file-root", nil, "directory file sources and sinks may use, repeatable or comma-separated; default the --data-dir (env CM_FILE_ROOT)")
	http := server.DefaultConfig()
	fs.Float64Var(&c.RateLimit, "rate-limit", http.RateLimit, "mutating calls per second each client (token, else address) may make; beyond it 429 RATE_LIMITED; 0 turns the limit off (env CM_RATE_LIMIT)")
	fs.IntVar(&c.RateBurst, "rate-burst", http.RateBurst, "mutating calls a client may make at once before --rate-limit applies (env CM_RATE_BURST)")
	fs.DurationVar(&c.IdempotencyTTL, "idempotency-ttl", http.IdempotencyTTL, "how long an Idempotency-Key's first answer is kept for retries (env CM_IDEMPOTENCY_TTL)")
	fs.String("config", "", "optional YAML file with the same keys as the flags (env CM_CONFIG)")
}

// resolve layers the configuration: defaults, then the YAML file, then the
// environment, then flags given on the command line.
func resolve(cmd *cobra.Command, c *serveConfig, getenv func(string) string) error {
	fs := cmd.Flags()
	path, _ := fs.GetString("config")
	if !fs.Changed("config") && getenv(envOf["config"]) != "" {
		path = getenv(envOf["config"])
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading --config: %w", err)
		}
		var fc fileConfig
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		setIf := func(name string, dst *string, v string) {
			if v != "" && !fs.Changed(name) {
				*dst = v
			}
		}
		setIf("listen", &c.Listen, fc.Listen)
		setIf("db", &c.DB, fc.DB)
		setIf("advertise", &c.Advertise, fc.Advertise)
		setIf("log-level", &c.LogLevel, fc.LogLevel)
		setIf("log-format", &c.LogFormat, fc.LogFormat)
		setIf("data-dir", &c.DataDir, fc.DataDir)
		setIf("auth-file", &c.AuthFile, fc.AuthFile)
		setIf("node-token-file", &c.NodeTokenFile, fc.NodeTokenFile)
		if len(fc.TrustedProxies) > 0 && !fs.Changed("trusted-proxies") {
			c.TrustedProxies = fc.TrustedProxies
		}
		setIf("plugin-dir", &c.PluginDir, fc.PluginDir)
		if len(fc.FileRoots) > 0 && !fs.Changed("file-root") {
			c.FileRoots = fc.FileRoots
		}
		for name, v := range map[string]string{"reconcile-interval": fc.ReconcileInterval, "node-heartbeat": fc.NodeHeartbeat,
			"lease-ttl": fc.LeaseTTL, "lease-renew": fc.LeaseRenew, "gc-percent": fc.GCPercent, "insecure": fc.Insecure,
			"rate-limit": fc.RateLimit, "rate-burst": fc.RateBurst, "idempotency-ttl": fc.IdempotencyTTL} {
			if v != "" && !fs.Changed(name) {
				// Value.Set, not fs.Set: the file must not count as given on
				// the command line, or the environment could not override it.
				f := fs.Lookup(name)
				if err := f.Value.Set(v); err != nil {
					return fmt.Errorf("%s: YAML key %s: %s", path, name, badValue(f, v, err))
				}
			}
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		env, ok := envOf[f.Name]
		if !ok || f.Name == "config" || fs.Changed(f.Name) {
			return
		}
		if v := getenv(env); v != "" && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("env %s (--%s): %s", env, f.Name, badValue(f, v, serr))
			}
		}
	})
	return err
}

// validate refuses to start on a config that cannot work, with a clear message.
func (c *serveConfig) validate() (model.DSN, model.NodeID, error) {
	var errs []error
	if c.GCPercent < 25 || c.GCPercent > 10000 {
		errs = append(errs, fmt.Errorf("--gc-percent %d: must be in [25, 10000]", c.GCPercent))
	}
	dsn, err := model.ParseDSN(c.DB)
	if err != nil {
		errs = append(errs, err)
	}
	node, err := c.nodeID()
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format %q: must be json or console", c.LogFormat))
	}
	if err := c.checkPosture(); err != nil {
		errs = append(errs, err)
	}
	if _, err := server.ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	return dsn, node, errors.Join(errs...)
}

// checkPosture refuses to serve without authentication on an address
// other hosts can reach: anything but a loopback address (a wildcard, a
// routable address, a host name) needs --auth-file, or --insecure to say
// it is meant.
func (c *serveConfig) checkPosture() error {
	if c.AuthFile != "" || c.Insecure || loopback(c.Listen) {
		return nil
	}
	return fmt.Errorf("--listen %s is reachable from other hosts, and without tokens anyone who reaches it may create, stop and delete tasks: "+
		"give --auth-file PATH (see cm token new and docs/security.md), or --insecure to serve without authentication anyway", c.Listen)
}

// loopback says whether addr's host is a loopback address (or localhost).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newLogger builds the node's logger; its level can be changed while it
// runs (the Kafka Connect path PUT /admin/loggers/root).
func newLogger(level, format string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	log, err := cfg.Build()
	return log, cfg.Level, err
}

// nodeID is this node's id, which is also where other nodes call it (see
// apiURL): --advertise when given; else --listen's host and port; for a
// wildcard --listen (0.0.0.0, ::, or no host) the host's one routable
// address, refusing when it has none or several (pickAdvertised).
func (c *serveConfig) nodeID() (model.NodeID, error) {
	if c.Advertise != "" {
		node, err := model.ParseNodeID(c.Advertise)
		if err != nil {
			return "", fmt.Errorf("--advertise: %w", err)
		}
		return node, nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || !wildcard(host) {
		node, err := model.NodeIDFromAddr(c.Listen)
		if err != nil {
			return "", fmt.Errorf("--listen: %w", err)
		}
		return node, nil
	}
	list := c.hostIPs
	if list == nil {
		list = hostIPs
	}
	ips, err := list()
	if err != nil {
		return "", fmt.Errorf("--listen %s: listing this host's addresses to pick one to advertise: %w; set --advertise IP-PORT", c.Listen, err)
	}
	return pickAdvertised(c.Listen, host, port, ips)
}

func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// pickAdvertised picks the id of a node listening on the wildcard host:
// the host's one routable unicast address (loopback, link-local and
// multicast addresses do not count; for 0.0.0.0 only IPv4 ones, as that is
// all it serves). None or several: refused, naming --advertise. No guess
// among several: a node advertising an address the others cannot reach
// looks alive while every call to it fails.
func pickAdvertised(listen, host, port string, ips []net.IP) (model.NodeID, error) {
	var found []string
	for _, ip := range ips {
		if !ip.IsGlobalUnicast() || (host == "0.0.0.0" && ip.To4() == nil) {
			continue
		}
		found = append(found, ip.String())
	}
	switch len(found) {
	case 1:
		node, err := model.ParseNodeID(found[0] + "-" + port)
		if err != nil {
			return "", fmt.Errorf("--listen: %w", err)
		}
		return node, nil
	case 0:
		return "", fmt.Errorf("--listen %s listens on every address, and this host has no routable one to advertise: "+
			"set --advertise IP-PORT to the address other nodes reach this node at (--advertise 127.0.0.1-%s for a node alone on this host)", listen, port)
	}
	return "", fmt.Errorf("--listen %s listens on every address, and this host has %d routable ones (%s): "+
		"set --advertise IP-PORT to the one other nodes reach this node at, e.g. --advertise %s-%s", listen, len(found), strings.Join(found, ", "), found[0], port)
}

// hostIPs lists the addresses of the interfaces that are up.
func hostIPs() ([]net.IP, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				out = append(out, n.IP)
			}
		}
	}
	return out, nil
}

// apiURL is the base URL other nodes call this node at: its id's host and
// port, so a node with --advertise is called where it advertises, not
// where it listens.
func apiURL(node model.NodeID) string {
	host := node.Host()
	return "http://" + net.JoinHostPort(host, strings.TrimPrefix(string(node), host+"-"))
}
