#!/usr/bin/env bash
# Installs every Debian package KOLE needs to build, test and benchmark.
# The Makefile calls this when a required tool or header is missing. It needs
# root (it runs apt-get); run as another user it says what to install instead.
set -euo pipefail

packages=(
  # Build tools and the toolchain.
  cmake ninja-build g++ make pkg-config
  # Lint, sanitizers and the libFuzzer runtime.
  clang clang-format libclang-rt-14-dev
  # Libraries linked into the binaries.
  libabsl-dev libfmt-dev libcli11-dev rapidjson-dev libyaml-cpp-dev
  libzstd-dev liblz4-dev zlib1g-dev libdeflate-dev
  libssl-dev libcpp-httplib-dev libpaho-mqtt-dev
  # Tests.
  libgtest-dev libgmock-dev mosquitto mosquitto-clients openssl curl python3
  # The image's root filesystem without Docker (hack/build-rootfs.sh).
  debootstrap
  # Benchmarks: the peer benchmark's plot (bench/peer/plot.py).
  python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "KOLE needs these Debian packages, which are not installed:" >&2
  echo "  ${missing[*]}" >&2
  echo "Install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
