#!/usr/bin/env bash
# Test of the chart's in-chart broker configuration, on loopback, without a
# cluster: renders helm/kole with mosquitto.enabled (generated certificates,
# one gateway in the ACLs), runs the rendered mosquitto.conf and ACL file
# with the machine's mosquitto (ports moved to free loopback ports, paths to
# a temporary directory), kole-apiserver --standalone with the rendered
# kole-apiserver MQTT flags and client certificate, and kole-edge-sim as the
# gateway with a certificate signed by the chart's generated fleet CA. Checks
#   - the gateway's nodes register through the cloud listener's shared
#     subscription (kole-apiserver lists them);
#   - a gateway whose certificate names another gateway is kept off by the
#     ACLs (its nodes never appear);
#   - a client without a certificate cannot open the cloud listener.
#
#   hack/chart-mosquitto-test.sh [BUILD_DIR]     (default build)
#
# KOLE_TEST_KEEP=1 keeps the temporary directory with every log.
set -euo pipefail

case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-build}/bin
for b in kole-apiserver kole-edge-sim; do
  [ -x "$bin/$b" ] || { echo "chart-mosquitto-test: $bin/$b is missing (make build)" >&2; exit 1; }
done
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "chart-mosquitto-test: mosquitto is not installed" >&2; exit 1; }
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
helm=$("$root/e2e/build-tools.sh")/helm

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

w=$(mktemp -d /tmp/kole-chart-mosquitto.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KOLE_TEST_KEEP:-}" ]; then
    echo "chart-mosquitto-test: kept $w" >&2
  else
    rm -rf "$w"
  fi
}
trap cleanup EXIT

# Render, and take the broker's files and kole-apiserver's MQTT flags out.
"$helm" template kole "$root/helm/kole" --namespace kole-system --set mosquitto.enabled=true \
  --set 'mosquitto.gateways={gw-1-0}' --set 'mosquitto.certificates.extraIPs={127.0.0.1}' \
  >"$w/rendered.yaml"
python3 - "$w" <<'EOF'
import base64, os, sys, yaml
w = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(f"{w}/rendered.yaml")) if d]
def get(kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
cm = get("ConfigMap", "kole-mosquitto")["data"]
os.makedirs(f"{w}/config")
for k, v in cm.items():
    open(f"{w}/config/{k}", "w").write(v)
for secret, d in (("kole-mosquitto-tls", "tls"), ("kole-mosquitto-client", "client"),
                  ("kole-mosquitto-fleet-ca", "fleet")):
    os.makedirs(f"{w}/{d}")
    for k, v in get("Secret", secret)["data"].items():
        open(f"{w}/{d}/{k}", "wb").write(base64.b64decode(v))
args = get("Deployment", "kole-apiserver")["spec"]["template"]["spec"]["containers"][0]["args"]
open(f"{w}/mqtt-args", "w").write("\n".join(a for a in args if a.startswith("--mqtt-")) + "\n")
EOF

# Loopback ports and temporary paths; everything else as rendered.
dev_port=$(free_port)
cloud_port=$(free_port)
mkdir -p "$w/data"
sed -e "s#/mosquitto/#$w/#g" -e "s#^listener 8883\$#listener $dev_port 127.0.0.1#" \
  -e "s#^listener 8885\$#listener $cloud_port 127.0.0.1#" "$w/config/mosquitto.conf" >"$w/mosquitto.conf"
grep -q "^listener $dev_port 127.0.0.1" "$w/mosquitto.conf" && grep -q "^listener $cloud_port 127.0.0.1" "$w/mosquitto.conf" ||
  { echo "chart-mosquitto-test: rendered listeners are not on 8883 and 8885" >&2; exit 1; }
# mosquitto started as root switches to its own user: let it read and write here.
chmod -R a+rX "$w"
chmod 0777 "$w/data"
"$mosquitto" -c "$w/mosquitto.conf" >"$w/mosquitto.log" 2>&1 &
pids+=($!)

# Device certificates from the generated fleet CA, as README "Enrolling
# devices" describes: CN = the gateway name, client authentication.
sign() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$w/$1.key" -out "$w/$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$w/client.ext"
  openssl x509 -req -in "$w/$1.csr" -CA "$w/fleet/ca.crt" -CAkey "$w/fleet/ca.key" -CAcreateserial \
    -days 30 -extfile "$w/client.ext" -out "$w/$1.crt" 2>/dev/null
}
sign gw-1-0

