package supervisor

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/connector-manager/cm/model"
)

// scrubbed returns log with every message and string, error and stringer
// field scrubbed of a task's secrets, for the runner and its connectors:
// a connector's error may quote its DSN or a config value.
func scrubbed(log *zap.Logger, s *model.Scrubber) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return scrubCore{Core: c, s: s} }))
}

type scrubCore struct {
	zapcore.Core
	s *model.Scrubber
}

func (c scrubCore) With(fs []zapcore.Field) zapcore.Core {
	return scrubCore{Core: c.Core.With(c.fields(fs)), s: c.s}
}

// Check adds this core, not the wrapped one, so Write scrubs.
func (c scrubCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c scrubCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	e.Message = c.s.String(e.Message)
	return c.Core.Write(e, c.fields(fs))
}

func (c scrubCore) fields(fs []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, len(fs))
	for i, f := range fs {
		switch f.Type { //nolint:exhaustive // numbers, times and durations carry no text
		case zapcore.StringType:
			f.String = c.s.String(f.String)
		case zapcore.ByteStringType, zapcore.BinaryType:
			if b, ok := f.Interface.([]byte); ok {
				f = zap.String(f.Key, c.s.String(string(b)))
			}
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok {
				f = zap.String(f.Key, c.s.Error(err))
			}
		case zapcore.StringerType, zapcore.ReflectType, zapcore.ArrayMarshalerType, zapcore.ObjectMarshalerType:
			f = zap.String(f.Key, c.s.String(fmt.Sprintf("%v", f.Interface)))
		}
		out[i] = f
	}
	return out
}
