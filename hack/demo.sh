#!/usr/bin/env bash
# `make demo`: a local control plane (etcd, kube-apiserver,
# kube-controller-manager), mosquitto, KOLE installed with its Helm chart and
# a simulated fleet, then `kubectl get nodes.edge.kole.io` through the
# aggregation layer.
#
#   hack/demo.sh BUILD_DIR            interactive: runs until Ctrl-C
#   DEMO_SECONDS=60 hack/demo.sh ...  exits 0 after that many seconds
#
# DEMO_NODES sets the fleet size (default 100000).
set -uo pipefail

BUILD_DIR=$(cd "${1:-build}" && pwd)
KOLE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib/env.sh
source "$KOLE_ROOT/e2e/lib/env.sh"
# shellcheck source=hack/lib/checks.sh
source "$KOLE_ROOT/hack/lib/checks.sh"
# shellcheck source=e2e/lib/control-plane.sh
source "$KOLE_ROOT/e2e/lib/control-plane.sh"
# shellcheck source=e2e/lib/kole.sh
source "$KOLE_ROOT/e2e/lib/kole.sh"

E2E_NODES=${DEMO_NODES:-100000}
DEMO_SECONDS=${DEMO_SECONDS:-0}
WORK=$(mktemp -d /tmp/kole-demo-XXXXXX)
chmod 755 "$WORK"

FIGURE_PREFIX=demo
say() { echo "demo: $*"; }

stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  say "stopping everything"
  kole_stop_all
  cp_stop
  rm -rf "$WORK"
  say "stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [ "$(id -u)" -ne 0 ]; then
  say "needs root: it enters the image's root filesystem with unshare and chroot (see e2e/README.md)" >&2
  exit 1
fi

say "building the pinned upstream programs (first run: about 15 minutes, then cached)"
TOOLS=$("$KOLE_ROOT/e2e/build-tools.sh") || exit 1
export KUBECTL="$TOOLS/kubectl"
HELM="$TOOLS/helm"

say "starting etcd, kube-apiserver and kube-controller-manager on loopback ports"
cp_start "$WORK/cluster" "$TOOLS" || exit 1
export KUBECONFIG=$CP_KUBECONFIG

say "starting mosquitto and installing KOLE with helm"
kole_install_local "$BUILD_DIR" || exit 1
say "APIService v1alpha1.edge.kole.io is Available; $E2E_NODES simulated nodes are registering"

# Progress while the fleet registers, from the simulator's status file.
started=$(now)
registered=0
while [ "$registered" -lt "$E2E_NODES" ]; do
  sleep 2
  registered=$(awk -F= '$1 == "registered" { print $2 }' "$WORK/sim.status" 2>/dev/null)
  registered=${registered:-0}
  say "registered $registered of $E2E_NODES nodes ($(elapsed "$started") s)"
  if ! kill -0 "$KOLE_SIM_PID" 2>/dev/null; then
    say "the simulator stopped; its log:" >&2
    tail -20 "$WORK/sim.log" >&2
    exit 1
  fi
done
figure demo.registration_seconds "$(elapsed "$started")" s

echo
echo "\$ kubectl get nodes.edge.kole.io --chunk-size=0 | head -11"
"$KUBECTL" get nodes.edge.kole.io --chunk-size=0 | head -11
echo
echo "Nodes by status (kubectl get nodes.edge.kole.io --chunk-size=0):"
started=$(now)
"$KUBECTL" get nodes.edge.kole.io --chunk-size=0 --no-headers >"$WORK/nodes.txt"
listed_in=$(elapsed "$started")
awk '{ print $2 }' "$WORK/nodes.txt" | sort | uniq -c
echo "($(wc -l <"$WORK/nodes.txt") nodes listed through kube-apiserver's aggregation layer in $listed_in s)"

