package supervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// seqSource yields batches 1..n, one record and one position each, then
// fails with end (io.EOF or another error). It counts the Read calls that
// have begun.
type seqSource struct {
	n   int
	end error
	// ahead makes it a connector.Prefetcher: read a batch ahead.
	ahead bool

	mu     sync.Mutex
	reads  int
	called chan struct{} // receives after each Read began
}

func (s *seqSource) Open(context.Context, map[string]checkpoint.Position) error { return nil }
func (s *seqSource) Prefetch() bool                                             { return s.ahead }
func (s *seqSource) Close() error                                               { return nil }

func (s *seqSource) Read(ctx context.Context) (connector.Batch, error) {
	s.mu.Lock()
	s.reads++
	i := s.reads
	s.mu.Unlock()
	select {
	case s.called <- struct{}{}:
	default:
	}
	if i > s.n {
		if s.end != nil {
			return connector.Batch{}, s.end
		}
		<-ctx.Done()
		return connector.Batch{}, ctx.Err()
	}
	return connector.Batch{
		Records:   []connector.Record{{Subtopic: "s", TS: int64(i), Payload: []byte(fmt.Sprint(i))}},
		Positions: []checkpoint.Position{{Subtopic: "s", TS: int64(i), Token: fmt.Sprint(i)}},
	}, nil
}

// gateSink records what it wrote. Write of batch 1 returns only after the
// source began reading batch 2, which proves the two overlap; failAt makes
// the Write of that batch fail.
type gateSink struct {
	src    *seqSource
	failAt int
	wrote  []string
}

func (k *gateSink) Open(context.Context) error { return nil }
func (k *gateSink) Close() error               { return nil }

