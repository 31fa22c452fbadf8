package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/connector-manager/cm/model"
)

type stringer string

func (s stringer) String() string { return string(s) }

// TestScrubbedLogger: the runner's logger scrubs messages, fields given to
// With and to the call, errors and stringers, at every level it logs.
func TestScrubbedLogger(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	s := model.ScrubberOf(model.Config{"source": {"password": "hunter2-pw", "dsn": "mysql://u:dsn-pw-9@h/db"}})
	log := scrubbed(zap.New(core), s).With(zap.String("config", "password is hunter2-pw")).Named("x")
	log.Warn("dialling mysql://u:dsn-pw-9@h/db failed",
		zap.Error(fmt.Errorf("connect u:hunter2-pw@tcp(h:1)/db: %w", errors.New("refused"))),
		zap.Stringer("dsn", stringer("mysql://u:dsn-pw-9@h/db")),
		zap.ByteString("raw", []byte("hunter2-pw")),
		zap.Int("port", 1))
	log.Debug("debug hunter2-pw")
	if logs.Len() != 2 {
		t.Fatalf("%d entries", logs.Len())
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, "hunter2") || strings.Contains(line, "dsn-pw") {
			t.Errorf("log shows a secret: %s", line)
		}
		if !strings.Contains(line, model.Masked) {
			t.Errorf("nothing masked: %s", line)
		}
	}
	if got := logs.All()[0].ContextMap()["port"]; got != int64(1) {
		t.Errorf("a number field changed: %v", got)
	}
}
