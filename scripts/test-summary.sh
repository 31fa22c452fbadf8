#!/usr/bin/env bash
# test-summary.sh: filters `go test -v` output for a readable `make test`.
# It keeps package results, failures, test logs and the per-backend subtests
# (name/sqlite, name/mariadb), so the output shows which suites ran on which
# store; it drops the RUN/PAUSE/CONT chatter and other passing test lines.
exec awk '
/^=== (RUN|PAUSE|CONT|NAME)/ { next }
/^[[:space:]]*--- PASS: / {
	if ($0 ~ /\/(sqlite|mariadb) \(/) print
	next
}
/^PASS$/ { next }
{ print; fflush() }
'
