// Package server is cm's HTTP face: the OMS v2 task API under
// /connector/task/v2/, the OMS answer envelope, and the one mapping from
// errors to HTTP status, errCode and retryable (Classify).
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server/kafkaconnect"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

// Config of the HTTP server.
type Config struct {
	Listen string
	// BodyLimit bounds request bodies, e.g. "1M".
	BodyLimit string
	// ShutdownTimeout bounds the graceful drain of in-flight requests.
	ShutdownTimeout time.Duration
	// BodyTimeout bounds the read of a request body once its headers are
	// in: a client that stops sending is answered REQUEST_TIMEOUT (408).
	BodyTimeout time.Duration
	// HeaderTimeout bounds the read of a request's headers; MaxHeaderBytes
	// their size (431 beyond it).
	HeaderTimeout  time.Duration
	MaxHeaderBytes int
	// ReadTimeout and WriteTimeout bound a whole exchange, from the first
	// byte of the request to the last of the answer. A waiting call (stop,
	// resume, pullback...) holds its connection up to taskmgr.MaxWait, so
	// both must exceed it; the slow client they guard against is bounded
	// sooner by HeaderTimeout and BodyTimeout.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// RateLimit is the mutating calls per second each client may make, in
	// bursts of at most RateBurst; beyond it calls are answered 429
	// RATE_LIMITED. 0 turns the limit off.
	RateLimit float64
	RateBurst int
	// IdempotencyTTL is how long an Idempotency-Key's answer is kept.
	IdempotencyTTL time.Duration
	// AuthFile is the --auth-file of tokens and roles (docs/security.md);
	// empty turns authentication off. Services.Auth carries it loaded.
	AuthFile string
	// TrustedProxies are the CIDRs whose X-Forwarded-For and X-Real-IP
	// name the client; from anyone else the TCP peer is the client.
	TrustedProxies []string
}

// exchangeMargin is how much longer than the longest wait an exchange may
// take: the wait's own answer, a slow store.
const exchangeMargin = time.Minute

// DefaultConfig listens on 127.0.0.1:8088.
func DefaultConfig() Config {
	return Config{
		Listen: "127.0.0.1:8088", BodyLimit: "1M", ShutdownTimeout: 40 * time.Second, BodyTimeout: 10 * time.Second,
		HeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		ReadTimeout: taskmgr.MaxWait + exchangeMargin, WriteTimeout: taskmgr.MaxWait + exchangeMargin, IdleTimeout: 2 * time.Minute,
		RateLimit: 50, RateBurst: 100, IdempotencyTTL: 24 * time.Hour,
	}
}

// Validate refuses an unusable config.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown timeout must be positive")
	}
	if c.BodyTimeout <= 0 {
		return errors.New("body timeout must be positive")
	}
	if c.HeaderTimeout <= 0 || c.IdleTimeout <= 0 {
		return errors.New("header and idle timeouts must be positive")
	}
	if c.MaxHeaderBytes < 4<<10 || c.MaxHeaderBytes > 16<<20 {
		return fmt.Errorf("max header bytes %d: must be in [4 KiB, 16 MiB]", c.MaxHeaderBytes)
	}
	if c.ReadTimeout <= taskmgr.MaxWait || c.WriteTimeout <= taskmgr.MaxWait {
		return fmt.Errorf("read and write timeouts (%s, %s) must exceed the longest wait a call may ask for (%s)", c.ReadTimeout, c.WriteTimeout, taskmgr.MaxWait)
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || (c.RateLimit > 0 && c.RateBurst < 1) {
		return fmt.Errorf("rate limit %g/s, burst %d: the rate must be 0 (off) or positive, with a burst of at least 1", c.RateLimit, c.RateBurst)
	}
	if c.IdempotencyTTL < time.Minute {
		return fmt.Errorf("idempotency key TTL %s: must be at least a minute", c.IdempotencyTTL)
	}
	if _, err := ParseTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	return nil
}

