package taskmgr

import (
	"os"
	"syscall"

	"go.uber.org/zap"
)

// Failpoints name the instants right after a step of a journaled operation
// commits. A node whose Config.Failpoint names one kills its own process
// with SIGKILL when it gets there, so crash tests can stop a real cm at
// exactly that instant (see cmd/cm). `cm serve` takes it from the
// environment variable CM_FAILPOINT; nothing sets it in production.
const (
	// FailpointPullbackCall: the pullback call committed its journal.
	FailpointPullbackCall = "pullback:call"
	// FailpointPullbackStopped: the runner stopped and STOPPED was written.
	FailpointPullbackStopped = "pullback:stopped"
	// FailpointPullbackRewrite: the checkpoint was rewritten and the new
	// incarnation recorded (the journal step of the same name).
	FailpointPullbackRewrite = "pullback:rewrite"
)

// Failpoints lists the failpoints a node knows, for validation.
var Failpoints = []string{FailpointPullbackCall, FailpointPullbackStopped, FailpointPullbackRewrite}

// reach kills the process if point is the configured failpoint.
func (c Config) reach(log *zap.Logger, point string) {
	if c.Failpoint == "" || c.Failpoint != point {
		return
	}
	log.Warn("failpoint reached: killing the process", zap.String("failpoint", point))
	_ = log.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal ends the process
}
