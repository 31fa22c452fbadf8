package mysql

import (
	"context"
	"errors"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"

	"github.com/connector-manager/cm/taskmgr/connector"
)

// Error codes this package reports in errorDetails. Permanent ones are not
// retried by auto-restart: they need the operator (config, grants, schema).
const (
	codeConnect          = "MYSQL_CONNECT"           // server unreachable or refused the login
	codeAuth             = "MYSQL_AUTH"              // wrong user or password (permanent)
	codePrivilege        = "MYSQL_PRIVILEGE"         // a required privilege is missing (permanent)
	codeBinlogDisabled   = "MYSQL_BINLOG_DISABLED"   // log_bin is OFF (permanent)
	codeBinlogFormat     = "MYSQL_BINLOG_FORMAT"     // binlog_format or binlog_row_image is not ROW/FULL (permanent)
	codeNoPrimaryKey     = "MYSQL_NO_PRIMARY_KEY"    // a selected or target table has no primary key (permanent)
	codeTableNotFound    = "MYSQL_TABLE_NOT_FOUND"   // a named table does not exist (permanent)
	codeDDLUnsupported   = "MYSQL_DDL_UNSUPPORTED"   // ALTER/DROP/RENAME/TRUNCATE of a selected table (permanent)
	codeSchemaMismatch   = "MYSQL_SCHEMA_MISMATCH"   // a row event does not match the known table definition (permanent)
	codePositionPurged   = "MYSQL_POSITION_PURGED"   // the resume point is no longer in the binlog (permanent)
	codeBinlogStream     = "MYSQL_BINLOG_STREAM"     // the binlog connection broke (transient)
	codeQuery            = "MYSQL_QUERY"             // a query on the source failed (transient)
	codeApply            = "MYSQL_APPLY"             // applying a batch on the target failed (transient)
	codeApplySchema      = "MYSQL_APPLY_SCHEMA"      // the target table does not fit the rows (permanent)
	codeUnsupportedInput = "MYSQL_UNSUPPORTED_INPUT" // the sink got a record without a row change (permanent)
	codeDDLApply         = "MYSQL_DDL_APPLY"         // a schema statement could not be applied on the target (permanent)
	// codeRowMetadataMinimal: a warning: binlog_row_metadata is not FULL,
	// so row events carry no column names.
	codeRowMetadataMinimal = "MYSQL_ROW_METADATA_MINIMAL"
	// codeRewindAcrossDDL: a rewind would decode rows logged without
	// column names across a statement that changed their table's columns
	// (permanent).
	codeRewindAcrossDDL = "MYSQL_REWIND_ACROSS_DDL"
	// codeInexactDefinition: the sink would create a target table from a
	// source definition the server does not show exactly (permanent).
	codeInexactDefinition = "MYSQL_INEXACT_DEFINITION"
)

// MySQL server error numbers this package tells apart.
const (
	errAccessDenied      = 1045 // ER_ACCESS_DENIED_ERROR
	errDBAccessDenied    = 1044 // ER_DBACCESS_DENIED_ERROR
	errSpecificAccess    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	errTableAccess       = 1142 // ER_TABLEACCESS_DENIED_ERROR
	errNoSuchTable       = 1146 // ER_NO_SUCH_TABLE
	errBadField          = 1054 // ER_BAD_FIELD_ERROR
	errWrongValueCount   = 1136 // ER_WRONG_VALUE_COUNT_ON_ROW
	errBadDB             = 1049 // ER_BAD_DB_ERROR
	errNoBinaryLogging   = 1381 // ER_NO_BINARY_LOGGING
	errMasterFatalReader = 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
	errDeadlock          = 1213 // ER_LOCK_DEADLOCK
	errDupFieldName      = 1060 // ER_DUP_FIELDNAME
	errDupKeyName        = 1061 // ER_DUP_KEYNAME
	errCantDropField     = 1091 // ER_CANT_DROP_FIELD_OR_KEY
	errTableExists       = 1050 // ER_TABLE_EXISTS_ERROR
	errKeyColumnMissing  = 1072 // ER_KEY_COLUMN_DOES_NOT_EXITS
	errLockWaitTimeout   = 1205 // ER_LOCK_WAIT_TIMEOUT
)

