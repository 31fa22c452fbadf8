#!/usr/bin/env bash
# Runs every Go fuzz target of the module (func FuzzXxx in a _test.go file)
# for FUZZTIME each (default 60s), one at a time: `go test -fuzz` takes one
# target of one package per run. Each target's corpus is in its package's
# testdata/fuzz/<target>/; what the fuzzer finds failing is written there too,
# to commit with its fix. `go test` alone runs the corpus as regression tests.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
cd "$(dirname "$0")/.."
status=0
while read -r file; do
	dir=$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $dir $target ($FUZZTIME)"
		if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "./$dir" 2>&1 | grep -v '^fuzz: elapsed'; then
			status=1
		fi
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sed 's#^\./##' | sort)
exit $status
