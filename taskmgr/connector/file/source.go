package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

const (
	// maxBatch bounds the records of one Read.
	maxBatch = 512
	// maxScan bounds the lines one pass looks at, so skipping a long prefix
	// (a start at a ts) still notices a cancelled ctx.
	maxScan = 8 * maxBatch
	// readChunk is the initial buffer and the smallest read.
	readChunk = 64 << 10
	// maxLine bounds a line, and so the buffer.
	maxLine = 16 << 20
	// pollEvery is how often a source at the end of the file looks for
	// more when it has no file notifications (its watch could not be
	// added).
	pollEvery = 50 * time.Millisecond
	// defaultSafetyPoll is source.pollInterval's default: how often a
	// source with file notifications looks at its file anyway, so a missed
	// notification cannot stall it.
	defaultSafetyPoll = 5 * time.Second
	// closeAfter is how long a tail keeps its file open once it has read
	// nothing new: an idle tail holds no descriptor.
	closeAfter = 5 * time.Second
	// reportEvery is how often a source idle at the end of the file says
	// so (a batch of delay metrics only), so its delay stays 0.
	// Every two seconds, the task heartbeat's default period: the
	// heartbeat carries the last report, so one more often is not seen.
	reportEvery = 2 * time.Second
)

var (
	_ connector.Source     = (*source)(nil)
	_ connector.Ranger     = (*source)(nil)
	_ connector.Subtopicer = (*source)(nil)
)

// source reads a JSON-lines file; see the package comment. Open, Read and
// Close are called from one goroutine.
//
// At the end of the file a tail waits (wait) for a notification from the
// node's Watcher, for its safety poll, or for its next delay report; once
// it has read nothing for closeAfter it closes the file, keeping its
// offset, and opens it again (reopen) when there is more to read.
type source struct {
	path     string
	roots    *Roots
	subtopic string
	// full: a full import ends at the end of the file instead of tailing it.
	full    bool
	log     *zap.Logger
	watcher *Watcher // nil: the source polls every poll
	// poll is the interval without notifications; safety the interval
	// with them (source.pollInterval); report the idle report's; idle
	// how long the file stays open with nothing new.
	poll, safety, report, idle time.Duration

	// opened: Open succeeded and Close was not called yet. f is the open
	// file, nil while it is closed for being idle; ident is the file it
	// was, to tell a file replaced in the meantime.
	opened bool
	f      *os.File
	ident  os.FileInfo
	// buf[r:w] holds bytes read from the file and not consumed yet;
	// buf[r] is at file offset off, which is always a line boundary.
	buf  []byte
	r, w int
	off  int64
	// look: the file may have more to read (or has, while a batch was
	// full); lastLook when the source last looked; active when it last
	// read a line or opened the file.
	look             bool
	lastLook, active time.Time
	// watch is the source's subscription to the Watcher, nil while it has
	// none; nextWatch when to try again after a refusal, warned once the
	// refusal was logged.
	watch     *watch
	nextWatch time.Time
	warned    bool
	timer     *time.Timer
	// gone: the file was missing when the closed source last looked;
	// short: another file in its place is shorter than the offset.
	gone, short bool
	// from: lines with a ts below it are skipped (a start at a time).
	from   int64
	lastTS int64
	seen   bool // lastTS holds the ts of a line already read
	// err is sticky: once set, every Read returns it.
	err error
	// startAt is set by Open when it had no position: the start of the
	// file, for Start.
	startAt []checkpoint.Position
	// reported is when the source last reported that it is at the end of
	// the file (zero: it has not, or has read on since).
	reported time.Time
	now      func() time.Time
}

