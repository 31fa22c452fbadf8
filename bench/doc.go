// Package bench holds the benchmarks run by `make bench`. The MySQL ones set
// the connectors beside the server's own tools: incremental catch-up against
// MariaDB native replicas (one applier thread, and four in optimistic mode),
// full import against LOAD DATA INFILE and mariadb-dump | mariadb,
// steady-state lag at fixed source rates, and a pullback's repair of a
// corrupted target against the catch-up of the same range. The control-plane
// ones measure one node with many tasks. Everything is in the _test.go files;
// docs/benchmarks.md has the figures.
package bench
