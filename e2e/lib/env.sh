# Sourced by the e2e harness, `make demo` and the tool build: where caches
# live and which releases are pinned.
#
# Caches live outside the clone at a fixed path so that CI and a developer's
# repeated runs share them: Go's module and build caches, the built upstream
# binaries and the image root filesystem.

KOLE_ROOT=${KOLE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KOLE_CACHE=${KOLE_CACHE:-$HOME/.cache/kole}
export KOLE_ROOT KOLE_CACHE

export GOMODCACHE="$KOLE_CACHE/go/mod"
export GOCACHE="$KOLE_CACHE/go/build"
export GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

# The Kubernetes release every upstream program is built at; it is read from
# e2e/tools/go.mod so that the pin lives in one place.
KOLE_KUBE_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' \
  "$KOLE_ROOT/e2e/tools/go.mod")
KOLE_GO_MIN=$(awk '$1 == "go" { print $2 }' "$KOLE_ROOT/e2e/tools/go.mod")
export KOLE_KUBE_VERSION KOLE_GO_MIN
