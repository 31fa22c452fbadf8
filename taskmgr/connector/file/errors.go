package file

// Error codes in the connector.Error values this package returns.
const (
	// codeNotFound: the source file does not exist (yet). Not permanent: it
	// may appear.
	codeNotFound = "FILE_NOT_FOUND"
	// codeIO: the file could not be read or written.
	codeIO = "FILE_IO"
	// codeBadLine: a line is not a JSON object with an integer ts. Permanent.
	codeBadLine = "FILE_BAD_LINE"
	// codeOutOfOrder: a line's ts is lower than the line before it. Permanent.
	codeOutOfOrder = "FILE_OUT_OF_ORDER"
	// codeIncompleteLine: a full import reached the end of the file in the
	// middle of a line.
	codeIncompleteLine = "FILE_INCOMPLETE_LINE"
	// codeTruncated: the file became shorter than what was already read.
	codeTruncated = "FILE_TRUNCATED"
	// codeCheckpointInvalid: a resume token is not a line boundary of the
	// file. Permanent.
	codeCheckpointInvalid = "CHECKPOINT_INVALID"
	// codeBadRecord: a record cannot be written as one line. Permanent.
	codeBadRecord = "FILE_BAD_RECORD"
	// codeOutsideRoots: the path leads outside the file roots when it is
	// opened (a symlink swapped in after the config was accepted).
	// Permanent.
	codeOutsideRoots = "FILE_OUTSIDE_ROOTS"
)
