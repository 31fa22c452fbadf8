// Package connector defines what a connector is to the runtime: a Source that
// yields batches with the positions they reach, and a Sink that applies them
// durably. Implementations live in subpackages; builtin assembles the registry.
package connector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

// Config is what a connector is built from.
type Config struct {
	// Task is the full name of the incarnation being run.
	Task   model.TaskName
	Type   model.TaskType
	Scopes model.Config
	Logger *zap.Logger
	// Dir is a directory private to this task where a connector may keep
	// files (logs of child processes).
	Dir string
}

// Scope returns the key/value map of one scope (never nil).
func (c Config) Scope(name string) map[string]string {
	if m := c.Scopes[name]; m != nil {
		return m
	}
	return map[string]string{}
}

// Record is one unit of data. File connectors carry the raw line in Payload;
// database connectors carry a Change.
type Record struct {
	Subtopic string
	TS       int64
	Payload  []byte
	Change   *RowChange
	// DDL is a schema statement of a database source, delivered at its
	// place among the row changes: in a batch of its own, whose position is
	// just after the statement (see SchemaChange).
	DDL *SchemaChange
}

// SchemaChange is one schema statement (DDL) of a database source on
// tables it reads, for a sink that applies schema changes. A source sends
// it alone in its batch, so every row change before it was written before
// it, and its position, just after the statement, is checkpointed only
// once the sink applied it.
type SchemaChange struct {
	// Database is the statement's default database (unqualified names
	// belong to it).
	Database string
	// Statement is the statement as the source logged it.
	Statement string
	// Before and After are the positions (tokens) just before and just
	// after the statement.
	Before, After string
}

// RowChange is one row-level change captured from a database.
type RowChange struct {
	Database string
	Table    string
	Op       Op
	// Columns names the values in Before and After, in table order.
	Columns []string
	// PK lists the indexes in Columns of the primary key.
	PK     []int
	Before []any // nil for inserts
	After  []any // nil for deletes
}

// Op is a row operation.
type Op uint8

// Row operations.
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
)

// Batch is what a source yields: records in order, and the positions a
// resume may start after once the sink has applied them. A batch may carry
// positions and no records (a connector that moves data itself, or an idle
// source moving its clock).
type Batch struct {
	Records   []Record
	Positions []checkpoint.Position
	// Metrics are counters the connector wants shown in task detail.
	Metrics map[string]float64
}

// Source reads data. Read is called from one goroutine, but not the one
// that calls the sink: the runner reads the next batch while the sink
// writes the last, so a batch Read returned belongs to the caller and the
// source must not reuse its records or their values.
type Source interface {
	// Open prepares reading from the given positions, keyed by subtopic; a
	// subtopic without a position starts from the beginning of the source.
	Open(ctx context.Context, from map[string]checkpoint.Position) error
	// Read blocks until a batch is ready or ctx is done. It returns io.EOF
	// when the source is complete (a finished full import).
	Read(ctx context.Context) (Batch, error)
	// Close releases everything Open acquired. It may take up to the
	// connector's stop grace period (a child process given SIGTERM), and
	// returns only when nothing the source started is still running.
	Close() error
}

// Sink applies data. Write returns only when the batch is durable.
type Sink interface {
	Open(ctx context.Context) error
	Write(ctx context.Context, b Batch) error
	Close() error
}

// SchemaEvent is one schema statement a sink applied, as the task's schema
// history keeps it.
type SchemaEvent struct {
	Task     model.TaskName
	Subtopic string
	// TS is the statement's time on the source (unix seconds).
	TS int64
	// Before and After are the positions just before and after it.
	Before, After string
	// Database is the statement's default database, Statement the
	// statement as the source logged it, Applied the statements run on
	// the target (none when the target already had its effect).
	Database  string
	Statement string
	Applied   []string
	// Tables are the source tables ("db.table") whose definitions it
	// changed.
	Tables []string
	// Replay: the statement was applied before and the target has moved
	// past it; nothing was run.
	Replay bool
}

