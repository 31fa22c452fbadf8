// Package app builds one cm node from a validated config and owns its start
// and shutdown order. `cm serve` and the test harness (internal/cmtest)
// both build their node here, so the tests run the wiring production runs.
//
// Start order: the node id is taken (cluster.Membership.Register), then the
// runtime (the reconciler, its committer and runners, the node heartbeat),
// the leader election with the cluster-wide jobs, and the HTTP API last.
// Shutdown runs the other way round: stop taking HTTP requests, stop the
// jobs (giving the lease up), stop the runners (flushing their last
// checkpoints, leaving task states so the next start resumes them) and the
// heartbeat, then give the node id up. The caller closes the store.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/connector-manager/cm/internal/metrics"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/server/kafkaconnect"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/connector/builtin"
	"github.com/connector-manager/cm/taskmgr/job"
	"github.com/connector-manager/cm/taskmgr/params"
	"github.com/connector-manager/cm/taskmgr/supervisor"
	"github.com/connector-manager/cm/taskmgr/view"
)

// Config is everything one node is built from.
type Config struct {
	// Node is the node id; Addr the API base URL other nodes call (the
	// advertised address).
	Node model.NodeID
	Addr string
	// Version is the build's version, recorded in the nodes table.
	Version string
	HTTP    server.Config
	Tasks   taskmgr.Config
	Runtime supervisor.Config
	// NodeHeartbeat is how often this node records that it is alive; keep
	// it well below node.suspectAfter.
	NodeHeartbeat time.Duration
	// Lease tunes the leader lease of the cluster-wide jobs.
	Lease cluster.LeaseConfig
	// ScheduleResync is how often the leader re-reads job schedules.
	ScheduleResync time.Duration
	// NoJobs keeps the node out of the leader election, so it never runs
	// the cluster-wide jobs.
	NoJobs bool
	// Refusals bounds the audit rows of refused calls.
	Refusals model.RefusalConfig
	// SoleProcess says no other process can use the store (cm serve holds
	// the lock of its SQLite file): whoever holds the node id in it has
	// exited.
	SoleProcess bool
	// NodeTokenFile holds the bearer token this node's wakes carry to
	// other nodes (a token of role node or admin in their auth files);
	// empty sends none. Re-read with the auth file on ReloadAuth.
	NodeTokenFile string
	// Connectors confines the built-in connectors: the plugin manifests
	// process tasks run, the file roots (none given: the data dir) and
	// the environment plugins may read from.
	Connectors builtin.Config
	// LogLevel is the level of the node's logger, which the Kafka Connect
	// path /admin/loggers reads and sets; nil: fixed.
	LogLevel *zap.AtomicLevel
}

// DefaultConfig returns the defaults for node, serving at addr.
func DefaultConfig(node model.NodeID, addr string) Config {
	return Config{
		Node: node, Addr: addr, Version: "dev",
		HTTP:           server.DefaultConfig(),
		Tasks:          taskmgr.DefaultConfig(node),
		Runtime:        supervisor.DefaultConfig(node),
		NodeHeartbeat:  3 * time.Second,
		Lease:          cluster.DefaultLeaseConfig(),
		ScheduleResync: time.Second,
		Refusals:       model.DefaultRefusalConfig(),
	}
}

// Validate refuses a config the node cannot run with.
func (c Config) Validate() error {
	if _, err := model.ParseNodeID(string(c.Node)); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if c.Tasks.Node != c.Node || c.Runtime.Node != c.Node {
		return fmt.Errorf("%w: the use cases and the runtime must run as node %s", model.ErrInvalidArgument, c.Node)
	}
	if c.Addr == "" {
		return fmt.Errorf("%w: the node's API address is empty", model.ErrInvalidArgument)
	}
	if c.NodeHeartbeat <= 0 || c.ScheduleResync <= 0 {
		return fmt.Errorf("%w: the node heartbeat and the schedule resync must be positive", model.ErrInvalidArgument)
	}
	if c.Lease.TTL <= 0 || c.Lease.Renew <= 0 || c.Lease.Renew*2 > c.Lease.TTL {
		return fmt.Errorf("%w: the lease must be renewed at least twice per TTL (renew %s, ttl %s)", model.ErrInvalidArgument, c.Lease.Renew, c.Lease.TTL)
	}
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if err := c.Refusals.Validate(); err != nil {
		return err
	}
	if err := c.Tasks.Validate(); err != nil {
		return err
	}
	return c.Runtime.Validate()
}

// Node is one built cm node.
type Node struct {
	cfg        Config
	log        *zap.Logger
	Store      *model.Store
	Manager    *taskmgr.Manager
	Reconciler *supervisor.Reconciler
	Membership *cluster.Membership
	Lease      *cluster.Lease
	connectors *builtin.Connectors
	waker      *cluster.ClusterWaker
	scheduler  *job.Scheduler
	http       *server.Server
	refusals   *model.Refusals
	auth       *server.Auth
	nodeToken  atomic.Pointer[string]
	// Metrics is the node's Prometheus registry and what records into it.
	Metrics *metrics.Metrics
}

