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
"NAME             SHORTNAMES    APIVERSION              NAMESPACED   KIND
edgedaemonsets   eds           edge.kole.io/v1alpha1   true         EdgeDaemonSet
nodes            en,edgenode   edge.kole.io/v1alpha1   false        Node
pods             epod          edge.kole.io/v1alpha1   true         Pod" "$(k api-resources 2>&1)"

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
p1  0/1  ContainerCreating  0  AGE  <none>  n1  <none>  <none>" "$(k get pods.edge.kole.io -o wide 2>&1 | ages)"
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
  --connections 1 --heartbeat-interval 1s --progress-interval 60s --pod-start-delay 500ms \
  --pod-failure-rate 0.2 --crash-report-interval 1s --status-file "$WORK/sim.status" \
  >"$WORK/sim.log" 2>&1 &
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

# --- EdgeDaemonSets on the simulated fleet --------------------------------------
# Applied client-side, pods derived per node, Running once the simulator's
# heartbeats carry the set's revision; a fifth of the pod sets crash-loop.

# eds_field JSONPATH: a field of the EdgeDaemonSet "agent" in namespace "fleet".
eds_field() { k get eds agent -n fleet -o "jsonpath={$1}" 2>/dev/null; }
# wait_eds JSONPATH VALUE: until the field has the value (20 s at most).
wait_eds() {
  local value=
  for _ in $(seq 100); do
    value=$(eds_field "$1")
    [ "$value" = "$2" ] && break
    sleep 0.2
  done
  echo "$value"
}
cat >"$WORK/eds.yaml" <<'YAML'
apiVersion: edge.kole.io/v1alpha1
kind: EdgeDaemonSet
metadata:
  name: agent
  namespace: fleet
spec:
  nodeSelector:
    matchLabels:
      kubernetes.io/os: linux
  updateStrategy:
    rollingUpdate:
      maxUnavailable: 25%
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: registry.example/agent:1.0
        command: ["/usr/bin/agent"]
YAML
check "apply an EdgeDaemonSet" "edgedaemonset.edge.kole.io/agent created" \
  "$(k apply -f "$WORK/eds.yaml" 2>&1)"
check "one pod per matching node" "20" "$(wait_eds .status.desiredNumberScheduled 20)"
FAILING=$(grep '^podsFailing=' "$WORK/sim.status" 2>/dev/null | cut -d= -f2)
for _ in $(seq 100); do
  FAILING=$(grep '^podsFailing=' "$WORK/sim.status" | cut -d= -f2)
  [ "$(grep '^podsRunning=' "$WORK/sim.status" | cut -d= -f2)" = 20 ] && break
  sleep 0.2
done
check "the pods that do not crash-loop are ready" "$((20 - FAILING))" \
  "$(wait_eds .status.numberReady $((20 - FAILING)))"
check "kubectl get eds prints the DaemonSet columns" \
  "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE
agent 20 20 $((20 - FAILING)) 20 $((20 - FAILING)) kubernetes.io/os=linux AGE" \
  "$(k get eds -n fleet 2>&1 | tr -s ' ' | sed -E 's/[0-9]+s$/AGE/')"
check "the pod on a node, by field selector" "agent-$SIM_NODE" \
  "$(k get epod -n fleet --field-selector "spec.nodeName=$SIM_NODE" -o jsonpath='{.items[*].metadata.name}')"
check "pods across namespaces by label" "20" "$(k get epod -A -l app=agent --no-headers | wc -l)"
crashing=0
for _ in $(seq 50); do
  crashing=$(k get epod -n fleet --no-headers | grep -c CrashLoopBackOff)
  [ "$crashing" = "$FAILING" ] && break
  sleep 0.2
done
check "crash-looping pods show CrashLoopBackOff" "$FAILING" "$crashing"
check "a derived pod cannot be edited" \
  'The Pod "agent-'"$SIM_NODE"'" is invalid: metadata.ownerReferences: Forbidden: pods of EdgeDaemonSets are derived from their EdgeDaemonSet: change the EdgeDaemonSet, or delete the pod to restart it' \
  "$(k label epod -n fleet "agent-$SIM_NODE" x=y 2>&1)"
