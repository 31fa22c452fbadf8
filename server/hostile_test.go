package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/server"
)

// rawConn opens a TCP connection to the node for requests the http client
// would not send.
func rawConn(t *testing.T, n *cmtest.Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// A safety bound only: each read below ends on the server's doing.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	return c
}

// readToClose reads until the server closes the connection.
func readToClose(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open; read so far: %q", b)
	}
	return string(b)
}

// TestServerTimeouts: a client that sends its headers too slowly, or sits
// on a kept-alive connection, is disconnected; headers beyond the limit are
// answered 431.
func TestServerTimeouts(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{HTTP: func(c *server.Config) {
		c.HeaderTimeout, c.IdleTimeout, c.MaxHeaderBytes = 300*time.Millisecond, 300*time.Millisecond, 4<<10
	}})
	t.Run("slow headers", func(t *testing.T) {
		c := rawConn(t, n)
		if _, err := io.WriteString(c, "POST /connector/task/v2/stop?taskName=x HTTP/1.1\r\nHost: cm\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := readToClose(t, c); strings.Contains(got, "200 OK") {
			t.Fatalf("answered a request whose headers never ended: %q", got)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := rawConn(t, n)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cm\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz = %v, %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		readToClose(t, c)
	})
	t.Run("huge headers", func(t *testing.T) {
		c := rawConn(t, n)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cm\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB of headers = %v, %v; want 431", resp, err)
		}
	})
}

func TestServerConfigValidate(t *testing.T) {
	ok := server.DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tune := range map[string]func(*server.Config){
		"write timeout cuts waits": func(c *server.Config) { c.WriteTimeout = 5 * time.Minute },
		"read timeout cuts waits":  func(c *server.Config) { c.ReadTimeout = time.Minute },
		"no header timeout":        func(c *server.Config) { c.HeaderTimeout = 0 },
		"no idle timeout":          func(c *server.Config) { c.IdleTimeout = 0 },
		"tiny header limit":        func(c *server.Config) { c.MaxHeaderBytes = 100 },
		"negative rate":            func(c *server.Config) { c.RateLimit = -1 },
		"rate without burst":       func(c *server.Config) { c.RateLimit, c.RateBurst = 10, 0 },
		"short idempotency ttl":    func(c *server.Config) { c.IdempotencyTTL = time.Second },
	} {
		c := server.DefaultConfig()
		tune(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

// from returns a client whose connections come from the loopback address ip.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: d.DialContext}}
}

func send(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestRateLimit: a client's mutating calls beyond its burst are refused
// 429 RATE_LIMITED, retryable, with Retry-After; its reads are not, nor are
// another client's calls.
func TestRateLimit(t *testing.T) {
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{HTTP: func(c *server.Config) { c.RateLimit, c.RateBurst = 0.001, 2 }})
	stop := n.URL + base + "stop?taskName=nope-incr_trans-1-0"
	for i := 0; i < 2; i++ {
		if env := n.Do(t, "POST", base+"stop?taskName=nope-incr_trans-1-0", nil); env.Code() != "TASK_NOT_FOUND" {
			t.Fatalf("call %d within the burst = %d %s", i, env.Status, env.Raw)
		}
	}
	env := n.Do(t, "POST", base+"stop?taskName=nope-incr_trans-1-0", nil)
	if env.Status != http.StatusTooManyRequests || env.Code() != "RATE_LIMITED" || env.Retryable == nil || !*env.Retryable {
		t.Fatalf("call beyond the burst = %d %s", env.Status, env.Raw)
	}
	resp, _ := send(t, from("127.0.0.1"), "POST", stop, nil)
	if resp.Header.Get("Retry-After") != "1000" {
		t.Fatalf("Retry-After = %q, want 1000 (one call per 1000 s)", resp.Header.Get("Retry-After"))
	}
	if env := n.Do(t, "GET", base+"detail?taskName=nope-incr_trans-1-0", nil); env.Code() != "TASK_NOT_FOUND" {
		t.Fatalf("a read of a limited client = %d %s", env.Status, env.Raw)
	}
	if resp, body := send(t, from("127.0.0.2"), "POST", stop, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another client's call = %d %s", resp.StatusCode, body)
	}
	// Nothing refused by the limit reached the use cases: no audit rows
	// beyond the two calls let through (and the other client's).
	rows, err := n.Store.ListAudit(context.Background(), model.AuditFilter{Operation: "stop"})
	if err != nil || len(rows) > 2 {
		t.Fatalf("audit rows of stop = %d, %v", len(rows), err)
	}
}

// auditOf counts the audit rows, and the calls they stand for, of op on comp.
func auditOf(t *testing.T, s *model.Store, comp, op string) (rows int, calls int64) {
	t.Helper()
	all, err := s.ListAudit(context.Background(), model.AuditFilter{Component: comp, Operation: op, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		calls += a.Calls
	}
	return len(all), calls
}

// TestIdempotencyKey: a retried stop or resume with the same key returns
// the first answer and acts once, sequentially and concurrently; the key
// sent with another request is refused.
func TestIdempotencyKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		n := cmtest.Start(t, url, cmtest.Options{})
		comp := "idem-incr_trans-1-0"
		body, _, _ := fileTask(t, comp, 5)
		name := n.OK(t, "POST", base+"create", body).String()
		c := from("127.0.0.1")
		key := map[string]string{"Idempotency-Key": "stop-1"}

		first, firstBody := send(t, c, "POST", n.URL+base+"stop?taskName="+q(name), key)
		again, againBody := send(t, c, "POST", n.URL+base+"stop?taskName="+q(name), key)
		if first.StatusCode != http.StatusOK || again.StatusCode != first.StatusCode || againBody != firstBody {
			t.Fatalf("stop then its retry: %d %s, then %d %s", first.StatusCode, firstBody, again.StatusCode, againBody)
		}
		if again.Header.Get("Idempotent-Replayed") != "true" || first.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("Idempotent-Replayed: first %q, retry %q", first.Header.Get("Idempotent-Replayed"), again.Header.Get("Idempotent-Replayed"))
		}
		if rows, _ := auditOf(t, n.Store, comp, "stop"); rows != 1 {
			t.Fatalf("%d audit rows of stop, want 1", rows)
		}

		// The key with another request: refused, and nothing done.
		reused, reusedBody := send(t, c, "POST", n.URL+base+"resume?taskName="+q(name), key)
		if reused.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(reusedBody, `"IDEMPOTENCY_KEY_REUSED"`) {
			t.Fatalf("key reused for resume = %d %s", reused.StatusCode, reusedBody)
		}
		if rows, _ := auditOf(t, n.Store, comp, "resume"); rows != 0 {
			t.Fatalf("%d audit rows of resume after the refused reuse", rows)
		}
		// Keys are per client: another client's same key is its own.
		other, otherBody := send(t, from("127.0.0.2"), "POST", n.URL+base+"stop?taskName="+q(name), key)
		if other.StatusCode != http.StatusOK || other.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("another client's stop with the same key = %d %s", other.StatusCode, otherBody)
		}

		// Concurrent duplicates: one acts, every one gets its answer.
		const dup = 4
		var wg sync.WaitGroup
		answers := make([]string, dup)
		statuses := make([]int, dup)
		for i := range dup {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, b := send(t, c, "POST", n.URL+base+"resume?taskName="+q(name), map[string]string{"Idempotency-Key": "resume-1"})
				statuses[i], answers[i] = resp.StatusCode, b
			}()
		}
		wg.Wait()
		for i := range dup {
			if statuses[i] != http.StatusOK || answers[i] != answers[0] {
				t.Fatalf("concurrent resume %d = %d %s; first %d %s", i, statuses[i], answers[i], statuses[0], answers[0])
			}
		}
		if rows, _ := auditOf(t, n.Store, comp, "resume"); rows != 1 {
			t.Fatalf("%d audit rows of resume after %d concurrent duplicates, want 1", rows, dup)
		}
		if d := n.Detail(t, name); d.State != model.StateRunning {
			t.Fatalf("after resume: %s", d.State)
		}
		// A bad key is refused before anything runs.
		bad, badBody := send(t, c, "POST", n.URL+base+"stop?taskName="+q(name), map[string]string{"Idempotency-Key": strings.Repeat("k", 200)})
		if bad.StatusCode != http.StatusBadRequest || !strings.Contains(badBody, "INVALID_ARGUMENT") {
			t.Fatalf("a 200-character key = %d %s", bad.StatusCode, badBody)
		}
	})
}

