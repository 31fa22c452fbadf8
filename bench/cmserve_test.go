package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cmBinary is cm built once per benchmark run: the control-plane
// benchmarks measure a real `cm serve` child process, so that its CPU, RSS
// and open files are its own and not the load generator's.
var cmBinary = struct {
	once sync.Once
	path string
	err  error
}{}

func buildCM(b testing.TB) string {
	b.Helper()
	cmBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "cm-bench-bin-")
		if err != nil {
			cmBinary.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// go test puts the bin directory of the go command running it first
		// on PATH, so "go" is that same toolchain.
		cmBinary.path = filepath.Join(dir, "cm")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", cmBinary.path, "github.com/connector-manager/cm/cmd/cm").CombinedOutput()
		if err != nil {
			cmBinary.err = fmt.Errorf("go build cm/cmd/cm: %w\n%s", err, out)
		}
	})
	if cmBinary.err != nil {
		b.Fatal(cmBinary.err)
	}
	return cmBinary.path
}

// cmServe is a running `cm serve` child.
type cmServe struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:PORT
	log  string
	done chan struct{}
}

// startServe runs `cm serve` on addr with its store at store, production
// defaults but for the per-client rate limit (off: the load generators are
// one client), and waits until it answers /healthz.
func startServe(b testing.TB, bin, addr, store, dir string) *cmServe {
	b.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("cm-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"),
		"--file-root", dir, "--rate-limit", "0", "--log-level", "info")
	cmd.Env = append(os.Environ(), "CM_DB="+store)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		b.Fatal(err)
	}
	f.Close()
	p := &cmServe{cmd: cmd, url: "http://" + addr, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	b.Cleanup(func() { p.kill(b) })
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := c.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			b.Fatalf("cm exited at start:\n%s", p.tail())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("cm did not answer /healthz within 2 min:\n%s", p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *cmServe) kill(b testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		b.Errorf("cm %d did not die within 30 s of SIGKILL", p.cmd.Process.Pid)
	}
}

func (p *cmServe) pid() int { return p.cmd.Process.Pid }

func (p *cmServe) tail() string {
	raw, _ := os.ReadFile(p.log)
	if len(raw) > 8000 {
		raw = raw[len(raw)-8000:]
	}
	return string(raw)
}

// rssMB is the resident set size of pid.
func rssMB(pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// openFiles counts the file descriptors pid holds.
func openFiles(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// fileLimit is the soft RLIMIT_NOFILE of pid, from /proc/<pid>/limits.
func fileLimit(pid int) string {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			if f := strings.Fields(strings.TrimPrefix(l, "Max open files")); len(f) >= 2 {
				return f[0] + " soft, " + f[1] + " hard"
			}
		}
	}
	return "?"
}

// loadAvg is /proc/loadavg's first three figures.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// profileServe takes a CPU profile of the cm child for the next d (its
// /debug/pprof/profile; authentication is off) when CM_BENCH_PROFILE names
// a directory. The returned wait blocks until the profile is written to
// <dir>/<name>.cpu.pprof and logs the top of `go tool pprof -top`.
func profileServe(b testing.TB, p *cmServe, bin, name string, d time.Duration) (wait func()) {
	dir := os.Getenv("CM_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	path := filepath.Join(dir, name+".cpu.pprof")
	errc := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: d + time.Minute}
		resp, err := c.Get(p.url + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
		if err != nil {
			errc <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			errc <- fmt.Errorf("profile: %d %s", resp.StatusCode, raw)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			errc <- err
			return
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			errc <- err
			return
		}
		errc <- f.Close()
	}()
	return func() {
		if err := <-errc; err != nil {
			logf(b, "CPU profile of cm (%s): %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=30", bin, path).CombinedOutput()
		if err != nil {
			logf(b, "go tool pprof %s: %v\n%s", path, err, out)
			return
		}
		logf(b, "CPU profile of cm, %s (%s), by cumulative time:\n%s", name, path, out)
	}
}

// api is a client of a cm node's (or the baseline's) HTTP API, with enough
// kept-alive connections for the benchmarks' concurrency.
type api struct {
	base string
	c    *http.Client
}

func newAPI(base string) *api {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &api{base: base, c: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// answer is an envelope's status and error code ("" on success).
type answer struct {
	status  int
	code    string
	success bool
	result  json.RawMessage
	raw     []byte
}

// call sends one request; err is a transport error (no answer at all).
func (a *api) call(ctx context.Context, method, path string, body []byte) (answer, error) {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	ans := answer{status: resp.StatusCode, raw: raw}
	var env struct {
		ErrCode   *string         `json:"errCode"`
		IsSuccess bool            `json:"isSuccess"`
		Result    json.RawMessage `json:"result"`
	}
	if json.Unmarshal(raw, &env) == nil {
		ans.success, ans.result = env.IsSuccess, env.Result
		if env.ErrCode != nil {
			ans.code = *env.ErrCode
		}
	}
	if !ans.success && ans.code == "" {
		ans.code = "HTTP_" + strconv.Itoa(resp.StatusCode)
	}
	return ans, nil
}

// latencies collects per-call times from several goroutines.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ds) == 0 {
		return 0
	}
	s := slices.Clone(l.ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (l *latencies) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ds)
}

// codes counts answers by errCode (or HTTP status without one).
type codes struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *codes) add(code string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[code]++
	c.mu.Unlock()
}