// SchemaHistory keeps, per task component (so across a pullback's new
// incarnation), the schema statements its sink applied and the table
// definitions its source learned, by position. A connector that applies
// schema changes records each statement before its position is
// checkpointed; a replay records it again (one entry per position).
type SchemaHistory interface {
	AppliedDDL(ctx context.Context, e SchemaEvent) error
	// DDLHistory lists the statements recorded, oldest first.
	DDLHistory(ctx context.Context, task model.TaskName) ([]model.AppliedDDL, error)
	// SchemaVersions lists the definitions recorded; AddSchemaVersions
	// adds some, keeping the one recorded first of a position and table.
	SchemaVersions(ctx context.Context, task model.TaskName) ([]model.SchemaVersion, error)
	AddSchemaVersions(ctx context.Context, task model.TaskName, v []model.SchemaVersion) error
}

// Ranger is implemented by sources that can tell how far back they can be
// rewound. It is called on a source that has not been opened.
type Ranger interface {
	// Oldest returns, per subtopic, the oldest time (unix seconds) the source
	// can still start from.
	Oldest(ctx context.Context) (map[string]int64, error)
}

// Starter is implemented by sources that resolve where a subtopic without
// a position starts (the binlog end, the start of a file) when they open.
// The runner makes those positions durable before it reads the first
// batch, so a restart continues from the same place instead of resolving
// "start" again later and skipping what came in between. Start is called
// once, after a successful Open, and returns a position for each subtopic
// Open had none for.
type Starter interface {
	Start() []checkpoint.Position
}

// Warner is implemented by sources that, once open, know of conditions an
// operator must see (a source that cannot decode some changes exactly).
// The runner calls it once after Open; the warnings are shown on the task
// (error details of level WARNING) for as long as this incarnation runs.
type Warner interface {
	Warnings() []model.ErrorDetail
}

// Acker is implemented by self-contained sources that want to know when a
// subtopic's first position of an incarnation is durable, so the program
// moving the data can wait for it before it moves any (see
// docs/connector-protocol.md). The runner calls Durable from its own
// goroutine, after the write.
type Acker interface {
	Durable(positions []checkpoint.Position)
}

// Prefetcher is implemented by sources whose reads are worth overlapping
// with the sink's writes (decoding a binlog while the target commits the
// batch before): the runner reads them one batch ahead, on a goroutine of
// its own. Other sources are read and written in turn on one goroutine, so
// an idle task costs one goroutine, not two.
type Prefetcher interface {
	Prefetch() bool
}

// Pauser is implemented by self-contained sources (they move data
// themselves, so holding back their batches would not stop them) that can
// hold still while their task is PAUSED: Pause returns once the source moves
// no data, Resume lets it go on. A source with a sink needs neither: the
// runner stops taking its batches and the source blocks.
type Pauser interface {
	Pause() error
	Resume() error
}

// Origin is implemented by sources whose start, for a subtopic without a
// position, is a known time (the first line of a file). The pullback guard
// judges a rewind of a task without progress against it: a target after it
// would skip data. It is called on a source that has not been opened.
type Origin interface {
	Origin(ctx context.Context) (map[string]int64, error)
}

// RewindChecker is implemented by sources that can tell whether a rewind
// to target (unix seconds per subtopic) would be replayed correctly. It is
// called on a source that has not been opened, before a pullback is
// accepted; a *Error refuses the pullback and says why.
type RewindChecker interface {
	CheckRewind(ctx context.Context, target map[string]int64) error
}

// Subtopicer is implemented by sources that know their subtopics before
// running. It is called on a source that has not been opened.
type Subtopicer interface {
	Subtopics() []string
}

// SourceFactory builds a source. It validates the config without I/O, so it
// can run at create and update time.
type SourceFactory func(Config) (Source, error)

// SinkFactory builds a sink, validating its config without I/O.
type SinkFactory func(Config) (Sink, error)