old_uid=$(k get epod -n fleet "agent-$SIM_NODE" -o jsonpath='{.metadata.uid}')
k get epod -n fleet "agent-$SIM_NODE" -w --output-watch-events --request-timeout=5s \
  >"$WORK/watch-pod.out" 2>&1 &
WATCH_PID=$!
sleep 0.5
check "deleting a derived pod restarts it" "pod.edge.kole.io \"agent-$SIM_NODE\" deleted" \
  "$(k delete epod -n fleet "agent-$SIM_NODE" 2>&1)"
check "the restarted pod has a new UID" "yes" \
  "$([ "$(k get epod -n fleet "agent-$SIM_NODE" -o jsonpath='{.metadata.uid}')" != "$old_uid" ] && echo yes)"
wait $WATCH_PID
contains "a watch sees DELETED then ADDED" "DELETED" "$(cat "$WORK/watch-pod.out")"
contains "... and the new pod" "ADDED agent-$SIM_NODE 0/1 ContainerCreating" \
  "$(tr -s ' ' <"$WORK/watch-pod.out")"
# A fifth of the new pods crash-loop too, which would hold a 25 % rollout
# back (as a DaemonSet's): this one may take every node at once.
sed -e 's/agent:1.0/agent:2.0/' -e 's/maxUnavailable: 25%/maxUnavailable: 100%/' \
  "$WORK/eds.yaml" >"$WORK/eds-v2.yaml"
check "roll a new image with server-side apply" "edgedaemonset.edge.kole.io/agent serverside-applied" \
  "$(k apply --server-side --force-conflicts -f "$WORK/eds-v2.yaml" 2>&1)"
# The status counts the new template once the controller has seen it.
check "the controller observed the new generation" "$(eds_field .metadata.generation)" \
  "$(wait_eds .status.observedGeneration "$(eds_field .metadata.generation)")"
check "every pod is updated" "20" "$(wait_eds .status.updatedNumberScheduled 20)"
check "its pods run the new image" "registry.example/agent:2.0" \
  "$(k get epod -n fleet "agent-$SIM_NODE" -o jsonpath='{.spec.containers[0].image}')"
contains "a second apply from another manager conflicts" \
  'Apply failed with 2 conflicts: conflicts with "kubectl":
- .spec.template.spec.containers[name="agent"].image
- .spec.updateStrategy.rollingUpdate.maxUnavailable' \
  "$(sed 's/agent:1.0/agent:3.0/' "$WORK/eds.yaml" | k apply --server-side --field-manager=other -f - 2>&1)"
# A standalone pod travels to its node the same way.
cat >"$WORK/standalone.yaml" <<YAML
apiVersion: edge.kole.io/v1alpha1
kind: Pod
metadata:
  name: probe
  namespace: fleet
spec:
  nodeName: $SIM_NODE
  containers:
  - name: probe
    image: registry.example/probe:1
YAML
check "a standalone pod on a simulated node" "pod.edge.kole.io/probe created" \
  "$(k apply -f "$WORK/standalone.yaml" 2>&1)"
phase=
for _ in $(seq 100); do
  phase=$(k get epod probe -n fleet -o jsonpath='{.status.phase}')
  [ "$phase" = Running ] && break
  sleep 0.2
done
check "its device runs it" "Running" "$phase"
check "delete the standalone pod" 'pod.edge.kole.io "probe" deleted' \
  "$(k delete epod probe -n fleet 2>&1)"
check "delete the EdgeDaemonSet" 'edgedaemonset.edge.kole.io "agent" deleted' \
  "$(k delete eds agent -n fleet 2>&1)"
gone=
for _ in $(seq 50); do
  gone=$(k get epod -n fleet --no-headers 2>/dev/null | wc -l)
  [ "$gone" = 0 ] && break
  sleep 0.2
done
check "its pods are gone from every node" "0" "$gone"
for _ in $(seq 50); do
  [ "$(grep '^podsRunning=' "$WORK/sim.status" | cut -d= -f2)" = 0 ] && break
  sleep 0.2
done
check "and the devices stopped them" "podsRunning=0" "$(grep '^podsRunning=' "$WORK/sim.status")"

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
