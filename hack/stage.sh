#!/usr/bin/env bash
# Runs one stage of `make test` and prints how long it took, so CI logs show
# where the time goes.
set -uo pipefail
name=$1
shift
start=$(date +%s)
echo "=== stage ${name}: start"
"$@"
rc=$?
echo "=== stage ${name}: $((  $(date +%s) - start )) s (exit ${rc})"
exit "${rc}"
