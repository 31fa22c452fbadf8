// Package process runs a connector as an external program, in any language
// ("bring your own connector"). The program moves data itself and reports
// progress to cm over stdout; it takes no sink. The protocol is described in
// docs/connector-protocol.md.
//
// Source (source.type=process):
//
//	source.command           argv as a JSON array, e.g. ["/bin/sh","-c","exec my-connector"]
//	source.workdir           working directory (default: cm's)
//	source.grace             how long Close waits after SIGTERM before SIGKILL (default 10s)
//	source.heartbeatTimeout  how long the program may write nothing on stdout before the
//	                         task fails with PROCESS_HEARTBEAT_TIMEOUT (default 30s)
//
// The program runs in its own process group, so a stop reaches its children
// too; when it exits, whatever it left in its group is killed. Its stderr is
// appended to <Config.Dir>/stderr.log and its last lines are kept for error
// details.
package process
