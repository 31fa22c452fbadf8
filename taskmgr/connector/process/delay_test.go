package process

import (
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

// readReport reads until a batch carries a delay report and returns it.
func readReport(t *testing.T, s *source) (delay, at float64) {
	t.Helper()
	ctx := timeout(t, 10*time.Second)
	for {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at, ok := b.Metrics[model.MetricDelayAt]; ok {
			return b.Metrics[model.MetricDelaySeconds], at
		}
	}
}

// TestHeartbeatReportsDelay: a heartbeat with caughtUp reports delay 0,
// one with delaySeconds that delay, both measured now; a plain heartbeat
// after them withdraws the report, and plain heartbeats alone report
// nothing (see TestCheckpointsAndMetrics: the echo mode sends one).
func TestHeartbeatReportsDelay(t *testing.T) {
	for _, c := range []struct {
		mode  string
		delay float64
	}{{"caughtup", 0}, {"behind", 42}} {
		t.Run(c.mode, func(t *testing.T) {
			s := open(t, fakeConfig(t, c.mode), nil)
			before := time.Now().Unix()
			d, at := readReport(t, s)
			if d != c.delay || at < float64(before) || at > float64(time.Now().Unix()) {
				t.Fatalf("report %v at %v, want %v measured since %d", d, at, c.delay, before)
			}
		})
	}
	t.Run("withdraw", func(t *testing.T) {
		s := open(t, fakeConfig(t, "withdraw"), nil)
		// The two heartbeats may come in one batch or in two; what stands
		// at the end is the withdrawal.
		for i := 0; ; i++ {
			d, at := readReport(t, s)
			if at == 0 && d == 0 {
				break
			}
			if i > 0 || d != 0 {
				t.Fatalf("report %d: %v at %v, want the caught-up report then its withdrawal", i, d, at)
			}
		}
	})
}

func TestParseHeartbeat(t *testing.T) {
	for line, want := range map[string]bool{
		`{"type":"heartbeat"}`:                   true,
		`{"type":"heartbeat","caughtUp":true}`:   true,
		`{"type":"heartbeat","delaySeconds":3}`:  true,
		`{"type":"heartbeat","delaySeconds":-1}`: false,
	} {
		if _, err := parseMessage([]byte(line)); (err == nil) != want {
			t.Errorf("parseMessage(%s) = %v", line, err)
		}
	}
}
