package mysql

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// Config keys, as they appear in a task's scoped configuration.
const (
	keyHost         = "host"
	keyPort         = "port"
	keyUsername     = "username"
	keyPassword     = "password"
	keyTables       = "tables"
	keyServerID     = "serverId"
	keySubtopic     = "subtopic"
	keyFlavor       = "flavor"
	keyMaxBatchRows = "maxBatchRows"
	keyDatabaseMap  = "databaseMap"
	keyBatchSize    = "batchSize"
	keyParallelism  = "parallelism"
	keyThrottleRPS  = "throttleRps"
	keyParallel     = "parallelism" // sink.parallelism
	keyDDL          = "ddl"         // sink.ddl
	keyType         = "type"
	keyIOTimeout    = "ioTimeout"

	scopeSource      = "source"
	scopeSink        = "sink"
	scopeCoordinator = "coordinator"
)

// Defaults.
const (
	defaultPort = 3306
	// defaultIOTimeout bounds each read and write of a row connection: a
	// server that stops answering without closing the connection fails
	// the task (retryably) instead of holding it still.
	defaultIOTimeout    = 60 * time.Second
	defaultFlavor       = flavorMariaDB
	defaultMaxBatchRows = 5000
	defaultBatchSize    = 10000
	defaultParallelism  = 4
	// defaultSinkParallelism is how many transactions one large batch is
	// applied in at once.
	defaultSinkParallelism = 4

	// sink.ddl: apply schema statements of selected tables on the target
	// (ddlapply.go), or stop the task at them.
	ddlApply = "apply"
	ddlStop  = "stop"

	flavorMariaDB = "mariadb"
	flavorMySQL   = "mysql"

	// Server ids derived from the component name fall in this range, clear
	// of the small ids operators give real servers (1 above all).
	minServerID = 1000
	maxServerID = 4_000_000_000
)

// endpoint is a server and the account used on it.
type endpoint struct {
	Host     string
	Port     int
	User     string
	Password string
	// IOTimeout is SCOPE.ioTimeout: the longest a read or write of a row
	// connection may wait (0: no limit). Statements whose text carries a
	// definition (DDL, which may run for minutes) have none.
	IOTimeout time.Duration
}

// Addr is host:port.
func (e endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// sourceConfig is the configuration of the mysql source, for both task types.
type sourceConfig struct {
	endpoint
	// Tables is source.tables: the tables read, "db.table" or "db.*".
	Tables selection
	// ServerID is the replica id the binlog dump registers with (incr only).
	ServerID uint32
	// Subtopic names the binlog stream in positions (incr only).
	Subtopic string
	// Flavor is mariadb or mysql (incr only).
	Flavor string
	// MaxBatchRows bounds the rows of one incremental batch; a batch still
	// ends at a transaction boundary, so one large transaction exceeds it.
	MaxBatchRows int
	// BatchSize is the rows per chunk of a full import.
	BatchSize int
	// Parallelism is the number of chunk readers of a full import.
	Parallelism int
	// ThrottleRPS limits rows per second read (0: unlimited).
	ThrottleRPS float64
	// ApplyDDL: the sink is mysql with sink.ddl=apply, so schema
	// statements of selected tables travel to it as records instead of
	// stopping the source (incr only).
	ApplyDDL bool
}

// sinkConfig is the configuration of the mysql sink.
type sinkConfig struct {
	endpoint
	// DatabaseMap renames source databases on the target; unmapped
	// databases keep their name.
	DatabaseMap map[string]string
	// Parallelism is how many target transactions a large batch is split
	// into and applied in at once (1: one transaction per batch).
	Parallelism int
	// DDL is sink.ddl: ddlApply (the default) or ddlStop.
	DDL string
}

// parseSourceConfig reads the source, and coordinator scopes of cfg, applies
// defaults and validates, without I/O.
func parseSourceConfig(cfg connector.Config) (sourceConfig, error) {
	src, coord := cfg.Scope(scopeSource), cfg.Scope(scopeCoordinator)
	var c sourceConfig
	var errs []error
	c.endpoint, errs = parseEndpoint(scopeSource, src)

	if v := src[keyTables]; strings.TrimSpace(v) == "" {
		errs = append(errs, errors.New("source.tables is required (comma list of db.table or db.*)"))
	} else if sel, err := parseSelection(v); err != nil {
		errs = append(errs, fmt.Errorf("source.tables: %w", err))
	} else {
		c.Tables = sel
	}

	c.ServerID = defaultServerID(cfg.Task.Component)
	if v := src[keyServerID]; v != "" {
		id, err := strconv.ParseUint(v, 10, 32)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("source.serverId %q is not a number", v))
		case id == 0 || id == 1:
			errs = append(errs, fmt.Errorf("source.serverId %d is reserved (0 is invalid, 1 is usually the primary)", id))
		default:
			c.ServerID = uint32(id)
		}
	}

	c.Subtopic = src[keySubtopic]
	if c.Subtopic == "" {
		c.Subtopic = fmt.Sprintf("%s-%d", c.Host, c.Port)
	}

	c.Flavor = strings.ToLower(src[keyFlavor])
	switch c.Flavor {
	case "":
		c.Flavor = defaultFlavor
	case flavorMariaDB, flavorMySQL:
	default:
		errs = append(errs, fmt.Errorf("source.flavor %q is not mariadb or mysql", src[keyFlavor]))
	}

	var err error
	if c.MaxBatchRows, err = positiveInt(src, scopeSource, keyMaxBatchRows, defaultMaxBatchRows); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize, err = positiveInt(coord, scopeCoordinator, keyBatchSize, defaultBatchSize); err != nil {
		errs = append(errs, err)
	}
	if c.Parallelism, err = positiveInt(coord, scopeCoordinator, keyParallelism, defaultParallelism); err != nil {
		errs = append(errs, err)
	}
	if v := coord[keyThrottleRPS]; v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			errs = append(errs, fmt.Errorf("coordinator.throttleRps %q is not a number >= 0", v))
		}
		c.ThrottleRPS = f
	}
	if sk := cfg.Scope(scopeSink); sk[keyType] == typeName {
		mode, _ := parseDDLMode(sk) // the sink reports a bad value
		c.ApplyDDL = mode == ddlApply
	}
	return c, errors.Join(errs...)
}

