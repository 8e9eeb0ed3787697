#!/usr/bin/env bash
# Builds the upstream programs the e2e harness and `make demo` run, at the
# releases pinned in e2e/tools/go.mod and e2e/helm/go.mod: etcd,
# kube-apiserver, kube-controller-manager, kubectl and helm.
#
#   e2e/build-tools.sh            prints the directory holding the binaries
#
# Binaries are cached under $KOLE_CACHE/e2e-bin/<key>, where the key is a
# hash of the module files and of this script, so a second run returns at
# once and a changed pin builds afresh. Go's module and build caches live in
# $KOLE_CACHE/go too (outside the clone; CI keeps them between runs). A cold
# build takes about 15 minutes on two cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=e2e/lib/env.sh
source "$here/lib/env.sh"

key=$(cat "$here/tools/go.mod" "$here/tools/go.sum" "$here/tools/cmd/etcd/main.go" \
  "$here/helm/go.mod" "$here/helm/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
out="$KOLE_CACHE/e2e-bin/$key"
tools=(etcd kube-apiserver kube-controller-manager kubectl helm)

complete=1
for t in "${tools[@]}"; do [ -x "$out/$t" ] || complete=0; done
if [ "$complete" = 1 ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build-tools: Go is not installed (need $KOLE_GO_MIN or newer)" >&2; exit 1; }
mkdir -p "$out.partial"
started=$(date +%s)
echo "build-tools: building ${tools[*]} (Kubernetes $KOLE_KUBE_VERSION) into $out" >&2
echo "build-tools: a cold build takes about 15 minutes on two cores; later runs reuse it" >&2

# Version stamps: kubectl and discovery clients read /version, and kubectl
# warns about skew against v0.0.0.
minor=${KOLE_KUBE_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for kv in "gitVersion=$KOLE_KUBE_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean; do
  ldflags+=" -X k8s.io/component-base/version.$kv"
done

(cd "$here/tools" && go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$out.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl ./cmd/etcd) >&2
(cd "$here/helm" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.partial/" \
  helm.sh/helm/v4/cmd/helm) >&2

rm -rf "$out"
mv "$out.partial" "$out"
echo "build-tools: done in $(($(date +%s) - started)) s" >&2
echo "$out"
