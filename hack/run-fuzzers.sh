#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for a while.
#
#   hack/run-fuzzers.sh [SECONDS]      (default 30 seconds per target)
#
# The build lives in its own directory (build-fuzz, or $KOLE_FUZZ_BUILD_DIR),
# configured with clang, KOLE_FUZZ=ON and neither tests nor benchmarks, and
# is configured only once and rebuilt incrementally. Each target keeps a
# corpus under <build>/corpus/<target> that grows from run to run; it starts
# from fuzz/<target>_seeds when that folder exists. Targets run
# $KOLE_FUZZ_JOBS at a time (default: the number of cores).
#
# Prints one line per target with its executions and result. Exits non-zero
# (the first failing target's libFuzzer exit code) if any target crashed,
# leaked, timed out or broke a property; the line then names the file that
# reproduces it (<build>/fuzz/<target> <file>) and the log's tail follows.
set -uo pipefail

seconds=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KOLE_FUZZ_BUILD_DIR:-${root}/build-fuzz}
jobs=${KOLE_FUZZ_JOBS:-$(nproc)}

if ! [[ "${seconds}" =~ ^[0-9]+$ ]] || [ "${seconds}" -eq 0 ]; then
  echo "usage: $0 [SECONDS]   (a positive number of seconds per target)" >&2
  exit 2
fi

# --- Build ---------------------------------------------------------------

start=$(date +%s)
if [ ! -f "${build}/build.ninja" ]; then
  # -O1 with line tables is what libFuzzer setups usually use: quick to
  # compile, fast enough to run, and assertions stay in (no NDEBUG).
  cmake -S "${root}" -B "${build}" -G Ninja \
    -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DKOLE_FUZZ=ON -DKOLE_BUILD_TESTS=OFF -DKOLE_BUILD_BENCH=OFF >/dev/null || exit 1
fi
cmake --build "${build}" --target kole_fuzzers -j "${jobs}" || exit 1
echo "fuzz: build took $(($(date +%s) - start)) s"

# --- Run -----------------------------------------------------------------

targets=()
for source in "${root}"/fuzz/*_fuzz.cc; do
  targets+=("$(basename "${source}" .cc)")
done

mkdir -p "${build}/corpus" "${build}/artifacts" "${build}/logs"

# Runs one target; its log holds libFuzzer's output.
run_target() {
  local target=$1
  local corpus="${build}/corpus/${target}"
  local seeds="${root}/fuzz/${target}_seeds"
  local artifacts="${build}/artifacts/${target}"
  mkdir -p "${corpus}" "${artifacts}"
  local dirs=("${corpus}")
  [ -d "${seeds}" ] && dirs+=("${seeds}")
  # -timeout: one input running this long counts as a hang. New inputs go to
  # the first directory, so the seeds folder is only read.
  "${build}/fuzz/${target}" -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="${artifacts}/" "${dirs[@]}" \
    >"${build}/logs/${target}.log" 2>&1
  echo $? >"${build}/logs/${target}.rc"
}

running=0
for target in "${targets[@]}"; do
  rm -f "${build}/logs/${target}.rc"
  run_target "${target}" &
  running=$((running + 1))
  if [ "${running}" -ge "${jobs}" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

# --- Report --------------------------------------------------------------

status=0
for target in "${targets[@]}"; do
  log="${build}/logs/${target}.log"
  rc=$(cat "${build}/logs/${target}.rc" 2>/dev/null || echo 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "${log}" | tail -n 1)
  corpus=$(find "${build}/corpus/${target}" -type f | wc -l)
  if [ "${rc}" -eq 0 ]; then
    printf 'fuzz %-22s ok      %10s execs %7s/s  corpus %s\n' \
      "${target}" "${runs:-?}" "${rate:-?}" "${corpus}"
    continue
  fi
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "${log}" | tail -n 1)
  printf 'fuzz %-22s FAILED  %10s execs %7s/s  exit %s  reproduce: %s %s\n' \
    "${target}" "${runs:-?}" "${rate:-?}" "${rc}" "${build}/fuzz/${target}" \
    "${artifact:-(no input saved; see ${log})}"
  echo "---- ${log} (tail) ----"
  tail -n 60 "${log}"
  echo "----"
  [ "${status}" -eq 0 ] && status=${rc}
done
exit "${status}"