// parseDDLMode reads sink.ddl.
func parseDDLMode(kv map[string]string) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(kv[keyDDL])); v {
	case "", ddlApply:
		return ddlApply, nil
	case ddlStop:
		return ddlStop, nil
	default:
		return ddlApply, fmt.Errorf("sink.ddl %q is not apply or stop", kv[keyDDL])
	}
}

// parseSinkConfig reads the sink scope of cfg, applies defaults and
// validates, without I/O.
func parseSinkConfig(cfg connector.Config) (sinkConfig, error) {
	kv := cfg.Scope(scopeSink)
	var c sinkConfig
	var errs []error
	c.endpoint, errs = parseEndpoint(scopeSink, kv)
	var err error
	if c.Parallelism, err = positiveInt(kv, scopeSink, keyParallel, defaultSinkParallelism); err != nil {
		errs = append(errs, err)
	}
	if c.DDL, err = parseDDLMode(kv); err != nil {
		errs = append(errs, err)
	}
	c.DatabaseMap = map[string]string{}
	if v := strings.TrimSpace(kv[keyDatabaseMap]); v != "" {
		for _, pair := range strings.Split(v, ",") {
			from, to, ok := strings.Cut(strings.TrimSpace(pair), ":")
			from, to = strings.TrimSpace(from), strings.TrimSpace(to)
			if !ok || from == "" || to == "" {
				errs = append(errs, fmt.Errorf("sink.databaseMap entry %q is not src:dst", pair))
				continue
			}
			if _, dup := c.DatabaseMap[from]; dup {
				errs = append(errs, fmt.Errorf("sink.databaseMap maps %q twice", from))
			}
			c.DatabaseMap[from] = to
		}
	}
	return c, errors.Join(errs...)
}

// TargetDB is the target database of a source database.
func (c sinkConfig) TargetDB(src string) string {
	if d, ok := c.DatabaseMap[src]; ok {
		return d
	}
	return src
}

func parseEndpoint(scope string, kv map[string]string) (endpoint, []error) {
	var errs []error
	e := endpoint{Host: kv[keyHost], User: kv[keyUsername], Password: kv[keyPassword], Port: defaultPort, IOTimeout: defaultIOTimeout}
	if v := kv[keyIOTimeout]; v != "" {
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s.ioTimeout %q is not a duration such as 60s (0: no limit)", scope, v))
		}
		e.IOTimeout = d
	}
	if e.Host == "" {
		errs = append(errs, fmt.Errorf("%s.host is required", scope))
	}
	if e.User == "" {
		errs = append(errs, fmt.Errorf("%s.username is required", scope))
	}
	if v := kv[keyPort]; v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s.port %q is not a port number", scope, v))
		}
		e.Port = p
	}
	return e, errs
}

func positiveInt(kv map[string]string, scope, key string, def int) (int, error) {
	v := kv[key]
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return def, fmt.Errorf("%s.%s %q is not a positive integer", scope, key, v)
	}
	return n, nil
}

// defaultServerID derives a stable replica server id from the component
// name, so each component keeps its id across incarnations and two
// components rarely collide. It lies in [1000, 4e9].
func defaultServerID(c model.Component) uint32 {
	h := fnv.New32a()
	h.Write([]byte(c.String()))
	return minServerID + h.Sum32()%(maxServerID-minServerID+1)
}