const (
	ctxErrCode     = "cm.errCode"
	ctxInternalErr = "cm.internalErr"
	logRequestID   = "request_id"
)

// Server serves the API.
type Server struct {
	cfg  Config
	echo *echo.Echo
	log  *zap.Logger
}

// Services are what the routes call.
type Services struct {
	Tasks TaskService
	Reads ReadService
	// Nudge asks this node's reconciler for a pass over the components
	// named (all of its tasks when none is); other nodes call it
	// through the internal wake route after writing a task this node owns.
	Nudge func(components ...string)
	// Keys keeps Idempotency-Keys (model.Store); nil ignores the header.
	Keys IdempotencyStore
	// Auth holds the tokens of Config.AuthFile (NewAuth); nil when
	// authentication is off.
	Auth *Auth
	// Metrics serves GET /metrics (the node's Prometheus registry) and
	// HTTP records every request in it; nil leaves either out.
	Metrics http.Handler
	HTTP    HTTPRecorder
	// Ready answers GET /readyz: nil when the node may take traffic, else
	// what is missing. Nil: always ready.
	Ready func(ctx context.Context) error
	// Connect serves the Kafka Connect REST paths (server/kafkaconnect)
	// over the same tasks; nil leaves them out. New fills in its Caller,
	// Allows and (when unset) Ready.
	Connect *kafkaconnect.Services
}

// New wires routes and middleware around the services.
func New(cfg Config, svc Services, log *zap.Logger) *Server {
	log = log.Named("http")
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = fail
	trusted, _ := ParseTrustedProxies(cfg.TrustedProxies) // Validate refused bad ones
	e.IPExtractor = ipExtractor(trusted)
	e.Use(sanitizeRequestID, middleware.RequestID())
	if svc.HTTP != nil {
		e.Use(httpMetrics(svc.HTTP))
	}
	e.Use(accessLog(log))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("panic in handler", zap.String(logRequestID, requestID(c)), zap.Error(err), zap.ByteString("stack", stack))
			return err
		},
	}))
	if svc.Auth != nil {
		e.Use(authenticate(svc.Auth)...)
	}
	if cfg.RateLimit > 0 {
		e.Use(rateLimit(cfg.RateLimit, cfg.RateBurst))
	}
	e.Use(middleware.BodyLimit(cfg.BodyLimit))
	e.Use(readBody(cfg.BodyTimeout))
	if svc.Keys != nil {
		e.Use(idempotency(svc.Keys, cfg.IdempotencyTTL, cfg.WriteTimeout, log))
	}

	h := &handlers{svc: svc.Tasks, reads: svc.Reads}
	e.GET("/healthz", func(c echo.Context) error { return ok(c, "ok") })
	e.GET(OpenAPIPath, openAPI)
	e.GET("/readyz", readyz(svc.Ready))
	e.GET("/metrics", metricsHandler(svc.Metrics))
	pprofRoutes(e)
	e.POST(cluster.WakePath, func(c echo.Context) error {
		if svc.Nudge != nil {
			svc.Nudge(wakeComponents(c)...)
		}
		return ok(c, "ok")
	})
	g := e.Group("/connector/task/v2")
	g.POST("/create", h.create)
	g.POST("/resume", h.resume)
	g.POST("/stop", h.stop)
	g.POST("/pause", h.pause)
	g.POST("/update", h.update)
	g.POST("/migrate", h.migrate)
	g.POST("/delete", h.delete)
	g.POST("/pullback", h.pullback)
	g.GET("/detail", h.detail)
	g.GET("/batchDetail", h.batchDetail)
	g.POST("/batchStop", h.batchStop)
	g.POST("/batchResume", h.batchResume)
	g.GET("/operations", h.operations)
	g.GET("/ddlHistory", h.ddlHistory)
	g.GET("/params", h.params)
	g.POST("/params/update", h.updateParam)
	g.GET("/jobs", h.jobs)
	g.GET("/nodes", h.nodes)
	g.GET("/health", h.health)
	if svc.Connect != nil {
		kc := *svc.Connect
		kc.Caller = func(c echo.Context) taskmgr.Call { return taskmgr.Call{Actor: actor(c), RequestID: requestID(c)} }
		kc.Allows = allows
		if kc.Ready == nil {
			kc.Ready = svc.Ready
		}
		kafkaconnect.Mount(e, kc)
	}
	return &Server{cfg: cfg, echo: e, log: log}
}

