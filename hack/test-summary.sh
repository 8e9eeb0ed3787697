#!/usr/bin/env bash
# Prints the last line of `make test`: how many tests passed and failed, from
# ctest's summary ("100% tests passed, 0 tests failed out of 326"). Later
# stages (integration, e2e) will add their counts here.
set -euo pipefail
log=$1
line=$(grep -E '[0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
if [ -z "$line" ]; then
  echo "test: no ctest summary in $log" >&2
  exit 1
fi
failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
echo "test: $((total - failed)) passed, ${failed} failed"
[ "$failed" -eq 0 ]
