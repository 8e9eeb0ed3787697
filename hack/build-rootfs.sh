#!/usr/bin/env bash
# Builds the root filesystem of KOLE's image without Docker: Debian bookworm
# (debootstrap, minbase variant) plus the runtime packages of
# hack/image-packages.txt, the layout of hack/image-layout.sh (user and group
# kole, 65532) and the current binaries in /usr/bin. Prints the directory.
#
#   hack/build-rootfs.sh [BUILD_DIR]     BUILD_DIR defaults to build; its bin/
#                                        holds kole-apiserver, kole-admin, kole-agent and
#                                        kole-edge-sim
#
# The Debian part is cached under ${KOLE_CACHE:-$HOME/.cache/kole}/rootfs/<key>,
# where the key hashes the package list and the scripts that shape the tree:
# the first run downloads about 100 MB from deb.debian.org and takes a few
# minutes, later runs only copy the binaries. It is built in a temporary
# directory and renamed when complete, so an interrupted run leaves no half
# tree behind. Needs root (debootstrap) and the debootstrap package
# (hack/install-deps.sh installs it). The tree is what the Dockerfile's
# runtime stage holds; hack/run-in-rootfs.sh runs a command in it.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
if [ $# -gt 1 ]; then
  usage
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=${1:-build}
binaries=(kole-apiserver kole-admin kole-agent kole-edge-sim)
suite=bookworm
mirror=http://deb.debian.org/debian

for b in "${binaries[@]}"; do
  if [ ! -x "$build_dir/bin/$b" ]; then
    echo "build-rootfs: $build_dir/bin/$b is missing; build first (make build) or name the build directory" >&2
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "build-rootfs: needs root (debootstrap, and files owned by 65532); run it with sudo" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "build-rootfs: debootstrap is not installed (apt-get install debootstrap, or hack/install-deps.sh)" >&2
  exit 1
fi

# The package list without comments and blank lines, comma-separated.
packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/image-packages.txt" | paste -sd, -)
key=$(cat "$here/image-packages.txt" "$here/image-layout.sh" "${BASH_SOURCE[0]}" |
  sha256sum | cut -c1-16)
cache_root=${KOLE_CACHE:-$HOME/.cache/kole}/rootfs
rootfs=$cache_root/$key

if [ ! -f "$rootfs/.kole-rootfs-complete" ]; then
  mkdir -p "$cache_root"
  tmp=$(mktemp -d "$cache_root/.partial-$key.XXXXXX")
  # mktemp makes it 0700; the tree's / must be searchable by the kole user.
  chmod 0755 "$tmp"
  # debootstrap leaves mounts (proc, sys) behind when killed mid-way; take
  # them down before the tree is removed, never following them.
  cleanup() {
    if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
      { grep -o " $tmp/[^ ]*" /proc/mounts || true; } | sort -r |
        while read -r m; do umount -l "$m" || true; done
      rm -rf --one-file-system "$tmp"
    fi
    rm -f "${tmp:-}.log"
  }
  trap cleanup EXIT
  started=$(date +%s)
  echo "build-rootfs: debootstrap $suite (minbase + $packages) from $mirror into $tmp" >&2
  echo "build-rootfs: the first run downloads about 100 MB; later runs reuse $rootfs" >&2
  # Downloaded packages are kept in debs/, so a changed list or script
  # rebuilds without downloading everything again.
  mkdir -p "$cache_root/debs"
  if ! debootstrap --variant=minbase --cache-dir="$cache_root/debs" --include="$packages" \
    "$suite" "$tmp" "$mirror" \
    >"$tmp.log" 2>&1; then
    echo "build-rootfs: debootstrap failed; its log ends with:" >&2
    tail -n 20 "$tmp.log" >&2
    # The log sits beside the tree; debootstrap's own is in it, if it got that far.
    [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 20 "$tmp/debootstrap/debootstrap.log" >&2
    rm -f "$tmp.log"
    exit 1
  fi
  rm -f "$tmp.log"

  # What a runtime image does not need: downloaded packages and indexes.
  # debootstrap takes the release as it was published; debian:bookworm-slim,
  # which the Dockerfile starts from, follows the point and security updates.
  # So does this tree: the same sources, then an upgrade inside the tree.
  # Documentation and translations are left out as the slim image does.
  t=${tmp:?}
  printf 'deb %s %s main\n' "$mirror" "$suite" "$mirror" "$suite-updates" \
    "${mirror%/debian}/debian-security" "$suite-security" >"$t/etc/apt/sources.list"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    >"$t/etc/dpkg/dpkg.cfg.d/kole-slim"
  echo "build-rootfs: applying $suite-updates and $suite-security" >&2
  # shellcheck disable=SC2016 # $1 is expanded by the inner shell.
  if ! unshare --mount --propagation private -- sh -c 'mount -t proc proc "$1/proc" &&
      DEBIAN_FRONTEND=noninteractive chroot "$1" sh -c "apt-get update -qq &&
        apt-get upgrade -y -qq --no-install-recommends"' upgrade "$t" >"$t.log" 2>&1; then
    echo "build-rootfs: apt-get upgrade inside the tree failed; its log ends with:" >&2
    tail -n 20 "$t.log" >&2
    exit 1
  fi
  rm -f "$t.log"
  find "$t/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$t/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$t/usr/share/man" "$t/usr/share/info" -mindepth 1 -delete
  find "$t/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

  # What a runtime image does not need: downloaded packages and indexes.
  rm -rf "$t"/var/cache/apt/archives/*.deb "$t"/var/cache/apt/*.bin "$t"/var/lib/apt/lists/* \
    "$t"/var/log/*.log "$t"/var/log/apt/*
  # A container runtime provides these; the host's copies must not leak into
  # the cache.
  : >"$tmp/etc/hostname"
  rm -f "$tmp/etc/resolv.conf"
  "$here/image-layout.sh" "$tmp"
  touch "$tmp/.kole-rootfs-complete"

  # Another run may have finished the same key meanwhile: keep the first.
  # A directory without the marker is not a finished tree.
  [ -f "$rootfs/.kole-rootfs-complete" ] || rm -rf --one-file-system "$rootfs"
  if ! mv -T "$tmp" "$rootfs" 2>/dev/null; then
    rm -rf --one-file-system "$tmp"
  fi
  trap - EXIT
  echo "build-rootfs: built in $(($(date +%s) - started)) s" >&2
fi

# The binaries change with every build: copy them on each call, each through
# a temporary name and a rename so that a process running the old one is not
# disturbed. Debug information is left out, as in the image; the symbol
# table stays, for stack traces.
for b in "${binaries[@]}"; do
  objcopy --strip-debug "$build_dir/bin/$b" "$rootfs/usr/bin/.$b.new"
  chmod 0755 "$rootfs/usr/bin/.$b.new"
  mv -f "$rootfs/usr/bin/.$b.new" "$rootfs/usr/bin/$b"
done
echo "$rootfs"
