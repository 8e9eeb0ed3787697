# The e2e tests, sourced by e2e/run.sh once the control plane, the chart,
# kole-apiserver and the simulated fleet are up. Everything here goes
# through kube-apiserver (its aggregation layer) with real kubectl, unless a
# test says it reaches KOLE's port directly.
#
# From run.sh: KUBECTL, KUBECONFIG, WORK, E2E_NODES, E2E_MODE, KOLE_NS and
# the kole_* functions of e2e/lib/kole.sh.

k() { "$KUBECTL" --request-timeout=30s "$@"; }
# as USER ARGS...: kubectl as a user with a client certificate of the cluster CA.
as() {
  local user=$1
  shift
  "$KUBECTL" --kubeconfig "$WORK/cluster/$user.kubeconfig" --request-timeout=30s "$@"
}

# namespace_gone NAME SECONDS: prints yes once the namespace no longer
# exists, no if it still does after SECONDS.
namespace_gone() {
  local deadline=$((SECONDS + $2))
  while k get namespace "$1" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { echo no; return; }
    sleep 1
  done
  echo yes
}

# --- The install itself --------------------------------------------------------

# The plain manifests and the chart with its in-chart broker are accepted by
# this kube-apiserver's validation and admission (server-side dry run).
contains "manifests/kole.yaml passes a server-side dry run" "apiservice.apiregistration.k8s.io/v1alpha1.edge.kole.io" \
  "$(k apply --dry-run=server -f "$KOLE_ROOT/manifests/kole.yaml" 2>&1)"
k create namespace kole-dry-run >/dev/null
DRY_RUN=$("$HELM" template kole-dry "$KOLE_ROOT/helm/kole" -n kole-dry-run --set mosquitto.enabled=true |
  k apply --dry-run=server -f - 2>&1)
lacks "the chart with mosquitto passes a server-side dry run" "rror" "$DRY_RUN"
contains "the dry run covered the broker" "deployment.apps/kole-dry-mosquitto created (server dry run)" "$DRY_RUN"
k delete namespace kole-dry-run --wait=false >/dev/null

# --- Registration through the aggregator ------------------------------------

check "APIService v1alpha1.edge.kole.io is Available" "True" \
  "$(k get apiservice v1alpha1.edge.kole.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')"

check "api-resources lists the group" \
"NAME             SHORTNAMES    APIVERSION              NAMESPACED   KIND
edgedaemonsets   eds           edge.kole.io/v1alpha1   true         EdgeDaemonSet
nodes            en,edgenode   edge.kole.io/v1alpha1   false        Node
pods             epod          edge.kole.io/v1alpha1   true         Pod" \
  "$(k api-resources --api-group=edge.kole.io 2>&1)"

# The fleet registers through mosquitto; every node must be listed.
started=$(now)
listed=0
for _ in $(seq 120); do
  listed=$(k get nodes.edge.kole.io --no-headers 2>/dev/null | grep -c ' Ready ')
  [ "$listed" -ge "$E2E_NODES" ] && break
  sleep 1
done
check "every simulated node is Ready through the aggregator" "$E2E_NODES" "$listed"
figure e2e.nodes_ready_after_apiservice_seconds "$(elapsed "$KOLE_AVAILABLE_AT")" s

started=$(now)
listed=$(k get nodes.edge.kole.io --no-headers | wc -l)
figure e2e.kubectl_get_nodes_seconds "$(elapsed "$started")" s
figure e2e.nodes_listed "$listed" nodes
check "kubectl get lists the whole fleet" "$E2E_NODES" "$listed"

# first_nodes N: the names of the first N nodes, from one page.
first_nodes() {
  k get --raw "/apis/edge.kole.io/v1alpha1/nodes?limit=$1" |
    python3 -c 'import json, sys; [print(i["metadata"]["name"]) for i in json.load(sys.stdin)["items"]]'
}
NODE=$(first_nodes 1)
contains "get -o wide prints the wide columns" "INTERNAL-IP" "$(k get en "$NODE" -o wide)"
check "get -o json carries the device's facts" "linux" \
  "$(k get en "$NODE" -o jsonpath='{.status.nodeInfo.operatingSystem}')"
check "field selector metadata.name" "$NODE" \
  "$(k get en --field-selector "metadata.name=$NODE" -o name | sed 's|node.edge.kole.io/||')"
