# Sourced by e2e/run.sh and `make demo`: KOLE installed into the control
# plane of e2e/lib/control-plane.sh.
#
#   kole_install_local BUILD_DIR   mosquitto with per-device ACLs, the chart
#                                  installed with helm, kole-apiserver run from
#                                  the rendered Deployment in the image's root
#                                  filesystem, the APIService Available, and a
#                                  simulated fleet of E2E_NODES nodes
#   kole_launch / kole_kill SIG    (re)start or signal kole-apiserver
#   kole_exec ... -- CMD           CMD in kole-apiserver's pod (kubectl exec)
#   kole_metrics                   KOLE's /metrics, read on its own port
#   kole_attach_cluster BUILD_DIR  the same against a cluster given by
#                                  KUBECONFIG where the chart is installed
#   kole_stop_all                  stops what either started
#
# Needs WORK, TOOLS, KUBECTL, HELM, KUBECONFIG, E2E_NODES and the CP_*
# variables; sets KOLE_NS, KOLE_PORT, KOLE_SERVICE_HOST, KOLE_SERVING_CA and
# KOLE_AVAILABLE_AT.

KOLE_NS=kole-system
KOLE_RELEASE=kole
KOLE_PID=
KOLE_TOKEN_PID=
KOLE_BROKER_PID=
KOLE_SIM_PID=
KOLE_SIM_PIDS=()
KOLE_FORWARD_PID=

kole_start_broker() {
  local dir="$WORK/mosquitto" user
  mkdir -p "$dir"
  user=$(id -un)
  KOLE_DEVICE_BROKER_PORT=$(free_port)
  KOLE_CLOUD_BROKER_PORT=$(free_port)

  # The simulator's gateways are gw-<seed>-<first node index>; each gets an
  # account and its own ACL block, as docs/protocol.md prescribes.
  KOLE_GATEWAYS=$(((E2E_NODES + 999) / 1000))
  KOLE_DEVICE_PASSWORD=$(openssl rand -hex 16)
  KOLE_CLOUD_PASSWORD=$(openssl rand -hex 16)
  echo "$KOLE_DEVICE_PASSWORD" >"$dir/device-password"
  : >"$dir/devices.passwd"
  {
    # Every device reads the retained workload templates (docs/protocol.md).
    echo "pattern read kole/v1/workloads/#"
    echo "user kole-cloud"
    for channel in register heartbeat will podstatus; do
      echo "topic read kole/v1/nodes/+/$channel"
      echo "topic read kole/v1/gateways/+/$channel"
    done
    for channel in ack control pods; do
      echo "topic write kole/v1/nodes/+/$channel"
      echo "topic write kole/v1/gateways/+/$channel"
    done
    echo "topic write kole/v1/workloads/#"
  } >"$dir/acl"
  local g gateway
  for ((g = 0; g < KOLE_GATEWAYS; g++)); do
    gateway="gw-1-$((E2E_NODES * g / KOLE_GATEWAYS))"
    mosquitto_passwd -b "$dir/devices.passwd" "$gateway" "$KOLE_DEVICE_PASSWORD"
    {
      echo "user $gateway"
      for channel in register heartbeat will podstatus; do
        echo "topic write kole/v1/gateways/$gateway/$channel"
      done
      for channel in ack control pods; do
        echo "topic read kole/v1/gateways/$gateway/$channel"
      done
      echo "topic deny kole/v1/nodes/#"
    } >>"$dir/acl"
  done
  mosquitto_passwd -c -b "$dir/cloud.passwd" kole-cloud "$KOLE_CLOUD_PASSWORD"
  cat >"$dir/mosquitto.conf" <<EOF
per_listener_settings true
user $user
persistence false
log_dest stderr
log_type error
log_type warning

listener $KOLE_DEVICE_BROKER_PORT 127.0.0.1
password_file $dir/devices.passwd
acl_file $dir/acl
use_username_as_clientid true
allow_anonymous false

listener $KOLE_CLOUD_BROKER_PORT 127.0.0.1
password_file $dir/cloud.passwd
acl_file $dir/acl
allow_anonymous false
EOF
  /usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  KOLE_BROKER_PID=$!
}

