// Package process runs a connector as an external program, in any language
// ("bring your own connector"). The program moves data itself and reports
// progress to cm over stdout; it takes no sink. The protocol is described in
// docs/connector-protocol.md.
//
// Source (source.type=process):
//
//	source.plugin            the name of a plugin an admin declared (Plugin, LoadDir); a
//	                         task never gives a command or a working directory of its own
//	source.grace             how long Close waits after SIGTERM before SIGKILL (default 10s)
//	source.heartbeatTimeout  how long the program may write nothing on stdout before the
//	                         task fails with PROCESS_HEARTBEAT_TIMEOUT (default 30s)
//
// The program runs with the environment the Plugins build (CM_TASK, a
// system PATH, the variables its manifest names), not cm's. It runs in its
// own process group, so a stop reaches its children
// too; when it exits, whatever it left in its group is killed. Its stderr is
// appended to <Config.Dir>/stderr.log and its last lines are kept for error
// details.
package process
