package taskmgr

import (
	"errors"
	"strings"
	"testing"

	"github.com/connector-manager/cm/model"
)

// FuzzSplitParam: a deleteParams entry either splits into a scope and a key
// of the config grammar, which join back to the trimmed entry, or is
// refused as an invalid argument. Its corpus is in testdata/fuzz/.
func FuzzSplitParam(f *testing.F) {
	f.Add("source.checkpoint")
	f.Fuzz(func(t *testing.T, s string) {
		scope, key, err := SplitParam(s)
		if err != nil {
			if !errors.Is(err, model.ErrInvalidArgument) {
				t.Fatalf("SplitParam(%q) error %v does not wrap ErrInvalidArgument", s, err)
			}
			return
		}
		if !model.ValidScope(scope) || !model.ValidKey(key) {
			t.Fatalf("SplitParam(%q) = %q, %q", s, scope, key)
		}
		if scope+"."+key != strings.TrimSpace(s) {
			t.Fatalf("SplitParam(%q) = %q, %q: does not join back", s, scope, key)
		}
		if s2, k2, err := SplitParam(scope + "." + key); err != nil || s2 != scope || k2 != key {
			t.Fatalf("SplitParam(%q.%q) = %q, %q, %v", scope, key, s2, k2, err)
		}
		c := model.Config{}
		c.Set(scope, key, "v")
		if c.Validate() != nil || c.Keys()[0] != scope+"."+key {
			t.Fatalf("a config of %s.%s: %v, keys %v", scope, key, c.Validate(), c.Keys())
		}
	})
}
