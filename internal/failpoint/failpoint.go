// Package failpoint lets crash tests stop a real cm process at an exact
// instant: right after a step of a journaled operation commits, or after a
// connector's step (a schema statement applied on a target). A node armed
// with a failpoint kills its own process with SIGKILL when it gets there
// (see cmd/cm). `cm serve` takes it from the environment variable
// CM_FAILPOINT; nothing sets it in production.
package failpoint

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"go.uber.org/zap"
)

// The failpoints a node knows.
const (
	// PullbackCall: the pullback call committed its journal.
	PullbackCall = "pullback:call"
	// PullbackStopped: the runner stopped and STOPPED was written.
	PullbackStopped = "pullback:stopped"
	// PullbackRewrite: the checkpoint was rewritten and the new incarnation
	// recorded (the journal step of the same name).
	PullbackRewrite = "pullback:rewrite"
	// DDLApplied: a mysql sink ran a schema statement on the target, and
	// neither recorded it nor checkpointed the position after it.
	DDLApplied = "mysql:ddl-applied"
)

// All lists the failpoints of journaled operations (the pullback's steps).
var All = []string{PullbackCall, PullbackStopped, PullbackRewrite}

// Connector lists the failpoints connectors reach.
var Connector = []string{DDLApplied}

// Armed is the failpoint a node is armed with; empty: none.
type Armed string

// Validate refuses an unknown failpoint.
func (a Armed) Validate() error {
	if a != "" && !slices.Contains(All, string(a)) && !slices.Contains(Connector, string(a)) {
		return fmt.Errorf("failpoint %q is not one of %v", string(a), append(slices.Clone(All), Connector...))
	}
	return nil
}

// Reach kills the process if point is the armed failpoint.
func (a Armed) Reach(log *zap.Logger, point string) {
	if a == "" || string(a) != point {
		return
	}
	log.Warn("failpoint reached: killing the process", zap.String("failpoint", point))
	_ = log.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal ends the process
}