// TestRefusalStormBounded: a storm of refused calls on three tasks writes
// one row per task and refusal at once, and the summary rows that count
// the rest when the windows close (at the latest at shutdown).
func TestRefusalStormBounded(t *testing.T) {
	url := dbtest.SQLiteURL(t)
	n := cmtest.Start(t, url, cmtest.Options{HTTP: func(c *server.Config) { c.RateLimit = 0 }})
	var comps []string
	for _, p := range []string{"sa", "sb", "sc"} {
		comp := p + "-incr_trans-1-0"
		body, _, _ := fileTask(t, comp, 1)
		n.OK(t, "POST", base+"create", body)
		comps = append(comps, comp)
	}
	const storm = 300
	for i := 0; i < storm; i++ {
		// update refuses a RUNNING task: ILLEGAL_STATE.
		env := n.Do(t, "POST", base+"update?taskName="+comps[i%3], `{"sink":{"x":"1"}}`)
		if env.Code() != "ILLEGAL_STATE" {
			t.Fatalf("update %d = %d %s", i, env.Status, env.Raw)
		}
	}
	for _, comp := range comps {
		if rows, calls := auditOf(t, n.Store, comp, "update"); rows != 1 || calls != 1 {
			t.Fatalf("%s: %d rows for %d calls during the storm, want the first refusal's row", comp, rows, calls)
		}
	}
	n.Stop() // the open windows write their summaries
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.Open(context.Background(), dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, comp := range comps {
		if rows, calls := auditOf(t, s, comp, "update"); rows != 2 || calls != storm/3 {
			t.Fatalf("%s: %d rows for %d calls after the storm, want 2 rows for %d", comp, rows, calls, storm/3)
		}
	}
}