kole_install_local() {
  local build_dir=$1
  kole_start_broker
  # The image's root filesystem (cached; the first build takes a few minutes).
  local rootfs
  rootfs=$("$KOLE_ROOT/hack/build-rootfs.sh" "$build_dir") || return 1

  # The chart, as a user installs it, with the values that fit a control
  # plane without kubelets: an ExternalName Service to the local process.
  KOLE_PORT=$(free_port)
  "$KUBECTL" create namespace "$KOLE_NS" >/dev/null
  "$KUBECTL" -n "$KOLE_NS" create secret generic kole-mqtt \
    --from-literal=password="$KOLE_CLOUD_PASSWORD" >/dev/null
  local started
  started=$(now)
  if ! "$HELM" install "$KOLE_RELEASE" "$KOLE_ROOT/helm/kole" -n "$KOLE_NS" \
    --set service.externalName=127.0.0.1 \
    --set "service.port=$KOLE_PORT" --set "apiserver.securePort=$KOLE_PORT" \
    --set apiserver.bindAddress=127.0.0.1 --set apiserver.verbosity=2 \
    --set "mqtt.broker=tcp://127.0.0.1:$KOLE_CLOUD_BROKER_PORT" \
    --set mqtt.username=kole-cloud --set mqtt.existingSecret=kole-mqtt \
    >"$WORK/helm-install.log" 2>&1; then
    echo "e2e: helm install failed:" >&2
    cat "$WORK/helm-install.log" >&2
    return 1
  fi
  figure e2e.helm_install_seconds "$(elapsed "$started")" s

  mkdir -p "$WORK/kole"
  local deployment
  deployment=$("$KUBECTL" -n "$KOLE_NS" get deployment -l app.kubernetes.io/component=apiserver \
    -o jsonpath='{.items[0].metadata.name}')
  python3 "$KOLE_ROOT/e2e/lib/deployment_runner.py" prepare --namespace "$KOLE_NS" \
    --deployment "$deployment" --work "$WORK/kole" --rootfs "$rootfs" \
    --runner "$KOLE_ROOT/hack/run-in-rootfs.sh" --apiserver-port "$CP_APISERVER_PORT" \
    --cluster-ca "$CP_DIR/pki/ca.crt" || return 1
  kole_launch

  # Tokens last an hour; renew every ten minutes, as a kubelet renews well
  # before expiry.
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while :; do
      sleep 600 &
      wait $!
      python3 "$KOLE_ROOT/e2e/lib/deployment_runner.py" refresh-token --work "$WORK/kole"
    done
  ) &
  KOLE_TOKEN_PID=$!

  if ! kole_wait_available 120; then
    echo "e2e: the APIService did not become Available; kole-apiserver's log:" >&2
    tail -30 "$WORK/kole/kole-apiserver.log" >&2
    "$KUBECTL" get apiservice v1alpha1.edge.kole.io -o yaml >&2
    return 1
  fi
  KOLE_AVAILABLE_AT=$(now)
  KOLE_KCM_LOG_MARK=$(wc -l <"$CP_DIR/kube-controller-manager.log")
  figure e2e.apiservice_available_seconds "$(elapsed "$started")" s

  local service
  service=$("$KUBECTL" get apiservice v1alpha1.edge.kole.io -o jsonpath='{.spec.service.name}')
  KOLE_SERVICE_HOST="$service.$KOLE_NS.svc"
  KOLE_SERVING_CA="$WORK/kole/serving-ca.crt"
  "$KUBECTL" get apiservice v1alpha1.edge.kole.io -o jsonpath='{.spec.caBundle}' |
    base64 -d >"$KOLE_SERVING_CA"

  "$build_dir/bin/kole-edge-sim" --broker "tcp://127.0.0.1:$KOLE_DEVICE_BROKER_PORT" \
    --nodes "$E2E_NODES" --connections "$KOLE_GATEWAYS" \
    --password-file "$WORK/mosquitto/device-password" --heartbeat-interval 5s \
    --progress-interval 10s --status-file "$WORK/sim.status" >"$WORK/sim.log" 2>&1 &
  KOLE_SIM_PID=$!
}

