// Package bench holds the side-by-side benchmarks of the MySQL connectors
// against the server's own tools, run by `make bench`: incremental catch-up
// against a MariaDB native replica, full import against
// mariadb-dump | mariadb, and steady-state lag at a fixed source rate.
// Everything is in its _test.go files; docs/benchmarks.md has the figures.
package bench
