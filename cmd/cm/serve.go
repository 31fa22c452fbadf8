package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/failpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

func serveCmd() *cobra.Command { return serveCommand(&serveConfig{}) }

// serveCommand builds cm serve around c, which its flags are bound to.
func serveCommand(c *serveConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a cm node: the API, the reconciler and the runners of its tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolve(cmd, c, os.Getenv); err != nil {
				return err
			}
			dsn, node, err := c.validate()
			if err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			log, level, err := newLogger(c.LogLevel, c.LogFormat)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, *c, dsn, node, log, &level)
		},
	}
	addServeFlags(cmd.Flags(), c)
	return cmd
}

func migrateCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending store migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("db") && os.Getenv("CM_DB") != "" {
				db = os.Getenv("CM_DB")
			}
			dsn, err := model.ParseDSN(db)
			if err != nil {
				return err
			}
			if dsn.Dialect == model.SQLite {
				if err := checkSQLitePath(dsn.Path); err != nil {
					return fmt.Errorf("%s %s: %w", setting("db"), dsn.Redacted, err)
				}
			}
			unlock, err := lockStore(dsn)
			if err != nil {
				return err
			}
			defer unlock()
			store, err := model.Open(cmd.Context(), dsn, true)
			if err != nil {
				return err
			}
			defer store.Close()
			ids, err := store.AppliedMigrations(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d migrations applied, latest %s\n", dsn.Redacted, len(ids), ids[len(ids)-1])
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "sqlite:./data/cm.db", "store: sqlite:PATH or mysql://user:pass@host:3306/db (env CM_DB)")
	return cmd
}

// serve runs a node until ctx is done (internal/app owns the start and
// shutdown order), then closes the store and releases its lock.
//
// The node id is held like a lease (cluster.Membership): serve refuses to
// start while another live process holds it, and if another process takes
// it over while this one runs, serve stops the runners at once, shuts down
// and returns the *cluster.NodeHeldError (exit status 1), leaving the task
// states to the new holder.
func serve(ctx context.Context, c serveConfig, dsn model.DSN, node model.NodeID, log *zap.Logger, level *zap.AtomicLevel) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(c.GCPercent)
	}
	raiseOpenFiles(log)
	acfg := app.DefaultConfig(node, apiURL(node))
	acfg.Version = version
	acfg.LogLevel = level
	acfg.HTTP.Listen = c.Listen
	acfg.HTTP.AuthFile, acfg.HTTP.TrustedProxies, acfg.NodeTokenFile = c.AuthFile, c.TrustedProxies, c.NodeTokenFile
	acfg.HTTP.RateLimit, acfg.HTTP.RateBurst, acfg.HTTP.IdempotencyTTL = c.RateLimit, c.RateBurst, c.IdempotencyTTL
	acfg.Runtime.DataDir = c.DataDir
	acfg.Connectors.PluginDir, acfg.Connectors.LookupEnv = c.PluginDir, os.LookupEnv
	for _, r := range c.FileRoots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return fmt.Errorf("--file-root %s: %w", r, err)
		}
		acfg.Connectors.FileRoots = append(acfg.Connectors.FileRoots, abs)
	}
	acfg.Runtime.ReconcileInterval = c.ReconcileInterval
	acfg.NodeHeartbeat = c.NodeHeartbeat
	acfg.Lease = cluster.LeaseConfig{TTL: c.LeaseTTL, Renew: c.LeaseRenew}
	// Crash tests only: the node kills itself right after the named step
	// (internal/failpoint). Deliberately not a flag or a config key.
	fp := failpoint.Armed(os.Getenv("CM_FAILPOINT"))
	acfg.Tasks.Failpoint, acfg.Runtime.Failpoint = fp, fp
	acfg.SoleProcess = dsn.Dialect == model.SQLite // lockStore: no other process has the file open
	if err := acfg.Validate(); err != nil {
		return err
	}
	if c.AuthFile == "" && !loopback(c.Listen) {
		log.Warn("--insecure: serving without authentication on an address other hosts can reach", zap.String("listen", c.Listen))
	}
	if fp != "" {
		log.Warn("failpoint armed: this process will kill itself when it gets there", zap.String("failpoint", string(fp)))
	}
	if err := checkStartDirs(c.DataDir, dsn); err != nil {
		return err
	}
	unlock, err := lockStore(dsn)
	if err != nil {
		return err
	}
	defer unlock()
	store, err := model.Open(ctx, dsn, true)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("store open", zap.String("db", dsn.Redacted))
	n, err := app.New(acfg, store, log)
	if err != nil {
		return err
	}
	if err := n.Register(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		n.Release(ctx)
		return fmt.Errorf("listening on %s: %w", c.Listen, err)
	}
	stopReload := reloadOnHangup(n, log)
	defer stopReload()
	return n.Run(ctx, ln)
}

// reloadOnHangup reloads the auth file and the node token file on each
// SIGHUP until the returned stop is called (which waits for a reload in
// progress). A file that does not load leaves the one in force, and the
// log says why.
func reloadOnHangup(n *app.Node, log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-hup:
				log.Info("SIGHUP: reloading the auth file and the node token")
				if err := n.ReloadAuth(); err != nil {
					log.Error("reload refused", zap.Error(err))
				}
				if err := n.ReloadPlugins(); err != nil {
					log.Error("plugin reload refused", zap.Error(err))
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}
