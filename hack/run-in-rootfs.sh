#!/usr/bin/env bash
# Runs a command inside an image root filesystem (hack/build-rootfs.sh) the
# way a container runtime runs the chart's pod: private mount namespace, root
# read-only, /proc and a minimal /dev, the given volumes bind-mounted, a clean
# environment, the chart's user, no new privileges.
#
#   hack/run-in-rootfs.sh [options] ROOTFS -- COMMAND [ARG...]
#
# Options:
#   --user UID:GID       user and group to run as (default 65532:65532, the
#                        chart's runAsUser/runAsGroup); GID is also the only
#                        supplementary group, as fsGroup makes it in the pod
#   --bind SRC:DST[:ro]  bind-mount host path SRC (file or directory) on DST
#                        inside the root, read-only with :ro (repeatable);
#                        DST is created in the tree if missing
#   --env NAME=VALUE     set a variable (repeatable); nothing else of the
#                        caller's environment passes, except PATH and HOME
#                        set as a runtime sets them
#   --tmp                a writable tmpfs on /tmp (without it /tmp is part
#                        of the read-only root, as in the chart)
#   --workdir DIR        working directory inside the root (default /)
#
# The command replaces this script (exec all the way down), so its process id
# is the one the caller started: SIGTERM and SIGINT reach it directly, and the
# exit status is the command's. There is no PID namespace: /proc shows the
# host's processes. Needs root (unshare, mount, chroot).
#
# Example (the e2e harness does the same with the Deployment's args):
#   hack/run-in-rootfs.sh --bind /tmp/kole-data:/var/lib/kole \
#     --bind /tmp/kole-certs:/etc/kole/serving:ro "$(hack/build-rootfs.sh)" -- \
#     /usr/bin/kole-apiserver --secure-port 8443 --data-dir /var/lib/kole ...
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}
die() {
  echo "run-in-rootfs: $*" >&2
  exit 2
}

inner=0
if [ "${1:-}" = "--inner-namespace" ]; then
  inner=1
  shift
fi
original_args=("$@")

user=65532:65532
binds=()
envs=()
tmp=0
workdir=/
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --user) [ $# -ge 2 ] || die "--user needs UID:GID"; user=$2; shift 2 ;;
    --bind) [ $# -ge 2 ] || die "--bind needs SRC:DST[:ro]"; binds+=("$2"); shift 2 ;;
    --env) [ $# -ge 2 ] || die "--env needs NAME=VALUE"; envs+=("$2"); shift 2 ;;
    --tmp) tmp=1; shift ;;
    --workdir) [ $# -ge 2 ] || die "--workdir needs a directory"; workdir=$2; shift 2 ;;
    --) die "ROOTFS is missing before --" ;;
    -*) usage; die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] && [ "$2" = "--" ] || { usage; die "expected ROOTFS -- COMMAND [ARG...]"; }
rootfs=$1
shift 2

[[ "$user" =~ ^[0-9]+:[0-9]+$ ]] || die "--user takes numeric UID:GID, got '$user'"
[ -d "$rootfs" ] && [ -x "$rootfs/usr/bin/env" ] || die "$rootfs is not a root filesystem (no usr/bin/env)"
for e in "${envs[@]}"; do
  [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env takes NAME=VALUE, got '$e'"
done
for b in "${binds[@]}"; do
  IFS=: read -r src dst mode extra <<<"$b"
  [ -n "$src" ] && [ -n "$dst" ] && [ -z "${extra:-}" ] || die "--bind takes SRC:DST[:ro], got '$b'"
  [ -z "${mode:-}" ] || [ "$mode" = ro ] || [ "$mode" = rw ] || die "--bind mode is ro or rw, got '$mode'"
  [[ "$dst" = /* ]] || die "--bind destination must be absolute, got '$dst'"
  [ -e "$src" ] || die "--bind source $src does not exist"
done

if [ "$inner" = 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root (unshare -m, mount, chroot)"
  # Everything below runs in a new mount namespace whose mounts vanish with
  # the process; private propagation keeps them off the host.
  exec unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" \
    --inner-namespace "${original_args[@]}"
fi

# From here on: inside the new mount namespace, still root.
root=$(cd "$rootfs" && pwd -P)

# Resolves PATH inside the tree (symbolic links such as /var/run -> /run
# resolve against the tree, never the host) and creates it, as a directory or
# as an empty file to mount a file on. Prints the resolved path.
make_target() {
  local path=$1 kind=$2
  chroot "$root" /bin/sh -c '
    set -e
    if [ "$2" = file ]; then
      mkdir -p "$(dirname "$1")"
      [ -e "$1" ] || : >"$1"
    else
      mkdir -p "$1"
    fi
    readlink -f "$1"' make-target "$path" "$kind"
}

# The tree becomes a mount point of its own, so that it can be made read-only
# without touching the file system it lives on.
mount --bind "$root" "$root"

mount -t proc -o nosuid,nodev,noexec proc "$root/proc"

# A minimal /dev, as runtimes give: the usual character devices bound from the
# host, pts, shm and the fd links.
mount -t tmpfs -o nosuid,noexec,mode=0755,size=64k tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  : >"$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,nosuid,noexec,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=64m tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"

if [ "$tmp" = 1 ]; then
  mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
fi

# Volumes. Targets are created before the root turns read-only.
for b in "${binds[@]}"; do
  IFS=: read -r src dst mode <<<"$b"
  kind=dir
  [ -d "$src" ] || kind=file
  target=$(make_target "$dst" "$kind")
  mount --bind "$src" "$root$target"
  if [ "${mode:-}" = ro ]; then
    mount -o remount,bind,ro "$root$target"
  fi
done

# Only the root's own mount turns read-only; /proc, /dev, /tmp and the
# volumes keep their modes.
mount -o remount,bind,ro "$root"

gid=${user#*:}
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# no_new_privs is what allowPrivilegeEscalation: false sets; chroot switches
# to the user (dropping every capability with root) and env starts the
# command with the pod's environment only.
exec setpriv --no-new-privs -- chroot --userspec="$user" --groups="$gid" "$root" \
  /usr/bin/env -i -C "$workdir" "PATH=$path" HOME=/ "${envs[@]}" "$@"
