// Package file is the built-in JSON-lines connector, so cm has real work to
// run with nothing else installed.
//
// Source (source.type=file):
//
//	source.path      a JSON-lines file; every line is a JSON object with an
//	                 integer "ts" (unix seconds), in non-decreasing ts order
//	source.subtopic  the subtopic name (default: the file's base name)
//
// The source tails the file: lines appended later are read as they arrive,
// and only complete lines (ending in '\n') are emitted. For a full_trans task
// it does not tail: reaching the end of the file finishes the import.
// A position's Token is the byte offset just after the last emitted line, in
// decimal; its TS is that line's ts.
//
// Sink (sink.type=file):
//
//	sink.path  a JSON-lines file, appended to and created with its parents
//	           when missing
//
// Both paths must resolve inside the Roots the registry was given (see
// Roots.Check): checked when the config is built and again on open.
//
// Each record becomes one line (its payload, or a row change as a JSON object
// with a ts), and a batch is fsynced before Write returns.
// Delivery is at-least-once: a replay after a restart may repeat lines.
package file
