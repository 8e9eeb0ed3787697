# Sourced by the e2e harness and `make demo`: a local Kubernetes control
# plane on free loopback ports, with the aggregation layer configured the way
# kubeadm configures it.
#
#   cp_start DIR BIN      certificates, etcd, kube-apiserver and
#                         kube-controller-manager under DIR, binaries from BIN;
#                         writes DIR/admin.kubeconfig and sets CP_* variables
#   cp_user DIR NAME      a client-certificate kubeconfig DIR/NAME.kubeconfig
#                         for user NAME (no groups), for authorization tests
#   cp_stop               stops whatever cp_start started (safe to call twice)
#
# Every process logs to DIR/<name>.log. Nothing listens beyond 127.0.0.1.
#
# Options, from the environment: CP_SKIP_KCM=1 starts no
# kube-controller-manager (the peer benchmark measures etcd and
# kube-apiserver alone); CP_CPUS=LIST runs etcd and kube-apiserver under
# `taskset -c LIST`. After cp_start, CP_ETCD_PID and CP_APISERVER_PID name
# those two processes.

CP_PIDS=()

# cp_cert DIR NAME SUBJECT [SANS] [CA]: a key and certificate signed by CA
# (DIR/ca by default); SANS is an openssl subjectAltName list.
cp_cert() {
  local dir=$1 name=$2 subject=$3 sans=${4:-} ca=${5:-ca}
  local ext="$dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "$subject" \
    -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -days 2 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

cp_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1/$2.key" -out "$1/$2.crt" -days 2 \
    -subj "/CN=$3" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# cp_kubeconfig FILE SERVER CA CERT KEY
cp_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $2
    certificate-authority: $3
users:
- name: e2e
  user:
    client-certificate: $4
    client-key: $5
contexts:
- name: e2e
  context: {cluster: e2e, user: e2e}
current-context: e2e
EOF
}

# cp_wait_https URL CA SECONDS [CERT KEY]: waits until URL answers 200.
cp_wait_https() {
  local url=$1 ca=$2 seconds=$3 cert=${4:-} key=${5:-}
  local auth=()
  [ -n "$cert" ] && auth=(--cert "$cert" --key "$key")
  local deadline=$((SECONDS + seconds))
  while [ $SECONDS -lt $deadline ]; do
    curl -sf --max-time 2 --cacert "$ca" "${auth[@]}" "$url" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

cp_start() {
  local dir=$1 bin=$2
  local pki="$dir/pki"
  mkdir -p "$pki" "$dir/etcd"
  local pin=()
  [ -n "${CP_CPUS:-}" ] && pin=(taskset -c "$CP_CPUS")

  # Certificates: the cluster CA (serving and client certificates), the
  # front-proxy CA the aggregator's client certificate comes from, and the
  # service-account signing key.
  cp_ca "$pki" ca kole-e2e-ca
  cp_ca "$pki" front-proxy-ca kole-e2e-front-proxy-ca
  cp_cert "$pki" apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1"
  cp_cert "$pki" front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  cp_cert "$pki" admin "/O=system:masters/CN=kole-e2e-admin"
  cp_cert "$pki" controller-manager "/CN=system:kube-controller-manager"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  # etcd: client and peer on loopback, no TLS (it is reachable from this
  # machine only and lives for one run).
  CP_ETCD_PORT=$(free_port)
  local peer_port
  peer_port=$(free_port)
  "${pin[@]}" "$bin/etcd" --name e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$CP_ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$CP_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "e2e=http://127.0.0.1:$peer_port" \
    --listen-metrics-urls "" --log-level warn >"$dir/etcd.log" 2>&1 &
  CP_PIDS+=($!)
  CP_ETCD_PID=$!

  # kube-apiserver with the aggregation layer: requestheader flags naming the
  # front-proxy CA and the proxy client certificate it presents to
  # aggregated servers. The aggregator reaches them through their Service
  # (no --enable-aggregator-routing), so an ExternalName Service works.
  CP_APISERVER_PORT=$(free_port)
  CP_SERVER="https://127.0.0.1:$CP_APISERVER_PORT"
  "${pin[@]}" "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$CP_ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$CP_APISERVER_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode RBAC \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key" \
    --endpoint-reconciler-type none \
    --cert-dir "$dir/apiserver-certs" --profiling=false \
    >"$dir/kube-apiserver.log" 2>&1 &
  CP_PIDS+=($!)
  CP_APISERVER_PID=$!

  CP_KUBECONFIG="$dir/admin.kubeconfig"
  cp_kubeconfig "$CP_KUBECONFIG" "$CP_SERVER" "$pki/ca.crt" "$pki/admin.crt" "$pki/admin.key"
  if ! cp_wait_https "$CP_SERVER/readyz" "$pki/ca.crt" 120 "$pki/admin.crt" "$pki/admin.key"; then
    echo "control plane: kube-apiserver did not become ready; last lines of its log:" >&2
    tail -20 "$dir/kube-apiserver.log" >&2
    return 1
  fi
  CP_DIR=$dir
  [ "${CP_SKIP_KCM:-0}" = 1 ] && return 0

  # kube-controller-manager with every default controller: its namespace
  # controller and garbage collector are the clients of aggregated APIs
  # that matter here. Each controller uses its own service account, as in a
  # kubeadm cluster.
  cp_kubeconfig "$dir/controller-manager.kubeconfig" "$CP_SERVER" "$pki/ca.crt" \
    "$pki/controller-manager.crt" "$pki/controller-manager.key"
  CP_KCM_PORT=$(free_port)
  "$bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$CP_KCM_PORT" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false \
    --cert-dir "$dir/controller-manager-certs" --profiling=false \
    >"$dir/kube-controller-manager.log" 2>&1 &
  CP_PIDS+=($!)
  # Its serving certificate is self-signed; -k is enough for a health probe.
  local deadline=$((SECONDS + 60))
  until curl -skf --max-time 2 "https://127.0.0.1:$CP_KCM_PORT/healthz" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "control plane: kube-controller-manager did not become healthy; last lines of its log:" >&2
      tail -20 "$dir/kube-controller-manager.log" >&2
      return 1
    fi
    sleep 0.2
  done
  CP_DIR=$dir
}

# cp_user DIR NAME: a kubeconfig for user NAME, signed by the cluster CA.
cp_user() {
  local dir=$1 name=$2
  cp_cert "$dir/pki" "user-$name" "/CN=$name"
  cp_kubeconfig "$dir/$name.kubeconfig" "$CP_SERVER" "$dir/pki/ca.crt" \
    "$dir/pki/user-$name.crt" "$dir/pki/user-$name.key"
}

# Stops in reverse order of start, waiting for each.
cp_stop() {
  local i
  for ((i = ${#CP_PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${CP_PIDS[$i]}" 2>/dev/null
    wait "${CP_PIDS[$i]}" 2>/dev/null
  done
  CP_PIDS=()
}
