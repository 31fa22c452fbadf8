package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/labstack/echo/v4"
)

// HTTPRecorder hears every answered request, for the node's metrics
// (internal/metrics).
type HTTPRecorder interface {
	// HTTPRequest records one answer: the route pattern Echo matched
	// (empty when none did, never the raw path), the method, the status and
	// how long it took.
	HTTPRequest(route, method string, status int, took time.Duration)
}

// httpMetrics records each request once its answer is written. It sits
// outside the access log, which turns a handler's error into its answer,
// so the status it sees is the one sent.
func httpMetrics(rec HTTPRecorder) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			rec.HTTPRequest(c.Path(), c.Request().Method, c.Response().Status, time.Since(start))
			return nil
		}
	}
}

// metricsHandler serves GET /metrics from h; without one (a server built
// without metrics) the route answers NOT_FOUND.
func metricsHandler(h http.Handler) echo.HandlerFunc {
	if h == nil {
		return func(echo.Context) error { return echo.ErrNotFound }
	}
	return echo.WrapHandler(h)
}

// errNotReady marks a /readyz answer of a node that should not get
// traffic yet (503, retryable).
var errNotReady = errors.New("not ready")

// readyTimeout bounds the checks of one /readyz call.
const readyTimeout = 5 * time.Second

// readyz answers 200 when ready says the node is ready, else 503
// NOT_READY with what is missing.
func readyz(ready func(ctx context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ready == nil {
			return ok(c, "ready")
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			return fmt.Errorf("%w: %s", errNotReady, err.Error())
		}
		return ok(c, "ready")
	}
}

// pprofPrefix is where the runtime profiles are served (admin only when
// authentication is on).
const pprofPrefix = "/debug/pprof"

// pprofRoutes registers net/http/pprof under pprofPrefix as one route:
// the index and the named profiles (heap, goroutine, allocs, ...), and the
// CPU profile, trace, command line and symbol lookup by their names.
func pprofRoutes(e *echo.Echo) {
	e.GET(pprofPrefix+"/*", func(c echo.Context) error {
		h := pprof.Index
		switch c.Param("*") {
		case "cmdline":
			h = pprof.Cmdline
		case "profile":
			h = pprof.Profile
		case "symbol":
			h = pprof.Symbol
		case "trace":
			h = pprof.Trace
		}
		h(c.Response(), c.Request())
		return nil
	})
}
