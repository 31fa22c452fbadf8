package taskmgr

import "testing"

func TestConfigValidatesFailpoint(t *testing.T) {
	cfg := DefaultConfig("127.0.0.1-8088")
	for _, fp := range append([]string{""}, Failpoints...) {
		cfg.Failpoint = fp
		if err := cfg.Validate(); err != nil {
			t.Errorf("failpoint %q refused: %v", fp, err)
		}
	}
	cfg.Failpoint = "pullback:nowhere"
	if err := cfg.Validate(); err == nil {
		t.Error("an unknown failpoint was accepted")
	}
}