// Serve listens and serves until ctx is done, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: s.echo, ReadHeaderTimeout: s.cfg.HeaderTimeout, MaxHeaderBytes: s.cfg.MaxHeaderBytes,
		ReadTimeout: s.cfg.ReadTimeout, WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining HTTP: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func requestID(c echo.Context) string {
	if id := c.Response().Header().Get(echo.HeaderXRequestID); id != "" {
		return id
	}
	return c.Request().Header.Get(echo.HeaderXRequestID)
}

// readBody reads the whole request body (at most the body limit) before
// the handler runs, within timeout, so that a body which cannot be read is
// answered as such, at once, whatever the route: malformed chunked encoding
// or a client that closed before its Content-Length was sent is
// INVALID_BODY (400); a client that keeps the connection open without
// sending is REQUEST_TIMEOUT (408) once timeout has passed. http.Server
// sets no deadline on bodies (ReadTimeout would also cancel long waits),
// hence one per request here, cleared once the body is in. The connection
// is closed after such an answer: what follows on it is not a request.
func readBody(timeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Body == nil || req.Body == http.NoBody {
				return next(c)
			}
			rc := http.NewResponseController(c.Response())
			hasDeadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
			body, err := io.ReadAll(req.Body)
			if err == nil {
				if hasDeadline {
					_ = rc.SetReadDeadline(time.Time{})
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				return next(c)
			}
			// The deadline stays as it is: a timed-out read must not block
			// again while the server discards the rest.
			c.Response().Header().Set(echo.HeaderConnection, "close")
			var he *echo.HTTPError
			switch {
			case errors.As(err, &he):
				return err
			case errors.Is(err, os.ErrDeadlineExceeded):
				return fmt.Errorf("%w: the body did not arrive within %s: %v", errBodyTimeout, timeout, err)
			default:
				return fmt.Errorf("%w: %v", errBadBody, err)
			}
		}
	}
}

// accessLog logs each request once, at Info for failures and Debug otherwise.
func accessLog(log *zap.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			// path is what was asked for, also when no route matched (404);
			// route is the pattern that matched, when one did.
			fields := []zap.Field{
				zap.String("method", c.Request().Method), zap.String("path", clip(c.Request().URL.Path)),
				zap.Int("status", c.Response().Status), zap.Duration("took", time.Since(start)),
				zap.String(logRequestID, requestID(c)), zap.String("remote", c.RealIP()),
			}
			if route := c.Path(); route != "" && route != c.Request().URL.Path {
				fields = append(fields, zap.String("route", route))
			}
			if code, ok := c.Get(ctxErrCode).(string); ok {
				fields = append(fields, zap.String("err_code", code))
			}
			switch {
			case c.Get(ctxInternalErr) != nil:
				log.Error("request", append(fields, zap.Any("error", c.Get(ctxInternalErr)))...)
			case c.Response().Status >= 400:
				log.Info("request", fields...)
			default:
				log.Debug("request", fields...)
			}
			return nil
		}
	}
}

// wakeComponents is what a wake names: the components of its query, or
// none (a pass over every task of the node) when it names none, too many,
// or one that is not a component name.
func wakeComponents(c echo.Context) []string {
	comps := c.QueryParams()["component"]
	if len(comps) > 64 {
		return nil
	}
	for _, comp := range comps {
		if _, err := model.ParseComponent(comp); err != nil {
			return nil
		}
	}
	return comps
}