func (c *codes) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.m {
		n += v
	}
	return n
}

func (c *codes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, c.m[k]))
	}
	return strings.Join(parts, ", ")
}

// median of xs (the lower middle for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// envInt and envDuration read a benchmark knob, with its default.
func envInt(b testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration like 90s", name, v)
	}
	return d
}

// logf prints a line of a control-plane benchmark on the standard output:
// go test keeps only the first lines of a benchmark's b.Log output unless
// run with -v, and these lines are the figures.
func logf(b testing.TB, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Printf("    %s: %s\n", b.Name(), strings.ReplaceAll(msg, "\n", "\n        "))
}

// statements reads the node's count of SQL statements by operation and
// table (cm_store_query_duration_seconds_count of /metrics: every statement
// gorm runs; BEGIN and COMMIT are not among them).
func (a *api) statements(ctx context.Context) map[string]float64 {
	const metric = "cm_store_query_duration_seconds_count{"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, metric) {
			continue
		}
		labels, val, ok := strings.Cut(strings.TrimPrefix(l, metric), "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		var op, table string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "op":
				op = strings.Trim(v, `"`)
			case "table":
				table = strings.Trim(v, `"`)
			}
		}
		out[strings.TrimSpace(op+" "+table)] += v
	}
	return out
}

// perOp lists the statements between two reads of statements, per
// operation of n, largest first: "12.1 (query tasks 4.0, ...)".
func perOp(before, after map[string]float64, n int) string {
	if before == nil || after == nil || n == 0 {
		return "unknown"
	}
	type kv struct {
		k string
		v float64
	}
	var list []kv
	total := 0.0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			list = append(list, kv{k, d / float64(n)})
			total += d / float64(n)
		}
	}
	slices.SortFunc(list, func(x, y kv) int {
		switch {
		case x.v > y.v:
			return -1
		case x.v < y.v:
			return 1
		}
		return strings.Compare(x.k, y.k)
	})
	parts := make([]string, 0, len(list))
	for _, e := range list {
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return fmt.Sprintf("%.1f (%s)", total, strings.Join(parts, ", "))
}

// heapServe writes the cm child's heap profile (in use now) to
// <dir>/<name>.heap.pprof when CM_BENCH_PROFILE names a directory, and logs
// the top of `go tool pprof -top -sample_index=inuse_space`.
func heapServe(b testing.TB, p *cmServe, bin, name string) {
	dir := os.Getenv("CM_BENCH_PROFILE")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, name+".heap.pprof")
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(p.url + "/debug/pprof/heap")
	if err != nil {
		logf(b, "heap profile of cm (%s): %v", name, err)
		return
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		logf(b, "heap profile of cm (%s): %d %v", name, resp.StatusCode, err)
		return
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		logf(b, "heap profile of cm (%s): %v", name, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=25", bin, path).CombinedOutput()
	if err != nil {
		logf(b, "go tool pprof %s: %v\n%s", path, err, out)
		return
	}
	goroutines := "?"
	if resp, err := c.Get(p.url + "/debug/pprof/goroutine?debug=1"); err == nil {
		first, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		goroutines, _, _ = strings.Cut(string(first), "\n")
	}
	logf(b, "heap of cm in use, %s (%s; %s; RSS %.0f MB):\n%s", name, path, goroutines, rssMB(p.pid()), out)
}
