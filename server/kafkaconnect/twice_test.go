package kafkaconnect_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/connector-manager/cm/internal/dbtest"
)

// TestTwiceAtOnce: the same Kafka Connect call sent twice at once, as a
// retrying client or a double click does, answers as the call alone
// would for both (or, for the second create or delete, what the first one
// left), never a conflict or a server error.
func TestTwiceAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := node(t, url)
		src, sink := fileSource(t, 3)
		name := "kc_twice-incr_trans-1-0"
		path := "/connectors/" + name
		twice := func(what, method, path string, body any, want ...[2]int) {
			t.Helper()
			out := make(chan int, 2)
			for range 2 {
				go func() { out <- do(t, n, method, path, body).Status }()
			}
			got := []int{<-out, <-out}
			slices.Sort(got)
			for _, w := range want {
				if got[0] == w[0] && got[1] == w[1] {
					return
				}
			}
			t.Fatalf("%s twice at once answered %v, want one of %v", what, got, want)
		}
		cfg := fileConfig(src, sink)
		twice("PUT config of an absent connector", "PUT", path+"/config", cfg, [2]int{200, 201})
		sinkHas(t, src, sink, 3)
		changed := withName(cfg, name)
		changed["source.pollInterval"] = "1s"
		twice("PUT of a changed config", "PUT", path+"/config", changed, [2]int{200, 200})
		var got map[string]string
		do(t, n, "GET", path+"/config", nil).decode(t, &got)
		if !mapsEqual(got, changed) {
			t.Fatalf("config %v, want %v", got, changed)
		}
		twice("pause", "PUT", path+"/pause", nil, [2]int{202, 202})
		waitState(t, n, name, "PAUSED")
		twice("resume", "PUT", path+"/resume", nil, [2]int{202, 202})
		waitState(t, n, name, "RUNNING")
		twice("stop", "PUT", path+"/stop", nil, [2]int{204, 204})
		waitState(t, n, name, "STOPPED")
		twice("delete", "DELETE", path, nil, [2]int{204, 204}, [2]int{204, 404})
		if r := do(t, n, "GET", path, nil); r.Status != http.StatusNotFound {
			t.Fatalf("GET after the deletes: %d %s", r.Status, r.Body)
		}
	})
}
