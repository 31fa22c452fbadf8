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
//
// In a cluster, any node's Manager can operate any task: after commit the
// ClusterWaker nudges the owner's reconciler over HTTP (or in process), and
// the owner's periodic pass covers a lost nudge. Membership keeps each
// node's heartbeat; Liveness turns its age into alive, suspect or dead.
// One node at a time holds the leader Lease and runs the Scheduler's
// cron jobs (task and node liveness, auto-restart under RestartPolicy,
// delay watch, audit retention), configured by system parameters (Params)
// that are read afresh on every use. Migrate and pullback are journaled
// on the task row and advanced step by step by the owning reconciler.
package taskmgr
