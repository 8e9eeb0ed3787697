#!/usr/bin/env bash
# Gives a Debian root filesystem KOLE's image layout: the kole user and group
# (65532, the chart's runAsUser/runAsGroup/fsGroup) and the directories the
# chart mounts volumes on. Run by the Dockerfile (on /) and by
# hack/build-rootfs.sh (on the debootstrap tree), so both agree.
#
#   hack/image-layout.sh ROOT
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1/etc" ]; then
  echo "usage: $0 ROOT   (ROOT: a Debian root filesystem with an etc/ directory)" >&2
  exit 2
fi
root=${1%/}

uid=65532
# Edited as text rather than with useradd so that it works on a tree the host
# does not run, without chroot.
grep -q "^kole:" "$root/etc/group" || echo "kole:x:$uid:" >>"$root/etc/group"
grep -q "^kole:" "$root/etc/passwd" ||
  echo "kole:x:$uid:$uid:KOLE:/nonexistent:/usr/sbin/nologin" >>"$root/etc/passwd"
if [ -f "$root/etc/shadow" ] && ! grep -q "^kole:" "$root/etc/shadow"; then
  echo "kole:!:19000::::::" >>"$root/etc/shadow"
fi

# Mount points of the chart's volumes. The data directory belongs to kole so
# that it is writable even without a volume (docker run); the others are
# always mounted over, read-only.
# /var/run is a symbolic link to /run in Debian; the service account's
# directory is made through the link's target so that no path leaves ROOT.
install -d -m 0755 "$root/etc/kole/serving" "$root/etc/kole/mqtt" \
  "$root/run/secrets/kubernetes.io/serviceaccount"
install -d -m 0750 -o "$uid" -g "$uid" "$root/var/lib/kole"
