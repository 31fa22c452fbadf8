package model

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
)

// The corpus of each target is in testdata/fuzz/<target>/; `make fuzz`
// runs each longer, `make test` briefly.

func FuzzParseComponent(f *testing.F) {
	f.Add("p_493po-incr_trans-1-0")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseComponent(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseComponent(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		// Components are stored in columns of 128 and name files: short,
		// and nothing but the grammar's characters.
		if len(s) > 128 || strings.ContainsAny(s, "/\\.:\x00 ") {
			t.Fatalf("ParseComponent accepted %q", s)
		}
		if c.String() != s {
			t.Fatalf("ParseComponent(%q).String() = %q", s, c.String())
		}
		if again, err := ParseComponent(c.String()); err != nil || again != c {
			t.Fatalf("%q parsed to %+v, which re-parses to %+v, %v", s, c, again, err)
		}
		if r, err := ParseTaskRef(nameKind + ":" + s); err != nil || r.Component != c || r.Name != nil {
			t.Fatalf("ParseTaskRef(connector_v2:%s) = %+v, %v", s, r, err)
		}
	})
}

func FuzzParseNodeID(f *testing.F) {
	f.Add("10.0.0.1-9000")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNodeID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseNodeID(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		if string(n) != s || n.Host() == "" || strings.ContainsAny(s, "/\\\x00 ") {
			t.Fatalf("ParseNodeID(%q) = %q, host %q", s, n, n.Host())
		}
		if again, err := ParseNodeID(string(n)); err != nil || again != n {
			t.Fatalf("ParseNodeID(%q) does not re-parse: %q, %v", s, again, err)
		}
		name := TaskName{Node: n, Component: Component{Project: "p", Type: TypeIncr, N: 1}, Version: 1}
		if got, err := ParseTaskName(name.String()); err == nil && got != name {
			t.Fatalf("task name %q of node %q parses to %+v", name, n, got)
		}
	})
}

// FuzzConfigBody: a scoped config body as update and create read it
// (JSON, then Validate). What Validate accepts has keys deleteParams can
// name, survives a JSON round trip, and Clone is a deep copy.
func FuzzConfigBody(f *testing.F) {
	f.Add([]byte(`{"source":{"type":"file","path":"/tmp/x"},"sink":{"password":"s"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c Config
		if err := json.Unmarshal(body, &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Validate error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		n := 0
		for scope, kv := range c {
			if !ValidScope(scope) || strings.Contains(scope, ".") {
				t.Fatalf("Validate accepted scope %q", scope)
			}
			for k := range kv {
				if !ValidKey(k) {
					t.Fatalf("Validate accepted key %q", k)
				}
				n++
			}
		}
		for _, sk := range c.Keys() {
			scope, key, ok := strings.Cut(sk, ".")
			if !ok || !ValidScope(scope) || !ValidKey(key) {
				t.Fatalf("Keys() lists %q, which deleteParams could not name", sk)
			}
			if _, present := c[scope][key]; !present {
				t.Fatalf("Keys() lists %q, which is not in the config", sk)
			}
		}
		if len(c.Keys()) != n {
			t.Fatalf("Keys() lists %d pairs of %d", len(c.Keys()), n)
		}
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var again Config
		if err := json.Unmarshal(raw, &again); err != nil || again.Validate() != nil {
			t.Fatalf("round trip of %s: %v", raw, err)
		}
		for scope, kv := range c {
			if len(kv) > 0 && !maps.Equal(again[scope], kv) {
				t.Fatalf("round trip changed scope %q: %v then %v", scope, kv, again[scope])
			}
		}
		clone := c.Clone()
		for scope := range clone {
			clone.Set(scope, "fuzz-added", "x")
			if _, leaked := c[scope]["fuzz-added"]; leaked {
				t.Fatalf("Clone shares scope %q", scope)
			}
		}
	})
}