// newSource validates the source scope of c without reading the file:
// its path must resolve inside roots. An idle tail waits on w (nil: it
// polls).
func newSource(c connector.Config, roots *Roots, w *Watcher) (*source, error) {
	sc := c.Scope("source")
	path := sc["path"]
	if path == "" {
		return nil, errors.New("source.path is required for source.type=file")
	}
	if err := roots.Check("source.path", path); err != nil {
		return nil, err
	}
	sub := sc["subtopic"]
	if sub == "" {
		sub = filepath.Base(path)
	}
	if len(sub) > 255 {
		return nil, fmt.Errorf("source.subtopic %q is longer than 255 bytes", sub)
	}
	safety := defaultSafetyPoll
	if v := sc["pollInterval"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < pollEvery {
			return nil, fmt.Errorf("source.pollInterval %q is not a duration of at least %s (such as 5s)", v, pollEvery)
		}
		safety = d
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &source{
		path:     path,
		roots:    roots,
		subtopic: sub,
		full:     c.Type == model.TypeFull,
		log:      log.Named("file"),
		watcher:  w,
		poll:     pollEvery,
		safety:   safety,
		report:   reportEvery,
		idle:     closeAfter,
		now:      time.Now,
	}, nil
}

// openFile opens the file for reading, refusing it if it now leads outside
// the roots (a symlink swapped in since the config was accepted).
func (s *source) openFile() (*os.File, error) {
	if err := s.roots.CheckAgain("source.path", s.path); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, openError(s.path, err)
	}
	if err := s.roots.CheckOpen("source.path", s.path, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Subtopics returns the one subtopic of the file.
func (s *source) Subtopics() []string { return []string{s.subtopic} }

// Oldest returns the ts of the first line: the file can always be read again
// from its start. An empty file has no entry.
func (s *source) Oldest(ctx context.Context) (map[string]int64, error) {
	f, err := s.openFile()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := &source{path: s.path, f: f, buf: make([]byte, readChunk)}
	line, start, ok, err := t.next()
	if err != nil {
		return nil, err
	}
	if !ok {
		return map[string]int64{}, nil
	}
	ts, err := lineTS(line)
	if err != nil {
		return nil, t.badLine(start, line, err)
	}
	return map[string]int64{s.subtopic: ts}, nil
}

// Open opens the file at from[subtopic]: just after the line its Token
// names, or at the first line whose ts is at least its TS when the Token is
// empty, or at the start.
func (s *source) Open(ctx context.Context, from map[string]checkpoint.Position) error {
	if s.opened {
		return errors.New("file source is already open")
	}
	for sub := range from {
		if sub != s.subtopic {
			// Likely a renamed source.subtopic: the file restarts from its start.
			s.log.Warn("ignoring the position of an unknown subtopic",
				zap.String("subtopic", sub), zap.String("want", s.subtopic))
		}
	}
	f, err := s.openFile()
	if err != nil {
		return err
	}
	pos, ok := from[s.subtopic]
	if !ok {
		// Start at the file's start: offset 0, at the ts of its first line
		// (0 while it has none).
		first, err := s.Oldest(ctx)
		if err != nil {
			f.Close()
			return err
		}
		s.startAt = []checkpoint.Position{{Subtopic: s.subtopic, TS: first[s.subtopic], Token: "0"}}
	}
	if ok {
		if pos.Exact() {
			off, err := checkToken(f, s.path, pos.Token)
			if err != nil {
				f.Close()
				return err
			}
			s.off = off
		} else {
			s.from = pos.TS
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return ioError("checking", s.path, err)
	}
	s.f, s.ident, s.opened = f, fi, true
	s.look, s.active = true, time.Now()
	s.buf = make([]byte, readChunk)
	s.log.Debug("opened", zap.String("path", s.path), zap.Int64("offset", s.off), zap.Int64("from_ts", s.from))
	return nil
}

// Origin is where a task without a position starts: the ts of the file's
// first line (connector.Origin).
func (s *source) Origin(ctx context.Context) (map[string]int64, error) { return s.Oldest(ctx) }

// Start returns the start of the file when Open had no position for the
// subtopic (connector.Starter): the runner records it before the first
// line moves.
func (s *source) Start() []checkpoint.Position { return s.startAt }

// Read returns the next lines, up to maxBatch, as soon as at least one is
// complete. At the end of the file it waits for more (wait), or, in a full
// import, returns io.EOF. While lines are there it reads on without
// waiting.
//
// Every batch says how far the task is behind the file (model.DelayMetrics):
// 0 when the batch ends at the end of the file, else now minus the ts of its
// last line. A tail idle at the end of the file returns a batch with only
// that report, 0, every reportEvery: a task that has copied everything has
// no delay however old its last line is. Before that report a tail whose
// file is open looks at it (two fstat calls); one that closed it relies on
// its notifications and its safety poll.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	if !s.opened {
		return connector.Batch{}, errors.New("file source: Read before Open")
	}
	for {
		if s.err != nil {
			return connector.Batch{}, s.err
		}
		idle := !s.full && s.r == s.w // no partial line pending
		if s.look {
			s.look, s.lastLook = false, time.Now()
			if err := s.reopen(); err != nil {
				s.err = err
				continue
			}
			if s.f != nil {
				b, eof, err := s.scan()
				if err != nil {
					// The lines before the failure are good; deliver them first.
					s.err = err
				}
				if len(b.Records) > 0 {
					// More may follow at once: look again on the next Read.
					s.look, s.active = true, time.Now()
					now := s.now()
					if eof && err == nil && s.r == s.w {
						b.Metrics, s.reported = model.DelayMetrics(0, now), now
					} else {
						b.Metrics, s.reported = model.DelayMetrics(now.Sub(time.Unix(s.lastTS, 0)), now), time.Time{}
					}
					return b, nil
				}
				if err != nil {
					continue
				}
				if !eof {
					s.look = true
					if err := ctx.Err(); err != nil {
						return connector.Batch{}, err
					}
					continue
				}
				if err := s.atEOF(); err != nil {
					s.err = err
					continue
				}
			}
			idle = !s.full && s.r == s.w
			if now := s.now(); idle && now.Sub(s.reported) >= s.report {
				// At the end of the file, with no partial line pending.
				s.reported = now
				return connector.Batch{Metrics: model.DelayMetrics(0, now)}, nil
			}
		} else if now := s.now(); idle && now.Sub(s.reported) >= s.report {
			if s.f != nil {
				s.look = true // say it is at the end only after a look
				continue
			}
			s.reported = now
			return connector.Batch{Metrics: model.DelayMetrics(0, now)}, nil
		}
		if s.r == s.w {
			// Nothing buffered: an idle tail holds no read buffer, which is
			// most of the memory of a thousand idle tasks.
			s.buf = nil
		}
		if err := s.wait(ctx, idle); err != nil {
			return connector.Batch{}, err
		}
	}
}

// wait blocks at the end of the file until the source should look at it
// again (a notification, its poll), its next report is due (when idle:
// nothing pending), the file has been idle for long enough to close, or
// ctx is done.
func (s *source) wait(ctx context.Context, idle bool) error {
	now := time.Now()
	if s.ensureWatch(now) {
		// Watched from now on: what changed before is looked at once.
		s.look = true
		return nil
	}
	every := s.safety
	var wake <-chan struct{}
	if s.watch != nil {
		wake = s.watch.C
	} else {
		every = s.poll
	}
	until := s.lastLook.Add(every).Sub(now)
	if idle {
		until = min(until, s.reported.Add(s.report).Sub(s.now()))
	}
	if s.f != nil {
		until = min(until, s.active.Add(s.idle).Sub(now))
	}
	until = max(until, 0)
	if s.timer == nil {
		s.timer = time.NewTimer(until)
	} else {
		s.timer.Reset(until)
	}
	select {
	case <-ctx.Done():
		s.timer.Stop()
		return ctx.Err()
	case <-wake:
		s.timer.Stop()
		s.look = true
	case <-s.timer.C:
		now := time.Now()
		if now.Sub(s.lastLook) >= every {
			s.look = true
		}
		if s.f != nil && now.Sub(s.active) >= s.idle {
			s.closeIdle()
		}
	}
	return nil
}

// ensureWatch gives the source a watch if it has none (or lost it) and may
// try, and reports whether it got a new one. A refusal is logged once; the
// source then polls, and tries again after its safety poll.
func (s *source) ensureWatch(now time.Time) bool {
	if s.watch != nil && s.watch.isLost() {
		s.watch.release()
		s.watch = nil
	}
	if s.watch != nil || s.watcher == nil || now.Before(s.nextWatch) {
		return false
	}
	paths := []string{filepath.Clean(s.path)}
	if real, err := filepath.EvalSymlinks(s.path); err == nil && real != paths[0] {
		// The file the link leads to is written in its own directory.
		paths = append(paths, real)
	}
	w, err := s.watcher.add(paths...)
	if err != nil {
		s.nextWatch = now.Add(s.safety)
		if !s.warned {
			s.warned = true
			s.log.Warn("no file notifications for this source: it polls its file instead",
				zap.String("path", s.path), zap.Duration("every", s.poll), zap.Error(err))
		}
		return false
	}
	s.watch = w
	return true
}

// closeIdle closes the file of a tail that read nothing for a while,
// keeping its offset and what it has of a partial line.
func (s *source) closeIdle() {
	s.f.Close()
	s.f = nil
	s.log.Debug("closed while idle", zap.String("path", s.path), zap.Int64("offset", s.off))
}

// reopen opens the file again after closeIdle, when it has something to
// read: it grew, shrank or is another file.
//
// The same file is read as a source holding its descriptor reads it: on
// from the offset, or FILE_TRUNCATED if it shrank. A file that is gone is
// waited for, as such a source would wait (it saw nothing more). Another
// file in its place (a new inode, or a file back after the source saw the
// path missing) is read as a task resuming at the same offset reads it
// (checkToken): once it is at least that long (a file is created empty and
// then written), from that offset if it is a line boundary of the new
// file; if it is not, the task fails with CHECKPOINT_INVALID.
func (s *source) reopen() error {
	if s.f != nil {
		return nil
	}
	read := s.off + int64(s.w-s.r)
	fi, err := os.Stat(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if !s.gone {
				s.gone = true
				s.log.Debug("the file is gone; waiting for it", zap.String("path", s.path))
			}
			return nil
		}
		return ioError("checking", s.path, err)
	}
	same := !s.gone && os.SameFile(fi, s.ident)
	if same && fi.Size() == read {
		return nil
	}
	f, err := s.openFile()
	if err != nil {
		var ce *connector.Error
		if errors.As(err, &ce) && ce.Detail.Code == codeNotFound {
			return nil // gone again since the Stat
		}
		return err
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return ioError("checking", s.path, err)
	}
	if s.gone || !os.SameFile(fi, s.ident) {
		if fi.Size() < s.off {
			f.Close()
			if !s.short {
				s.short = true
				s.log.Debug("the file was replaced by a shorter one; waiting for it to reach the offset",
					zap.String("path", s.path), zap.Int64("offset", s.off), zap.Int64("size", fi.Size()))
			}
			return nil
		}
		// Another file: what was buffered of a partial line is not its.
		s.r, s.w = 0, 0
		if _, err := checkToken(f, s.path, strconv.FormatInt(s.off, 10)); err != nil {
			f.Close()
			return err
		}
		s.log.Warn("the file was replaced while the source had it closed; reading the new file on from the same offset",
			zap.String("path", s.path), zap.Int64("offset", s.off))
		s.ident = fi
		if s.watch != nil {
			// A symlink may lead elsewhere now: watch again.
			s.watch.release()
			s.watch = nil
		}
	}
	s.f, s.active, s.gone, s.short = f, time.Now(), false, false
	return nil
}

