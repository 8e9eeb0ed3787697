#!/usr/bin/env bash
# The certificate step of the plain-YAML install (manifests/kole.yaml), and of
# the chart with certificates.mode=external: creates a CA and a serving
# certificate for kole-apiserver's Service, stores them as the Secret the
# Deployment mounts, and writes the CA into the APIService's caBundle.
#
#   hack/kole-serving-cert.sh [options]
#
# Options:
#   --namespace NS     namespace of the install (default kole-system)
#   --service NAME     kole-apiserver's Service (default kole-apiserver)
#   --secret NAME      Secret to write (default <service>-serving)
#   --dir DIR          keep ca.crt, ca.key, tls.crt, tls.key here (default: a
#                      temporary directory, removed at the end; the CA key is
#                      then gone, which is fine: nothing else is signed by it)
#   --days N           validity in days (default 825)
#   --print-only       write the files and print the base64 caBundle (for
#                      certificates.external.caBundle); touch no cluster
#   --kubectl PATH     kubectl to use (default: kubectl on PATH)
#
# The Secret's names: <service>, <service>.<ns>, <service>.<ns>.svc,
# <service>.<ns>.svc.cluster.local (the aggregator verifies
# <service>.<ns>.svc). Run it again to rotate; then restart the Deployment
# (kubectl -n NS rollout restart deploy/<service>): kole-apiserver reads its
# certificate at start-up.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; }
die() { echo "kole-serving-cert: $*" >&2; exit 2; }

namespace=kole-system
service=kole-apiserver
secret=
dir=
days=825
print_only=0
kubectl=kubectl
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
    --service) service=${2:?--service needs a value}; shift 2 ;;
    --secret) secret=${2:?--secret needs a value}; shift 2 ;;
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --days) days=${2:?--days needs a value}; shift 2 ;;
    --print-only) print_only=1; shift ;;
    --kubectl) kubectl=${2:?--kubectl needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument $1" ;;
  esac
done
secret=${secret:-$service-serving}
[[ "$days" =~ ^[0-9]+$ ]] || die "--days takes a number, got '$days'"
command -v openssl >/dev/null || die "openssl is not installed"
if [ "$print_only" = 0 ]; then
  command -v "$kubectl" >/dev/null || die "$kubectl not found (--kubectl PATH)"
fi

if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"
umask 077

fqdn=$service.$namespace.svc
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=$service-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$fqdn" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" \
  "subjectAltName=DNS:$service,DNS:$service.$namespace,DNS:$fqdn,DNS:$fqdn.cluster.local" \
  >"$dir/tls.ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days "$days" -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
rm -f "$dir/tls.csr" "$dir/tls.ext" "$dir/ca.srl"
ca_bundle=$(base64 -w0 <"$dir/ca.crt")

if [ "$print_only" = 1 ]; then
  echo "kole-serving-cert: certificate for $fqdn in $dir" >&2
  echo "$ca_bundle"
  exit 0
fi

# create --dry-run | apply: creates the Secret or replaces its content.
"$kubectl" -n "$namespace" create secret tls "$secret" --cert="$dir/tls.crt" --key="$dir/tls.key" \
  --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" patch apiservice v1alpha1.edge.kole.io --type=merge \
  -p "{\"spec\":{\"caBundle\":\"$ca_bundle\"}}" >/dev/null
echo "kole-serving-cert: Secret $namespace/$secret holds a certificate for $fqdn; APIService v1alpha1.edge.kole.io trusts its CA"
echo "kole-serving-cert: if kole-apiserver already ran, restart it: $kubectl -n $namespace rollout restart deploy/$service"
