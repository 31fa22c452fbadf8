package mysql

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log field keys.
const (
	logTable    = "table"
	logTables   = "tables"
	logPosition = "position"
	logRows     = "rows"
	logSubtopic = "subtopic"
)

// slogToZap hands go-mysql's slog output to the task's zap logger. The
// library logs routine steps (connects, rotations) at Info: Debug here. It
// also logs the errors it then returns to us, and we return them to the
// runtime, which logs them: Warn here, so one failure is one error line.
type slogToZap struct {
	log *zap.Logger
}

func newSlog(log *zap.Logger) *slog.Logger { return slog.New(slogToZap{log: log}) }

func (h slogToZap) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func (h slogToZap) Handle(_ context.Context, r slog.Record) error {
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	if ce := h.log.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h slogToZap) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zap.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
	}
	return slogToZap{log: h.log.With(fields...)}
}

func (h slogToZap) WithGroup(name string) slog.Handler {
	return slogToZap{log: h.log.With(zap.Namespace(name))}
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	default:
		return zapcore.DebugLevel
	}
}