# kole-apiserver with the rendered MQTT flags; only the broker address and
# the credential paths differ (the pod mounts them under /etc/kole/mqtt).
api_port=$(free_port)
mapfile -t mqtt_args < <(sed -e "s#^--mqtt-broker=.*#--mqtt-broker=mqtts://127.0.0.1:$cloud_port#" \
  -e "s#/etc/kole/mqtt/#$w/client/#" "$w/mqtt-args")
"$bin/kole-apiserver" --standalone --bind-address 127.0.0.1 --secure-port "$api_port" \
  --data-dir "$w/api-data" --cert-dir "$w/api-certs" "${mqtt_args[@]}" >"$w/apiserver.log" 2>&1 &
pids+=($!)

nodes() {
  curl -sS --max-time 5 --cacert "$w/api-certs/ca.crt" --cert "$w/api-certs/admin.crt" \
    --key "$w/api-certs/admin.key" "https://127.0.0.1:$api_port/apis/edge.kole.io/v1alpha1/nodes" |
    python3 -c 'import json,sys; print(" ".join(sorted(i["metadata"]["name"] for i in json.load(sys.stdin)["items"])))'
}
connected=0
for _ in $(seq 1 50); do
  if curl -sf --max-time 2 --cacert "$w/api-certs/ca.crt" "https://127.0.0.1:$api_port/healthz/mqtt-connected" >/dev/null 2>&1; then
    connected=1
    break
  fi
  sleep 0.2
done
if [ "$connected" = 1 ]; then
  pass "kole-apiserver connected to the cloud listener with the chart's client certificate"
else
  fail "kole-apiserver did not connect to the cloud listener; logs:"
  tail -n 5 "$w/apiserver.log" "$w/mosquitto.log" | sed 's/^/    /'
  exit 1
fi

sim() {
  "$bin/kole-edge-sim" --broker "mqtts://127.0.0.1:$dev_port" --ca-file "$w/tls/ca.crt" \
    --cert-file "$w/$1.crt" --key-file "$w/$1.key" --nodes 3 --connections 1 "${@:2}" \
    >>"$w/sim.log" 2>&1
}
# The gateway gw-1-0 fronts nodes 0-2 of the seeded fleet.
sim gw-1-0 --duration 4s || true
first=$(nodes)
if [ "$(wc -w <<<"$first")" = 3 ]; then
  pass "gateway gw-1-0 registered its 3 nodes through the device listener: $first"
else
  fail "after gw-1-0 ran, kole-apiserver lists '$first'; logs:"
  tail -n 5 "$w/sim.log" "$w/mosquitto.log" | sed 's/^/    /'
fi
# The same certificate, speaking as gateway gw-1-3 (nodes 3-5): the broker
# makes its user gw-1-0 and the ACL gives gw-1-0 no gateways/gw-1-3 topics.
sim gw-1-0 --first-index 3 --duration 4s || true
second=$(nodes)
if [ "$second" = "$first" ]; then
  pass "a gateway posing as gw-1-3 with gw-1-0's certificate added no node"
else
  fail "posing as gw-1-3 changed the node list to '$second'"
fi

if timeout 5 mosquitto_sub -h 127.0.0.1 -p "$cloud_port" --cafile "$w/tls/ca.crt" -i probe \
  -t 'kole/v1/nodes/+/register' -C 1 -W 2 >/dev/null 2>&1; then
  fail "a client without a certificate subscribed on the cloud listener"
else
  pass "the cloud listener refuses a client without a certificate"
fi

if [ "$failures" -ne 0 ]; then
  echo "chart-mosquitto-test: $failures check(s) failed"
  exit 1
fi
echo "chart-mosquitto-test: all checks passed"