func (k *gateSink) Write(ctx context.Context, b connector.Batch) error {
	p := string(b.Records[0].Payload)
	if p == "1" {
		deadline := time.After(10 * time.Second)
		for {
			k.src.mu.Lock()
			reads := k.src.reads
			k.src.mu.Unlock()
			if reads >= 2 {
				break
			}
			select {
			case <-k.src.called:
			case <-deadline:
				return errors.New("the source was not read ahead while the sink wrote batch 1")
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if fmt.Sprint(k.failAt) == p {
		return errors.New("target refused batch " + p)
	}
	k.wrote = append(k.wrote, p)
	return nil
}

// runLoop runs one runner loop over src and snk against a real store and
// committer, and returns the durable checkpoint and the loop's error.
func runLoop(t *testing.T, src connector.Source, snk connector.Sink) (durable string, loopErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, _ := model.ParseDSN("sqlite:" + filepath.Join(t.TempDir(), "cm.db"))
	store, err := model.Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	name, err := model.ParseTaskName("127.0.0.1-8088:connector_v2:p_t-incr_trans-1-0:0000000001")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	task := &model.Task{Component: name.Component.String(), Project: "p_t", Type: model.TypeIncr, Node: name.Node,
		Version: name.Version, Desired: model.DesiredRunning, State: model.StateRunning, Config: "{}", CreatedAt: now, UpdatedAt: now}
	if err := store.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := store.ClaimHeartbeat(ctx, task.Component, task.Version, task.Node); err != nil {
		t.Fatal(err)
	}
	committer := checkpoint.NewCommitter(checkpoint.CommitterConfig{}, store, zap.NewNop(), checkpoint.Hooks{})
	committer.Register(task.Component, task.Version, nil)
	r := &runner{component: task.Component, name: name, typ: task.Type, src: src, snk: snk,
		committer: committer, log: zap.NewNop()}
	loopErr = r.loop(ctx)
	if err := committer.Flush(ctx, task.Component); err != nil {
		t.Fatal(err)
	}
	cps, err := store.Checkpoints(ctx, task.Component)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 {
		return "", loopErr
	}
	return cps[0].Token, loopErr
}

// TestRunnerReadsAhead: the source reads the next batch while the sink
// writes the last; batches are written in order; a source error arrives
// only after every batch read before it was written; positions become
// durable only for written batches.
func TestRunnerReadsAhead(t *testing.T) {
	t.Run("ends after the last batch", func(t *testing.T) {
		src := &seqSource{n: 5, end: errors.New("source ended"), ahead: true, called: make(chan struct{}, 1)}
		snk := &gateSink{src: src}
		cp, err := runLoop(t, src, snk)
		if err == nil || err.Error() != "source ended" {
			t.Fatalf("loop ended with %v, want the source's error", err)
		}
		if got := fmt.Sprint(snk.wrote); got != "[1 2 3 4 5]" {
			t.Errorf("wrote %s, want [1 2 3 4 5]", got)
		}
		if cp != "5" {
			t.Errorf("durable checkpoint %q, want 5", cp)
		}
	})
	t.Run("a sink failure keeps the batch and those read after it out of the checkpoint", func(t *testing.T) {
		src := &seqSource{n: 5, ahead: true, called: make(chan struct{}, 1)}
		snk := &gateSink{src: src, failAt: 3}
		cp, err := runLoop(t, src, snk)
		if err == nil || err.Error() != "writing to sink: target refused batch 3" {
			t.Fatalf("loop ended with %v, want the sink's error", err)
		}
		if got := fmt.Sprint(snk.wrote); got != "[1 2]" {
			t.Errorf("wrote %s, want [1 2]", got)
		}
		if cp != "2" {
			t.Errorf("durable checkpoint %q, want 2", cp)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if src.reads > 4 {
			t.Errorf("the source was read %d times; at most one batch ahead of the failed write (4)", src.reads)
		}
	})
}

// turnSink fails a write made while its source is being read.
type turnSink struct {
	src   *seqSource
	wrote []string
}

func (k *turnSink) Open(context.Context) error { return nil }
func (k *turnSink) Close() error               { return nil }

func (k *turnSink) Write(_ context.Context, b connector.Batch) error {
	k.src.mu.Lock()
	reads := k.src.reads
	k.src.mu.Unlock()
	// The batch written is the last one read: no read ran ahead of it.
	if p := string(b.Records[0].Payload); p != fmt.Sprint(reads) {
		return fmt.Errorf("writing batch %s while the source was read %d times", p, reads)
	}
	k.wrote = append(k.wrote, string(b.Records[0].Payload))
	return nil
}

// TestRunnerReadsInTurn: a source that is not a connector.Prefetcher (a
// file) is read and written in turn on one goroutine: no read runs while
// a batch is written.
func TestRunnerReadsInTurn(t *testing.T) {
	src := &seqSource{n: 5, end: errors.New("source ended"), called: make(chan struct{}, 1)}
	snk := &turnSink{src: src}
	cp, err := runLoop(t, src, snk)
	if err == nil || err.Error() != "source ended" {
		t.Fatalf("loop ended with %v, want the source's error", err)
	}
	if got := fmt.Sprint(snk.wrote); got != "[1 2 3 4 5]" || cp != "5" {
		t.Fatalf("wrote %s, durable %q; want [1 2 3 4 5] and 5", got, cp)
	}
}

// hungSource opens like a server that accepts connections and never
// answers: Open returns only when its context ends.
type hungSource struct{ seqSource }

func (h *hungSource) Open(ctx context.Context, _ map[string]checkpoint.Position) error {
	<-ctx.Done()
	return fmt.Errorf("connecting: %w", ctx.Err())
}

// TestRunnerOpenTimeout: an open that does not finish in time fails with
// OPEN_TIMEOUT (retryable), while a stop during the open is just a stop.
func TestRunnerOpenTimeout(t *testing.T) {
	r := &runner{src: &hungSource{}, log: zap.NewNop(), openTimeout: 100 * time.Millisecond}
	err := r.open(context.Background())
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Detail.Code != model.CodeOpenTimeout || ce.Permanent {
		t.Fatalf("open of a hung source: %v, want a retryable %s", err, model.CodeOpenTimeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.openTimeout = time.Minute
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := r.open(ctx); !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Fatalf("open stopped by its caller: %v, want context.Canceled", err)
	}
}
