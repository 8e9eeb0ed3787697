#!/usr/bin/env bash
# Renders manifests/kole.yaml, the plain-YAML install, from the Helm chart:
# release "kole" in namespace kole-system, certificates.mode=external (no
# generated keys, so the output is the same on every run). The serving
# certificate is a separate step: hack/kole-serving-cert.sh.
#
#   hack/render-manifests.sh            rewrite manifests/kole.yaml
#   hack/render-manifests.sh --check    fail if manifests/ is out of date
#
# Uses the pinned helm from e2e/build-tools.sh (built and cached on first use).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

tools=$("$root/e2e/build-tools.sh")
helm=$tools/helm
namespace=kole-system
out=$root/manifests/kole.yaml

render() {
  cat <<EOF
# KOLE, plain YAML: the Helm chart helm/kole rendered by \`make manifests\`
# (hack/render-manifests.sh) with certificates.mode=external. Do not edit;
# change the chart and run \`make manifests\`.
#
# Install (see manifests/README.md):
#   kubectl apply -f manifests/kole.yaml
#   hack/kole-serving-cert.sh        # serving Secret + the APIService's caBundle
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    app.kubernetes.io/part-of: kole
EOF
  "$helm" template kole "$root/helm/kole" --namespace "$namespace" \
    --set certificates.mode=external |
    sed -e 's/[[:space:]]*$//'
}

if [ "$check" = 1 ]; then
  if ! diff -u "$out" <(render) >/tmp/kole-manifests.diff.$$ 2>&1; then
    echo "manifests-check: manifests/kole.yaml is out of date with helm/kole; run 'make manifests'" >&2
    head -n 40 /tmp/kole-manifests.diff.$$ >&2
    rm -f /tmp/kole-manifests.diff.$$
    exit 1
  fi
  rm -f /tmp/kole-manifests.diff.$$
  echo "manifests-check: manifests/kole.yaml matches helm/kole"
  exit 0
fi

mkdir -p "$(dirname "$out")"
render >"$out.tmp"
mv "$out.tmp" "$out"
echo "manifests: wrote ${out#"$root"/}"
