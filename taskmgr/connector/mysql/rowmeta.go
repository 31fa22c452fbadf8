package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// Without binlog_row_metadata=FULL a row event carries no column names,
// and the source maps its values by the table's definition as the server
// shows it now. That is right for rows logged after the table's last
// column change, and wrong for rows logged before it: a replay across a
// column reorder puts values into the wrong columns without any error. So
// the condition is shown on the task (Warnings), and a pullback that would
// decode rows across such a change is refused (CheckRewind).

// Warnings implements connector.Warner.
func (s *binlogSource) Warnings() []model.ErrorDetail {
	if s.db == nil || s.meta == "FULL" {
		return nil
	}
	if s.cfg.ApplyDDL && s.history != nil {
		return []model.ErrorDetail{{
			Code: codeRowMetadataMinimal, Level: model.LevelWarning, Time: time.Now().UTC(),
			Message: fmt.Sprintf("binlog_row_metadata is %s, not FULL: row events carry no column names", orAbsent(s.meta)),
			Reason: "values are mapped to columns by the definitions the task's schema history recorded for their time; " +
				"rows logged before the history began, or across a statement skipped with skipDdl, use the current definition",
			Proposal: "SET GLOBAL binlog_row_metadata=FULL on the source, and set it in the server's config file",
		}}
	}
	return []model.ErrorDetail{{
		Code: codeRowMetadataMinimal, Level: model.LevelWarning, Time: time.Now().UTC(),
		Message: fmt.Sprintf("binlog_row_metadata is %s, not FULL: row events carry no column names", orAbsent(s.meta)),
		Reason: "values are mapped to columns by the table's current definition, so rows logged before a change of its columns " +
			"(a pullback or a skipped DDL replays them) would land in the wrong columns; pullbacks across such a change are refused",
		Proposal: "SET GLOBAL binlog_row_metadata=FULL on the source, and set it in the server's config file",
	}}
}

// rewindScanTimeout bounds reading the binlog from a rewind target to its end.
const rewindScanTimeout = 2 * time.Minute

// CheckRewind implements connector.RewindChecker. When the server does not
// log full row metadata, it reads the binlog from the target time to its
// current end, and refuses the rewind if a statement in that range changes
// the columns of a selected table whose rows, logged without column names
// between the target and the statement, would be decoded with the
// definition after it. With FULL metadata (or without a target for this
// source's subtopic) there is nothing to read.
func (s *binlogSource) CheckRewind(ctx context.Context, target map[string]int64) (err error) {
	ts, ok := target[s.cfg.Subtopic]
	if !ok {
		return nil
	}
	if s.db != nil {
		return fmt.Errorf("CheckRewind is for a source that is not open")
	}
	if s.db, err = openDB(s.cfg.endpoint, sourceSession, false, 1); err != nil {
		return err
	}
	defer func() {
		s.db.Close()
		s.db = nil
	}()
	ctx, cancel := context.WithTimeout(ctx, rewindScanTimeout)
	defer cancel()
	meta, err := rowMetadata(ctx, s.db)
	if err != nil {
		return sourceFailure("reading binlog_row_metadata", err)
	}
	if meta == "FULL" {
		return nil
	}
	start, err := s.startForTime(ctx, ts)
	if err != nil {
		return err
	}
	end, err := binlogEnd(ctx, s.db)
	if err != nil {
		return sourceFailure("reading the binlog end", err)
	}
	if err := s.readHistory(ctx); err != nil {
		return err
	}
	return s.scanForColumnChange(ctx, meta, ts, start, end)
}

// rowMetadata is the server's binlog_row_metadata, upper case; "" when the
// server has no such variable.
func rowMetadata(ctx context.Context, db *sql.DB) (string, error) {
	var name, v string
	err := db.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'binlog_row_metadata'").Scan(&name, &v)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return strings.ToUpper(v), err
}

// scanForColumnChange reads the binlog from start to end with a dump of
// its own (a random server id, so the task's dump is not displaced).
// Groups that began before ts are skipped, as the source skips them.
func (s *binlogSource) scanForColumnChange(ctx context.Context, meta string, ts int64, start, end gomysql.Position) error {
	id := minServerID + rand.Uint32N(maxServerID-minServerID)
	if id == s.cfg.ServerID {
		id++
	}
	syncer := s.newSyncer(id)
	defer syncer.Close()
	stream, err := syncer.StartSync(start)
	if err != nil {
		return sourceFailure("reading the binlog from "+formatToken(start), err)
	}
	file := start.Name
	var groupTS int64
	// unnamed lists the selected tables with rows logged without column
	// names since the target (or since their last column change).
	unnamed := map[tableRef]bool{}
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			return sourceFailure(fmt.Sprintf("reading the binlog from %s to %s", formatToken(start), formatToken(end)), err)
		}
		t := int64(ev.Header.Timestamp)
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
		case *replication.MariadbGTIDEvent, *replication.GTIDEvent, *replication.GtidTaggedLogEvent:
			groupTS = t
		case *replication.TableMapEvent:
			ref := tableRef{DB: string(e.Schema), Name: string(e.Table)}
			if groupOr(groupTS, t) >= ts && len(e.ColumnName) == 0 && s.cfg.Tables.Match(ref.DB, ref.Name) {
				unnamed[ref] = true
			}
		case *replication.QueryEvent:
			if groupOr(groupTS, t) < ts {
				break
			}
			text, err := s.statementText(ctx, e.Query, e.StatusVars) // in the client's character set (querycharset.go)
			if err != nil {
				return err
			}
			q := strings.TrimSpace(text)
			d := parseDDL(q, string(e.Schema))
			if !changesColumns(d, q) {
				break
			}
			after := gomysql.Position{Name: file, Pos: ev.Header.LogPos}
			for _, r := range d.Tables {
				if unnamed[r] && !s.knows(r, after) {
					// The schema history (history.go) would decode them
					// with the definitions of their time.
					return rewindAcrossDDL(meta, ts, r, q, t, after)
				}
				delete(unnamed, r)
			}
			if d.Kind == ddlDropDatabase {
				for r := range unnamed {
					if r.DB == d.DB {
						return rewindAcrossDDL(meta, ts, r, q, t, gomysql.Position{Name: file, Pos: ev.Header.LogPos})
					}
				}
			}
		}
		if ev.Header.LogPos != 0 && file == end.Name && ev.Header.LogPos >= end.Pos {
			return nil
		}
	}
}

func rewindAcrossDDL(meta string, ts int64, r tableRef, q string, at int64, after gomysql.Position) error {
	return connector.Fail(codeRewindAcrossDDL,
		fmt.Sprintf("a rewind to %d would decode rows of %s logged before %q (at %d, ending at %s) with the definition after it",
			ts, r, clip(q, 300), at, formatToken(after)),
		fmt.Sprintf("binlog_row_metadata is %s: row events carry no column names, so they are mapped by the table's current "+
			"definition, which that statement changed; the values would land in the wrong columns", orAbsent(meta)),
		"rewind to a time after the statement, or run a new full import of the table; "+
			"SET GLOBAL binlog_row_metadata=FULL so later changes can be replayed across such statements",
		true, nil)
}

// groupOr is the time of the group being read, or t when no group event
// began one.
func groupOr(group, t int64) int64 {
	if group != 0 {
		return group
	}
	return t
}

func orAbsent(meta string) string {
	if meta == "" {
		return "not available"
	}
	return meta
}
