package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/connector-manager/cm/server/kafkaconnect"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

// Role is what a token may call. viewer < operator < admin: each includes
// the one before it. node is apart: it may call only the internal routes
// nodes call on each other (the wake), which admin may call too.
type Role string

// The roles of an auth file.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
	RoleNode     Role = "node"
)

// roleRank orders the human roles; node is not on the ladder.
var roleRank = map[Role]int{RoleViewer: 1, RoleOperator: 2, RoleAdmin: 3}

// Allows says whether a token of role r may call a route that needs need.
func (r Role) Allows(need Role) bool {
	if need == RoleNode {
		return r == RoleNode || r == RoleAdmin
	}
	have, ok := roleRank[r]
	return ok && have >= roleRank[need]
}

func (r Role) valid() bool { _, ok := roleRank[r]; return ok || r == RoleNode }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.valid() {
		return "", fmt.Errorf("role %q: must be viewer, operator, admin or node", s)
	}
	return r, nil
}

// routeRoles is the role each route needs, by "METHOD path" as Echo
// registered it. Every route must be here or in openRoutes: the auth test
// walks the router and fails on a route missing from both, and a route
// that slipped through anyway needs admin (see requiredRole).
var routeRoles = map[string]Role{
	"GET /connector/task/v2/detail":      RoleViewer,
	"GET /connector/task/v2/batchDetail": RoleViewer,
	"GET /connector/task/v2/operations":  RoleViewer,
	"GET /connector/task/v2/ddlHistory":  RoleViewer,
	"GET /connector/task/v2/params":      RoleViewer,
	"GET /connector/task/v2/jobs":        RoleViewer,
	"GET /connector/task/v2/nodes":       RoleViewer,
	"GET /connector/task/v2/health":      RoleViewer,
	"GET " + OpenAPIPath:                 RoleViewer,
	"GET /metrics":                       RoleViewer,

	"POST /connector/task/v2/stop":     RoleOperator,
	"POST /connector/task/v2/pause":    RoleOperator,
	"POST /connector/task/v2/resume":   RoleOperator,
	"POST /connector/task/v2/update":   RoleOperator,
	"POST /connector/task/v2/pullback": RoleOperator,

	// The bulk calls: what stop and resume need, for each task.
	"POST /connector/task/v2/batchStop":   RoleOperator,
	"POST /connector/task/v2/batchResume": RoleOperator,

	"POST /connector/task/v2/create":        RoleAdmin,
	"POST /connector/task/v2/delete":        RoleAdmin,
	"POST /connector/task/v2/migrate":       RoleAdmin,
	"POST /connector/task/v2/params/update": RoleAdmin,

	"POST " + cluster.WakePath: RoleNode,

	"GET " + pprofPrefix + "/*": RoleAdmin,

	// The Kafka Connect paths (server/kafkaconnect, docs/kafka-connect.md):
	// each needs the role of the OMS call it makes.
	"GET " + kafkaconnect.PathRoot:           RoleViewer,
	"GET " + kafkaconnect.PathConnectors:     RoleViewer,
	"GET " + kafkaconnect.PathConnector:      RoleViewer,
	"GET " + kafkaconnect.PathConfig:         RoleViewer,
	"GET " + kafkaconnect.PathStatus:         RoleViewer,
	"GET " + kafkaconnect.PathTasks:          RoleViewer,
	"GET " + kafkaconnect.PathTaskStatus:     RoleViewer,
	"GET " + kafkaconnect.PathOffsets:        RoleViewer,
	"GET " + kafkaconnect.PathTopics:         RoleViewer,
	"GET " + kafkaconnect.PathPlugins:        RoleViewer,
	"GET " + kafkaconnect.PathPluginConfig:   RoleViewer,
	"PUT " + kafkaconnect.PathPluginValidate: RoleViewer,
	"GET " + kafkaconnect.PathLoggers:        RoleViewer,
	"GET " + kafkaconnect.PathLogger:         RoleViewer,
	"PUT " + kafkaconnect.PathConfig:         RoleOperator, // creating needs admin too (kafkaconnect.CreateRole)
	"PATCH " + kafkaconnect.PathConfig:       RoleOperator,
	"PUT " + kafkaconnect.PathPause:          RoleOperator,
	"PUT " + kafkaconnect.PathResume:         RoleOperator,
	"PUT " + kafkaconnect.PathStop:           RoleOperator,
	"POST " + kafkaconnect.PathRestart:       RoleOperator,
	"POST " + kafkaconnect.PathTaskRestart:   RoleOperator,
	"PATCH " + kafkaconnect.PathOffsets:      RoleOperator,
	"DELETE " + kafkaconnect.PathOffsets:     RoleOperator,
	"PUT " + kafkaconnect.PathTopicsReset:    RoleOperator,
	"POST " + kafkaconnect.PathConnectors:    RoleAdmin,
	"DELETE " + kafkaconnect.PathConnector:   RoleAdmin,
	"POST " + kafkaconnect.PathPluginReload:  RoleAdmin,
	"PUT " + kafkaconnect.PathLogger:         RoleAdmin,
}

