#!/usr/bin/env bash
# KOLE end to end: the Helm chart installed with real helm into a real
# control plane, kole-apiserver reached through kube-apiserver's aggregation
# layer, a simulated fleet publishing through mosquitto, and real kubectl.
#
#   e2e/run.sh [build-dir]          local control plane (etcd, kube-apiserver,
#                                   kube-controller-manager) on loopback ports
#   KUBECONFIG=... e2e/run.sh       an existing cluster where the chart is
#                                   installed with its in-chart mosquitto
#                                   (make kind-e2e does that)
#
# Environment: E2E_NODES (simulated nodes, default 2000), KOLE_CACHE (caches,
# default ~/.cache/kole), E2E_KEEP=1 keeps the work directory, E2E_HOLD=N
# keeps everything running N seconds after the tests.
# See e2e/README.md for what each test proves.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=$(cd "${1:-build}" && pwd)
# shellcheck source=e2e/lib/env.sh
source "$here/lib/env.sh"
# shellcheck source=hack/lib/checks.sh
source "$KOLE_ROOT/hack/lib/checks.sh"
# shellcheck source=e2e/lib/control-plane.sh
source "$here/lib/control-plane.sh"
# shellcheck source=e2e/lib/kole.sh
source "$here/lib/kole.sh"

E2E_NODES=${E2E_NODES:-2000}
WORK=$(mktemp -d /tmp/kole-e2e-XXXXXX)
chmod 755 "$WORK"

cleanup() {
  local rc=$?
  kole_stop_all
  cp_stop
  if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ] || [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "e2e: logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOOLS=$("$here/build-tools.sh") || exit 1
export KUBECTL="$TOOLS/kubectl"
HELM="$TOOLS/helm"

if [ -n "${KUBECONFIG:-}" ]; then
  E2E_MODE=cluster
  echo "e2e: against the cluster in $KUBECONFIG"
  kole_attach_cluster "$BUILD_DIR" || exit 1
else
  E2E_MODE=local
  started=$(now)
  cp_start "$WORK/cluster" "$TOOLS" || exit 1
  export KUBECONFIG=$CP_KUBECONFIG
  figure e2e.control_plane_start_seconds "$(elapsed "$started")" s
  kole_install_local "$BUILD_DIR" || exit 1
fi

# shellcheck source=e2e/suite.sh
source "$here/suite.sh"

# E2E_HOLD=SECONDS keeps everything running that long for a look around.
if [ "${E2E_HOLD:-0}" -gt 0 ]; then
  echo "e2e: holding for $E2E_HOLD s: export KUBECONFIG=$KUBECONFIG; kubectl is $KUBECTL"
  sleep "$E2E_HOLD" &
  wait $!
fi

checks_report e2e
