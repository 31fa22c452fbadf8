package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

const (
	// maxGarbage malformed stdout lines in a row fail the source.
	maxGarbage = 100
	// maxLogged bounds the malformed lines logged per source.
	maxLogged = 5
	// maxMessage bounds a stdout line; longer ones are malformed.
	maxMessage = 64 << 10
	// maxCoalesce bounds the messages folded into one batch.
	maxCoalesce = 256
	// handshakeTimeout bounds the handshake write when Open's ctx has no
	// deadline.
	handshakeTimeout = 10 * time.Second
	// drainTimeout bounds the wait for the last stdout and stderr bytes once
	// the program has exited. Its group is killed then, so the pipes end at
	// once unless something escaped the group and still holds them.
	drainTimeout = time.Second
)

var _ connector.Source = (*source)(nil)

// source runs the program and turns its stdout messages into batches. Read
// is called from one goroutine; Close may be called from another.
type source struct {
	cfg     config
	plugins *Plugins
	task    model.TaskName
	typ     model.TaskType
	scopes  model.Config
	dir     string
	log     *zap.Logger

	// Set by Open, then read-only.
	cmd     *exec.Cmd
	pid     int
	stdin   *os.File // write end; closing it is a courtesy stop signal
	stdout  *os.File // read ends, closed by Close
	stderr  *os.File
	logFile *os.File // stderr.log; written by the stderr goroutine until it exits
	logPath string
	tmpDir  string // created by Open when Config.Dir is empty; removed by Close
	tail    *tail
	events  chan event
	// reportedDelay: the last heartbeat spoke of the delay (caughtUp or
	// delaySeconds). Only the stdout reader uses it.
	reportedDelay bool
	// lastSeen is the unix nano time of the last stdout line (or of the
	// end of a pause: a stopped program writes nothing).
	lastSeen atomic.Int64
	// paused: the program's group is stopped (Pause) and not continued yet.
	paused     atomic.Bool
	exited     chan struct{} // closed once the program is reaped
	waitErr    error         // set before exited is closed
	stderrDone chan struct{} // closed when stderr ends
	done       chan struct{} // closed by Close: goroutines stop sending
	wg         sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// Owned by Read.
	in  <-chan event // nil once stdout ended
	err error        // sticky: once set, every Read returns it
}

// event is what the stdout goroutine hands to Read: a message, or the
// protocol failure it detected.
type event struct {
	msg      message
	protocol error
}

// newSource validates the source scope of c without I/O, looking its
// plugin up in plugins.
func newSource(c connector.Config, plugins *Plugins) (*source, error) {
	cfg, err := parseConfig(c, plugins)
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &source{cfg: cfg, plugins: plugins, task: c.Task, typ: c.Type, scopes: c.Scopes, dir: c.Dir, log: log.Named("process")}, nil
}

// Open starts the program and writes the handshake to its stdin.
func (s *source) Open(ctx context.Context, from map[string]checkpoint.Position) error {
	if s.cmd != nil {
		return errors.New("process source is already open")
	}
	hs, err := json.Marshal(newHandshake(s.task, s.typ, s.scopes, from))
	if err != nil {
		return fmt.Errorf("encoding the handshake: %w", err)
	}
	if err := s.start(); err != nil {
		return err
	}
	s.log.Info("connector process started", zap.Int("pid", s.pid), zap.String("plugin", s.cfg.plugin.Name), zap.String("program", s.cfg.plugin.Command[0]))

	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.stdin.SetWriteDeadline(deadline)
	_, err = s.stdin.Write(append(hs, '\n'))
	_ = s.stdin.SetWriteDeadline(time.Time{})
	if errors.Is(err, syscall.EPIPE) {
		// The program is already gone; Read reports how it ended.
		s.log.Debug("connector process exited before reading the handshake")
		err = nil
	}
	if err != nil {
		s.Close()
		return connector.Fail(codeHandshake, "writing the handshake to the connector process's stdin",
			"the process did not read its stdin", "a connector reads one JSON line from stdin when it starts", false, err)
	}
	return nil
}

