# Sourced by the suites that run kole-apiserver in standalone mode on
# loopback. The caller sets SERVER_BIN, WORK and PORT, and DATA_DIR to use
# another data directory than $WORK/data; start_server sets SERVER_PID.
# Certificates go to $WORK/certs, the server's log to $WORK/server.log.

# start_server [extra kole-apiserver flags]: returns once /readyz answers and
# the admin kubeconfig exists, or prints the log and exits.
start_server() {
  "$SERVER_BIN" --standalone --secure-port "$PORT" --bind-address 127.0.0.1 \
    --cert-dir "$WORK/certs" --data-dir "${DATA_DIR:-$WORK/data}" --v 2 "$@" \
    >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if curl -sf --cacert "$WORK/certs/ca.crt" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 &&
      [ -f "$WORK/certs/admin.kubeconfig" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "kole-apiserver did not become ready; log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
}

# stop_server: SIGTERM, then the server's exit status.
stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID"
  local rc=$?
  SERVER_PID=
  return $rc
}
