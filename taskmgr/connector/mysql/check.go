package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/connector-manager/cm/taskmgr/connector"
)

// checkBinlogServer verifies what reading row changes from the binlog
// needs, so a misconfigured server fails at Open with a permanent error
// naming the fix instead of later with a decoding error. It returns the
// value of binlog_row_metadata ("" when the server has no such variable).
func checkBinlogServer(ctx context.Context, db *sql.DB) (rowMetadata string, err error) {
	var logBin, format, image sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image").
		Scan(&logBin, &format, &image); err != nil {
		return "", sourceFailure("reading binlog settings", err)
	}
	if v := strings.ToUpper(logBin.String); v != "1" && v != "ON" {
		return "", connector.Fail(codeBinlogDisabled, "binary logging is off on the source (log_bin=OFF)",
			"incremental sync reads row changes from the binlog",
			"start the source server with --log-bin and --binlog-format=ROW", true, nil)
	}
	if v := strings.ToUpper(format.String); v != "ROW" {
		return "", connector.Fail(codeBinlogFormat, fmt.Sprintf("binlog_format is %s, not ROW", v),
			"only row events carry the changed rows",
			"SET GLOBAL binlog_format=ROW (and in the server config), then restart the task", true, nil)
	}
	if v := strings.ToUpper(image.String); v != "FULL" {
		return "", connector.Fail(codeBinlogFormat, fmt.Sprintf("binlog_row_image is %s, not FULL", v),
			"idempotent apply writes whole rows; a partial image lacks the other columns",
			"SET GLOBAL binlog_row_image=FULL (and in the server config)", true, nil)
	}

	var name string
	switch err := db.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'binlog_row_metadata'").Scan(&name, &rowMetadata); {
	case err == sql.ErrNoRows:
		rowMetadata = ""
	case err != nil:
		return "", sourceFailure("reading binlog_row_metadata", err)
	}

	if _, err := binaryLogs(ctx, db); err != nil {
		if serverErrNo(err) == errSpecificAccess {
			return "", connector.Fail(codePrivilege, "the source user may not list binary logs",
				err.Error(), "GRANT BINLOG MONITOR ON *.* (MariaDB) or REPLICATION CLIENT ON *.* (MySQL) to the source user", true, err)
		}
		return "", sourceFailure("listing binary logs", err)
	}
	if ok, err := canReplicate(ctx, db); err != nil {
		return "", sourceFailure("reading grants", err)
	} else if !ok {
		return "", connector.Fail(codePrivilege, "the source user lacks REPLICATION SLAVE",
			"reading the binlog is a replication dump", "GRANT REPLICATION SLAVE ON *.* to the source user", true, nil)
	}
	return strings.ToUpper(rowMetadata), nil
}

// canReplicate reads SHOW GRANTS for REPLICATION SLAVE (or ALL) on *.*. When
// the user holds roles it cannot tell and says yes: the binlog dump itself
// then fails with a permanent privilege error if the grant is missing.
func canReplicate(ctx context.Context, db *sql.DB) (bool, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return false, err
	}
	defer rows.Close()
	ok := false
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return false, err
		}
		u := strings.ToUpper(g)
		on := strings.Index(u, " ON ")
		if on < 0 { // GRANT role TO user
			ok = true
			continue
		}
		if strings.HasPrefix(u[on:], " ON *.* ") &&
			(strings.Contains(u[:on], "ALL PRIVILEGES") || strings.Contains(u[:on], "REPLICATION SLAVE")) {
			ok = true
		}
	}
	return ok, rows.Err()
}