// start starts the program with its pipes and the goroutines that own them.
// On error nothing is left running or open.
func (s *source) start() (err error) {
	dir := s.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cm-process-"); err != nil {
			return fmt.Errorf("creating a directory for stderr.log: %w", err)
		}
		s.tmpDir = dir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			if s.tmpDir != "" {
				os.RemoveAll(s.tmpDir)
			}
		}
	}()
	s.logPath = filepath.Join(dir, "stderr.log")
	s.logFile, err = os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.logPath, err)
	}
	closers = append(closers, s.logFile)
	fmt.Fprintf(s.logFile, "--- cm %s: starting plugin %s: %s\n", time.Now().Format(time.RFC3339), s.cfg.plugin.Name, s.cfg.plugin.Command[0])

	// The child's ends go to it directly (no copying goroutines in exec), so
	// the parent can read every byte the child wrote before it died.
	var pipes [3][2]*os.File // stdin, stdout, stderr; [0] read end, [1] write end
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("creating pipes: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
		closers = append(closers, r, w)
	}
	argv := s.cfg.plugin.Command
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.cfg.plugin.Workdir
	// A scrubbed environment: CM_TASK, PATH and what the manifest passes
	// through, never cm's own (its store DSN, its settings, secrets).
	cmd.Env = s.plugins.environ(s.cfg.plugin, s.task.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipes[0][0], pipes[1][1], pipes[2][1]
	// Its own group: a stop reaches its children, and a terminal's signals
	// do not reach it. Pdeathsig kills it if cm itself dies (kill -9), so a
	// restarted cm never finds an unsupervised copy still running. (The
	// signal follows the OS thread that forked; Go only retires such a
	// thread when a goroutine locked to it exits, which cm does not do.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	for _, f := range []*os.File{pipes[0][0], pipes[1][1], pipes[2][1]} {
		f.Close()
	}
	if err != nil {
		permanent := errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
		return connector.Fail(codeStartFailed, fmt.Sprintf("starting plugin %s (%s)", s.cfg.plugin.Name, argv[0]), err.Error(),
			"check the command and workdir of the plugin's manifest", permanent, err)
	}

	s.cmd, s.pid = cmd, cmd.Process.Pid
	s.stdin, s.stdout, s.stderr = pipes[0][1], pipes[1][0], pipes[2][0]
	s.tail = newTail(tailLines)
	s.events = make(chan event, maxCoalesce)
	s.in = s.events
	s.exited = make(chan struct{})
	s.stderrDone = make(chan struct{})
	s.done = make(chan struct{})
	s.lastSeen.Store(time.Now().UnixNano())
	s.wg.Add(3)
	go s.wait()
	go s.readStdout()
	go s.copyStderr()
	return nil
}

// wait reaps the program as soon as it exits.
func (s *source) wait() {
	defer s.wg.Done()
	s.waitErr = s.cmd.Wait()
	// Whatever it left in its group dies with it, so nothing keeps working
	// unsupervised or holds the pipes open.
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	s.log.Info("connector process ended", zap.Int("pid", s.pid), zap.String("status", s.describeExit()))
	close(s.exited)
}