// Close closes the file and ends the source's watch. It is safe to call
// more than once.
func (s *source) Close() error {
	s.opened = false
	if s.watch != nil {
		s.watch.release()
		s.watch = nil
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// scan consumes complete lines until a batch is full, maxScan lines were
// looked at, or the data ends (eof). The batch's position is just after its
// last record.
func (s *source) scan() (b connector.Batch, eof bool, err error) {
	var end int64
	defer func() {
		if n := len(b.Records); n > 0 {
			b.Positions = []checkpoint.Position{{
				Subtopic: s.subtopic,
				TS:       b.Records[n-1].TS,
				Token:    strconv.FormatInt(end, 10),
			}}
		}
	}()
	for n := 0; n < maxScan && len(b.Records) < maxBatch; n++ {
		line, start, ok, err := s.next()
		if err != nil {
			return b, false, err
		}
		if !ok {
			return b, true, nil
		}
		ts, err := lineTS(line)
		if err != nil {
			return b, false, s.badLine(start, line, err)
		}
		if s.seen && ts < s.lastTS {
			return b, false, connector.Fail(codeOutOfOrder,
				fmt.Sprintf("line %d of %s has ts %d, lower than the ts %d of the line before it", s.lineNo(start), s.path, ts, s.lastTS),
				"the lines of a file source must be in non-decreasing ts order",
				"fix the order of the lines; the task resumes at this line", true, nil)
		}
		s.lastTS, s.seen = ts, true
		if ts < s.from {
			continue
		}
		b.Records = append(b.Records, connector.Record{Subtopic: s.subtopic, TS: ts, Payload: bytes.Clone(line)})
		end = s.off
	}
	return b, false, nil
}

// next consumes the next complete line and returns it without its '\n',
// with its offset. ok is false when no complete line is available. The line
// aliases the buffer: it is valid until the next call.
func (s *source) next() (line []byte, start int64, ok bool, err error) {
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			line, start = s.buf[s.r:s.r+i], s.off
			s.r += i + 1
			s.off += int64(i + 1)
			return line, start, true, nil
		}
		n, err := s.fill()
		if err != nil || n == 0 {
			return nil, 0, false, err
		}
	}
}

