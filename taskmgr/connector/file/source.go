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
	// pollEvery is how often a source at the end of the file looks for more.
	pollEvery = 50 * time.Millisecond
	// reportEvery is how often a source idle at the end of the file says
	// so (a batch of delay metrics only), so its delay stays 0.
	reportEvery = time.Second
)

var (
	_ connector.Source     = (*source)(nil)
	_ connector.Ranger     = (*source)(nil)
	_ connector.Subtopicer = (*source)(nil)
)

// source reads a JSON-lines file; see the package comment. Open, Read and
// Close are called from one goroutine.
type source struct {
	path     string
	roots    *Roots
	subtopic string
	// full: a full import ends at the end of the file instead of tailing it.
	full bool
	log  *zap.Logger
	poll time.Duration

	// Set by Open. buf[r:w] holds bytes read from the file and not consumed
	// yet; buf[r] is at file offset off, which is always a line boundary.
	f    *os.File
	buf  []byte
	r, w int
	off  int64
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
// its path must resolve inside roots.
func newSource(c connector.Config, roots *Roots) (*source, error) {
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
		poll:     pollEvery,
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
	if s.f != nil {
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
	s.f = f
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
// complete. At the end of the file it polls for more, or, in a full import,
// returns io.EOF.
//
// Every batch says how far the task is behind the file (model.DelayMetrics):
// 0 when the batch ends at the end of the file, else now minus the ts of its
// last line. A tail idle at the end of the file returns a batch with only
// that report, 0, every reportEvery: a task that has copied everything has
// no delay however old its last line is.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	if s.f == nil {
		return connector.Batch{}, errors.New("file source: Read before Open")
	}
	var poll *time.Timer
	for {
		if s.err != nil {
			return connector.Batch{}, s.err
		}
		b, eof, err := s.scan()
		if err != nil {
			// The lines before the failure are good; deliver them first.
			s.err = err
		}
		if len(b.Records) > 0 {
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
			if err := ctx.Err(); err != nil {
				return connector.Batch{}, err
			}
			continue
		}
		if err := s.atEOF(); err != nil {
			s.err = err
			continue
		}
		if now := s.now(); !s.full && s.r == s.w && now.Sub(s.reported) >= reportEvery {
			// At the end of the file, with no partial line pending.
			s.reported = now
			return connector.Batch{Metrics: model.DelayMetrics(0, now)}, nil
		}
		if s.r == s.w {
			// Nothing buffered: an idle tail holds no read buffer, which is
			// most of the memory of a thousand idle tasks.
			s.buf = nil
		}
		if poll == nil {
			poll = time.NewTimer(s.poll)
			defer poll.Stop()
		} else {
			poll.Reset(s.poll)
		}
		select {
		case <-ctx.Done():
			return connector.Batch{}, ctx.Err()
		case <-poll.C:
		}
	}
}

// Close closes the file. It is safe to call more than once.
func (s *source) Close() error {
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
