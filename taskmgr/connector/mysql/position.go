package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// The incremental token is "FILE:POS": the binlog file and the byte offset
// just after the event that committed the last delivered transaction (its
// XID, or COMMIT query, or the DDL statement itself). Resuming there starts
// at the next transaction's first event. A token is tied to the server it
// came from: after a failover to another server, rewind by time instead.

func formatToken(p gomysql.Position) string {
	return p.Name + ":" + strconv.FormatUint(uint64(p.Pos), 10)
}

func parseToken(s string) (gomysql.Position, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return gomysql.Position{}, fmt.Errorf("binlog token %q is not FILE:POS", s)
	}
	pos, err := strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil || pos < 4 {
		return gomysql.Position{}, fmt.Errorf("binlog token %q is not FILE:POS", s)
	}
	return gomysql.Position{Name: s[:i], Pos: uint32(pos)}, nil
}

// binaryLogs lists the binlog files the server still has, oldest first.
func binaryLogs(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var files []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols)) // Log_name, File_size[, Encrypted]
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		files = append(files, string(vals[0]))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("SHOW BINARY LOGS returned no files")
	}
	return files, nil
}

// binlogEnd is the position a new transaction will be written at.
func binlogEnd(ctx context.Context, db *sql.DB) (gomysql.Position, error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil && serverErrNo(err) == 1064 { // MySQL 8.4 renamed it
		rows, err = db.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return gomysql.Position{}, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return gomysql.Position{}, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return gomysql.Position{}, err
		}
		return gomysql.Position{}, errors.New("SHOW MASTER STATUS returned nothing: binary logging is off")
	}
	vals := make([]sql.RawBytes, len(cols)) // File, Position, ...
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return gomysql.Position{}, err
	}
	pos, err := strconv.ParseUint(string(vals[1]), 10, 32)
	if err != nil {
		return gomysql.Position{}, fmt.Errorf("SHOW MASTER STATUS position %q: %w", vals[1], err)
	}
	return gomysql.Position{Name: string(vals[0]), Pos: uint32(pos)}, rows.Err()
}

// serverTime is the source server's clock (unix seconds): the times of the
// events it writes next are at least this.
func serverTime(ctx context.Context, db *sql.DB) (int64, error) {
	var now int64
	err := db.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP()").Scan(&now)
	return now, err
}

// Start returns the binlog end the source resolved at Open for a subtopic
// without a position; the runner makes it durable before the first batch
// (connector.Starter).
func (s *binlogSource) Start() []checkpoint.Position { return s.startAt }

// probeTimeout bounds reading the first event of one binlog file.
const probeTimeout = 15 * time.Second

// fileStartTime returns the timestamp of the first event of a binlog file
// (its format description event, written when the file was opened). It
// opens a short-lived binlog dump with a random server id, so it never
// displaces the task's own dump (the server keeps one dump per id).
func (s *binlogSource) fileStartTime(ctx context.Context, file string) (int64, error) {
	id := minServerID + rand.Uint32N(maxServerID-minServerID)
	if id == s.cfg.ServerID {
		id++
	}
	syncer := s.newSyncer(id)
	defer syncer.Close()
	stream, err := syncer.StartSync(gomysql.Position{Name: file, Pos: 4})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			return 0, err
		}
		// The server first sends an artificial rotate event with no time.
		if ev.Header.Timestamp != 0 {
			return int64(ev.Header.Timestamp), nil
		}
	}
}

// startForTime finds where to read from to deliver every transaction whose
// time is at or after t: the start of the last binlog file that began
// before t. The caller then skips transactions older than t. It refuses a
// time before the oldest file still on the server.
func (s *binlogSource) startForTime(ctx context.Context, t int64) (gomysql.Position, error) {
	files, err := binaryLogs(ctx, s.db)
	if err != nil {
		return gomysql.Position{}, sourceFailure("listing binary logs", err)
	}
	var oldest int64
	for i := len(files) - 1; i >= 0; i-- { // a rewind is usually recent: newest first
		ts, err := s.fileStartTime(ctx, files[i])
		if err != nil {
			return gomysql.Position{}, sourceFailure("reading the start time of "+files[i], err)
		}
		// Times have a resolution of one second: a file that began during
		// second t may follow transactions of second t in the file before
		// it, so only a file that began before t is sure to hold them all.
		// The oldest file is the exception: nothing precedes it.
		if ts < t || (ts == t && i == 0) {
			return gomysql.Position{Name: files[i], Pos: 4}, nil
		}
		oldest = ts
	}
	return gomysql.Position{}, connector.Fail(codePositionPurged,
		fmt.Sprintf("time %d (%s) is before the oldest binlog %s, which starts at %d (%s)", t,
			time.Unix(t, 0).UTC().Format(time.RFC3339), files[0], oldest, time.Unix(oldest, 0).UTC().Format(time.RFC3339)),
		"the binlog covering that time was purged", "rewind to a later time, or run a full import", true, nil)
}

// checkTokenFile refuses a token whose file the server no longer has.
func (s *binlogSource) checkTokenFile(ctx context.Context, p gomysql.Position) error {
	files, err := binaryLogs(ctx, s.db)
	if err != nil {
		return sourceFailure("listing binary logs", err)
	}
	for _, f := range files {
		if f == p.Name {
			return nil
		}
	}
	return connector.Fail(codePositionPurged,
		fmt.Sprintf("binlog file %s of the resume position is gone; the oldest is %s", p.Name, files[0]),
		"the binlog was purged or this is another server", "rewind to a time within the retained binlog, or run a full import", true, nil)
}

// Oldest implements connector.Ranger: the start time of the oldest binlog
// file still on the server. A rewind to an earlier time cannot be served.
func (s *binlogSource) Oldest(ctx context.Context) (map[string]int64, error) {
	db := s.db
	if db == nil {
		var err error
		if db, err = openDB(s.cfg.endpoint, sourceSession, false, 1); err != nil {
			return nil, err
		}
		defer db.Close()
	}
	files, err := binaryLogs(ctx, db)
	if err != nil {
		return nil, sourceFailure("listing binary logs", err)
	}
	ts, err := s.fileStartTime(ctx, files[0])
	if err != nil {
		return nil, sourceFailure("reading the start time of "+files[0], err)
	}
	return map[string]int64{s.cfg.Subtopic: ts}, nil
}

// Subtopics implements connector.Subtopicer: one binlog stream per server.
func (s *binlogSource) Subtopics() []string { return []string{s.cfg.Subtopic} }

// before reports whether position a is before b (files sort by name: the
// server numbers them with a fixed-width suffix).
func before(a, b gomysql.Position) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Pos < b.Pos
}
