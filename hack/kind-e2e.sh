#!/usr/bin/env bash
# `make kind-e2e`: the e2e suite against KOLE installed in a kind cluster, for
# users with kind and Docker (our machines have no Docker, so it is not run
# there; `make e2e` covers the same tests against a local control plane).
#
#   hack/kind-e2e.sh [KIND [CLUSTER [IMAGE]]]    defaults: kind kole kole:dev
#
# Steps: create the kind cluster CLUSTER unless it exists; `make image`;
# `kind load docker-image`; `helm upgrade --install` the chart into
# kole-system with that image and the in-chart mosquitto; wait for the
# APIService; then `make e2e KUBECONFIG=<the cluster's kubeconfig>`.
# The cluster is left running (`kind delete cluster --name CLUSTER` ends it).
set -euo pipefail

kind=${1:-kind}
cluster=${2:-kole}
image=${3:-kole:dev}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
namespace=kole-system

command -v docker >/dev/null || { echo "kind-e2e: needs Docker (not installed here)" >&2; exit 1; }
command -v "$kind" >/dev/null || { echo "kind-e2e: needs kind (https://kind.sigs.k8s.io), or KIND=/path/to/kind" >&2; exit 1; }
[[ "$image" == *:* ]] || { echo "kind-e2e: IMAGE must be repository:tag, got '$image'" >&2; exit 2; }

tools=$("$root/e2e/build-tools.sh")
kubeconfig=${KOLE_KIND_KUBECONFIG:-$HOME/.kube/kind-$cluster.yaml}
mkdir -p "$(dirname "$kubeconfig")"

if ! "$kind" get clusters | grep -qx "$cluster"; then
  echo "kind-e2e: creating kind cluster $cluster"
  "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
else
  echo "kind-e2e: reusing kind cluster $cluster"
  "$kind" get kubeconfig --name "$cluster" >"$kubeconfig"
fi

make -C "$root" --no-print-directory image IMAGE="$image"
"$kind" load docker-image "$image" --name "$cluster"

echo "kind-e2e: installing helm/kole into $namespace"
"$tools/helm" upgrade --install kole "$root/helm/kole" --kubeconfig "$kubeconfig" \
  --namespace "$namespace" --create-namespace --wait --timeout 5m \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never --set mosquitto.enabled=true
"$tools/kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Available \
  apiservice/v1alpha1.edge.kole.io --timeout=120s

make -C "$root" --no-print-directory e2e KUBECONFIG="$kubeconfig"
