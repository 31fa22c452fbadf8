package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
	"github.com/connector-manager/cm/taskmgr/connector/builtin"
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
			log, err := newLogger(c.LogLevel, c.LogFormat)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, *c, dsn, node, log)
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

// serve runs a node until ctx is done. Shutdown order: stop taking HTTP
// requests, then stop the cluster-wide jobs (giving up the leader lease),
// then stop runners (flushing their checkpoints, leaving task states so the
// next start resumes them) and the node heartbeat, then give the node id
// up, then close the store (and release its lock).
//
// The node id is held like a lease (cluster.Membership): serve refuses to
// start while another live process holds it, and if another process takes
// it over while this one runs, serve stops the runners at once, shuts down
// and returns the *cluster.NodeHeldError (exit status 1), leaving the
// task states to the new holder.
func serve(ctx context.Context, c serveConfig, dsn model.DSN, node model.NodeID, log *zap.Logger) error {
	log = log.With(zap.String("node", string(node)))
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(c.GCPercent)
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

	tcfg := taskmgr.DefaultConfig(node)
	tcfg.DataDir = c.DataDir
	tcfg.ReconcileInterval = c.ReconcileInterval
	tcfg.NodeHeartbeat = c.NodeHeartbeat
	tcfg.Lease = cluster.LeaseConfig{TTL: c.LeaseTTL, Renew: c.LeaseRenew}
	// Crash tests only: the node kills itself right after the named step
	// (taskmgr.Failpoints). Deliberately not a flag or a config key.
	tcfg.Failpoint = os.Getenv("CM_FAILPOINT")
	if err := tcfg.Validate(); err != nil {
		return err
	}
	if tcfg.Failpoint != "" {
		log.Warn("failpoint armed: this process will kill itself when it gets there", zap.String("failpoint", tcfg.Failpoint))
	}
	scfg := server.DefaultConfig()
	scfg.Listen = c.Listen
	if err := scfg.Validate(); err != nil {
		return err
	}
	addr := apiURL(node)
	members := cluster.NewMembership(tcfg.Node, tcfg.NodeHeartbeat, store, addr, version, log)
	if dsn.Dialect == model.SQLite {
		members.SoleProcess() // lockStore: no other process has the file open
	}
	if err := members.Register(ctx); err != nil {
		return err
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := members.Release(rctx); err != nil {
			log.Warn("giving the node id up", zap.Error(err))
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		release()
		return fmt.Errorf("listening on %s: %w", c.Listen, err)
	}

	registry := builtin.Registry()
	changes := cluster.NewChanges()
	rec := taskmgr.NewReconciler(tcfg, store, registry, changes, log)
	waker := cluster.NewClusterWaker(node, rec, store, log)
	defer waker.Close()
	rec.SetWaker(waker)
	mgr := taskmgr.NewManager(tcfg, store, registry, waker, changes, log)
	mgr.SetErrorCoder(server.ErrCode)
	lease := cluster.NewLease(tcfg.Lease, cluster.LeaderLease, node, store, log)
	sched := taskmgr.NewScheduler(tcfg, store, mgr.Jobs(rec), log)
	srv := server.New(scfg, server.Services{Tasks: mgr, Cluster: mgr, Nudge: rec.Nudge}, log)

	// A takeover of the node id stops the runners first (every moment both
	// processes run the tasks, records are delivered twice), then the rest
	// in the usual order.
	ctx, takenOver := context.WithCancelCause(ctx)
	defer takenOver(nil)
	runtimeCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuntime()
	var runtime errgroup.Group
	runtime.Go(func() error { rec.Run(runtimeCtx); return nil })
	runtime.Go(func() error {
		if err := members.Run(runtimeCtx); err != nil {
			log.Error("node id taken over: stopping the runners and shutting down", zap.Error(err))
			stopRuntime()
			takenOver(err)
		}
		return nil
	})
	clusterCtx, stopCluster := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCluster()
	var jobs errgroup.Group
	jobs.Go(func() error { lease.Run(clusterCtx, sched.Lead); return nil })

	log.Info("cm serving", zap.String("listen", ln.Addr().String()), zap.String("addr", addr), zap.String("instance", members.Instance()),
		zap.String("db", dsn.Redacted), zap.String("version", version))
	serveErr := srv.Serve(ctx, ln)
	log.Info("shutting down")
	stopCluster()
	_ = jobs.Wait()
	log.Info("jobs stopped")
	stopRuntime()
	start := time.Now()
	_ = runtime.Wait()
	log.Info("runners stopped", zap.Duration("took", time.Since(start)))
	var held *cluster.NodeHeldError
	if errors.As(context.Cause(ctx), &held) {
		return held
	}
	release()
	if serveErr != nil && !errors.Is(serveErr, context.Canceled) {
		return serveErr
	}
	return nil
}
