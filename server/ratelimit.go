package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/connector-manager/cm/taskmgr/cluster"
)

// errRateLimited marks a mutating call refused because its client sent
// more than its share (Config.RateLimit): 429 RATE_LIMITED, retryable, with
// Retry-After.
var errRateLimited = errors.New("too many mutating calls from this client")

// client names the caller for per-client limits and idempotency keys: the
// name of the token it authenticated with, else its address (the peer, or
// what a trusted proxy forwarded: echo's IPExtractor). A token used from
// several addresses is one client.
func client(c echo.Context) string {
	if t, ok := c.Get(ctxToken).(credential); ok {
		return "token:" + t.name
	}
	return c.RealIP()
}

// mutating reports whether a request can change something: every call but
// GET, HEAD and OPTIONS (the OMS API's POSTs, the Kafka Connect API's PUT,
// PATCH and DELETE too), but the internal wake route, which only nudges
// this node's reconciler.
func mutating(c echo.Context) bool {
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return c.Path() != cluster.WakePath
}

// rateLimit refuses a client's mutating calls beyond rps per second with
// bursts of burst (a token bucket per client, in this node's memory; a
// client idle for three minutes is forgotten). Reads are not limited: they
// write nothing and answer from one query.
func rateLimit(rps float64, burst int) echo.MiddlewareFunc {
	retryAfter := strconv.Itoa(int(math.Max(1, math.Ceil(1/rps))))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Skipper: func(c echo.Context) bool { return !mutating(c) },
		IdentifierExtractor: func(c echo.Context) (string, error) {
			return client(c), nil
		},
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(rps), Burst: burst, ExpiresIn: 3 * time.Minute,
		}),
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retryAfter)
			return fmt.Errorf("%w: at most %g per second (bursts of %d) per client; retry after %ss", errRateLimited, rps, burst, retryAfter)
		},
	})
}
