package process

// Error codes in the connector.Error values this package returns. A program
// reporting an error names its own code; CodeReported is used when it gives
// none.
const (
	// CodeStartFailed: the program could not be started. Permanent when it
	// does not exist or may not be executed.
	CodeStartFailed = "PROCESS_START_FAILED"
	// CodeHandshake: the handshake line could not be written to stdin.
	CodeHandshake = "PROCESS_HANDSHAKE"
	// CodeExited: the program exited with a non-zero status or was killed.
	CodeExited = "PROCESS_EXITED"
	// CodeHeartbeatTimeout: the program wrote nothing for heartbeatTimeout.
	CodeHeartbeatTimeout = "PROCESS_HEARTBEAT_TIMEOUT"
	// CodeProtocol: the program wrote maxGarbage malformed lines in a row.
	CodeProtocol = "PROCESS_PROTOCOL"
	// CodeReported: the program wrote an error message without a code.
	CodeReported = "PROCESS_ERROR"
)
