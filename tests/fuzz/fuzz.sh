#!/usr/bin/env bash
# Runs every fuzz target of the tree (func FuzzXxx in *_fuzz_test.go files)
# for FUZZTIME each (default 3s), one after the other, one worker each: CI
# gets a bounded smoke run (a dozen targets, well under a minute and a half),
# a developer a longer one (FUZZTIME=10m). The seed corpora and crashers kept
# in testdata/fuzz run as plain tests in `go test ./...` too.
#
#   tests/fuzz/fuzz.sh [REGEXP]     only the targets whose name matches
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZTIME=${FUZZTIME:-3s}
only=${1:-.}
status=0
while IFS=: read -r file target; do
	[[ $target =~ $only ]] || continue
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $target ($FUZZTIME)"
	if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" -parallel=1 "$pkg" >"${TMPDIR:-/tmp}/fuzz-$target.log" 2>&1; then
		tail -30 "${TMPDIR:-/tmp}/fuzz-$target.log" >&2
		status=1
	else
		grep -E '^fuzz: elapsed' "${TMPDIR:-/tmp}/fuzz-$target.log" | tail -1
	fi
done < <(grep -r -o -E --include='*_fuzz_test.go' '^func Fuzz[A-Za-z0-9_]+' . |
	sed -e 's/:func /:/' -e 's#^\./##' | sort)
exit $status