// New builds a node over an open, migrated store. Nothing runs yet.
func New(cfg Config, store *model.Store, log *zap.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With(zap.String("node", string(cfg.Node)))
	auth, err := server.NewAuth(cfg.HTTP.AuthFile)
	if err != nil {
		return nil, err
	}
	nodeToken := ""
	if cfg.NodeTokenFile != "" {
		if nodeToken, err = readNodeToken(cfg.NodeTokenFile); err != nil {
			return nil, err
		}
	}
	ccfg := cfg.Connectors
	if len(ccfg.FileRoots) == 0 && cfg.Runtime.DataDir != "" {
		dataDir, err := filepath.Abs(cfg.Runtime.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		ccfg.FileRoots = []string{dataDir}
	}
	history := &schemaHistory{store: store, node: cfg.Node}
	ccfg.MySQL.History, ccfg.MySQL.Failpoint = history, cfg.Runtime.Failpoint
	connectors, err := builtin.New(ccfg, log)
	if err != nil {
		return nil, err
	}
	registry := connectors.Registry
	log.Info("connectors", zap.String("plugin_dir", ccfg.PluginDir), zap.Strings("plugins", connectors.Plugins.Names()),
		zap.Strings("file_roots", connectors.Roots.Dirs()))
	ps := params.New(store)
	nodes := cluster.NewNodes(cfg.Node, store, ps)
	changes := cluster.NewChanges()
	rec := supervisor.NewReconciler(cfg.Runtime, store, registry, changes, nodes, log)
	waker := cluster.NewClusterWaker(cfg.Node, rec, store, log)
	rec.SetWaker(waker)
	n := &Node{connectors: connectors}
	n.nodeToken.Store(&nodeToken)
	waker.SetToken(func() string { return *n.nodeToken.Load() })
	mgr := taskmgr.NewManager(cfg.Tasks, store, registry, ps, nodes, waker, changes, log)
	mgr.SetErrorCoder(server.ErrCode)
	n.refusals = model.NewRefusals(cfg.Refusals, store, log)
	mgr.SetRefusals(n.refusals)
	members := cluster.NewMembership(cfg.Node, cfg.NodeHeartbeat, store, cfg.Addr, cfg.Version, log)
	if cfg.SoleProcess {
		members.SoleProcess()
	}
	jobs := job.All(job.Deps{Store: store, Nodes: nodes, Tasks: mgr, Waker: waker, Changes: changes, Log: log})
	n.cfg, n.log, n.Store, n.Manager, n.Reconciler, n.Membership, n.waker, n.auth = cfg, log, store, mgr, rec, members, waker, auth
	n.Lease = cluster.NewLease(cfg.Lease, cluster.LeaderLease, cfg.Node, store, log)
	n.scheduler = job.NewScheduler(cfg.Node, cfg.ScheduleResync, store, ps, jobs, log)
	reads := view.New(store, ps, nodes)
	n.Metrics = metrics.New(cfg.Node, n.Lease.Leading, taskSampler(cfg.Node, reads))
	history.metrics = n.Metrics
	if err := store.Observe(n.Metrics); err != nil {
		return nil, err
	}
	rec.SetRecorder(n.Metrics)
	n.scheduler.SetRecorder(n.Metrics)
	n.http = server.New(cfg.HTTP, server.Services{Tasks: mgr, Reads: reads, Nudge: rec.Woken, Auth: auth, Keys: store,
		Metrics: n.Metrics.Handler(), HTTP: n.Metrics, Ready: n.ready,
		Connect: &kafkaconnect.Services{Tasks: mgr, Reads: reads, Plugins: n, Level: cfg.LogLevel, Version: cfg.Version}}, log)
	return n, nil
}

// warnNodeToken says when this node's wakes will likely be refused: it
// requires tokens but sends none, or its own auth file would refuse the
// token it sends (nodes of a cluster usually share one auth file).
func (n *Node) warnNodeToken() {
	if n.auth == nil {
		return
	}
	tok := *n.nodeToken.Load()
	if tok == "" {
		n.log.Warn("authentication is on but this node's wakes carry no token: nodes with an auth file refuse them " +
			"(calls for their tasks then wait for their periodic pass); give --node-token-file")
		return
	}
	if role, ok := n.auth.Tokens().Role(tok); !ok || !role.Allows(server.RoleNode) {
		n.log.Warn("the node token is not a token of role node or admin in this node's auth file: nodes sharing that file refuse its wakes")
	}
}

// readNodeToken reads the token of --node-token-file: the file's content
// without surrounding white space.
func readNodeToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("node token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("node token file %s is empty", path)
	}
	return tok, nil
}

