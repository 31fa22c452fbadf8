package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// TestProcessFirstPositionAcknowledged: a process connector that starts
// without a checkpoint reports where it starts and waits for cm's durable
// line on stdin before it moves data; by then the position is in the store.
func TestProcessFirstPositionAcknowledged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		got := filepath.Join(t.TempDir(), "durable")
		script := `read -r hello
echo '{"type":"checkpoint","subtopic":"s","ts":1700000000,"token":"start"}'
read -r ack; echo "$ack" > ` + got + `
while :; do echo '{"type":"heartbeat"}'; sleep 0.1; done`
		name := processTask(t, n, "p_ack-incr_trans-1-0", script, nil)
		var line string
		cmtest.Eventually(t, 10*time.Second, "the connector read its durable line", func() bool {
			b, err := os.ReadFile(got)
			line = strings.TrimSpace(string(b))
			return err == nil && line != ""
		})
		var ack struct {
			Type, Subtopic, Token string
			TS                    int64
		}
		if err := json.Unmarshal([]byte(line), &ack); err != nil || ack.Type != "durable" || ack.Subtopic != "s" || ack.TS != 1700000000 || ack.Token != "start" {
			t.Fatalf("durable line = %q (%v)", line, err)
		}
		if cp := n.Detail(t, name).Checkpoint["s"]; cp.Token != "start" {
			t.Fatalf("the acknowledged position is not durable: %+v", cp)
		}
	})
}
