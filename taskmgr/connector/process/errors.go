package process

// Error codes in the connector.Error values this package returns. A program
// reporting an error names its own code; codeReported is used when it gives
// none.
const (
	// codeStartFailed: the program could not be started. Permanent when it
	// does not exist or may not be executed.
	codeStartFailed = "PROCESS_START_FAILED"
	// codeHandshake: the handshake line could not be written to stdin.
	codeHandshake = "PROCESS_HANDSHAKE"
	// codeExited: the program exited with a non-zero status or was killed.
	codeExited = "PROCESS_EXITED"
	// codeHeartbeatTimeout: the program wrote nothing for heartbeatTimeout.
	codeHeartbeatTimeout = "PROCESS_HEARTBEAT_TIMEOUT"
	// codeProtocol: the program wrote maxGarbage malformed lines in a row.
	codeProtocol = "PROCESS_PROTOCOL"
	// codeReported: the program wrote an error message without a code.
	codeReported = "PROCESS_ERROR"
)
