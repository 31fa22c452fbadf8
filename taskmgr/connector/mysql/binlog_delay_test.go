package mysql

import (
	"context"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// TestBinlogIdleReportsCaughtUp: a source with nothing more to read hears
// the server's heartbeat and reports delay 0 in a batch of its own; rows
// that come later are delivered with their delay, and the next heartbeat
// reports 0 again.
func TestBinlogIdleReportsCaughtUp(t *testing.T) {
	e := newEnv(t)
	e.createTables(t)
	src, _ := build(t, e.config(t, model.TypeIncr, nil))
	bs := src.(*binlogSource)
	bs.heartbeat = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Other tests may write other databases of the shared server meanwhile:
	// those come as batches with a position, read up to the server's end
	// when the next heartbeat comes.
	caughtUp := func(what string) {
		t.Helper()
		for i := 0; ; i++ {
			b, err := src.Read(ctx)
			if err != nil {
				t.Fatalf("%s: read %d: %v", what, i, err)
			}
			if len(b.Records) > 0 {
				t.Fatalf("%s: %d records from a quiet selection", what, len(b.Records))
			}
			d, okD := b.Metrics[model.MetricDelaySeconds]
			at, okAt := b.Metrics[model.MetricDelayAt]
			if !okD || !okAt {
				t.Fatalf("%s: batch without a delay report: %v", what, b.Metrics)
			}
			if now := time.Now().Unix(); at < float64(now-5) || at > float64(now+1) {
				t.Fatalf("%s: delay measured at %v, now is %d", what, at, now)
			}
			if d == 0 && len(b.Positions) == 0 {
				return // a heartbeat with nothing read: at the server's end
			}
		}
	}
	caughtUp("idle after open")

	e.workload(t, 1)
	var b connector.Batch
	for len(b.Records) == 0 {
		var err error
		if b, err = src.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := b.Metrics[model.MetricDelaySeconds]; !ok {
		t.Fatalf("a batch of rows without a delay report: %v", b.Metrics)
	}
	caughtUp("idle after the rows")
}
