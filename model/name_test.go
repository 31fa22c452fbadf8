package model

import (
	"errors"
	"testing"
)

func TestParseTaskNameRoundTrip(t *testing.T) {
	for _, s := range []string{
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:0000000001",
		"127.0.0.1-8088:connector_v2:P1-full_trans-12-3:9999999999",
		"cm-a.example.com-8088:connector_v2:p-incr_trans-0-0:0000000042",
	} {
		n, err := ParseTaskName(s)
		if err != nil {
			t.Fatalf("ParseTaskName(%q): %v", s, err)
		}
		if n.String() != s {
			t.Errorf("round trip %q -> %q", s, n.String())
		}
	}
	n, _ := ParseTaskName("10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:0000000001")
	if n.Node != "10.0.0.1-9000" || n.Node.Host() != "10.0.0.1" || n.Component.Project != "p_493po" ||
		n.Component.Type != TypeIncr || n.Component.N != 1 || n.Component.M != 0 || n.Version != 1 {
		t.Errorf("parsed %+v", n)
	}
}

func TestParseTaskRef(t *testing.T) {
	for _, s := range []string{"p_493po-incr_trans-1-0", "connector_v2:p_493po-incr_trans-1-0"} {
		r, err := ParseTaskRef(s)
		if err != nil || r.Name != nil || r.Component.String() != "p_493po-incr_trans-1-0" {
			t.Errorf("ParseTaskRef(%q) = %+v, %v", s, r, err)
		}
	}
	if _, err := ParseTaskName("p_493po-incr_trans-1-0"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("a bare component is not a full name: %v", err)
	}
}

func TestParseTaskNameRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"garbage",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:1",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:0000000000",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:00000000001",
		"10.0.0.1-9000:connector_v1:p_493po-incr_trans-1-0:0000000001",
		"10.0.0.1:connector_v2:p_493po-incr_trans-1-0:0000000001",
		"10.0.0.1-99999:connector_v2:p_493po-incr_trans-1-0:0000000001",
		"10.0.0.1-09000:connector_v2:p_493po-incr_trans-1-0:0000000001",
		"xxx.xxx.xxx.xxx-9000:connector_v2:p_493po****-incr_trans-1-0:0000000001",
		"10.0.0.1-9000:connector_v2:p_493po-oops_trans-1-0:0000000001",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1:0000000001",
		"10.0.0.1-9000:connector_v2:p-493po-incr_trans-1-0:0000000001",
		"connector_v2:p_493po-incr_trans-1-0:extra",
		"10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:000000000a",
	} {
		if _, err := ParseTaskRef(s); !errors.Is(err, ErrInvalidName) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseTaskRef(%q) = %v, want ErrInvalidName", s, err)
		}
	}
}

func TestNodeIDFromAddr(t *testing.T) {
	cases := map[string]NodeID{"127.0.0.1:8088": "127.0.0.1-8088", ":9000": "127.0.0.1-9000", "0.0.0.0:1": "127.0.0.1-1"}
	for in, want := range cases {
		got, err := NodeIDFromAddr(in)
		if err != nil || got != want {
			t.Errorf("NodeIDFromAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NodeIDFromAddr("nope"); err == nil {
		t.Error("NodeIDFromAddr(nope) succeeded")
	}
}

func FuzzParseTaskRef(f *testing.F) {
	f.Add("10.0.0.1-9000:connector_v2:p_493po-incr_trans-1-0:0000000001")
	f.Add("p_493po-full_trans-1-0")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTaskRef(s)
		if err != nil {
			return
		}
		if r.Name != nil {
			again, err := ParseTaskName(r.Name.String())
			if err != nil || again != *r.Name {
				t.Fatalf("%q parsed to %v, which does not round-trip: %v", s, r.Name, err)
			}
		}
		if _, err := ParseComponent(r.Component.String()); err != nil {
			t.Fatalf("component %q does not re-parse: %v", r.Component, err)
		}
	})
}
