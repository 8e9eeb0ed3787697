#!/usr/bin/env bash
# kubectl against a running kole-apiserver (standalone mode, loopback only):
# the commands users run, with their output compared to what is expected
# wherever it is deterministic (ages are normalised to AGE).
#
#   hack/kubectl-integration.sh [build-dir]
#
# Uses a kubectl of a pinned release by path: the machine's `kubectl` is a
# dispatcher that picks a version from the server's /version.
set -uo pipefail

BUILD_DIR=${1:-build}
KUBECTL_BIN=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
SERVER_BIN=$BUILD_DIR/bin/kole-apiserver
[ -x "$KUBECTL_BIN" ] || { echo "kubectl not found at $KUBECTL_BIN" >&2; exit 1; }
[ -x "$SERVER_BIN" ] || { echo "$SERVER_BIN not built" >&2; exit 1; }

# shellcheck source=hack/lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
# shellcheck source=hack/lib/kole-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kole-server.sh"

WORK=$(mktemp -d /tmp/kole-kubectl-XXXXXX)
PORT=$(free_port)
SERVER_PID=
BROKER_PID=
SIM_PID=
cleanup() {
  for pid in "$SIM_PID" "$SERVER_PID" "$BROKER_PID"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

k() { "$KUBECTL_BIN" --kubeconfig "$WORK/certs/admin.kubeconfig" --cache-dir "$WORK/cache" \
  --request-timeout=10s "$@"; }

start_server

check "api-resources" \
"NAME    SHORTNAMES    APIVERSION              NAMESPACED   KIND
nodes   en,edgenode   edge.kole.io/v1alpha1   false        Node
pods    epod          edge.kole.io/v1alpha1   true         Pod" "$(k api-resources 2>&1)"

check "version" "Server Version: v0.1.0" "$(k version 2>&1 | grep '^Server')"

for n in n1 n2 n3; do
  region=eu
  [ "$n" == n3 ] && region=us
  cat >"$WORK/$n.yaml" <<YAML
apiVersion: edge.kole.io/v1alpha1
kind: Node
metadata:
  name: $n
  labels:
    region: $region
YAML
done
check "apply creates" "node.edge.kole.io/n1 created" "$(k apply -f "$WORK/n1.yaml" 2>&1)"
sed -i 's/region: eu/region: eu\n    tier: edge/' "$WORK/n1.yaml"
check "apply again patches" "node.edge.kole.io/n1 configured" "$(k apply -f "$WORK/n1.yaml" 2>&1)"
check "apply unchanged" "node.edge.kole.io/n1 unchanged" "$(k apply -f "$WORK/n1.yaml" 2>&1)"
check "create" "node.edge.kole.io/n2 created" "$(k create -f "$WORK/n2.yaml" 2>&1)"
k create -f "$WORK/n3.yaml" >/dev/null 2>&1

check "get" \
"NAME  STATUS  ROLES  AGE  VERSION
n1  NotReady  <none>  AGE  <unknown>
n2  NotReady  <none>  AGE  <unknown>
n3  NotReady  <none>  AGE  <unknown>" "$(k get nodes.edge.kole.io 2>&1 | ages)"

contains "get -o wide shows wide columns" \
  "INTERNAL-IP   EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME" "$(k get en -o wide 2>&1)"

check "get -o yaml" "apiVersion: edge.kole.io/v1alpha1
kind: Node" "$(k get en n1 -o yaml 2>&1 | grep -E '^(apiVersion|kind):')"

check "get -o json" "edge.kole.io/v1alpha1 Node n1 edge" \
  "$(k get en n1 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["apiVersion"], d["kind"], d["metadata"]["name"], d["metadata"]["labels"]["tier"])')"

check "get -l" "n1
n2" "$(k get en -l region=eu -o name 2>&1 | sed 's|node.edge.kole.io/||')"

check "get --field-selector" "n2" \
  "$(k get en --field-selector metadata.name=n2 --no-headers 2>&1 | awk '{print $1}')"

check "get --chunk-size=1 pages into one table" "NAME
n1
n2
n3" "$(k get en --chunk-size=1 2>&1 | awk '{print $1}')"

check "get missing" 'Error from server (NotFound): nodes.edge.kole.io "nx" not found' \
  "$(k get en nx 2>&1)"

check "label" "node.edge.kole.io/n2 labeled" "$(k label en n2 role=gateway 2>&1)"
check "annotate" "node.edge.kole.io/n2 annotated" "$(k annotate en n2 note=hello 2>&1)"
check "label and annotation stored" "gateway hello" \
  "$(k get en n2 -o jsonpath='{.metadata.labels.role} {.metadata.annotations.note}')"

check "patch --type merge" "node.edge.kole.io/n3 patched" \
  "$(k patch en n3 --type merge -p '{"spec":{"unschedulable":true}}' 2>&1)"
check "unschedulable shows in STATUS" "NotReady,SchedulingDisabled" \
  "$(k get en n3 --no-headers | awk '{print $2}')"
contains "strategic merge patch is refused with 415" \
  "error: application/strategic-merge-patch+json is not supported by edge.kole.io/v1alpha1, Kind=Node" \
  "$(k patch en n3 -p '{"spec":{"unschedulable":false}}' 2>&1)"

cat >"$WORK/editor.sh" <<'SH'
#!/bin/sh
sed -i 's/region: us/region: edited/' "$1"
SH
chmod +x "$WORK/editor.sh"
check "edit" "node.edge.kole.io/n3 edited" "$(KUBE_EDITOR=$WORK/editor.sh k edit en n3 2>&1)"
check "edit stored" "edited" "$(k get en n3 -o jsonpath='{.metadata.labels.region}')"

contains "describe" "Events:" "$(k describe nodes.edge.kole.io n1 2>&1)"
check "get kole (the category)" "node.edge.kole.io/n1" \
  "$(k get kole --no-headers 2>&1 | awk '{print $1}' | head -1)"

EXPLAIN=$(k explain nodes.edge.kole.io.spec 2>&1)
contains "explain kind" "KIND:       Node" "$EXPLAIN"
contains "explain fields" "unschedulable	<boolean>" "$EXPLAIN"

# A device-side event (the status subresource, as the bridge writes it)
# shows up in a running watch.
k get en -w --output-watch-events --request-timeout=5s >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
sleep 1.5
curl -sf --cacert "$WORK/certs/ca.crt" --cert "$WORK/certs/admin.crt" --key "$WORK/certs/admin.key" \
  -X PATCH -H 'Content-Type: application/merge-patch+json' \
  --data '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KoleReady"}],"nodeInfo":{"kubeletVersion":"v0.9.0"}}}' \
  "https://127.0.0.1:$PORT/apis/edge.kole.io/v1alpha1/nodes/n1/status" >/dev/null
wait $WATCH_PID
check "get -w shows the device-side change" \
"EVENT  NAME  STATUS  ROLES  AGE  VERSION
ADDED  n1  NotReady  <none>  AGE  <unknown>
ADDED  n2  NotReady  <none>  AGE  <unknown>
ADDED  n3  NotReady,SchedulingDisabled  <none>  AGE  <unknown>
MODIFIED  n1  Ready  <none>  AGE  v0.9.0" "$(ages <"$WORK/watch.out")"

check "delete" 'node.edge.kole.io "n2" deleted' "$(k delete en n2 2>&1)"
check "deleted node is gone" 'Error from server (NotFound): nodes.edge.kole.io "n2" not found' \
  "$(k get en n2 2>&1)"

cat >"$WORK/p1.yaml" <<'YAML'
apiVersion: edge.kole.io/v1alpha1
kind: Pod
metadata:
  name: p1
spec:
  nodeName: n1
  containers:
  - name: app
    image: registry.example/app:1
YAML
check "pod create" "pod.edge.kole.io/p1 created" "$(k apply -f "$WORK/p1.yaml" 2>&1)"
check "get pods -o wide" \
"NAME  READY  STATUS  RESTARTS  AGE  IP  NODE  NOMINATED NODE  READINESS GATES
p1  0/1  Pending  0  AGE  <none>  n1  <none>  <none>" "$(k get pods.edge.kole.io -o wide 2>&1 | ages)"
check "get pods --field-selector spec.nodeName" "p1" \
  "$(k get epod --field-selector spec.nodeName=n1 -o name | sed 's|pod.edge.kole.io/||')"
check "pod without nodeName is invalid" \
  'The Pod "p2" is invalid: spec.nodeName: Required value: standalone pods name their node in spec.nodeName' \
  "$(sed 's/name: p1/name: p2/; /nodeName/d' "$WORK/p1.yaml" | k create -f - 2>&1)"

# The store is durable: a restart keeps the nodes.
stop_server
check "SIGTERM stops cleanly" "0" "$?"
start_server
check "nodes survive a restart" "n1 n3" "$(k get en -o jsonpath='{.items[*].metadata.name}')"
check "pods survive a restart" "p1" "$(k get epod -o jsonpath='{.items[*].metadata.name}')"
check "pod delete" 'pod.edge.kole.io "p1" deleted' "$(k delete epod p1 2>&1)"

# --- The fleet through mosquitto ---------------------------------------------
# kole-edge-sim registers 20 nodes over one gateway connection through a real
# broker; kole-apiserver's bridge puts them in the store.
BROKER_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$BROKER_PORT" "$(id -un)" \
  >"$WORK/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!
stop_server
start_server --mqtt-broker "tcp://127.0.0.1:$BROKER_PORT"
"$BUILD_DIR/bin/kole-edge-sim" --broker "tcp://127.0.0.1:$BROKER_PORT" --nodes 20 \
  --connections 1 --heartbeat-interval 1s --progress-interval 60s >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
ready=0
for _ in $(seq 100); do
  ready=$(k get en -l kubernetes.io/os=linux --no-headers 2>/dev/null | grep -c ' Ready ')
  [ "$ready" -eq 20 ] && break
  sleep 0.2
done
check "simulated nodes registered through mosquitto are Ready" "20" "$ready"
SIM_NODE=$(k get en -l kubernetes.io/os=linux -o name | head -1 | sed 's|node.edge.kole.io/||')
check "device facts reach the API" "linux" \
  "$(k get en "$SIM_NODE" -o jsonpath='{.status.nodeInfo.operatingSystem}')"
contains "the bridge's metrics are on /metrics" 'kole_bridge_registrations_total{result="Accepted"} 20' \
  "$(curl -sf --cacert "$WORK/certs/ca.crt" --cert "$WORK/certs/admin.crt" \
       --key "$WORK/certs/admin.key" "https://127.0.0.1:$PORT/metrics")"

# The device side goes away: the simulator publishes its gateway's will on the
# way out, and a running watch sees the node turn NotReady.
k get en "$SIM_NODE" -w --output-watch-events --request-timeout=10s >"$WORK/watch-sim.out" 2>&1 &
WATCH_PID=$!
sleep 1.5
kill -TERM "$SIM_PID"
wait "$SIM_PID"
SIM_PID=
wait $WATCH_PID
contains "get -w shows the device going away" "MODIFIED   $SIM_NODE   NotReady" \
  "$(cat "$WORK/watch-sim.out")"

checks_report integration
