#pragma once

// The facts kole-agent reports about the Linux device it runs on, read from
// the same places kubelet and systemd read them:
//
//   hostname        <root>/proc/sys/kernel/hostname
//   machine id      <root>/etc/machine-id
//   system UUID     <root>/sys/class/dmi/id/product_uuid (root-only on most
//                   machines; without it a UUID is derived from the machine id)
//   boot id         <root>/proc/sys/kernel/random/boot_id
//   kernel          <root>/proc/sys/kernel/osrelease (what `uname -r` prints)
//   OS image        PRETTY_NAME of <root>/etc/os-release, else <root>/usr/lib/os-release
//   architecture    uname(2) machine, in Go's names (amd64, arm64, arm, ...)
//   CPUs            <root>/sys/devices/system/cpu/online ("0-3,6")
//   memory          MemTotal of <root>/proc/meminfo
//   storage         statvfs(3) of <root> (kubelet's ephemeral-storage)
//   addresses       getifaddrs(3), loopback and link-local skipped
//
// FactSource makes every path relative to a root and lets tests inject the
// machine string and the interface addresses, so the readers run against
// fixture trees. Thread safety: free functions; no shared state.

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kole::edge {

struct InterfaceAddress {
  std::string interface;
  std::string address;  // Numeric IPv4 or IPv6.
  bool ipv6 = false;
};

struct FactSource {
  std::string root = "/";
  // uname(2)'s machine when unset.
  std::optional<std::string> machine;
  // getifaddrs(3) when unset.
  std::optional<std::vector<InterfaceAddress>> addresses;
};

struct HostFacts {
  std::string hostname;
  std::string machine_id;
  std::string system_uuid;
  std::string boot_id;
  std::string kernel_version;
  std::string os_image;
  std::string architecture;  // Go's GOARCH names.
  uint32_t cpus = 0;
  uint64_t memory_bytes = 0;
  uint64_t storage_bytes = 0;  // 0 when statvfs failed.
  std::vector<InterfaceAddress> addresses;
};

// Reads every fact. NotFound or InvalidArgument naming the file when a
// required fact (hostname, machine id, boot id, kernel, CPUs, memory) cannot
// be read; the OS image falls back to "Linux" and the system UUID to one
// derived from the machine id.
absl::StatusOr<HostFacts> ReadHostFacts(const FactSource& source);

// uname machine to Go's architecture name: x86_64 -> amd64, aarch64 ->
// arm64, armv7l/armv6l -> arm, i686 -> 386, riscv64, ppc64le, s390x as is.
std::string GoArchitecture(const std::string& machine);

// Counts the CPUs of a cpu list like "0-3,6,8-9"; 0 if malformed.
uint32_t CountCpuList(const std::string& list);

// A memory quantity as kubelet writes it: bytes / 1024 with the Ki suffix.
std::string MemoryQuantity(uint64_t bytes);

// The PRETTY_NAME value of an os-release file's text; empty when absent.
std::string PrettyName(const std::string& os_release);

// A UUID-shaped string from a 32-hex-digit machine id.
std::string UuidFromMachineId(const std::string& machine_id);

}  // namespace kole::edge