// openRoutes answer without a token: liveness and readiness probes.
var openRoutes = map[string]bool{
	"GET /healthz": true,
	"GET /readyz":  true,
	// Kafka Connect's health probe, open as the two above.
	"GET " + kafkaconnect.PathHealth: true,
}

func routeKey(method, path string) string { return method + " " + path }

// RouteRoles is a copy of the role each route needs, by "METHOD path".
func RouteRoles() map[string]Role { return maps.Clone(routeRoles) }

// OpenRoutes is a copy of the routes that answer without a token.
func OpenRoutes() map[string]bool { return maps.Clone(openRoutes) }

// TokenEntry is one line of an auth file. Only the token's hash is kept.
type TokenEntry struct {
	Name   string `yaml:"name"`
	Role   Role   `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

type authFile struct {
	Tokens []TokenEntry `yaml:"tokens"`
}

// credential is a parsed entry: its hash as bytes.
type credential struct {
	name string
	role Role
	sum  [sha256.Size]byte
}

// Tokens is the parsed content of an auth file.
type Tokens struct{ list []credential }

// Len is the number of tokens.
func (ts *Tokens) Len() int { return len(ts.list) }

// tokenNamePattern keeps names fit for the audit actor (NAME@peer).
var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidTokenName refuses a name the audit actor could not carry.
func ValidTokenName(name string) error {
	if !tokenNamePattern.MatchString(name) {
		return fmt.Errorf("token name %q: 1 to 64 of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

// ParseTokens reads an auth file's content: a list of tokens, each with a
// unique name, a role and the hex SHA-256 of the token. Unknown keys, bad
// hashes, duplicate names or hashes and an empty list are refused.
func ParseTokens(b []byte) (*Tokens, error) {
	var f authFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no tokens: the file is empty")
		}
		return nil, err
	}
	if len(f.Tokens) == 0 {
		return nil, errors.New("no tokens: nobody could call the API (to serve without tokens, start without --auth-file)")
	}
	ts := &Tokens{}
	names, sums := map[string]bool{}, map[[sha256.Size]byte]string{}
	var errs []error
	for i, e := range f.Tokens {
		at := fmt.Sprintf("tokens[%d]", i)
		if err := ValidTokenName(e.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
		if names[e.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q given twice", at, e.Name))
		}
		names[e.Name] = true
		if !e.Role.valid() {
			errs = append(errs, fmt.Errorf("%s (%s): role %q: must be viewer, operator, admin or node", at, e.Name, e.Role))
		}
		raw, err := hex.DecodeString(strings.ToLower(e.SHA256))
		if err != nil || len(raw) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s (%s): sha256 must be 64 hex digits, the SHA-256 of the token (cm token new prints it)", at, e.Name))
			continue
		}
		t := credential{name: e.Name, role: e.Role}
		copy(t.sum[:], raw)
		if other, dup := sums[t.sum]; dup {
			errs = append(errs, fmt.Errorf("%s (%s): same token as %s", at, e.Name, other))
		}
		sums[t.sum] = e.Name
		ts.list = append(ts.list, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ts, nil
}

// LoadTokens reads and parses an auth file.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	ts, err := ParseTokens(b)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return ts, nil
}

// lookup finds the token whose hash is sum. Every entry is compared, in
// constant time, so the answer's timing does not say how close a guess was
// or which entry matched.
func (ts *Tokens) lookup(presented string) (credential, bool) {
	sum := sha256.Sum256([]byte(presented))
	var found credential
	match := 0
	for _, t := range ts.list {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found, match = t, 1
		}
	}
	return found, match == 1
}

// Role says whether presented is one of the tokens, and its role.
func (ts *Tokens) Role(presented string) (Role, bool) {
	t, ok := ts.lookup(presented)
	return t.role, ok
}

// HashToken is the hex SHA-256 an auth file stores for a token.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Auth holds the tokens of --auth-file and swaps them on Reload. Requests
// in flight keep the set they started with; a request after the swap sees
// the new one. A file that does not parse is not swapped in.
type Auth struct {
	path string
	set  atomic.Pointer[Tokens]
	mu   sync.Mutex // one reload at a time
}

// NewAuth loads path; nil, nil when path is empty (authentication off).
func NewAuth(path string) (*Auth, error) {
	if path == "" {
		return nil, nil
	}
	ts, err := LoadTokens(path)
	if err != nil {
		return nil, err
	}
	a := &Auth{path: path}
	a.set.Store(ts)
	return a, nil
}

// Reload reads the file again and swaps it in; on an error the tokens in
// force stay and the error says why. It returns the number of tokens now
// in force.
func (a *Auth) Reload() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts, err := LoadTokens(a.path)
	if err != nil {
		return a.set.Load().Len(), err
	}
	a.set.Store(ts)
	return ts.Len(), nil
}

// Tokens is the set in force.
func (a *Auth) Tokens() *Tokens { return a.set.Load() }

// errUnauthenticated marks a call without a valid token (401).
var errUnauthenticated = errors.New("authentication required")

// errForbidden marks a call whose token's role is too low (403).
var errForbidden = errors.New("forbidden")

const ctxToken = "cm.token"

// ctxAuthOn is set on every request of a server with authentication on,
// so a handler can tell "no token" from "no authentication".
const ctxAuthOn = "cm.authOn"

// authenticate is the middleware of an auth-on server: echo's KeyAuth
// reads the Bearer token, checked against the set in force; then the
// route's role is checked against the token's. Open routes skip both.
func authenticate(a *Auth) []echo.MiddlewareFunc {
	skip := func(c echo.Context) bool { return openRoutes[routeKey(c.Request().Method, c.Path())] }
	keyAuth := middleware.KeyAuthWithConfig(middleware.KeyAuthConfig{
		Skipper:    skip,
		KeyLookup:  "header:" + echo.HeaderAuthorization,
		AuthScheme: "Bearer",
		Validator: func(key string, c echo.Context) (bool, error) {
			t, ok := a.Tokens().lookup(key)
			if ok {
				c.Set(ctxToken, t)
			}
			return ok, nil
		},
		ErrorHandler: func(err error, c echo.Context) error {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="cm"`)
			var missing *middleware.ErrKeyAuthMissing
			if errors.As(err, &missing) {
				return fmt.Errorf("%w: send Authorization: Bearer <token>", errUnauthenticated)
			}
			return fmt.Errorf("%w: the bearer token is not one of this node's tokens", errUnauthenticated)
		},
	})
	authorize := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(ctxAuthOn, true)
			if skip(c) {
				return next(c)
			}
			t, _ := c.Get(ctxToken).(credential)
			need := requiredRoleOf(c)
			if !t.role.Allows(need) {
				return fmt.Errorf("%w: token %s has role %s; %s %s needs %s", errForbidden, t.name, t.role, c.Request().Method, c.Request().URL.Path, need)
			}
			return next(c)
		}
	}
	return []echo.MiddlewareFunc{keyAuth, authorize}
}