// fill reads more of the file after buf[r:w], growing the buffer up to
// maxLine when one line does not fit.
func (s *source) fill() (int, error) {
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	if s.buf == nil {
		// Idle at the end of the file: allocate only once there is more.
		st, err := s.f.Stat()
		if err != nil {
			return 0, ioError("checking", s.path, err)
		}
		if st.Size() <= s.off {
			return 0, nil
		}
		s.buf = make([]byte, readChunk)
	}
	if s.w == len(s.buf) {
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		if s.w == len(s.buf) {
			if len(s.buf) >= maxLine {
				return 0, connector.Fail(codeBadLine,
					fmt.Sprintf("line %d of %s is longer than %d bytes", s.lineNo(s.off), s.path, maxLine),
					"a line of a file source must fit in memory", "split the record or fix the missing newlines", true, nil)
			}
			nb := make([]byte, min(2*len(s.buf), maxLine))
			copy(nb, s.buf[:s.w])
			s.buf = nb
		}
	}
	n, err := s.f.ReadAt(s.buf[s.w:], s.off+int64(s.w-s.r))
	s.w += n
	if err != nil && !errors.Is(err, io.EOF) {
		return n, ioError("reading", s.path, err)
	}
	return n, nil
}

// atEOF decides what the end of the data means: the end of a full import,
// or, when tailing, nothing unless the file shrank under the reader.
func (s *source) atEOF() error {
	if s.full {
		if s.w > s.r {
			return connector.Fail(codeIncompleteLine,
				fmt.Sprintf("%s ends in the middle of line %d", s.path, s.lineNo(s.off)),
				"only lines ending in a newline are imported",
				"end the last line with a newline, or let the writer finish it, and resume the task", false, nil)
		}
		return io.EOF
	}
	fi, err := s.f.Stat()
	if err != nil {
		return ioError("checking", s.path, err)
	}
	if read := s.off + int64(s.w-s.r); fi.Size() < read {
		return connector.Fail(codeTruncated,
			fmt.Sprintf("%s is %d bytes, but %d were already read", s.path, fi.Size(), read),
			"the file was truncated or rewritten while the task read it",
			"append to the file instead of rewriting it; pull the task back to a time to read it again from there", true, nil)
	}
	return nil
}