// Registry maps source.type and sink.type to factories.
type Registry struct {
	sources map[string]SourceFactory
	sinks   map[string]SinkFactory
	// selfContained lists source types that move data themselves and take
	// no sink.
	selfContained map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{sources: map[string]SourceFactory{}, sinks: map[string]SinkFactory{}, selfContained: map[string]bool{}}
}

// AddSource registers a source type. selfContained sources need no sink.
func (r *Registry) AddSource(name string, f SourceFactory, selfContained bool) {
	r.sources[name] = f
	r.selfContained[name] = selfContained
}

// AddSink registers a sink type.
func (r *Registry) AddSink(name string, f SinkFactory) { r.sinks[name] = f }

// ErrConfig marks an invalid connector configuration; it is permanent.
var ErrConfig = errors.New("invalid connector config")

// Refusals of a config that is well formed but asks for what an API caller
// may not have: they wrap ErrConfig, and Build keeps them in its error, so
// the API can answer each with an errCode of its own.
var (
	// ErrCommandRefused: a process task gave its own argv (source.command)
	// or working directory instead of naming a plugin an admin declared.
	ErrCommandRefused = fmt.Errorf("%w: the command of a process connector is declared by a plugin manifest, not by the task", ErrConfig)
	// ErrUnknownPlugin: source.plugin names no declared plugin.
	ErrUnknownPlugin = fmt.Errorf("%w: unknown plugin", ErrConfig)
	// ErrOutsideRoots: a file connector's path resolves outside the file
	// roots cm was started with.
	ErrOutsideRoots = fmt.Errorf("%w: path outside the file roots", ErrConfig)
)

// refusal returns the refusal sentinel err wraps, or nil.
func refusal(err error) error {
	for _, r := range []error{ErrCommandRefused, ErrUnknownPlugin, ErrOutsideRoots} {
		if errors.Is(err, r) {
			return r
		}
	}
	return nil
}

// configError wraps a factory's error for Build: a refusal keeps its
// sentinel (and so its errCode); anything else is ErrConfig with the
// cause's text only, so no cause inside it (a context error, a store
// error) can change how the API answers.
func configError(what string, err error) error {
	if r := refusal(err); r != nil {
		return fmt.Errorf("%w: %s: %s", r, what, strings.TrimPrefix(err.Error(), r.Error()+": "))
	}
	return fmt.Errorf("%w: %s: %v", ErrConfig, what, err)
}

// Build validates cfg and builds its source and sink (sink is nil for
// self-contained sources). Nothing is opened.
func (r *Registry) Build(cfg Config) (Source, Sink, error) {
	st := cfg.Scopes.Get("source", "type")
	sf, ok := r.sources[st]
	if !ok {
		return nil, nil, fmt.Errorf("%w: source.type %q is not one of %v", ErrConfig, st, keys(r.sources))
	}
	src, err := sf(cfg)
	if err != nil {
		return nil, nil, configError("source", err)
	}
	kt := cfg.Scopes.Get("sink", "type")
	if r.selfContained[st] {
		if kt != "" {
			return nil, nil, fmt.Errorf("%w: source.type %q moves data itself; remove sink.type", ErrConfig, st)
		}
		return src, nil, nil
	}
	kf, ok := r.sinks[kt]
	if !ok {
		return nil, nil, fmt.Errorf("%w: sink.type %q is not one of %v", ErrConfig, kt, keys(r.sinks))
	}
	snk, err := kf(cfg)
	if err != nil {
		return nil, nil, configError("sink", err)
	}
	return src, snk, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Error is a connector failure with the detail an operator sees in
// errorDetails. Permanent errors (bad config, missing privileges) are not
// retried by auto-restart.
type Error struct {
	Detail    model.ErrorDetail
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Detail.Code, e.Detail.Message, e.Err)
	}
	return e.Detail.Code + ": " + e.Detail.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Fail builds an *Error with level ERROR.
func Fail(code, message, reason, proposal string, permanent bool, err error) *Error {
	return &Error{
		Detail:    model.ErrorDetail{Code: code, Level: model.LevelError, Message: message, Reason: reason, Proposal: proposal},
		Permanent: permanent,
		Err:       err,
	}
}
