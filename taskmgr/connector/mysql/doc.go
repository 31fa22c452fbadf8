// Package mysql is the MySQL/MariaDB connector: a binlog source for
// incr_trans, a chunked snapshot source for full_trans (both
// source.type=mysql), and an idempotent sink (sink.type=mysql). Every config
// key, the server requirements and the token formats are in
// docs/connectors.md; this comment says what must stay true.
//
// Incremental source (binlogSource). It registers as a replica
// (go-mysql's BinlogSyncer, file/position dump) and assembles row events of
// the selected tables into transactions: a transaction starts at a GTID
// event or BEGIN and ends at XID, COMMIT, or, for a standalone statement
// (DDL), the statement itself. A batch holds whole transactions only, so its
// one Position (Token "FILE:POS" just after the last transaction's end
// event, TS that transaction's first event time) is always a transaction
// boundary. Transactions on other tables still move the position.
//
// Where it starts:
//   - Token set: exactly there (refused if the file was purged);
//   - Token empty, TS t: from the start of the last binlog file that began
//     before t, skipping transactions that began before t (refused if t is
//     before the oldest file, which Oldest reports);
//   - no position: at the current binlog end, which the first Read returns
//     as a positions-only batch so it is recorded at once. Existing rows are
//     a full import's job.
//
// DDL (sink.ddl). With apply (the default; ddlstmt.go, ddlapply.go,
// history.go, derive.go) a schema statement on selected tables is parsed with the
// TiDB parser and travels to the sink alone in its batch
// (connector.Record.DDL), after every row before it, with the position
// just after it: the sink brings the target to its effect (clauses the
// target already reflects are left out, so a replay converges), records it
// in the task's history and only then returns, so the checkpoint passes
// the statement only once it is applied. The source records the
// definitions of the tables it changed in the task's schema history, by
// position, worked out from the statement and the version before it (not
// read from the server, which shows the definition of now), and decodes rows with the version of their position, which is
// what maps values to columns without FULL row metadata. A statement the
// sink does not take stops the source as stop does. With stop, ALTER,
// DROP, RENAME, TRUNCATE, CREATE OR REPLACE TABLE of a selected table and
// DROP DATABASE of a selected database stop the source with the permanent
// MYSQL_DDL_UNSUPPORTED, after delivering everything before the
// statement; CREATE TABLE and CREATE/DROP INDEX refresh the cached
// definition. The error carries the tokens just before and after the
// statement and the last batch ends at the one before it, so resume with
// skipDdl=true can continue exactly after it (stop.go). Without FULL row
// metadata and without the history, values are mapped by the current
// definition: the task carries a warning and a rewind across a column
// change is refused (rowmeta.go).
//
// Full import (snapshotSource). Each table (subtopic db.table) is split by
// primary key: a planner finds the key of every BatchSize-th row, readers
// read chunks (lo, hi] in parallel, and Read delivers chunks in planning
// order, one per batch. The token is JSON {"hw": upper key of the last
// delivered chunk, "rows", "crc32", "done"}; since delivery is in order,
// everything up to hw is applied. After a crash the chunks read ahead are
// read again but were never written; only a chunk written and not yet
// checkpointed is written twice.
//
// Sink. Inserts and updates are upserts (INSERT ... ON DUPLICATE KEY
// UPDATE), an update that moves the primary key deletes the old key first,
// deletes are by key. So delivery is at-least-once and replays converge.
// For a table whose only unique key is an exact-typed primary key, a batch
// is compacted to the last state of each key (deletes, then upserts): only
// the batch's final state is visible, so the order inside it does not
// matter. A large batch is split by key into sink.parallelism transactions
// applied at once; a table that cannot be compacted goes whole and in order
// into one of them. Every part commits before Write returns, so a batch is
// checkpointed only once all of it is applied; a crash between the parts
// leaves a prefix of work that the replay completes. Missing target tables
// are created from the source's SHOW CREATE TABLE when the source is mysql.
//
// Character sets (charset.go): rows travel in the binary character set on
// every connection, so string values are the bytes their column stores, in
// its own character set, from source to sink; definitions travel as utf8mb4
// text, and one the server does not show exactly is refused
// (MYSQL_INEXACT_DEFINITION) rather than created wrong.
package mysql