// lineTS parses a line's integer ts.
func lineTS(line []byte) (int64, error) {
	var v struct {
		TS json.RawMessage `json:"ts"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return 0, fmt.Errorf("not a JSON object: %w", err)
	}
	if v.TS == nil {
		return 0, errors.New(`no "ts" field`)
	}
	ts, err := strconv.ParseInt(string(v.TS), 10, 64)
	if err != nil {
		return 0, fmt.Errorf(`"ts" is %s, not an integer`, v.TS)
	}
	return ts, nil
}

func (s *source) badLine(start int64, line []byte, err error) error {
	const show = 120
	head := line
	if len(head) > show {
		head = head[:show]
	}
	return connector.Fail(codeBadLine,
		fmt.Sprintf("line %d of %s is not a JSON object with an integer ts", s.lineNo(start), s.path),
		fmt.Sprintf("%v; the line starts with %q", err, head),
		"fix the line; the task resumes at it", true, nil)
}

// lineNo returns the 1-based number of the line starting at offset at. It
// counts on demand: only error messages need it.
func (s *source) lineNo(at int64) int64 {
	n := int64(1)
	buf := make([]byte, readChunk)
	for pos := int64(0); pos < at; {
		m, err := s.f.ReadAt(buf[:min(int64(len(buf)), at-pos)], pos)
		n += int64(bytes.Count(buf[:m], []byte{'\n'}))
		pos += int64(m)
		if err != nil {
			break
		}
	}
	return n
}

// checkToken returns the offset a token names if it is a line boundary of f.
func checkToken(f *os.File, path, token string) (int64, error) {
	invalid := func(msg string) error {
		return connector.Fail(codeCheckpointInvalid, msg,
			"the checkpoint does not match the file; it was replaced, truncated or edited",
			"pull the task back to a time so it restarts from a ts instead of a byte offset", true, nil)
	}
	off, err := strconv.ParseInt(token, 10, 64)
	if err != nil || off < 0 {
		return 0, invalid(fmt.Sprintf("checkpoint token %q of %s is not a byte offset", token, path))
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, ioError("checking", path, err)
	}
	if off > fi.Size() {
		return 0, invalid(fmt.Sprintf("checkpoint offset %d is past the end of %s (%d bytes)", off, path, fi.Size()))
	}
	if off > 0 {
		var b [1]byte
		if _, err := f.ReadAt(b[:], off-1); err != nil {
			return 0, ioError("reading", path, err)
		}
		if b[0] != '\n' {
			return 0, invalid(fmt.Sprintf("checkpoint offset %d of %s is not at the start of a line", off, path))
		}
	}
	return off, nil
}

func openError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return connector.Fail(codeNotFound, fmt.Sprintf("%s does not exist", path),
			"the source file is missing", "create the file or fix source.path", false, err)
	}
	return ioError("opening", path, err)
}

func ioError(doing, path string, err error) error {
	return connector.Fail(codeIO, fmt.Sprintf("%s %s", doing, path), err.Error(),
		"check the file's permissions and the disk", errors.Is(err, fs.ErrPermission), err)
}
