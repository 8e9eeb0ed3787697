#!/usr/bin/env bash
# Prints the last line of `make test`: how many tests passed and failed in
# all, from ctest's summary ("100% tests passed, 0 tests failed out of 326")
# and the counts the script suites (integration, e2e) appended to COUNTS.
#
#   hack/test-summary.sh CTEST_LOG COUNTS
set -euo pipefail
log=$1
counts=${2:-}
line=$(grep -E '[0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
if [ -z "$line" ]; then
  echo "test: no ctest summary in $log" >&2
  exit 1
fi
failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
passed=$((total - failed))
parts="unit $passed"
if [ -n "$counts" ] && [ -f "$counts" ]; then
  while read -r suite p f; do
    passed=$((passed + p))
    failed=$((failed + f))
    parts+=", $suite $p"
  done <"$counts"
fi
echo "test: $passed passed, ${failed} failed ($parts)"
[ "$failed" -eq 0 ]