# kole_wait_available SECONDS: until the APIService reports Available.
kole_wait_available() {
  local deadline=$((SECONDS + $1))
  until [ "$("$KUBECTL" get apiservice v1alpha1.edge.kole.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" = True ]; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# Starts kole-apiserver from the launcher deployment_runner.py wrote, in a
# session of its own so that kole_kill reaches every process of it.
kole_launch() {
  setsid "$WORK/kole/launch.sh" >>"$WORK/kole/kole-apiserver.log" 2>&1 &
  KOLE_PID=$!
}

# kole_exec [--bind SRC:DST]... -- COMMAND...: a command in kole-apiserver's
# pod (its root filesystem, user, env and volumes), as kubectl exec runs one.
kole_exec() { "$WORK/kole/exec.sh" "$@"; }

kole_kill() {
  [ -n "$KOLE_PID" ] || return 0
  kill "$1" -- "-$KOLE_PID" 2>/dev/null
  wait "$KOLE_PID" 2>/dev/null
  KOLE_PID=
}

kole_metrics() {
  curl -sf --cacert "$KOLE_SERVING_CA" --cert "$CP_DIR/pki/admin.crt" --key "$CP_DIR/pki/admin.key" \
    --resolve "$KOLE_SERVICE_HOST:$KOLE_PORT:127.0.0.1" "https://$KOLE_SERVICE_HOST:$KOLE_PORT/metrics"
}

kole_stop_all() {
  local pid
  for pid in "$KOLE_SIM_PID" "$KOLE_TOKEN_PID" "$KOLE_FORWARD_PID" "${KOLE_SIM_PIDS[@]}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  KOLE_SIM_PID=
  KOLE_TOKEN_PID=
  kole_kill -TERM
  [ -n "$KOLE_BROKER_PID" ] && kill "$KOLE_BROKER_PID" 2>/dev/null && wait "$KOLE_BROKER_PID" 2>/dev/null
  KOLE_BROKER_PID=
}

# kole_attach_cluster: the suite against a cluster where the chart is
# installed with its in-chart mosquitto (release kole in kole-system, as
# make kind-e2e installs it). The simulated gateways get their ACL blocks
# through `helm upgrade --reuse-values`, certificates signed by the chart's
# fleet CA, and reach the broker through kubectl port-forward.
kole_attach_cluster() {
  local build_dir=$1 dir="$WORK/devices"
  mkdir -p "$dir"
  if ! "$HELM" -n "$KOLE_NS" status "$KOLE_RELEASE" >/dev/null 2>&1; then
    echo "e2e: no release $KOLE_RELEASE in $KOLE_NS; install the chart with mosquitto.enabled=true first (make kind-e2e does)" >&2
    return 1
  fi
  local broker_service="$KOLE_RELEASE-mosquitto"
  if ! "$KUBECTL" -n "$KOLE_NS" get service "$broker_service" >/dev/null 2>&1; then
    echo "e2e: the release has no in-chart broker (service $broker_service); install it with mosquitto.enabled=true" >&2
    return 1
  fi

  KOLE_GATEWAYS=$(((E2E_NODES + 999) / 1000))
  local g gateways=()
  for ((g = 0; g < KOLE_GATEWAYS; g++)); do gateways+=("gw-1-$((E2E_NODES * g / KOLE_GATEWAYS))"); done
  local list
  list=$(IFS=,; echo "${gateways[*]}")
  "$HELM" upgrade "$KOLE_RELEASE" "$KOLE_ROOT/helm/kole" -n "$KOLE_NS" --reuse-values \
    --set "mosquitto.gateways={$list}" --wait --timeout 5m >"$WORK/helm-upgrade.log" 2>&1 || {
    cat "$WORK/helm-upgrade.log" >&2
    return 1
  }

  # One certificate per gateway from the chart's fleet CA; the simulator
  # uses one key pair for all its connections, so every gateway's
  # certificate must carry that connection's name: run one simulator per
  # gateway.
  "$KUBECTL" -n "$KOLE_NS" get secret "$KOLE_RELEASE-mosquitto-fleet-ca" -o jsonpath='{.data.ca\.crt}' |
    base64 -d >"$dir/fleet-ca.crt"
  "$KUBECTL" -n "$KOLE_NS" get secret "$KOLE_RELEASE-mosquitto-fleet-ca" -o jsonpath='{.data.ca\.key}' |
    base64 -d >"$dir/fleet-ca.key"
  "$KUBECTL" -n "$KOLE_NS" get secret "$KOLE_RELEASE-mosquitto-tls" -o jsonpath='{.data.ca\.crt}' |
    base64 -d >"$dir/broker-ca.crt"
  for gateway in "${gateways[@]}"; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/$gateway.key" \
      -subj "/CN=$gateway" -out "$dir/$gateway.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$gateway.csr" -CA "$dir/fleet-ca.crt" -CAkey "$dir/fleet-ca.key" \
      -CAcreateserial -days 1 -out "$dir/$gateway.crt" 2>/dev/null
  done

  local port
  port=$(free_port)
  "$KUBECTL" -n "$KOLE_NS" port-forward "service/$broker_service" "$port:8883" \
    >"$WORK/port-forward.log" 2>&1 &
  KOLE_FORWARD_PID=$!
  sleep 2

  kole_wait_available 120 || { echo "e2e: the APIService is not Available" >&2; return 1; }
  KOLE_AVAILABLE_AT=$(now)

  # The simulator splits its fleet over connections by index; one process
  # per gateway, each with that gateway's slice and certificate.
  KOLE_SIM_PIDS=()
  for ((g = 0; g < KOLE_GATEWAYS; g++)); do
    local first=$((E2E_NODES * g / KOLE_GATEWAYS)) next=$((E2E_NODES * (g + 1) / KOLE_GATEWAYS))
    "$build_dir/bin/kole-edge-sim" --broker "mqtts://127.0.0.1:$port" --no-verify-hostname \
      --ca-file "$dir/broker-ca.crt" --cert-file "$dir/gw-1-$first.crt" --key-file "$dir/gw-1-$first.key" \
      --nodes $((next - first)) --first-index "$first" --connections 1 --heartbeat-interval 5s \
      --progress-interval 10s >"$WORK/sim-$g.log" 2>&1 &
    KOLE_SIM_PIDS+=($!)
  done
}
