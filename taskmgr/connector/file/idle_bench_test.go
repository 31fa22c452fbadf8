package file

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
)

// cpuTime is the CPU (user + system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleSources measures what idle tails cost: n sources, with the
// defaults cm runs them with, read to the end of their files (ten
// directories), left idle past closeAfter, and then measured over a fixed
// wall interval: CPU in percent of one core, and descriptors held. A
// measurement, not a target: docs/benchmarks.md has the figures.
func BenchmarkIdleSources(b *testing.B) {
	const measure = 10 * time.Second
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			// Until they go idle the sources hold their files open.
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				b.Fatal(err)
			}
			if lim.Cur < uint64(n)+512 {
				b.Fatalf("the open file limit %d is too low for %d sources", lim.Cur, n)
			}
			for range b.N {
				w := NewWatcher(nil)
				root := b.TempDir()
				before := openFDs(b)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				first := make(chan struct{}, n)
				srcs := make([]*source, n)
				for i := range srcs {
					dir := filepath.Join(root, "d"+strconv.Itoa(i%10))
					if err := os.MkdirAll(dir, 0o755); err != nil {
						b.Fatal(err)
					}
					path := filepath.Join(dir, strconv.Itoa(i)+".jsonl")
					if err := os.WriteFile(path, []byte(lines(1)), 0o644); err != nil {
						b.Fatal(err)
					}
					s, err := newSource(sourceConfig(model.TypeIncr, "path", path), anywhere, w)
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Open(ctx, nil); err != nil {
						b.Fatal(err)
					}
					srcs[i] = s
					wg.Go(func() {
						once := false
						for {
							bt, err := s.Read(ctx)
							if err != nil {
								return
							}
							if len(bt.Records) > 0 && !once {
								once = true
								first <- struct{}{}
							}
						}
					})
				}
				for range n {
					select {
					case <-first:
					case <-time.After(time.Minute):
						b.Fatal("sources did not read their first line within a minute")
					}
				}
				// Idle long enough to close the files (closeAfter), then measure.
				time.Sleep(closeAfter + time.Second)
				start, wall := cpuTime(b), time.Now()
				time.Sleep(measure)
				used, took := cpuTime(b)-start, time.Since(wall)
				b.ReportMetric(100*used.Seconds()/took.Seconds(), "cpu_%")
				b.ReportMetric(float64(openFDs(b)-before), "fds")
				cancel()
				wg.Wait()
				for _, s := range srcs {
					s.Close()
				}
				w.Close()
			}
		})
	}
}