# A workload on the whole fleet: one EdgeDaemonSet, its pods derived per node
# and Running once each device's heartbeat confirms its pod set.
echo
echo "\$ kubectl create namespace fleet && kubectl apply -f edge-agent.yaml"
"$KUBECTL" create namespace fleet >/dev/null
cat >"$WORK/edge-agent.yaml" <<'YAML'
apiVersion: edge.kole.io/v1alpha1
kind: EdgeDaemonSet
metadata:
  name: edge-agent
  namespace: fleet
spec:
  nodeSelector:
    matchLabels:
      kubernetes.io/os: linux
  updateStrategy:
    rollingUpdate:
      maxUnavailable: 10%
  template:
    metadata:
      labels:
        app: edge-agent
    spec:
      containers:
      - name: agent
        image: registry.example/edge-agent:1.0
        command: ["/usr/bin/edge-agent", "--serve"]
YAML
"$KUBECTL" apply -f "$WORK/edge-agent.yaml"
started=$(now)
ready=0
desired=$E2E_NODES
while [ "$((ready * 100))" -lt "$((desired * 99))" ]; do
  sleep 2
  desired=$("$KUBECTL" get eds edge-agent -n fleet -o jsonpath='{.status.desiredNumberScheduled}')
  ready=$("$KUBECTL" get eds edge-agent -n fleet -o jsonpath='{.status.numberReady}')
  desired=${desired:-$E2E_NODES}
  ready=${ready:-0}
  say "edge-agent: $ready of $desired pods Running ($(elapsed "$started") s)"
  if [ "$(elapsed "$started" | cut -d. -f1)" -gt 300 ]; then
    say "the pods did not become Running within 300 s" >&2
    exit 1
  fi
done
figure demo.eds_99pct_running_seconds "$(elapsed "$started")" s
echo
echo "\$ kubectl get eds -n fleet"
"$KUBECTL" get eds -n fleet
echo
echo "\$ kubectl get pods.edge.kole.io -n fleet -o wide --chunk-size=0 | head -6"
"$KUBECTL" get pods.edge.kole.io -n fleet -o wide --chunk-size=0 | head -6

# The pinned kubectl and helm under their own names, for the commands below.
mkdir -p "$WORK/bin"
ln -s "$KUBECTL" "$WORK/bin/kubectl"
ln -s "$HELM" "$WORK/bin/helm"

region=$("$KUBECTL" get --raw '/apis/edge.kole.io/v1alpha1/nodes?limit=1' | python3 -c \
  'import json, sys; print(json.load(sys.stdin)["items"][0]["metadata"]["labels"]["topology.kubernetes.io/region"])')
echo
cat <<EOF
Explore further (the control plane lives until you stop the demo):

  export KUBECONFIG=$KUBECONFIG PATH=$WORK/bin:\$PATH   # kubectl and helm at the pinned releases
  kubectl get nodes.edge.kole.io -l topology.kubernetes.io/region=$region --chunk-size=0 | wc -l
  kubectl get nodes.edge.kole.io -o wide --chunk-size=0 | head
  kubectl get nodes.edge.kole.io -w --output-watch-events | head
  kubectl explain nodes.status --api-version=edge.kole.io/v1alpha1
  kubectl get eds -A
  kubectl get pods.edge.kole.io -n fleet --field-selector spec.nodeName=<a node> -o wide
  kubectl edit eds edge-agent -n fleet     # change the image: a rolling update, 10 % at a time
  kubectl delete pods.edge.kole.io -n fleet <a pod>    # restarts it on its device
  kubectl get apiservice v1alpha1.edge.kole.io
  helm -n $KOLE_NS status $KOLE_RELEASE

EOF

if [ "$DEMO_SECONDS" -gt 0 ]; then
  say "running for $DEMO_SECONDS s (DEMO_SECONDS), then stopping"
  # In the background, so that a signal runs the trap at once.
  sleep "$DEMO_SECONDS" &
  wait $!
  exit 0
fi
say "running; press Ctrl-C to stop everything"
while :; do
  sleep 3600 &
  wait $!
done