check "label selector over the fleet" "$E2E_NODES" \
  "$(k get en -l kubernetes.io/os=linux --chunk-size=500 -o name | wc -l)"

# explain reads RESOURCE.FIELD...: beside core nodes the group is named
# with --api-version (or the short name), not as nodes.edge.kole.io.
EXPLAIN=$(k explain nodes.spec --api-version=edge.kole.io/v1alpha1 2>&1)
contains "explain through the aggregated OpenAPI" "GROUP:      edge.kole.io" "$EXPLAIN"
contains "explain shows the fields" "unschedulable	<boolean>" "$EXPLAIN"
contains "explain by short name" "GROUP:      edge.kole.io" "$(k explain en.status 2>&1)"

# --- Writes and watches -------------------------------------------------------

k get en "$NODE" -w --output-watch-events --request-timeout=15s >"$WORK/watch.out" 2>&1 &
watch_pid=$!
sleep 2
check "label" "node.edge.kole.io/$NODE labeled" "$(k label en "$NODE" e2e=yes 2>&1)"
check "annotate" "node.edge.kole.io/$NODE annotated" "$(k annotate en "$NODE" e2e/note=hi 2>&1)"
check "label stored" "yes" "$(k get en "$NODE" -o jsonpath='{.metadata.labels.e2e}')"
wait "$watch_pid"
contains "watch through the aggregator sees the change" "MODIFIED" "$(cat "$WORK/watch.out")"

VICTIM=$(first_nodes 2 | tail -1)
check "delete" "node.edge.kole.io \"$VICTIM\" deleted" "$(k delete en "$VICTIM" 2>&1)"
sleep 2
check "a deleted node stays gone (the device is told to deregister)" \
  "Error from server (NotFound): nodes.edge.kole.io \"$VICTIM\" not found" \
  "$(k get en "$VICTIM" 2>&1)"

# --- Authorization ------------------------------------------------------------
# alice is bound to the built-in view role, which the chart's aggregated
# ClusterRole extends to edge.kole.io; mallory has no binding at all.

if [ "$E2E_MODE" = local ]; then
  cp_user "$WORK/cluster" alice
  cp_user "$WORK/cluster" mallory
  k create clusterrolebinding e2e-alice-view --clusterrole=view --user=alice >/dev/null
  sleep 1
  check "a user bound to view lists edge nodes" "1" \
    "$(as alice get en --field-selector "metadata.name=$NODE" --no-headers 2>&1 | wc -l)"
  contains "view does not allow delete" "Forbidden" "$(as alice delete en "$NODE" 2>&1)"
  contains "an unbound user is refused by kube-apiserver" "Forbidden" "$(as mallory get en 2>&1)"

  # Directly on KOLE's port: KOLE authenticates the client certificate
  # itself (CA from the extension-apiserver-authentication ConfigMap) and
  # asks the real kube-apiserver with a SubjectAccessReview.
  direct() {
    local user=$1 path=$2
    curl -s -o "$WORK/direct.out" -w '%{http_code}' --cacert "$KOLE_SERVING_CA" \
      --cert "$WORK/cluster/pki/user-$user.crt" --key "$WORK/cluster/pki/user-$user.key" \
      --resolve "$KOLE_SERVICE_HOST:$KOLE_PORT:127.0.0.1" "https://$KOLE_SERVICE_HOST:$KOLE_PORT$path"
  }
  check "KOLE's own SubjectAccessReview refuses mallory" "403" \
    "$(direct mallory /apis/edge.kole.io/v1alpha1/nodes?limit=1)"
  contains "the refusal names the user" 'User \"mallory\" cannot list resource \"nodes\"' \
    "$(cat "$WORK/direct.out")"
  check "KOLE's own SubjectAccessReview lets alice list" "200" \
    "$(direct alice /apis/edge.kole.io/v1alpha1/nodes?limit=1)"

  # A bearer token: KOLE sends a TokenReview, then a SubjectAccessReview.
  k create serviceaccount e2e-reader -n default >/dev/null
  k create clusterrolebinding e2e-reader-view --clusterrole=view \
    --serviceaccount=default:e2e-reader >/dev/null
  token=$(k create token e2e-reader -n default)
  bearer() {
    curl -s -o /dev/null -w '%{http_code}' --cacert "$KOLE_SERVING_CA" -H "Authorization: Bearer $1" \
      --resolve "$KOLE_SERVICE_HOST:$KOLE_PORT:127.0.0.1" \
      "https://$KOLE_SERVICE_HOST:$KOLE_PORT/apis/edge.kole.io/v1alpha1/nodes?limit=1"
  }
  check "a service-account token is reviewed and allowed" "200" "$(bearer "$token")"
  check "a forged token is refused with 401" "401" "$(bearer "${token%?????}AAAAA")"