// serverErrNo returns the MySQL error number inside err, or 0. Both drivers'
// error types are recognised: go-sql-driver's (SQL) and go-mysql's (binlog).
func serverErrNo(err error) uint16 {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	var ge *gomysql.MyError
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// sourceFailure classifies an error from talking to the source server:
// login and privilege errors are permanent, the rest transient.
func sourceFailure(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) || errors.Is(err, context.Canceled) {
		return err
	}
	switch serverErrNo(err) {
	case errAccessDenied:
		return connector.Fail(codeAuth, what+": access denied", "the server refused source.username/source.password",
			"check the credentials and that the user may connect from this host", true, err)
	case errSpecificAccess, errDBAccessDenied, errTableAccess:
		return connector.Fail(codePrivilege, what+": missing privilege", err.Error(),
			"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) ON *.* to the source user", true, err)
	case errMasterFatalReader:
		return connector.Fail(codePositionPurged, what+": the binlog position is not readable", err.Error(),
			"the binlog was purged or the position is invalid; rewind to a time within the retained binlog or restart the full import", true, err)
	}
	if errors.Is(err, driver.ErrInvalidConn) {
		return connector.Fail(codeQuery, what, err.Error()+": the connection to the source broke, or the source did not answer within source.ioTimeout",
			"check the source server and the network to it; the task is restarted by the restart policy", false, err)
	}
	return connector.Fail(codeQuery, what, err.Error(), "", false, err)
}

// sinkFailure classifies an error from the target server.
func sinkFailure(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) || errors.Is(err, context.Canceled) {
		return err
	}
	switch serverErrNo(err) {
	case errAccessDenied:
		return connector.Fail(codeAuth, what+": access denied", "the server refused sink.username/sink.password",
			"check the credentials", true, err)
	case errSpecificAccess, errDBAccessDenied, errTableAccess:
		return connector.Fail(codePrivilege, what+": missing privilege", err.Error(),
			"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE on the target databases to the sink user", true, err)
	case errNoSuchTable, errBadField, errWrongValueCount, errBadDB:
		return connector.Fail(codeApplySchema, what+": target schema does not fit", err.Error(),
			"make the target table match the source definition", true, err)
	}
	if errors.Is(err, driver.ErrInvalidConn) {
		return connector.Fail(codeApply, what, err.Error()+": the connection to the target broke, or the target did not answer within sink.ioTimeout",
			"check the target server and the network to it; the task is restarted by the restart policy", false, err)
	}
	return connector.Fail(codeApply, what, err.Error(), "", false, err)
}

// noPrimaryKey is the permanent refusal of tables without a primary key:
// without one, a replayed change cannot be applied idempotently.
func noPrimaryKey(side string, tables []string) error {
	return connector.Fail(codeNoPrimaryKey,
		fmt.Sprintf("%s tables without a primary key: %v", side, tables),
		"rows are applied idempotently by primary key; a table without one cannot be synced",
		"add a primary key to the table or remove it from source.tables", true, nil)
}

func tableNotFound(side string, tables []string) error {
	return connector.Fail(codeTableNotFound,
		fmt.Sprintf("%s tables not found: %v", side, tables),
		"a table named in source.tables does not exist or the user cannot see it",
		"create the table, grant SELECT on it, or fix source.tables", true, nil)
}

func connectFailure(side string, e endpoint, err error) error {
	return connector.Fail(codeConnect, fmt.Sprintf("cannot reach %s %s", side, e.Addr()), err.Error(),
		fmt.Sprintf("check %s.host and %s.port and that the server runs", side, side), false, err)
}
