package cluster

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
)

// LeaderLease is the name of the lease that elects the node running the
// cluster-wide jobs.
const LeaderLease = "leader"

// LeaseConfig tunes the leader lease.
type LeaseConfig struct {
	// TTL is how long a taken lease lasts without renewal.
	TTL time.Duration
	// Renew is how often the holder renews, and others try to take it.
	Renew time.Duration
}

// DefaultLeaseConfig: 10 s leases renewed every 3 s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{TTL: 10 * time.Second, Renew: 3 * time.Second}
}

// Lease keeps trying to hold a named lease in the store and runs lead while
// it does. The lease survives nothing but its expiry: lead's context is
// cancelled as soon as a renewal is refused, or when the last successful
// renewal is about to expire without a new one (the store unreachable),
// whichever comes first; lead must return promptly then.
type Lease struct {
	cfg    LeaseConfig
	name   string
	holder model.NodeID
	store  *model.Store
	log    *zap.Logger

	mu      sync.Mutex
	leading bool
}

// NewLease builds the lease loop of holder.
func NewLease(cfg LeaseConfig, name string, holder model.NodeID, store *model.Store, log *zap.Logger) *Lease {
	if cfg.TTL <= 0 || cfg.Renew <= 0 || cfg.Renew >= cfg.TTL {
		cfg = DefaultLeaseConfig()
	}
	return &Lease{cfg: cfg, name: name, holder: holder, store: store, log: log.Named("lease").With(zap.String("lease", name))}
}

// Leading reports whether this node holds the lease now.
func (l *Lease) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *Lease) setLeading(v bool) {
	l.mu.Lock()
	l.leading = v
	l.mu.Unlock()
}

// Run competes for the lease until ctx is done, running lead in its own
// goroutine each time the lease is won, and waiting for it each time it is
// lost. On return the lease is released if still held, so another node can
// take over at once.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context)) {
	var (
		prev int64 // expiry this node last wrote; 0 when not holding
		cur  *leadRun
	)
	lose := func(why string) {
		if cur == nil {
			return
		}
		cur.stop()
		cur = nil
		l.setLeading(false)
		l.log.Info("lost the lease", zap.String("why", why))
	}
	defer func() {
		lose("shutting down")
		if prev != 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := l.store.ReleaseLease(rctx, l.name, string(l.holder), prev); err != nil {
				l.log.Warn("releasing the lease", zap.Error(err))
			}
			cancel()
		}
	}()
	tick := time.NewTicker(l.cfg.Renew)
	defer tick.Stop()
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	for {
		now := time.Now()
		actx, cancel := context.WithTimeout(ctx, l.cfg.Renew)
		ok, exp, err := l.store.AcquireLease(actx, l.name, string(l.holder), prev, now, l.cfg.TTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Keep leading until the lease we hold runs out: the timer below.
			l.log.Warn("renewing the lease", zap.Error(err))
		case ok:
			prev = exp
			// Stop a little before expiry so two leaders never overlap.
			expiry.Reset(time.Until(time.UnixMilli(exp)) - l.cfg.Renew/2)
			if cur == nil {
				l.setLeading(true)
				l.log.Info("took the lease", zap.Time("expires", time.UnixMilli(exp)))
				cur = startLead(ctx, lead)
			}
		default:
			prev = 0
			expiry.Stop()
			lose("another node holds it")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-expiry.C:
			prev = 0
			lose("not renewed before expiry")
		}
	}
}

// leadRun is one term of leadership: lead running in its goroutine.
type leadRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLead(ctx context.Context, lead func(context.Context)) *leadRun {
	lctx, cancel := context.WithCancel(ctx)
	r := &leadRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		lead(lctx)
	}()
	return r
}

// stop ends the term and waits for lead to return.
func (r *leadRun) stop() {
	r.cancel()
	<-r.done
}