fi

# --- Pods and namespace deletion --------------------------------------------
# The namespace controller in kube-controller-manager must be able to empty
# a namespace that holds KOLE pods, or namespace deletion hangs.

k create namespace e2e-pods >/dev/null
cat >"$WORK/pod.yaml" <<YAML
apiVersion: edge.kole.io/v1alpha1
kind: Pod
metadata:
  name: probe
  namespace: e2e-pods
spec:
  nodeName: $NODE
  containers:
  - name: app
    image: registry.example/probe:1
YAML
check "create a pod through the aggregator" "pod.edge.kole.io/probe created" \
  "$(k apply -f "$WORK/pod.yaml" 2>&1)"
check "get pods --field-selector spec.nodeName" "probe" \
  "$(k get epod -n e2e-pods --field-selector "spec.nodeName=$NODE" -o name | sed 's|pod.edge.kole.io/||')"
started=$(now)
k delete namespace e2e-pods --wait=false >/dev/null
check "deleting a namespace that holds KOLE pods completes" "yes" "$(namespace_gone e2e-pods 120)"
figure e2e.namespace_deletion_seconds "$(elapsed "$started")" s
check "its KOLE pods are gone" "" "$(k get epod -A --no-headers 2>/dev/null | grep e2e-pods)"

# --- EdgeDaemonSets -------------------------------------------------------------
# A workload on every simulated node: applied client-side, its pods derived per
# node and Running once the devices confirm; an image rolled server-side; a pod
# restarted by deleting it; the namespace deleted with everything in it.

# eds_status FIELD: one status count of the e2e EdgeDaemonSet.
eds_status() { k get eds probe -n e2e-eds -o "jsonpath={.status.$1}" 2>/dev/null; }
# wait_eds FIELD VALUE SECONDS: prints the value reached.
wait_eds() {
  local deadline=$((SECONDS + $3)) value=
  while :; do
    value=$(eds_status "$1")
    [ "$value" = "$2" ] || [ $SECONDS -ge $deadline ] && break
    sleep 1
  done
  echo "$value"
}
eds_yaml() {
  cat <<YAML
apiVersion: edge.kole.io/v1alpha1
kind: EdgeDaemonSet
metadata:
  name: probe
  namespace: e2e-eds
spec:
  nodeSelector:
    matchLabels:
      kubernetes.io/os: linux
  updateStrategy:
    rollingUpdate:
      maxUnavailable: 50%
  template:
    metadata:
      labels:
        app: probe
    spec:
      containers:
      - name: probe
        image: registry.example/probe:$1
        command: ["/usr/bin/probe", "--serve"]
YAML
}

k create namespace e2e-eds >/dev/null
eds_yaml 1 >"$WORK/eds-v1.yaml"
# The nodes it selects: the fleet, less the node deleted above.
EDS_NODES=$(k get en -l kubernetes.io/os=linux --no-headers 2>/dev/null | wc -l)
started=$(now)
check "apply an EdgeDaemonSet through the aggregator" "edgedaemonset.edge.kole.io/probe created" \
  "$(k apply -f "$WORK/eds-v1.yaml" 2>&1)"
check "every node gets the pod" "$EDS_NODES" "$(wait_eds desiredNumberScheduled "$EDS_NODES" 60)"
check "every pod reports Running and ready" "$EDS_NODES" "$(wait_eds numberReady "$EDS_NODES" 120)"
figure e2e.eds_all_running_seconds "$(elapsed "$started")" s
contains "kubectl get eds shows the DaemonSet columns" \
  "probe $EDS_NODES $EDS_NODES $EDS_NODES $EDS_NODES $EDS_NODES kubernetes.io/os=linux" \
  "$(k get eds -n e2e-eds --no-headers 2>&1 | tr -s ' ')"
check "the pod of one node, by field selector" "Running" \
  "$(k get epod -n e2e-eds --field-selector "spec.nodeName=$NODE" -o jsonpath='{.items[0].status.phase}')"
check "pods list by label across namespaces" "$EDS_NODES" \
  "$(k get epod -A -l app=probe --no-headers 2>/dev/null | grep -c ' Running ')"
