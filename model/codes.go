package model

// Task error codes of the runtime, the jobs and the journaled operations:
// the codes of errorDetails and of audit rows that no connector raises.
// Each connector lists its own codes in its package's errors.go
// (taskmgr/connector/...); docs/api.md and docs/connectors.md document both.
// Whether a failure is worth retrying is its detail's Permanent flag, never
// its code.
const (
	// The runner.
	CodeOpenTimeout        = "OPEN_TIMEOUT"         // the connectors did not open in time
	CodeStartNotDurable    = "START_NOT_DURABLE"    // the start position could not be recorded
	CodeCheckpointTimeHeld = "CHECKPOINT_TIME_HELD" // warning: a reported time went backwards
	CodeSourceEnded        = "SOURCE_ENDED"         // an incremental source ended
	CodeConnectorError     = "CONNECTOR_ERROR"      // a connector failed without a code of its own
	CodeInvalidConfig      = "INVALID_CONFIG"       // the config does not build a connector
	CodeInvalidCheckpoint  = "INVALID_CHECKPOINT"   // source.checkpoint cannot be parsed
	CodeNoSink             = "NO_SINK"              // records but no sink
	CodeSecretUnresolved   = "SECRET_UNRESOLVED"    // a ${env:} or ${file:} reference names nothing on this node

	// The jobs.
	CodeHeartbeatStale = "HEARTBEAT_STALE"      // a RUNNING task's heartbeat is too old
	CodeNodeDead       = "NODE_DEAD"            // the task's node is dead
	CodeDelay          = "DELAY_OVER_THRESHOLD" // warning: checkpoint delay over task.delay.threshold

	// Health and the journaled operations.
	CodeTaskException      = "TASK_EXCEPTION"       // the task (or its new incarnation) is in EXCEPTION
	CodeNodeSuspect        = "NODE_SUSPECT"         // health: a node was not seen lately
	CodePullbackRolledBack = "PULLBACK_ROLLED_BACK" // a pullback could not go on and was undone
	CodeMigrateRolledBack  = "MIGRATE_ROLLED_BACK"  // a migrate could not go on and was undone
	CodeCheckpointForward  = "CHECKPOINT_FORWARD"   // a pullback found its target past the durable progress
)

// OpAutoRestart is the audit operation of an automatic resume (written by
// the use cases for the auto-restart job); its rows are a task's restart
// history.
const OpAutoRestart = "auto-restart"
