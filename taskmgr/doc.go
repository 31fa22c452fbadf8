// Package taskmgr carries out what operators ask of tasks and makes it
// happen on the node that owns each task.
//
// An operator call (Manager) validates, then in one short transaction writes
// the desired state with a compare-and-swap on the task's revision and an
// audit row. After commit it wakes the owning node and waits, bounded, until
// the observed state converges.
//
// The Reconciler of each node drives the runners of the tasks whose name
// carries its node id until observed state matches desired state. A Runner
// owns one incarnation: it opens the connectors, moves batches from source
// to sink, and hands the positions the sink made durable to the node's
// checkpoint.Committer, which writes them fenced by the task version.
package taskmgr

// Log field keys.
const (
	logTask      = "task"
	logNode      = "node"
	logVersion   = "version"
	logState     = "state"
	logRequestID = "request_id"
)
