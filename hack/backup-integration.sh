#!/usr/bin/env bash
# kole-admin against real servers (standalone mode, loopback only): back up a
# running kole-apiserver while nodes are being created, create more, stop it,
# restore the backup into a new data directory, start a server there and
# check that exactly the backed-up nodes came back, with the same UIDs and
# resourceVersions. Also the refusals an operator relies on.
#
#   hack/backup-integration.sh [build-dir]
#
# Needs build/bin/kole-apiserver and build/bin/kole-admin, curl and python3.
set -uo pipefail

BUILD_DIR=${1:-build}
SERVER_BIN=$BUILD_DIR/bin/kole-apiserver
ADMIN_BIN=$BUILD_DIR/bin/kole-admin
for bin in "$SERVER_BIN" "$ADMIN_BIN"; do
  [ -x "$bin" ] || { echo "$bin not built" >&2; exit 1; }
done

# shellcheck source=hack/lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
# shellcheck source=hack/lib/kole-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kole-server.sh"

WORK=$(mktemp -d /tmp/kole-backup-XXXXXX)
PORT=$(free_port)
SERVER_PID=
WRITER_PID=
cleanup() {
  for pid in "$WRITER_PID" "$SERVER_PID"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

api() {
  curl -sf --cacert "$WORK/certs/ca.crt" --cert "$WORK/certs/admin.crt" \
    --key "$WORK/certs/admin.key" "$@"
}

NODES_URL() { echo "https://127.0.0.1:$PORT/apis/edge.kole.io/v1alpha1/nodes"; }

create_node() {
  api -X POST -H 'Content-Type: application/json' \
    -d "{\"apiVersion\":\"edge.kole.io/v1alpha1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$1\",\"labels\":{\"site\":\"s1\"}}}" \
    "$(NODES_URL)" >/dev/null
}

# "name uid resourceVersion" of every node, sorted, from a NodeList on stdin
# or (with --lines) from kole-admin export's JSON lines.
node_triples() {
  python3 -c '
import json, sys
if sys.argv[1:] == ["--lines"]:
    items = [json.loads(l) for l in sys.stdin if l.strip()]
    items = [i for i in items if i["kind"] == "Node"]
else:
    items = json.load(sys.stdin)["items"]
for i in sorted(items, key=lambda i: i["metadata"]["name"]):
    m = i["metadata"]
    print(m["name"], m["uid"], m["resourceVersion"])
' "$@"
}

list_nodes() { api "$(NODES_URL)" | node_triples; }

# --- A running server with nodes ---
DATA_DIR=$WORK/data
start_server
for i in $(seq -w 1 40); do create_node "before-$i" || echo "create before-$i failed"; done
BEFORE=$(list_nodes)
check "40 nodes before the backup" "40" "$(wc -l <<<"$BEFORE")"

# --- Backup while a client keeps creating nodes ---
(
  for i in $(seq -w 1 200); do create_node "during-$i" || break; done
) &
WRITER_PID=$!
sleep 0.2
"$ADMIN_BIN" backup --data-dir "$WORK/data" --to "$WORK/backup" >"$WORK/backup.out" 2>"$WORK/backup.log"
check "backup of a running server succeeds" "0" "$?"
wait "$WRITER_PID"
WRITER_PID=
contains "backup prints a summary" "backup complete: $WORK/data -> $WORK/backup nodes=" \
  "$(cat "$WORK/backup.out")"
contains "backup logs that the server held the directory" 'inUse=true' "$(cat "$WORK/backup.log")"
check "backup writes checksums sha256sum accepts" "0" \
  "$(cd "$WORK/backup" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1; echo $?)"

# What the backup holds, by its own export.
"$ADMIN_BIN" export --data-dir "$WORK/backup" >"$WORK/backup.jsonl" 2>"$WORK/export.log"
check "export of the backup succeeds" "0" "$?"
BACKED_UP=$(node_triples --lines <"$WORK/backup.jsonl")
check "the backup holds every node created before it" "" \
  "$(comm -23 <(echo "$BEFORE") <(echo "$BACKED_UP"))"
echo "     (the backup holds $(wc -l <<<"$BACKED_UP") nodes: 40 from before it, the rest created during it)"
contains "the backup's manifest counts its nodes" \
  "\"count\":$(wc -l <<<"$BACKED_UP")" "$(cat "$WORK/backup/MANIFEST.json")"

# --- Changes after the backup, then the server stops ---
for i in $(seq -w 1 10); do create_node "after-$i"; done
contains "inspect reads a directory in use" "in use          by a running kole-apiserver" \
  "$("$ADMIN_BIN" inspect --data-dir "$WORK/data" 2>/dev/null)"
contains "export refuses a directory in use" "in use by a running kole-apiserver" \
  "$("$ADMIN_BIN" export --data-dir "$WORK/data" 2>&1 >/dev/null)"
check "the old server holds 250 nodes" "250" "$(list_nodes | wc -l)"
stop_server

# --- Restore into a new directory and serve it ---
"$ADMIN_BIN" restore --from "$WORK/backup" --data-dir "$WORK/restored" >"$WORK/restore.out" \
  2>"$WORK/restore.log"
check "restore succeeds" "0" "$?"
contains "restore prints a summary" "restore complete: $WORK/backup -> $WORK/restored" \
  "$(cat "$WORK/restore.out")"
DATA_DIR=$WORK/restored
start_server
RESTORED=$(list_nodes)
check "exactly the backed-up nodes, with their UIDs and resourceVersions" "$BACKED_UP" "$RESTORED"
lacks "no node created after the backup" "after-" "$RESTORED"
create_node "new-after-restore"
NEW_RV=$(api "$(NODES_URL)/new-after-restore" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
MAX_RV=$(awk '{print $3}' <<<"$RESTORED" | sort -n | tail -1)
check "versions go on after the restored ones" "yes" "$([ "$NEW_RV" -gt "$MAX_RV" ] && echo yes || echo no)"

# --- Refusals ---
contains "restore refuses a directory a server holds" "stop the kole-apiserver" \
  "$("$ADMIN_BIN" restore --from "$WORK/backup" --data-dir "$WORK/restored" --force 2>&1)"
stop_server
contains "restore refuses a directory holding a store" "needs --force" \
  "$("$ADMIN_BIN" restore --from "$WORK/backup" --data-dir "$WORK/restored" 2>&1)"
"$ADMIN_BIN" restore --from "$WORK/backup" --data-dir "$WORK/restored" --force >/dev/null 2>&1
check "restore --force succeeds" "0" "$?"
check "restore --force moved the old store aside" "1" \
  "$(find "$WORK/restored" -maxdepth 1 -name 'pre-restore-*' | wc -l)"
printf 'X' | dd of="$WORK/backup/uid-key" bs=1 seek=3 conv=notrunc 2>/dev/null
contains "a corrupted backup file fails its checksum" "backup file $WORK/backup/uid-key is corrupt" \
  "$("$ADMIN_BIN" restore --from "$WORK/backup" --data-dir "$WORK/other" 2>&1)"

echo "backup integration: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
