package mysql

import (
	"errors"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// A DDL the source cannot pass stops it at an exact place. The error
// detail names the tokens just before and just after the statement
// (model.StatementPosition), and the last batch before the error carries
// the one before it, so the durable checkpoint ends exactly there. Once
// the operator has changed the target, resume with skipDdl=true moves the
// checkpoint from Before to After in the transaction of the resume, and
// the source starts reading right after the statement: nothing of the
// statement's second is skipped, and nothing before it is read twice.

// eventStart is where ev begins in the binlog file being read; zero when
// the event carries no position (an artificial event).
func (s *binlogSource) eventStart(ev *replication.BinlogEvent) gomysql.Position {
	h := ev.Header
	if h.LogPos == 0 || h.LogPos < h.EventSize {
		return gomysql.Position{}
	}
	return gomysql.Position{Name: s.file, Pos: h.LogPos - h.EventSize}
}

// atStatement records in a DDL refusal where the statement is: it began
// with the current transaction's first event and ends at endPos.
func (s *binlogSource) atStatement(err error, ts int64, endPos uint32) error {
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Detail.Code != codeDDLUnsupported {
		return err
	}
	if s.txn.start.Pos == 0 || endPos == 0 {
		return err // no exact place to skip to: only a rewind helps
	}
	ce.Detail.Position = &model.StatementPosition{
		Subtopic: s.cfg.Subtopic,
		Before:   formatToken(s.txn.start),
		After:    formatToken(gomysql.Position{Name: s.file, Pos: endPos}),
		TS:       ts,
	}
	return ce
}

// stoppedAt is the statement position in an error, or nil.
func stoppedAt(err error) *model.StatementPosition {
	var ce *connector.Error
	if errors.As(err, &ce) {
		return ce.Detail.Position
	}
	return nil
}

// beforeTS is the time to report with the position just before a
// statement: that of the last transaction delivered (or of the position
// the source started from), so it does not go back; the statement's own
// time when there is neither.
func (s *binlogSource) beforeTS(p *model.StatementPosition) int64 {
	if ts := max(s.lastTS, s.fromTS); ts > 0 {
		return ts
	}
	return p.TS
}