// readStdout parses stdout lines into events until stdout ends or Close.
func (s *source) readStdout() {
	defer s.wg.Done()
	defer close(s.events)
	br := bufio.NewReaderSize(s.stdout, maxMessage)
	garbage, logged := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		long := false
		if errors.Is(err, bufio.ErrBufferFull) {
			// Keep the start for the log; skip the rest of the line.
			long, line = true, bytes.Clone(head(line))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if len(line) > 0 || long {
			s.lastSeen.Store(time.Now().UnixNano())
			if ev, ok := s.parse(line, long, &garbage, &logged); ok {
				select {
				case s.events <- ev:
				case <-s.done:
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// parse turns one stdout line into an event; ok is false for lines that
// carry nothing for Read (heartbeats, unknown types, malformed lines below
// the limit).
func (s *source) parse(line []byte, long bool, garbage, logged *int) (event, bool) {
	line = trimEOL(line)
	if len(line) == 0 && !long {
		return event{}, false
	}
	var m message
	err := fmt.Errorf("a line longer than %d bytes", maxMessage)
	if !long {
		m, err = parseMessage(line)
	}
	if err != nil {
		*garbage++
		if *logged < maxLogged {
			*logged++
			s.log.Warn("ignoring a malformed stdout line", zap.Error(err), zap.ByteString("line", head(line)))
		}
		if *garbage == maxGarbage {
			return event{protocol: err}, true
		}
		return event{}, false
	}
	*garbage = 0
	switch m.Type {
	case msgCheckpoint, msgMetrics, msgError:
		return event{msg: m}, true
	case msgHeartbeat:
		// A heartbeat that speaks of the delay, or the first one after
		// one that did, is a report for Read; a plain one only shows life.
		reports := m.CaughtUp || m.DelaySeconds != nil
		if reports || s.reportedDelay {
			s.reportedDelay = reports
			return event{msg: m}, true
		}
	default:
		s.log.Debug("ignoring a stdout message of unknown type", zap.String("type", m.Type))
	}
	return event{}, false
}

// copyStderr appends stderr to the log file and keeps its tail.
func (s *source) copyStderr() {
	defer s.wg.Done()
	defer close(s.stderrDone)
	buf := make([]byte, 32<<10)
	logOK := true
	for {
		n, err := s.stderr.Read(buf)
		if n > 0 {
			if logOK {
				if _, werr := s.logFile.Write(buf[:n]); werr != nil {
					logOK = false
					s.log.Warn("writing the connector's stderr to its log", zap.String("path", s.logPath), zap.Error(werr))
				}
			}
			s.tail.add(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// Read returns the next checkpoints and metrics the program reported,
// folded into one batch. It returns io.EOF when the program exited with
// status 0, and a *connector.Error when it failed, reported an error, broke
// the protocol or fell silent.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	if s.cmd == nil {
		return connector.Batch{}, errors.New("process source: Read before Open")
	}
	var b connector.Batch
	heartbeat := time.NewTimer(s.untilHeartbeat())
	defer heartbeat.Stop()
	for s.err == nil && empty(b) {
		select {
		case ev, ok := <-s.in:
			if !ok {
				s.in = nil
				continue
			}
			s.add(&b, ev)
			s.collect(&b)
		case <-s.exited:
			s.drain(&b)
			if s.err == nil {
				s.err = s.exitError()
			}
		case <-heartbeat.C:
			if d := s.untilHeartbeat(); d > 0 {
				heartbeat.Reset(d)
				continue
			}
			if len(s.in) > 0 {
				// Stdout was written while nobody was reading.
				heartbeat.Reset(s.cfg.heartbeatTimeout)
				continue
			}
			s.err = s.fail(codeHeartbeatTimeout,
				fmt.Sprintf("the connector process wrote nothing on stdout for %s", s.cfg.heartbeatTimeout),
				"it may be hung, or it does not send heartbeats",
				"a connector writes a heartbeat or checkpoint more often than source.heartbeatTimeout; see its stderr in "+s.logPath,
				false)
		case <-ctx.Done():
			return connector.Batch{}, ctx.Err()
		}
	}
	if !empty(b) {
		// What came before a failure is delivered first.
		return b, nil
	}
	return connector.Batch{}, s.err
}

// collect folds the events already queued into b, without waiting.
func (s *source) collect(b *connector.Batch) {
	for i := 0; i < maxCoalesce && s.err == nil && s.in != nil; i++ {
		select {
		case ev, ok := <-s.in:
			if !ok {
				s.in = nil
				return
			}
			s.add(b, ev)
		default:
			return
		}
	}
}

// drain folds in what the program wrote before it exited, waiting a
// bounded time for stdout and stderr to end. Stderr comes first, so an error
// built from stdout carries the whole stderr tail.
func (s *source) drain(b *connector.Batch) {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	select {
	case <-s.stderrDone:
	case <-ctx.Done():
	}
	for s.in != nil && s.err == nil {
		select {
		case ev, ok := <-s.in:
			if !ok {
				s.in = nil
				continue
			}
			s.add(b, ev)
		case <-ctx.Done():
			s.log.Warn("stdout or stderr still open after the connector process exited")
			return
		}
	}
}

// add folds one event into b, or sets s.err for a failure. Positions keep
// the last per subtopic.
func (s *source) add(b *connector.Batch, ev event) {
	if s.err != nil {
		return
	}
	if ev.protocol != nil {
		s.err = s.fail(codeProtocol,
			fmt.Sprintf("the connector process wrote %d malformed lines in a row on stdout", maxGarbage),
			"the last one: "+ev.protocol.Error(),
			"stdout is for protocol messages only, one JSON object a line; write logs to stderr (docs/connector-protocol.md)",
			true)
		return
	}
	m := ev.msg
	switch m.Type {
	case msgCheckpoint:
		p := m.position()
		for i := range b.Positions {
			if b.Positions[i].Subtopic == p.Subtopic {
				b.Positions[i] = p
				return
			}
		}
		b.Positions = append(b.Positions, p)
	case msgMetrics:
		for k, v := range m.Metrics {
			if b.Metrics == nil {
				b.Metrics = map[string]float64{}
			}
			b.Metrics[k] = v
		}
	case msgHeartbeat:
		if b.Metrics == nil {
			b.Metrics = map[string]float64{}
		}
		now := time.Now()
		var report map[string]float64
		switch {
		case m.CaughtUp:
			report = model.DelayMetrics(0, now)
		case m.DelaySeconds != nil:
			report = model.DelayMetrics(time.Duration(min(*m.DelaySeconds, maxDelaySeconds))*time.Second, now)
		default:
			// It no longer says: withdraw the last report, so the task's
			// delay is its checkpoint's age again.
			report = model.NoDelayReport()
		}
		maps.Copy(b.Metrics, report)
	case msgError:
		code, msg := m.Code, m.Message
		if code == "" {
			code = codeReported
		}
		if msg == "" {
			msg = "the connector process reported an error"
		}
		s.err = s.fail(code, msg, m.Reason, m.Proposal, m.Permanent)
	}
}

// maxDelaySeconds bounds a reported delay (about 100 years), so that it
// converts to a time.Duration.
const maxDelaySeconds = 100 * 365 * 24 * 3600

func (s *source) fail(code, message, reason, proposal string, permanent bool) *connector.Error {
	e := connector.Fail(code, message, reason, proposal, permanent, nil)
	e.Detail.Stderr = s.tail.Lines()
	return e
}

// exitError is what the end of the program means once it has been reaped.
func (s *source) exitError() error {
	if st := s.cmd.ProcessState; st != nil && st.Success() {
		return io.EOF
	}
	return s.fail(codeExited, "the connector process "+s.describeExit(),
		"it ended before the task was stopped",
		"read the stderr tail and "+s.logPath+"; fix the connector and resume the task", false)
}

// describeExit says how the program ended; valid once it has been reaped.
func (s *source) describeExit() string {
	st := s.cmd.ProcessState
	if st == nil {
		return fmt.Sprintf("could not be waited for: %v", s.waitErr)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		d := fmt.Sprintf("was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		if ws.CoreDump() {
			d += ", core dumped"
		}
		return d
	}
	return fmt.Sprintf("exited with status %d", st.ExitCode())
}

func (s *source) untilHeartbeat() time.Duration {
	return time.Until(time.Unix(0, s.lastSeen.Load()).Add(s.cfg.heartbeatTimeout))
}

// durableTimeout bounds writing one durable notice to the program's stdin.
const durableTimeout = time.Second

// Durable tells the program, on its stdin, that the first positions of
// subtopics in this run are recorded (connector.Acker): a program that
// started without a checkpoint waits for this line before it moves data, so
// a crash of cm cannot make its restart begin somewhere else. A program
// that does not read its stdin loses nothing: the notice is dropped once
// the pipe is full or closed.
func (s *source) Durable(positions []checkpoint.Position) {
	if s.stdin == nil {
		return
	}
	for _, p := range positions {
		line, err := json.Marshal(durableNotice{Type: "durable", Subtopic: p.Subtopic, TS: p.TS, Token: p.Token})
		if err != nil {
			continue
		}
		_ = s.stdin.SetWriteDeadline(time.Now().Add(durableTimeout))
		_, err = s.stdin.Write(append(line, '\n'))
		_ = s.stdin.SetWriteDeadline(time.Time{})
		if err != nil {
			s.log.Debug("the connector process did not take a durable notice", zap.Error(err))
			return
		}
	}
}

// durableNotice is the line Durable writes.
type durableNotice struct {
	Type     string `json:"type"`
	Subtopic string `json:"subtopic"`
	TS       int64  `json:"ts"`
	Token    string `json:"token"`
}

// Close stops the program: it closes its stdin and sends SIGTERM to its
// group, then SIGKILL once the grace period is over. It returns when the
// program is reaped and every goroutine the source started has exited, so
// it blocks for up to source.grace. It is safe to call more than once.
func (s *source) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *source) shutdown() error {
	if s.cmd == nil {
		return nil
	}
	s.stdin.Close()
	select {
	case <-s.exited:
	default:
		s.signal(syscall.SIGTERM)
		if s.paused.Load() {
			// A stopped group acts on SIGTERM only once continued.
			s.signal(syscall.SIGCONT)
		}
		grace := time.NewTimer(s.cfg.grace)
		select {
		case <-s.exited:
		case <-grace.C:
			s.log.Info("connector process outlived its grace period; killing it",
				zap.Int("pid", s.pid), zap.Duration("grace", s.cfg.grace))
			s.signal(syscall.SIGKILL)
			<-s.exited
		}
		grace.Stop()
	}
	close(s.done)
	// Let stderr reach the log, bounded: something that escaped the group
	// could hold the pipe open forever. Then cut both pipes so the readers
	// return.
	t := time.NewTimer(drainTimeout)
	select {
	case <-s.stderrDone:
	case <-t.C:
	}
	t.Stop()
	s.stdout.Close()
	s.stderr.Close()
	s.wg.Wait()
	fmt.Fprintf(s.logFile, "--- cm %s: the process %s\n", time.Now().Format(time.RFC3339), s.describeExit())
	err := s.logFile.Close()
	if s.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(s.tmpDir))
	}
	return err
}

// Pause stops the program's process group (SIGSTOP), so it moves no data
// while its task is PAUSED; it keeps its connections, memory and position
// (connector.Pauser).
func (s *source) Pause() error {
	if s.cmd == nil {
		return errors.New("process source: Pause before Open")
	}
	s.paused.Store(true)
	if err := syscall.Kill(-s.pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping the connector process group: %w", err)
	}
	return nil
}

// Resume continues the program's process group (SIGCONT). The silence of
// the pause does not count against source.heartbeatTimeout.
func (s *source) Resume() error {
	if s.cmd == nil {
		return errors.New("process source: Resume before Open")
	}
	s.lastSeen.Store(time.Now().UnixNano())
	s.paused.Store(false)
	if err := syscall.Kill(-s.pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("continuing the connector process group: %w", err)
	}
	return nil
}

// signal signals the program's process group.
func (s *source) signal(sig syscall.Signal) {
	if err := syscall.Kill(-s.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("signalling the connector process group", zap.Int("pid", s.pid), zap.Stringer("signal", sig), zap.Error(err))
	}
}

func empty(b connector.Batch) bool { return len(b.Positions) == 0 && len(b.Metrics) == 0 }

func trimEOL(line []byte) []byte {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line
}

func head(line []byte) []byte {
	const show = 200
	if len(line) > show {
		return line[:show]
	}
	return line
}
