#!/usr/bin/env bash
# Test of the image as the chart runs it, without Docker: builds the image's
# root filesystem (hack/build-rootfs.sh), starts `kole-apiserver --standalone`
# in it through hack/run-in-rootfs.sh as the chart's user (65532) with a
# read-only root and bind-mounted writable data and certificate directories,
# and checks that
#   - /livez answers `ok` over HTTPS on a loopback port, verified against the
#     CA the server wrote into the bound certificate directory;
#   - the process that answers is the one the wrapper started (same pid), runs
#     as 65532:65532 with no capabilities and no_new_privs, inside the tree;
#   - its root is mounted read-only and it cannot create a file in /, even as
#     root in its mount namespace, while its data directory is writable;
#   - everything it wrote in the data directory belongs to 65532;
#   - SIGTERM to the wrapper's pid stops it with status 0, and no mount is
#     left behind.
#
#   hack/rootfs-test.sh [BUILD_DIR]     (default build; make rootfs-test)
#
# Needs root. The first run downloads Debian packages (hack/build-rootfs.sh).
set -euo pipefail

case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=${1:-build}
[ "$(id -u)" -eq 0 ] || { echo "rootfs-test: needs root (mount namespaces, chroot)" >&2; exit 1; }

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

rootfs=$("$here/build-rootfs.sh" "$build_dir")
work=$(mktemp -d /tmp/kole-rootfs-test.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf --one-file-system "${work:?}"
}
trap cleanup EXIT

data=$work/data
certs=$work/certs
mkdir -p "$data" "$certs"
chown 65532:65532 "$data" "$certs"
chmod 0700 "$data" "$certs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The server, as the chart's container would run it (standalone: no
# kube-apiserver here).
"$here/run-in-rootfs.sh" --bind "$data:/var/lib/kole" --bind "$certs:/etc/kole/certs" \
  "$rootfs" -- /usr/bin/kole-apiserver --standalone --bind-address 127.0.0.1 \
  --secure-port "$port" --data-dir /var/lib/kole --cert-dir /etc/kole/certs \
  >"$work/server.log" 2>&1 &
server_pid=$!

livez=
for _ in $(seq 1 100); do
  if [ -f "$certs/ca.crt" ]; then
    livez=$(curl -sS --max-time 2 --cacert "$certs/ca.crt" "https://127.0.0.1:$port/livez" 2>/dev/null) && break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
if [ "$livez" = ok ]; then
  pass "/livez over HTTPS on 127.0.0.1:$port answers ok (certificate verified against the bound cert dir's CA)"
else
  fail "/livez did not answer ok (got '${livez}'); server log:"
  sed 's/^/    /' "$work/server.log"
  exit 1
fi

# The wrapper execs all the way down: the pid it was started as is the server.
exe=$(readlink "/proc/$server_pid/exe")
if [ "$exe" = "$rootfs/usr/bin/kole-apiserver" ] && [ "$(readlink "/proc/$server_pid/root")" = "$rootfs" ]; then
  pass "pid $server_pid is /usr/bin/kole-apiserver chrooted in $rootfs"
else
  fail "pid $server_pid runs '$exe' with root '$(readlink "/proc/$server_pid/root")'"
fi
status=$(cat "/proc/$server_pid/status")
uids=$(awk '/^Uid:/{print $2, $3, $4, $5}' <<<"$status")
gids=$(awk '/^Gid:/{print $2, $3, $4, $5}' <<<"$status")
groups=$(awk '/^Groups:/{$1=""; print $0}' <<<"$status" | xargs)
capeff=$(awk '/^CapEff:/{print $2}' <<<"$status")
nnp=$(awk '/^NoNewPrivs:/{print $2}' <<<"$status")
if [ "$uids" = "65532 65532 65532 65532" ] && [ "$gids" = "65532 65532 65532 65532" ] &&
  [ "$groups" = 65532 ] && [ "$capeff" = 0000000000000000 ] && [ "$nnp" = 1 ]; then
  pass "runs as uid/gid 65532, groups 65532, no effective capabilities, no_new_privs"
else
  fail "identity: uid '$uids' gid '$gids' groups '$groups' CapEff '$capeff' NoNewPrivs '$nnp'"
fi

# Its root, seen from inside its own mount namespace.
root_opts=$(awk '$5 == "/" {print $6}' "/proc/$server_pid/mountinfo")
if [[ ",$root_opts," == *,ro,* ]]; then
  pass "its / is mounted read-only ($root_opts)"
else
  fail "its / is mounted '$root_opts'"
fi
in_server() {
  nsenter --target "$server_pid" --mount --root --wd=/ "$@"
}
if in_server --setuid 65532 --setgid 65532 -- /bin/sh -c ': >/kole-write-test' 2>/dev/null; then
  fail "user 65532 created /kole-write-test in the server's root"
else
  pass "user 65532 cannot create a file in the server's /"
fi
if out=$(in_server -- /bin/sh -c ': >/kole-write-test' 2>&1); then
  fail "root created /kole-write-test in the server's root"
elif [[ "$out" == *"Read-only file system"* ]]; then
  pass "not even root can: Read-only file system"
else
  fail "root could not write /, but not for the read-only mount: $out"
fi
# The control: the same probe does succeed where writing is meant to work, so
# the checks above can tell the difference.
if in_server --setuid 65532 --setgid 65532 -- /bin/sh -c ': >/var/lib/kole/.write-test && rm /var/lib/kole/.write-test'; then
  pass "user 65532 can write its data directory /var/lib/kole"
else
  fail "user 65532 cannot write /var/lib/kole"
fi
if [ -e "$rootfs/kole-write-test" ]; then
  fail "$rootfs/kole-write-test exists"
  rm -f "$rootfs/kole-write-test"
fi

foreign=$(find "$data" "$certs" -mindepth 1 \( -not -user 65532 -o -not -group 65532 \) | head -n 5)
written=$(find "$data" -mindepth 1 | wc -l)
if [ -z "$foreign" ] && [ "$written" -gt 0 ]; then
  pass "the server wrote $written entries in its data directory, all owned by 65532:65532"
else
  fail "data directory: $written entries; not owned by 65532: ${foreign:-none}"
fi

# Stopping the wrapper stops the server cleanly.
started=$(date +%s)
kill -TERM "$server_pid"
set +e
wait "$server_pid"
code=$?
set -e
server_pid=
if [ "$code" -eq 0 ]; then
  pass "SIGTERM to the wrapper's pid: the server exited with 0 after $(($(date +%s) - started)) s"
else
  fail "after SIGTERM the server exited with $code; log tail:"
  tail -n 5 "$work/server.log" | sed 's/^/    /'
fi
if grep -q " $rootfs" /proc/mounts; then
  fail "mounts under $rootfs are left in the host's namespace"
else
  pass "no mount under $rootfs is left behind"
fi

if [ "$failures" -ne 0 ]; then
  echo "rootfs-test: $failures check(s) failed"
  exit 1
fi
echo "rootfs-test: all checks passed"
