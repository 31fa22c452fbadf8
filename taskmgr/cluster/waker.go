package cluster

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/internal/logkey"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// WakePath is the internal route a node serves so that other nodes can ask
// its reconciler for a pass now.
const WakePath = "/internal/v1/wake"

// Nudger is a reconciler that can be asked for a pass: over the tasks named,
// or over all of its tasks when none is named.
type Nudger interface{ Nudge(components ...string) }

// maxWakeComponents is how many components one wake names; a wake about
// more asks for a pass over all of the owner's tasks.
const maxWakeComponents = 64

// ClusterWaker wakes the reconciler of a task's owner: in process when the
// owner is this node, else with a POST to the owner's address. A wake that
// cannot be delivered is dropped: the owner's periodic pass converges
// anyway, only later.
type ClusterWaker struct {
	self    model.NodeID
	local   Nudger
	store   *model.Store
	params  *params.Service
	client  *http.Client
	timeout time.Duration
	log     *zap.Logger
	// token is the bearer token wakes carry, read per call so a reload
	// takes effect at once; nil or "" sends none (authentication off).
	token func() string
}

// NewClusterWaker builds the waker of node self.
func NewClusterWaker(self model.NodeID, local Nudger, store *model.Store, log *zap.Logger) *ClusterWaker {
	return &ClusterWaker{
		self: self, local: local, store: store, params: params.New(store),
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
		timeout: 500 * time.Millisecond, log: log.Named("waker"),
	}
}

// SetToken makes every wake carry the token token returns, for nodes that
// require one (cm serve --node-token-file). Call it before the node runs.
func (w *ClusterWaker) SetToken(token func() string) { w.token = token }

// Wake asks node's reconciler for a pass over the tasks named (all of its
// tasks when none is). It returns within the waker's short timeout,
// whatever happens to the owner.
func (w *ClusterWaker) Wake(ctx context.Context, node model.NodeID, components ...string) {
	if node == w.self {
		w.local.Nudge(components...)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	n, err := w.store.GetNode(ctx, node)
	if err != nil {
		w.log.Debug("no address to wake", zap.String(logkey.Node, string(node)), zap.Error(err))
		return
	}
	if set, err := w.params.Snapshot(ctx); err == nil && LivenessOf(set).State(n.SeenAt, time.Now()) == NodeDead {
		return // nobody there to wake
	}
	q := url.Values{"node": {string(node)}}
	if len(components) <= maxWakeComponents {
		q["component"] = components
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.Addr+WakePath+"?"+q.Encode(), nil)
	if err != nil {
		w.log.Debug("waking", zap.String(logkey.Node, string(node)), zap.Error(err))
		return
	}
	if w.token != nil {
		if tok := w.token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := w.client.Do(req)
	if err != nil {
		w.log.Debug("waking", zap.String(logkey.Node, string(node)), zap.Error(err))
		return
	}
	_ = resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		// A configuration error, not a passing failure: say so.
		w.log.Warn("wake refused: the node requires a token of role node or admin (--node-token-file)",
			zap.String(logkey.Node, string(node)), zap.Int("status", resp.StatusCode))
	default:
		w.log.Debug("waking", zap.String(logkey.Node, string(node)), zap.Int("status", resp.StatusCode))
	}
}

// Close drops idle connections.
func (w *ClusterWaker) Close() { w.client.CloseIdleConnections() }