POD=$(k get epod -n e2e-eds --field-selector "spec.nodeName=$NODE" -o name)
check "a derived pod is owned by its EdgeDaemonSet" "EdgeDaemonSet/probe" \
  "$(k get -n e2e-eds "$POD" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')"
contains "describe shows the pod's node and image" "registry.example/probe:1" \
  "$(k describe -n e2e-eds "$POD" 2>&1)"

old_uid=$(k get -n e2e-eds "$POD" -o jsonpath='{.metadata.uid}')
check "deleting a derived pod restarts it on its device" "${POD#pod.edge.kole.io/}" \
  "$(k delete -n e2e-eds "$POD" --wait=true -o name 2>&1 | sed 's|pod.edge.kole.io/||')"
new_uid=$(k get -n e2e-eds "$POD" -o jsonpath='{.metadata.uid}')
check "the restarted pod has a new UID" "yes" "$([ -n "$new_uid" ] && [ "$new_uid" != "$old_uid" ] && echo yes)"

eds_yaml 2 >"$WORK/eds-v2.yaml"
started=$(now)
check "roll a new image with server-side apply" "edgedaemonset.edge.kole.io/probe serverside-applied" \
  "$(k apply --server-side --force-conflicts -f "$WORK/eds-v2.yaml" 2>&1)"
# The status counts the new template once the controller has seen it.
generation=$(k get eds probe -n e2e-eds -o jsonpath='{.metadata.generation}')
check "the controller observed the new generation" "$generation" \
  "$(wait_eds observedGeneration "$generation" 30)"
check "every pod runs the new image" "$EDS_NODES" "$(wait_eds updatedNumberScheduled "$EDS_NODES" 120)"
check "and is available again" "$EDS_NODES" "$(wait_eds numberAvailable "$EDS_NODES" 120)"
figure e2e.eds_rolling_update_seconds "$(elapsed "$started")" s
check "the pods show the new image" "registry.example/probe:2" \
  "$(k get -n e2e-eds "$POD" -o jsonpath='{.spec.containers[0].image}')"
contains "server-side apply recorded its field manager" "kubectl" \
  "$(k get eds probe -n e2e-eds --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}')"

started=$(now)
k delete namespace e2e-eds --wait=false >/dev/null
check "deleting a namespace that holds an EdgeDaemonSet completes" "yes" "$(namespace_gone e2e-eds 120)"
figure e2e.eds_namespace_deletion_seconds "$(elapsed "$started")" s
sleep 3
check "no pod of it reappears" "0" "$(k get epod -A -l app=probe --no-headers 2>/dev/null | wc -l)"

# --- The scale trap -----------------------------------------------------------
# kube-controller-manager's garbage collector and quota controller mirror
# every resource whose discovery verbs allow it. KOLE's discovery keeps
# nodes and pods out of that (docs/api.md); its request metrics prove it.
# Both controllers rescan discovery every 30 s: wait for a rescan first.

if [ "$E2E_MODE" = local ]; then
  wait_for=$(python3 -c "print(max(0, int(35 - ($(now) - $KOLE_AVAILABLE_AT))))")
  [ "$wait_for" -gt 0 ] && sleep "$wait_for"
  METRICS=$(k get --raw /apis/edge.kole.io/v1alpha1 >/dev/null && kole_metrics)
  KCM_REQUESTS=$(grep '^kole_apiserver_requests_total' <<<"$METRICS" | grep 'kube-controller-manager')
  echo "     kube-controller-manager's requests to KOLE, as KOLE counted them:"
  sed 's/^/       /' <<<"$KCM_REQUESTS"
  lacks "kube-controller-manager never lists the fleet (no cluster-wide list)" \
    'verb="list",resource="nodes",scope="cluster"' "$KCM_REQUESTS"
  lacks "kube-controller-manager never lists pods across namespaces" \
    'verb="list",resource="pods",scope="cluster"' "$KCM_REQUESTS"
  # EdgeDaemonSets are few and advertise watch: the garbage collector may
  # mirror them.
  lacks "kube-controller-manager never watches nodes" 'verb="watch",resource="nodes"' \
    "$KCM_REQUESTS"
  lacks "kube-controller-manager never watches pods" 'verb="watch",resource="pods"' \
    "$KCM_REQUESTS"
  contains "kube-controller-manager did reach KOLE (namespace cleanup)" 'kube-controller-manager' \
    "$KCM_REQUESTS"
  # Counted from the moment the APIService turned Available: before that,
  # discovery failures for the group are expected (docs/operations.md).
  lacks "kube-controller-manager logs no errors about edge.kole.io once KOLE serves" \
    "edge.kole.io" "$(tail -n "+$((KOLE_KCM_LOG_MARK + 1))" "$WORK/cluster/kube-controller-manager.log" |
      grep -E '^[EW][0-9]{4}')"
