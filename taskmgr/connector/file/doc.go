// Package file is the built-in JSON-lines connector, so cm has real work to
// run with nothing else installed.
//
// Source (source.type=file):
//
//	source.path          a JSON-lines file; every line is a JSON object with
//	                     an integer "ts" (unix seconds), in non-decreasing ts
//	                     order
//	source.subtopic      the subtopic name (default: the file's base name)
//	source.pollInterval  how often an idle tail looks at its file without
//	                     being told it changed (default 5s, at least 50ms)
//
// The source tails the file: lines appended later are read as they arrive,
// and only complete lines (ending in '\n') are emitted. For a full_trans task
// it does not tail: reaching the end of the file finishes the import.
// A position's Token is the byte offset just after the last emitted line, in
// decimal; its TS is that line's ts.
//
// While there are lines a tail reads on without waiting. At the end of the
// file it waits for a notification from the node's one Watcher (fsnotify:
// one inotify watch per directory, shared by every source with a file in
// it), for source.pollInterval (the safety poll: a lost notification delays
// a line by at most that), or for its next delay report. A source whose
// watch cannot be added (the kernel's fs.inotify limits) logs it once and
// polls every 50ms, as every source did before, trying the watch again
// every source.pollInterval. After 5s without a new line a tail closes its
// file, keeping its offset, and opens it again when told it changed; so an
// idle task holds no descriptor. A file replaced while closed (a new inode,
// or the path missing in between) is read as a task resuming at the same
// offset would read it: once the new file is that long, from that offset
// if it is a line boundary, else the task fails with CHECKPOINT_INVALID. A
// file missing while closed is waited for. While the file is open, as
// before, the source reads the file it opened however the path changes.
//
// Sink (sink.type=file):
//
//	sink.path  a JSON-lines file, appended to and created with its parents
//	           when missing
//
// Both paths must resolve inside the Roots the registry was given (see
// Roots.Check): checked when the config is built and again whenever the
// file is opened (the sink: for each batch; the source: after an idle close).
//
// Each record becomes one line (its payload, or a row change as a JSON object
// with a ts), and a batch is fsynced before Write returns. The sink opens
// the file for each batch and closes it after, so it holds no descriptor
// between batches, and a batch goes to the file the path names when it is
// written (after log rotation, the new file).
// Delivery is at-least-once: a replay after a restart may repeat lines.
package file
