// Package checkpoint holds checkpoint formats, time parsing, positions,
// pullback validation and the batching committer.
//
// The OMS checkpoint string is a JSON object from subtopic to unix seconds,
// values written as JSON strings: {"p_493po":"1676286000"}. Parse accepts
// what operators type (numbers as well as strings, surrounding whitespace);
// Format writes the one canonical form, so a stored checkpoint compares
// equal byte for byte when it means the same thing.
//
// Everything except the committer is pure: no clock, no I/O. Callers pass
// "now", the subtopics a task knows and the oldest time its source still
// holds, so the guard rails are table-testable and the same checks run in
// the API and in the runner.
//
// checkpoint imports only cm/model and the standard library. It must not
// import echo or cm/taskmgr: the server maps its errors to errCodes with
// errors.Is, and taskmgr calls into it, never the other way round.
package checkpoint