fi

# wait_for_aggregated_get SECONDS: until a get through the aggregator works.
wait_for_aggregated_get() {
  local deadline=$((SECONDS + $1))
  until k get en --field-selector "metadata.name=$NODE" -o name >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# --- Restart ------------------------------------------------------------------
# While KOLE is down, discovery clients and namespace deletion wait, so the
# time from a restart until kubectl works through the aggregator again is a
# figure operators need (docs/operations.md).

# While KOLE is down (docs/operations.md, "Availability model"): its
# resources answer 503, the rest of the cluster works, and a namespace
# deletion anywhere waits for KOLE, then completes by itself.
if [ "$E2E_MODE" = local ]; then
  kole_kill -TERM
  contains "while KOLE is down its resources answer 503" \
    "the server is currently unable to handle the request" "$(k get en 2>&1)"
  check "while KOLE is down core resources answer" "namespace/default" "$(k get namespace default -o name 2>&1)"
  k create namespace e2e-stall >/dev/null
  k delete namespace e2e-stall --wait=false >/dev/null
  sleep 10
  check "while KOLE is down a namespace deletion waits" "Terminating" \
    "$(k get namespace e2e-stall -o jsonpath='{.status.phase}' 2>&1)"
  contains "the namespace says why" "NamespaceDeletionDiscoveryFailure" \
    "$(k get namespace e2e-stall -o jsonpath='{.status.conditions[*].type}' 2>&1)"
  started=$(now)
  kole_launch
  wait_for_aggregated_get 120
  check "once KOLE is back the namespace deletion completes" "yes" "$(namespace_gone e2e-stall 180)"
  figure e2e.stalled_namespace_deletion_after_restart_seconds "$(elapsed "$started")" s
fi

if [ "$E2E_MODE" = local ]; then
  before=$(k get en --no-headers | wc -l)
  kole_kill -KILL
  started=$(now)
  kole_launch
  wait_for_aggregated_get 120
  figure e2e.restart_until_aggregated_get_seconds "$(elapsed "$started")" s
  check "after kill -9 the fleet is all there" "$before" "$(k get en --no-headers | wc -l)"
  check "labels written through the aggregator survived" "yes" \
    "$(k get en "$NODE" -o jsonpath='{.metadata.labels.e2e}')"
fi

# --- Backup and restore (docs/operations.md) --------------------------------
# kole-admin from the image, in the server's pod with its data volume, backs
# up the running server; a change made after the backup is gone once the
# backup is restored into the stopped server's volume.


if [ "$E2E_MODE" = local ]; then
  backups="$WORK/backups"
  mkdir -p "$backups"
  chown "$(python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); print("%d:%d" % (p["user"], p["group"]))' "$WORK/kole/pod.json")" "$backups"
  k label en "$NODE" e2e-backup=before >/dev/null
  before=$(k get en --no-headers | wc -l)
  BACKUP=$(kole_exec --bind "$backups:/backups" -- /usr/bin/kole-admin backup --data-dir /var/lib/kole \
    --to /backups/b1 2>&1)
  contains "kole-admin backs up the running server" "backup complete" "$BACKUP"
  k label en "$NODE" e2e-backup=after --overwrite >/dev/null
  kole_kill -TERM
  RESTORE=$(kole_exec --bind "$backups:/backups:ro" -- /usr/bin/kole-admin restore --from /backups/b1 \
    --data-dir /var/lib/kole --force 2>&1)
  contains "kole-admin restores into the stopped server's volume" "restore complete" "$RESTORE"
  started=$(now)
  kole_launch
  wait_for_aggregated_get 120
  figure e2e.restart_after_restore_seconds "$(elapsed "$started")" s
  check "the restored store has the state of the backup" "before" \
    "$(k get en "$NODE" -o jsonpath='{.metadata.labels.e2e-backup}')"
  check "the restored store has the whole fleet" "$before" "$(k get en --no-headers | wc -l)"
fi