// ReloadAuth reads the auth file and the node token file again and swaps
// each in at once (requests in flight finish with what they started
// with). A file that does not load leaves what it would replace in force;
// the error says which and why.
func (n *Node) ReloadAuth() error {
	var errs []error
	if n.auth != nil {
		count, err := n.auth.Reload()
		if err != nil {
			errs = append(errs, fmt.Errorf("keeping the %d tokens in force: %w", count, err))
		} else {
			n.log.Info("auth file reloaded", zap.String("auth_file", n.cfg.HTTP.AuthFile), zap.Int("tokens", count))
		}
	}
	if n.cfg.NodeTokenFile != "" {
		tok, err := readNodeToken(n.cfg.NodeTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("keeping the node token in force: %w", err))
		} else {
			n.nodeToken.Store(&tok)
			n.log.Info("node token reloaded", zap.String("node_token_file", n.cfg.NodeTokenFile))
		}
	}
	return errors.Join(errs...)
}

// HTTP is the node's API server, for tests that walk its routes.
func (n *Node) HTTP() *server.Server { return n.http }

// Register takes the node id for this process, or refuses with a
// *cluster.NodeHeldError while another live process holds it. Call it
// before listening, so a refused process never binds its port.
func (n *Node) Register(ctx context.Context) error { return n.Membership.Register(ctx) }

// Release gives the node id up; Run does it on a clean shutdown. For a
// process that registered and then cannot run.
func (n *Node) Release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := n.Membership.Release(rctx); err != nil {
		n.log.Warn("giving the node id up", zap.Error(err))
	}
}

// Run serves the node on ln until ctx is done, then shuts it down in order
// (see the package comment). If another process takes the node id over
// while it runs, Run stops the runners at once (every moment both run the
// tasks, records are delivered twice), shuts the rest down, and returns the
// *cluster.NodeHeldError, leaving the task states and the id to the new
// holder. The node must be registered.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	defer n.waker.Close()
	ctx, takenOver := context.WithCancelCause(ctx)
	defer takenOver(nil)
	runtimeCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuntime()
	var runtime errgroup.Group
	runtime.Go(func() error { n.Reconciler.Run(runtimeCtx); return nil })
	// Stopped after the HTTP server: its last refusals are in.
	runtime.Go(func() error { n.refusals.Run(runtimeCtx); return nil })
	runtime.Go(func() error {
		if err := n.Membership.Run(runtimeCtx); err != nil {
			n.log.Error("node id taken over: stopping the runners and shutting down", zap.Error(err))
			stopRuntime()
			takenOver(err)
		}
		return nil
	})
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	var jobs errgroup.Group
	if !n.cfg.NoJobs {
		jobs.Go(func() error { n.Lease.Run(jobsCtx, n.scheduler.Lead); return nil })
	}

	n.log.Info("cm serving", append([]zap.Field{zap.String("listen", ln.Addr().String()), zap.String("addr", n.cfg.Addr),
		zap.String("instance", n.Membership.Instance()), zap.String("version", n.cfg.Version)}, server.AuthLogFields(n.auth)...)...)
	n.warnNodeToken()
	serveErr := n.http.Serve(ctx, ln)
	n.log.Info("shutting down")
	stopJobs()
	_ = jobs.Wait()
	n.log.Info("jobs stopped")
	stopRuntime()
	start := time.Now()
	_ = runtime.Wait()
	n.log.Info("runners stopped", zap.Duration("took", time.Since(start)))
	// No source runs any more: stop the file watcher they shared.
	_ = n.connectors.Close()
	var held *cluster.NodeHeldError
	if errors.As(context.Cause(ctx), &held) {
		return held
	}
	n.Release(ctx)
	if serveErr != nil && !errors.Is(serveErr, context.Canceled) {
		return serveErr
	}
	return nil
}

// ReloadPlugins reads the plugin manifests again (cm serve --plugin-dir).
// The next create, update or start of a process task sees the new set;
// running programs are not touched. A directory that does not load leaves
// the plugins in force, and the error names the file and the problem.
func (n *Node) ReloadPlugins() error {
	if err := n.connectors.Plugins.Reload(); err != nil {
		return fmt.Errorf("keeping the plugins in force (%s): %w", strings.Join(n.connectors.Plugins.Names(), ", "), err)
	}
	n.log.Info("plugins reloaded", zap.String("plugin_dir", n.connectors.Plugins.Dir()), zap.Strings("plugins", n.connectors.Plugins.Names()))
	return nil
}

// PluginNames are the plugins in force.
func (n *Node) PluginNames() []string { return n.connectors.Plugins.Names() }
