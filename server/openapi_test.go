package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"

	"github.com/connector-manager/cm/docs"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/server"
	"github.com/connector-manager/cm/server/kafkaconnect"
)

// undocumentedPrefix is the one part of the router docs/openapi.yaml
// leaves out: the runtime profiles, an admin debugging surface whose
// routes are net/http/pprof's, not cm's API.
const undocumentedPrefix = "/debug/pprof"

type openAPIDoc struct {
	OpenAPI string `yaml:"openapi"`
	Info    struct {
		Title   string `yaml:"title"`
		Version string `yaml:"version"`
	} `yaml:"info"`
	Common     []string                        `yaml:"x-commonErrCodes"`
	Write      []string                        `yaml:"x-writeErrCodes"`
	Routing    []string                        `yaml:"x-routingErrCodes"`
	Paths      map[string]map[string]openAPIOp `yaml:"paths"`
	Components map[string]map[string]yaml.Node `yaml:"components"`
	raw        map[string]any
}

type openAPIOp struct {
	OperationID string           `yaml:"operationId"`
	Summary     string           `yaml:"summary"`
	Role        string           `yaml:"x-role"`
	ErrCodes    []string         `yaml:"x-errCodes"`
	Parameters  []map[string]any `yaml:"parameters"`
	Responses   map[string]any   `yaml:"responses"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

func parseOpenAPI(t *testing.T, b []byte) *openAPIDoc {
	t.Helper()
	var d openAPIDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if err := yaml.Unmarshal(b, &d.raw); err != nil {
		t.Fatal(err)
	}
	return &d
}

// routeKeys are the "METHOD /path" of the routes the server registered,
// in OpenAPI's spelling (/a/{id} for Echo's /a/:id), without the
// router's own not-found entries, the undocumented prefix and the Kafka
// Connect paths: those are Kafka Connect's API, specified by Kafka's own
// OpenAPI document, with cm's mapping in docs/kafka-connect.md, which
// TestKafkaConnectPathsDocumented holds to the routes.
func routeKeys(routes []*echo.Route) map[string]bool {
	param := regexp.MustCompile(`:([^/]+)`)
	out := map[string]bool{}
	for _, rt := range routes {
		if rt.Method == echo.RouteNotFound || strings.HasPrefix(rt.Path, undocumentedPrefix) || kafkaconnect.Owns(rt.Path) {
			continue
		}
		out[rt.Method+" "+param.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	return out
}

// routeProblems compares the routes with the document's operations: a
// route without an operation, and an operation without a route.
func routeProblems(d *openAPIDoc, routes map[string]bool) []string {
	var out []string
	documented := map[string]bool{}
	for path, ops := range d.Paths {
		for m := range ops {
			if !httpMethods[m] {
				continue
			}
			key := strings.ToUpper(m) + " " + path
			documented[key] = true
			if !routes[key] {
				out = append(out, fmt.Sprintf("docs/openapi.yaml documents %s, which the server does not register", key))
			}
		}
	}
	for key := range routes {
		if !documented[key] {
			out = append(out, fmt.Sprintf("route %s is not in docs/openapi.yaml: document it (parameters, result, x-errCodes, x-role)", key))
		}
	}
	sort.Strings(out)
	return out
}

// refs lists every $ref in v.
func refs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				*out = append(*out, s)
				continue
			}
			refs(e, out)
		}
	case []any:
		for _, e := range x {
			refs(e, out)
		}
	}
}

func resolve(d *openAPIDoc, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = d.raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestOpenAPIMatchesTheRoutes holds docs/openapi.yaml to the server: every
// route the real wiring registers (but the pprof profiles) has an
// operation and every operation a route; each operation says the role
// the route needs; the errCodes it lists are ones Classify answers, with
// a response for each one's status; the ErrCode schema names every code
// of the catalogue; every $ref resolves; GET /openapi.yaml serves the file.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	d := parseOpenAPI(t, docs.OpenAPI)
	if !strings.HasPrefix(d.OpenAPI, "3.0.") && !strings.HasPrefix(d.OpenAPI, "3.1.") {
		t.Errorf("openapi %q: want 3.0.x or 3.1.x", d.OpenAPI)
	}
	if d.Info.Title == "" || d.Info.Version == "" {
		t.Errorf("info needs a title and a version")
	}
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	routes := routeKeys(n.App.HTTP().Routes())
	if len(routes) < 15 {
		t.Fatalf("the router lists %d routes", len(routes))
	}
	for _, p := range routeProblems(d, routes) {
		t.Error(p)
	}

	var all []string
	refs(d.raw, &all)
	for _, r := range all {
		if _, ok := resolve(d, r); !ok {
			t.Errorf("$ref %s does not resolve", r)
		}
	}

	required, allowed := server.ErrCodeStatuses()
	roles, open := server.RouteRoles(), server.OpenRoutes()
	listed := map[string]bool{}
	for _, c := range slices.Concat(d.Common, d.Write, d.Routing) {
		listed[c] = true
		if _, ok := allowed[c]; !ok {
			t.Errorf("the document's common errCode %s is not one Classify answers", c)
		}
	}
	ids := map[string]string{}
	for path, ops := range d.Paths {
		for m, op := range ops {
			key := strings.ToUpper(m) + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: needs an operationId and a summary", key)
			}
			if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %s is also %s's", key, op.OperationID, other)
			}
			ids[op.OperationID] = key
			wantRole := string(roles[key])
			if open[key] {
				wantRole = "open"
			}
			if op.Role != wantRole {
				t.Errorf("%s: x-role %q, but the route needs %q (server/auth.go)", key, op.Role, wantRole)
			}
			if op.Responses["200"] == nil {
				t.Errorf("%s: no 200 response", key)
			}
			codes := slices.Concat(op.ErrCodes, d.Common)
			if m == "post" && !strings.HasPrefix(path, "/internal/") {
				codes = append(codes, d.Write...)
			}
			for _, c := range codes {
				listed[c] = true
				status, ok := allowed[c]
				if !ok {
					t.Errorf("%s: x-errCodes names %s, which Classify never answers", key, c)
					continue
				}
				if op.Responses[strconv.Itoa(status)] == nil {
					t.Errorf("%s: answers %s but documents no %d response", key, c, status)
				}
			}
			for _, p := range op.Parameters {
				if r, ok := p["$ref"].(string); ok {
					v, _ := resolve(d, r)
					p, _ = v.(map[string]any)
				}
				if p == nil || p["name"] == nil || p["schema"] == nil || (p["in"] != "query" && p["in"] != "header" && p["in"] != "path") {
					t.Errorf("%s: parameter %v needs a name, in (query, header or path) and a schema", key, p)
				}
			}
		}
	}
	enum := map[string]bool{}
	var node yaml.Node
	if sch, ok := d.Components["schemas"]["ErrCode"]; ok {
		node = sch
	}
	var errCode struct {
		Enum []string `yaml:"enum"`
	}
	if err := node.Decode(&errCode); err != nil || len(errCode.Enum) == 0 {
		t.Fatalf("components.schemas.ErrCode needs an enum: %v", err)
	}
	for _, c := range errCode.Enum {
		enum[c] = true
		if _, ok := allowed[c]; !ok {
			t.Errorf("the ErrCode enum names %s, which Classify never answers", c)
		}
	}
	for c := range required {
		if !enum[c] {
			t.Errorf("errCode %s of the catalogue is not in the ErrCode enum of docs/openapi.yaml", c)
		}
		if !listed[c] {
			t.Errorf("errCode %s of the catalogue is answered by no operation of docs/openapi.yaml (x-errCodes)", c)
		}
	}

	resp, err := http.Get(n.URL + server.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, docs.OpenAPI) || !strings.Contains(resp.Header.Get("Content-Type"), "yaml") {
		t.Errorf("GET %s = %d %s, %d bytes; want 200 with docs/openapi.yaml", server.OpenAPIPath, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}

// TestOpenAPICheckCatchesDrift: the comparison above fails for a route
// registered without documentation and for a documented route that does
// not exist.
func TestOpenAPICheckCatchesDrift(t *testing.T) {
	d := parseOpenAPI(t, docs.OpenAPI)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{NoJobs: true})
	routes := n.App.HTTP().Routes()
	if p := routeProblems(d, routeKeys(routes)); len(p) != 0 {
		t.Fatalf("the document and the routes differ already: %v", p)
	}
	added := append(slices.Clone(routes), &echo.Route{Method: "POST", Path: "/connector/task/v2/frobnicate"},
		&echo.Route{Method: "GET", Path: undocumentedPrefix + "/heap"})
	if p := routeProblems(d, routeKeys(added)); len(p) != 1 || !strings.Contains(p[0], "POST /connector/task/v2/frobnicate is not in docs/openapi.yaml") {
		t.Errorf("an undocumented route: %v", p)
	}
	var fewer []*echo.Route
	for _, rt := range routes {
		if rt.Path != "/connector/task/v2/stop" {
			fewer = append(fewer, rt)
		}
	}
	if p := routeProblems(d, routeKeys(fewer)); len(p) != 1 || !strings.Contains(p[0], "documents POST /connector/task/v2/stop, which the server does not register") {
		t.Errorf("a documented route that does not exist: %v", p)
	}
}
