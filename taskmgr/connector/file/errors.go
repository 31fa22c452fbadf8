package file

// Error codes in the connector.Error values this package returns.
const (
	// CodeNotFound: the source file does not exist (yet). Not permanent: it
	// may appear.
	CodeNotFound = "FILE_NOT_FOUND"
	// CodeIO: the file could not be read or written.
	CodeIO = "FILE_IO"
	// CodeBadLine: a line is not a JSON object with an integer ts. Permanent.
	CodeBadLine = "FILE_BAD_LINE"
	// CodeOutOfOrder: a line's ts is lower than the line before it. Permanent.
	CodeOutOfOrder = "FILE_OUT_OF_ORDER"
	// CodeIncompleteLine: a full import reached the end of the file in the
	// middle of a line.
	CodeIncompleteLine = "FILE_INCOMPLETE_LINE"
	// CodeTruncated: the file became shorter than what was already read.
	CodeTruncated = "FILE_TRUNCATED"
	// CodeCheckpointInvalid: a resume token is not a line boundary of the
	// file. Permanent.
	CodeCheckpointInvalid = "CHECKPOINT_INVALID"
	// CodeBadRecord: a record cannot be written as one line. Permanent.
	CodeBadRecord = "FILE_BAD_RECORD"
)