// requiredRoleOf is the role the matched route needs. A request no route
// matches (404, 405) needs only a valid token, so any caller with one gets
// the router's answer, and nobody without one learns which routes exist.
func requiredRoleOf(c echo.Context) Role {
	key := routeKey(c.Request().Method, c.Path())
	if r, ok := routeRoles[key]; ok {
		return r
	}
	for _, rt := range c.Echo().Routes() {
		if routeKey(rt.Method, rt.Path) == key {
			return RoleAdmin // registered without a role: closed
		}
	}
	return RoleViewer
}

// allows says whether the caller of c may call a route that needs need
// (a role name); with authentication off every caller may.
func allows(c echo.Context, need string) bool {
	t, ok := c.Get(ctxToken).(credential)
	if !ok {
		return c.Get(ctxAuthOn) == nil
	}
	return t.role.Allows(Role(need))
}

// actor names the caller in the audit log: the token's name, or
// anonymous when authentication is off, at the peer's address.
func actor(c echo.Context) string {
	name := "anonymous"
	if t, ok := c.Get(ctxToken).(credential); ok {
		name = t.name
	}
	return name + "@" + c.RealIP()
}

// requestIDPattern is what a client's X-Request-Id must look like to be
// kept; anything else is replaced by a generated id.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// sanitizeRequestID drops a client request id that does not match
// requestIDPattern, so the RequestID middleware after it generates one.
func sanitizeRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && (!requestIDPattern.MatchString(id) || len(h.Values(echo.HeaderXRequestID)) > 1) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

// ParseTrustedProxies reads --trusted-proxies: CIDRs or single addresses.
func ParseTrustedProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR", s)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// ipExtractor is how the peer address of a request is found: the TCP
// peer, unless it is one of the trusted proxies, in which case the
// nearest untrusted address of X-Forwarded-For, or X-Real-IP. Echo's own
// extractors trust loopback and private networks by default; here only
// the configured ranges are trusted.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	xff, real := echo.ExtractIPFromXFFHeader(opts...), echo.ExtractIPFromRealIPHeader(opts...)
	return func(r *http.Request) string {
		if len(r.Header.Values(echo.HeaderXForwardedFor)) > 0 {
			return xff(r)
		}
		return real(r)
	}
}

// AuthLogFields describe the auth in force, for the start-up log line.
func AuthLogFields(a *Auth) []zap.Field {
	if a == nil {
		return []zap.Field{zap.Bool("auth", false)}
	}
	return []zap.Field{zap.Bool("auth", true), zap.String("auth_file", a.path), zap.Int("tokens", a.Tokens().Len())}
}

// Routes are the routes the server registered, for the test that every
// one has a role.
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }
