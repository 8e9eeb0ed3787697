#!/usr/bin/env bash
# The peer benchmark (DESIGN §9, bench/peer/README.md): the same seeded fleet
# held by upstream Kubernetes (N core/v1 Nodes and Leases in kube-apiserver +
# etcd, driven by kubelet-shaped clients) and by KOLE (kole-apiserver behind
# mosquitto, driven by kole-edge-sim), measured side by side in one run.
#
#   bench/peer/run.sh [build-dir]
#
# Environment:
#   KOLE_PEER_SIZES        fleet sizes run on both sides (default "10000 50000")
#   KOLE_BENCH_NODES       a further size for KOLE alone (default 1000000; 0: none)
#   KOLE_PEER_SERVER_CPUS  CPUs of the servers under test: etcd, kube-apiserver,
#                          kole-apiserver, mosquitto (default 1; empty: no pinning)
#   KOLE_PEER_CLIENT_CPUS  CPUs of the load: kole-peer-load, kole-edge-sim,
#                          kubectl (default 0; empty: no pinning)
#   KOLE_PEER_STEADY_SECONDS  the steady phase at the kubelet rate (default 60,
#                          so that memory, read after a third of it, is read
#                          after one of kole-apiserver's heap trims (every
#                          15 s) has run since the registration burst;
#                          longer when the two kubectl lists in it take longer)
#   KOLE_PEER_STEP_SECONDS    each step of the heartbeat ramps (default 10)
#   KOLE_PEER_KEEP=1       keep the work directory (logs) under /tmp
#
# Every figure goes to standard output and to <build-dir>/peer/figures.txt;
# bench/peer/report.py then prints the ratio table and draws docs/peer.png.
# Everything listens on 127.0.0.1 only and is stopped on exit, also on failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD_DIR=$(cd "${1:-$root/build}" && pwd)
# shellcheck source=e2e/lib/env.sh
source "$root/e2e/lib/env.sh"
# shellcheck source=hack/lib/checks.sh
source "$root/hack/lib/checks.sh"
# shellcheck source=e2e/lib/control-plane.sh
source "$root/e2e/lib/control-plane.sh"

SIZES=${KOLE_PEER_SIZES:-"10000 50000"}
BIG=${KOLE_BENCH_NODES:-1000000}
SERVER_CPUS=${KOLE_PEER_SERVER_CPUS-1}
CLIENT_CPUS=${KOLE_PEER_CLIENT_CPUS-0}
STEADY_SECONDS=${KOLE_PEER_STEADY_SECONDS:-60}
STEP_SECONDS=${KOLE_PEER_STEP_SECONDS:-10}
# Upstream's ramp, in lease renewals per second; KOLE's, in heartbeats per
# second (rates below the fleet's kubelet rate, N / 10 s, are skipped).
UPSTREAM_RATES=${KOLE_PEER_UPSTREAM_RATES:-"250,500,1000,2000,3000,4000,6000,8000,12000,16000"}
KOLE_RATES=${KOLE_PEER_KOLE_RATES:-"1000 5000 10000 25000 50000 100000 200000 400000 800000"}

OUT="$BUILD_DIR/peer"
FIGURES="$OUT/figures.txt"
WORK=$(mktemp -d /tmp/kole-peer-XXXXXX)
mkdir -p "$OUT"
: >"$FIGURES"

BROKER_PID=
KOLE_PID=
SIM_PID=
LOAD_PID=

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  return 0
}

stop_kole_side() {
  stop_pid "$SIM_PID"
  SIM_PID=
  stop_pid "$KOLE_PID"
  KOLE_PID=
  stop_pid "$BROKER_PID"
  BROKER_PID=
}

cleanup() {
  local rc=$?
  stop_pid "$LOAD_PID"
  stop_kole_side
  cp_stop
  # Any other child of this script still running (a failure midway).
  local pid
  for pid in $(ps -o pid= --ppid $$); do kill -TERM "$pid" 2>/dev/null; done
  if [ "$rc" -ne 0 ] || [ "${KOLE_PEER_KEEP:-0}" = 1 ]; then
    echo "peer: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

figure() { echo "figure $1 $2 $3" | tee -a "$FIGURES"; }
# Runs a command whose standard output carries figure lines, keeping them.
# Long commands run in the background and are waited for, so that a signal
# reaches the traps at once rather than when the command ends.
collect() {
  "$@" >"$WORK/collect.out" &
  wait "$!"
  local rc=$?
  tee -a "$FIGURES" <"$WORK/collect.out"
  return "$rc"
}
say() { echo "peer: $*" >&2; }
now() { date +%s.%N; }
since() { "$PYTHON" -c "print(f'{$(now) - $1:.3f}')"; }
# (%.0f, not %d: mawk's %d stops at 2^31.)
rss() { awk '/^VmRSS:/ { printf "%.0f\n", $2 * 1024 }' "/proc/$1/status"; }
# CPU time of processes so far, in clock ticks (user + system).
ticks() {
  local pid sum=0
  for pid in "$@"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  echo "$sum"
}

per_node() { "$PYTHON" -c "print(f'{max(0, $1 - $2) / $3:.1f}')"; }
# Command prefixes that pin to the CPUs of each side. They are arrays, not
# functions, so that a process started in the background is the program
# itself (taskset execs it) and $! is its own process id.
SERVER_PIN=()
CLIENT_PIN=()
[ -n "$SERVER_CPUS" ] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -n "$CLIENT_CPUS" ] && CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
# Debian's python3, which has python3-matplotlib (hack/install-deps.sh).
PYTHON=${PYTHON:-/usr/bin/python3}

# --- Tools ---------------------------------------------------------------------

TOOLS=$("$root/e2e/build-tools.sh") || exit 1
KUBECTL="$TOOLS/kubectl"
LOADGEN="$BUILD_DIR/bin/kole-peer-load"
(cd "$here" && go build -mod=readonly -trimpath -o "$LOADGEN" ./loadgen) || exit 1
SIM="$BUILD_DIR/bin/kole-edge-sim"
say "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); servers on CPUs" \
  "'${SERVER_CPUS:-any}', load on CPUs '${CLIENT_CPUS:-any}'"
figure peer.load_average_at_start "$(cut -d' ' -f1 /proc/loadavg)" load

# The fleet both sides hold: every generated label (--send-user-labels), so
# customer and tier are there too, as an operator would label real nodes.
SIM_FLEET=(--seed 1 --send-user-labels)
first_node() { "$SIM" "${SIM_FLEET[@]}" --nodes 1 --print-registrations - | jq -r .node; }
NODE0=$(first_node)

# timed_list NAME N KUBECONFIG RESOURCE [FLAGS]: `kubectl get` of a whole
# collection, timed; checks the row count.
timed_list() {
  local name=$1 n=$2 kubeconfig=$3 resource=$4 started lines seconds
  shift 4
  started=$(now)
  "${CLIENT_PIN[@]}" "$KUBECTL" --kubeconfig "$kubeconfig" get "$resource" "$@" \
    >"$WORK/list.txt" 2>"$WORK/list.err" &
  wait "$!"
  seconds=$(since "$started")
  lines=$(($(wc -l <"$WORK/list.txt") - 1))
  if [ "$lines" -ne "$n" ]; then
    say "kubectl get $resource printed $lines rows, expected $n:"
    head -5 "$WORK/list.err" >&2
  fi
  figure "$name" "$seconds" s
}

# steady_phase SIDE N RESOURCE MEMORY_FUNCTION LOAD_COMMAND...: the steady
# state of one side. The load command (heartbeats at the kubelet rate with
# GETs of one node, or GETs alone while the simulator heartbeats) runs in the
# background; after a third of STEADY_SECONDS MEMORY_FUNCTION N records
# memory before any full list (the headline figure); then two full `kubectl
# get RESOURCE` through CP_KUBECONFIG: kubectl's default pages of 500 (which
# its own client-side limit of 5 requests a second paces), then one
# unpaginated request. The load runs on to STEADY_SECONDS at least, is
# stopped (it reports on SIGTERM) and its figures kept.
steady_phase() {
  local side=$1 n=$2 resource=$3 memory=$4 started
  shift 4
  "$@" >"$WORK/steady.out" &
  LOAD_PID=$!
  started=$(now)
  sleep $((STEADY_SECONDS / 3))
  "$memory" "$n"
  timed_list "peer.$side.list_seconds_$n" "$n" "$CP_KUBECONFIG" "$resource"
  timed_list "peer.$side.list_unpaged_seconds_$n" "$n" "$CP_KUBECONFIG" "$resource" \
    --chunk-size=0
  sleep "$("$PYTHON" -c "print(max(0, $STEADY_SECONDS - ($(now) - $started)))")"
  kill -TERM "$LOAD_PID" 2>/dev/null
  wait "$LOAD_PID"
  LOAD_PID=
  tee -a "$FIGURES" <"$WORK/steady.out"
}

# upstream_memory N: etcd's and kube-apiserver's resident sets, each and
# together per node, against ETCD0 and API0 taken before the fleet existed.
upstream_memory() {
  local n=$1 etcd api
  etcd=$(rss "$CP_ETCD_PID")
  api=$(rss "$CP_APISERVER_PID")
  figure "peer.upstream.etcd_rss_$n" "$etcd" B
  figure "peer.upstream.kube_apiserver_rss_$n" "$api" B
  figure "peer.upstream.etcd_bytes_per_node_$n" "$(per_node "$etcd" "$ETCD0" "$n")" B
  figure "peer.upstream.kube_apiserver_bytes_per_node_$n" "$(per_node "$api" "$API0" "$n")" B
  figure "peer.upstream.bytes_per_node_$n" "$(per_node "$((etcd + api))" "$((ETCD0 + API0))" "$n")" B
}

# kole_memory N: kole-apiserver's and mosquitto's resident sets and their
# growth per node, against KOLE0 and BROKER0 taken before the fleet existed.
kole_memory() {
  local n=$1 kole broker
  kole=$(rss "$KOLE_PID")
  broker=$(rss "$BROKER_PID")
  figure "peer.kole.kole_apiserver_rss_$n" "$kole" B
  figure "peer.kole.mosquitto_rss_$n" "$broker" B
  figure "peer.kole.bytes_per_node_$n" "$(per_node "$kole" "$KOLE0" "$n")" B
  figure "peer.kole.mosquitto_bytes_per_node_$n" "$(per_node "$broker" "$BROKER0" "$n")" B
}

# --- Upstream: etcd + kube-apiserver holding N Nodes and Leases ----------------


run_upstream() {
  # Separate lines: `local` expands all its words before assigning any.
  local n=$1
  local dir="$WORK/upstream-$n" fleet="$WORK/fleet-$n.ndjson"
  say "upstream, $n nodes"
  "$SIM" "${SIM_FLEET[@]}" --nodes "$n" --print-registrations "$fleet" || return 1
  CP_SKIP_KCM=1 CP_CPUS=$SERVER_CPUS cp_start "$dir" "$TOOLS" || return 1
  sleep 5
  ETCD0=$(rss "$CP_ETCD_PID")
  API0=$(rss "$CP_APISERVER_PID")
  # kole-peer-load SUBCOMMAND "${load[@]}" ...: the kubelet-shaped load.
  local load=(--kubeconfig "$CP_KUBECONFIG" --figure-prefix peer.upstream. --figure-suffix "_$n"
    --server-pids "$CP_ETCD_PID,$CP_APISERVER_PID")
  collect "${CLIENT_PIN[@]}" "$LOADGEN" register "${load[@]}" --fleet "$fleet" || return 1

  # Steady state at the kubelet rate (one renewal per node every 10 s, one
  # status patch per node every 5 min) and a GET of one node 20 times a
  # second, with the memory and the two full lists of steady_phase.
  steady_phase upstream "$n" nodes upstream_memory \
    "${CLIENT_PIN[@]}" "$LOADGEN" load "${load[@]}" --rate $((n / 10)) --seconds 36000 \
    --get-path "/api/v1/nodes/$NODE0"

  # And after the two lists, whose buffers the heaps may keep.
  local etcd1 api1
  etcd1=$(rss "$CP_ETCD_PID")
  api1=$(rss "$CP_APISERVER_PID")
  figure "peer.upstream.etcd_rss_after_lists_$n" "$etcd1" B
  figure "peer.upstream.kube_apiserver_rss_after_lists_$n" "$api1" B
  figure "peer.upstream.bytes_per_node_after_lists_$n" \
    "$(per_node "$((etcd1 + api1))" "$((ETCD0 + API0))" "$n")" B
  "$KUBECTL" --kubeconfig "$CP_KUBECONFIG" get node "$NODE0" -o json >"$OUT/upstream-node-$n.json"

  collect "${CLIENT_PIN[@]}" "$LOADGEN" ramp "${load[@]}" --rates "$UPSTREAM_RATES" \
    --step-seconds "$STEP_SECONDS" || return 1
  cp_stop
}

# --- KOLE: kole-apiserver behind mosquitto, through the aggregator -------------

start_broker() {
  local dir=$1
  BROKER_PORT=$(free_port)
  cat >"$dir/mosquitto.conf" <<EOF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
log_dest stderr
log_type error
log_type warning
EOF
  "${SERVER_PIN[@]}" /usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  BROKER_PID=$!
}

# The APIService, registered by hand rather than with the chart: an
# ExternalName Service to 127.0.0.1 and the serving certificate kole-apiserver
# generated for the Service's name as caBundle.
register_apiservice() {
  local ca_bundle=$1 port=$2
  "$KUBECTL" --kubeconfig "$CP_KUBECONFIG" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: kole-bench}
---
apiVersion: v1
kind: Service
metadata: {name: kole, namespace: kole-bench}
spec:
  type: ExternalName
  externalName: 127.0.0.1
  ports: [{port: $port, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.edge.kole.io}
spec:
  group: edge.kole.io
  version: v1alpha1
  service: {namespace: kole-bench, name: kole, port: $port}
  caBundle: $ca_bundle
  groupPriorityMinimum: 1000
  versionPriority: 15
EOF
  local available=""
  for _ in $(seq 300); do
    available=$("$KUBECTL" --kubeconfig "$CP_KUBECONFIG" get apiservice v1alpha1.edge.kole.io \
      -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)
    [ "$available" = True ] && return 0
    sleep 0.2
  done
  say "the APIService did not become Available"
  "$KUBECTL" --kubeconfig "$CP_KUBECONFIG" get apiservice v1alpha1.edge.kole.io -o yaml >&2
  return 1
}

# kole_queue_depth: messages waiting in the bridge's queue.
kole_queue_depth() {
  curl -sf --cacert "$KOLE_CA" --cert "$CP_DIR/pki/admin.crt" --key "$CP_DIR/pki/admin.key" \
    "https://127.0.0.1:$KOLE_PORT/metrics" | awk '$1 == "kole_bridge_queue_depth" { printf "%d\n", $2 }'
}

# kole_heartbeats: from kole-apiserver's /metrics, "HANDLED APPLIED SHED":
# heartbeats the bridge handled (every outcome), those it applied (applied
# or published), and device messages it shed because its queue was full.
kole_heartbeats() {
  curl -sf --cacert "$KOLE_CA" --cert "$CP_DIR/pki/admin.crt" --key "$CP_DIR/pki/admin.key" \
    "https://127.0.0.1:$KOLE_PORT/metrics" | awk '
      /^kole_bridge_heartbeats_total\{/ { handled += $2 }
      /^kole_bridge_heartbeats_total\{outcome="(applied|published)"\}/ { applied += $2 }
      /^kole_bridge_messages_dropped_total\{reason="queue_full"\}/ { shed += $2 }
      END { printf "%d %d %d\n", handled, applied, shed }'
}

# start_sim N INTERVAL FLUSH: the simulated fleet, waiting until every node
# is acknowledged; sets SIM_PID, and SIM_REGISTER_SECONDS to the seconds
# that took. (Not to be called in a command substitution: SIM_PID would be
# lost with the subshell.)
start_sim() {
  local n=$1 interval=$2 flush=$3 started
  rm -f "$WORK/sim.status"
  started=$(now)
  "${CLIENT_PIN[@]}" "$SIM" "${SIM_FLEET[@]}" --broker "tcp://127.0.0.1:$BROKER_PORT" --nodes "$n" \
    --heartbeat-interval "$interval" --flush-interval "$flush" --status-file "$WORK/sim.status" \
    --progress-interval 10s >>"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  local deadline=$((SECONDS + 600))
  until grep -q '^allRegistered=true' "$WORK/sim.status" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$SIM_PID" 2>/dev/null; then
      say "the simulator did not register $n nodes; last lines of its log:"
      tail -5 "$WORK/sim.log" >&2
      return 1
    fi
    sleep 0.1
  done
  SIM_REGISTER_SECONDS=$(since "$started")
}

sim_counter() { awk -F= -v k="$1" '$1 == k { print $2 }' "$WORK/sim.status"; }

run_kole() {
  local n=$1
  local dir="$WORK/kole-$n"
  say "KOLE, $n nodes"
  mkdir -p "$dir"
  CP_SKIP_KCM=1 CP_CPUS=$SERVER_CPUS cp_start "$dir/cluster" "$TOOLS" || return 1
  start_broker "$dir"
  KOLE_PORT=$(free_port)
  "${SERVER_PIN[@]}" "$BUILD_DIR/bin/kole-apiserver" --bind-address 127.0.0.1 \
    --secure-port "$KOLE_PORT" --data-dir "$dir/data" --cert-dir "$dir/certs" \
    --tls-san kole.kole-bench.svc --kubeconfig "$CP_KUBECONFIG" \
    --mqtt-broker "tcp://127.0.0.1:$BROKER_PORT" >"$dir/kole-apiserver.log" 2>&1 &
  KOLE_PID=$!
  KOLE_CA="$dir/certs/apiserver.crt"
  cp_wait_https "https://127.0.0.1:$KOLE_PORT/readyz" "$KOLE_CA" 60 || {
    say "kole-apiserver did not become ready"
    tail -20 "$dir/kole-apiserver.log" >&2
    return 1
  }
  register_apiservice "$(base64 -w0 <"$KOLE_CA")" "$KOLE_PORT" || return 1
  # A kubeconfig straight to kole-apiserver, for the GET without the
  # aggregator's hop (the cluster admin's certificate, which KOLE
  # authenticates against the cluster's client CA).
  cp_kubeconfig "$dir/direct.kubeconfig" "https://127.0.0.1:$KOLE_PORT" "$KOLE_CA" \
    "$CP_DIR/pki/admin.crt" "$CP_DIR/pki/admin.key"
  sleep 2
  KOLE0=$(rss "$KOLE_PID")
  BROKER0=$(rss "$BROKER_PID")

  start_sim "$n" 10s 500ms || return 1
  local seconds=$SIM_REGISTER_SECONDS
  figure "peer.kole.register_seconds_$n" "$seconds" s
  figure "peer.kole.register_per_second_$n" "$("$PYTHON" -c "print(f'{$n / $seconds:.1f}')")" nodes/s

  # Steady state at the kubelet rate (every node every 10 s) with GETs of
  # one node through the aggregator, and the memory and full lists of
  # steady_phase; then GETs straight to kole-apiserver.
  local path="/apis/edge.kole.io/v1alpha1/nodes/$NODE0"
  steady_phase kole "$n" nodes.edge.kole.io kole_memory \
    "${CLIENT_PIN[@]}" "$LOADGEN" get --kubeconfig "$CP_KUBECONFIG" --figure-prefix peer.kole. \
    --figure-suffix "_$n" --get-path "$path" --seconds 36000
  collect "${CLIENT_PIN[@]}" "$LOADGEN" get --kubeconfig "$dir/direct.kubeconfig" \
    --figure-prefix peer.kole.direct_ --figure-suffix "_$n" --get-path "$path" --seconds 10

  # And after the two lists, whose buffers the heap may keep.
  local kole1
  kole1=$(rss "$KOLE_PID")
  figure "peer.kole.kole_apiserver_rss_after_lists_$n" "$kole1" B
  figure "peer.kole.bytes_per_node_after_lists_$n" "$(per_node "$kole1" "$KOLE0" "$n")" B
  "$KUBECTL" --kubeconfig "$CP_KUBECONFIG" get nodes.edge.kole.io "$NODE0" -o json \
    >"$OUT/kole-node-$n.json"
  stop_pid "$SIM_PID"
  SIM_PID=

  kole_ramp "$n"
  stop_kole_side
  cp_stop
}

# KOLE's heartbeat ramp: the simulator restarted at shorter intervals. The
# rate is what the store applied over a window of STEP_SECONDS (exact, from
# kole-apiserver's counters); the loss compares every heartbeat the
# simulator sent in its whole run (its final status) with every one the
# bridge handled meanwhile. A step holds with at most 1 % lost, nothing
# shed, and at least 90 % of the rate asked for applied; without loss but
# below 90 %, the simulator is the limit and the rate a lower bound.
kole_ramp() {
  local n=$1 best=0 best_cores=0 limited=0 rate outcome="" applied lost shed cores
  for rate in $KOLE_RATES; do
    [ "$rate" -lt $((n / 10)) ] && continue
    local interval_ms=$((n * 1000 / rate))
    # The simulator's shortest interval is 10 ms: the ramp ends there,
    # passing, and the rate is a lower bound.
    [ "$interval_ms" -lt 10 ] && { limited=1; break; }
    # Heartbeats leave at the next flush after they fall due, so a flush
    # of a tenth of the interval keeps the sent rate near the one asked for.
    local flush_ms=$((interval_ms / 10))
    [ "$flush_ms" -gt 500 ] && flush_ms=500
    [ "$flush_ms" -lt 1 ] && flush_ms=1
    local before window_start window_end after t0 t1 started elapsed sent_total
    before=$(kole_heartbeats)
    start_sim "$n" "${interval_ms}ms" "${flush_ms}ms" || return 1
    # Settle: one interval, so that every node beats at its own phase, and
    # the bridge's queue drained of what piled up while the fleet
    # re-registered (at 1M that backlog would otherwise count in the window).
    sleep "$("$PYTHON" -c "print(max(2, $interval_ms / 1000))")"
    local drained=0
    for _ in $(seq 300); do
      [ "$(kole_queue_depth)" = 0 ] && drained=$((drained + 1)) || drained=0
      [ "$drained" -ge 3 ] && break
      sleep 0.2
    done
    started=$(now)
    t0=$(ticks "$KOLE_PID" "$BROKER_PID")
    window_start=$(kole_heartbeats)
    sleep "$STEP_SECONDS"
    window_end=$(kole_heartbeats)
    t1=$(ticks "$KOLE_PID" "$BROKER_PID")
    elapsed=$(since "$started")
    stop_pid "$SIM_PID"
    SIM_PID=
    sleep 1
    after=$(kole_heartbeats)
    sent_total=$(sim_counter heartbeatsSent)
    local verdict
    # shellcheck disable=SC2086 # Each counter line splits into its three values.
    verdict=$("$PYTHON" - "$rate" "$elapsed" $before $window_start $window_end $after \
      "${sent_total:-0}" "$t0" "$t1" "$(getconf CLK_TCK)" <<'EOF'
import sys
(rate, t, h0, a0, s0, hw0, aw0, sw0, hw1, aw1, sw1, h1, a1, s1,
 sent, t0, t1, hz) = map(float, sys.argv[1:])
applied = (aw1 - aw0) / t
loss = 1 - (h1 - h0) / sent if sent > 0 else 1
shed = s1 - s0
kept_up = loss <= 0.01 and shed == 0
ok = kept_up and applied >= 0.9 * rate
generator = kept_up and not ok
print(f"{'pass' if ok else 'generator' if generator else 'fail'} {applied:.0f} "
      f"{100 * loss:.2f} {shed:.0f} {(t1 - t0) / hz / t:.2f}")
EOF
    )
    read -r outcome applied lost shed cores <<<"$verdict"
    say "KOLE $n nodes, ${interval_ms} ms interval: $rate heartbeats/s asked, $applied/s" \
      "applied, $lost % of those sent lost, $shed shed, servers used $cores cores: $outcome"
    if [ "$outcome" = pass ]; then
      best=$applied
      best_cores=$cores
    else
      [ "$outcome" = generator ] && { limited=1; best=$applied; best_cores=$cores; }
      break
    fi
  done
  # Every rate of the ramp held: KOLE's ceiling lies beyond it.
  [ "$outcome" = pass ] && limited=1
  figure "peer.kole.heartbeats_per_second_$n" "$best" heartbeats/s
  figure "peer.kole.server_cores_at_sustained_$n" "$best_cores" cores
  # 1: the simulator or the ramp, not KOLE, ran out first; a lower bound.
  figure "peer.kole.heartbeat_limited_by_load_$n" "$limited" bool
}

# --- Run -----------------------------------------------------------------------

for n in $SIZES; do
  run_upstream "$n" || exit 1
  run_kole "$n" || exit 1
  "$PYTHON" "$here/diff_nodes.py" "$OUT/upstream-node-$n.json" "$OUT/kole-node-$n.json" \
    | tee "$OUT/node-diff-$n.txt"
done
if [ "$BIG" != 0 ] && ! grep -qw -- "$BIG" <<<"$SIZES"; then
  run_kole "$BIG" || exit 1
fi
figure peer.load_average_at_end "$(cut -d' ' -f1 /proc/loadavg)" load
"$PYTHON" "$here/report.py" "$FIGURES" "$root/docs/peer.png"
