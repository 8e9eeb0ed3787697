#include "edge/host_facts.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace kole::edge {
namespace {

std::string Path(const FactSource& source, const std::string& path) {
  std::string root = source.root.empty() ? "/" : source.root;
  if (root.back() == '/') root.pop_back();
  return root + path;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

std::string Trim(std::string text) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  text.erase(text.begin(), std::find_if_not(text.begin(), text.end(), space));
  text.erase(std::find_if_not(text.rbegin(), text.rend(), space).base(), text.end());
  return text;
}

absl::StatusOr<std::string> ReadFact(const FactSource& source, const std::string& path,
                                     const char* what) {
  std::optional<std::string> text = ReadFile(Path(source, path));
  if (!text) {
    return absl::NotFoundError(
        fmt::format("reading the {} from {}: cannot read the file", what, Path(source, path)));
  }
  std::string value = Trim(*text);
  if (value.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("reading the {} from {}: the file is empty", what, Path(source, path)));
  }
  return value;
}

bool IsHex32(const std::string& id) {
  return id.size() == 32 &&
         std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

std::vector<InterfaceAddress> SystemAddresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || (entry->ifa_flags & IFF_LOOPBACK) != 0 ||
        (entry->ifa_flags & IFF_UP) == 0) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (entry->ifa_addr->sa_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(entry->ifa_addr);
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      out.push_back({entry->ifa_name, text, false});
    } else if (entry->ifa_addr->sa_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(entry->ifa_addr);
      // Link-local addresses are meaningless off the link.
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      out.push_back({entry->ifa_name, text, true});
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace

std::string GoArchitecture(const std::string& machine) {
  if (machine == "x86_64" || machine == "amd64") return "amd64";
  if (machine == "aarch64" || machine == "arm64" || machine == "aarch64_be") return "arm64";
  if (machine.rfind("armv", 0) == 0 || machine == "arm") return "arm";
  if (machine == "i386" || machine == "i486" || machine == "i586" || machine == "i686") {
    return "386";
  }
  if (machine == "mips64") return "mips64";
  return machine;  // riscv64, ppc64le, s390x, loong64 are spelled alike.
}

uint32_t CountCpuList(const std::string& list) {
  uint32_t count = 0;
  std::stringstream parts(Trim(list));
  std::string part;
  while (std::getline(parts, part, ',')) {
    if (part.empty()) return 0;
    size_t dash = part.find('-');
    try {
      size_t used = 0;
      if (dash == std::string::npos) {
        std::stoul(part, &used);
        if (used != part.size()) return 0;
        ++count;
      } else {
        unsigned long first = std::stoul(part.substr(0, dash), &used);
        if (used != dash) return 0;
        std::string rest = part.substr(dash + 1);
        unsigned long last = std::stoul(rest, &used);
        if (used != rest.size() || last < first) return 0;
        count += static_cast<uint32_t>(last - first + 1);
      }
    } catch (const std::exception&) {
      return 0;
    }
  }
  return count;
}

std::string MemoryQuantity(uint64_t bytes) { return fmt::format("{}Ki", bytes / 1024); }

std::string PrettyName(const std::string& os_release) {
  std::stringstream lines(os_release);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string value = Trim(line.substr(12));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    // Shell-style escapes inside double quotes.
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '\\' && i + 1 < value.size()) ++i;
      out.push_back(value[i]);
    }
    return out;
  }
  return "";
}

std::string UuidFromMachineId(const std::string& id) {
  std::string hex;
  for (char c : id) hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (hex.size() < 32) hex.append(32 - hex.size(), '0');
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                     hex.substr(16, 4), hex.substr(20, 12));
}

absl::StatusOr<HostFacts> ReadHostFacts(const FactSource& source) {
  HostFacts facts;

  // Identity.
  absl::StatusOr<std::string> hostname = ReadFact(source, "/proc/sys/kernel/hostname", "hostname");
  if (!hostname.ok()) return hostname.status();
  facts.hostname = *hostname;
  absl::StatusOr<std::string> machine_id = ReadFact(source, "/etc/machine-id", "machine id");
  if (!machine_id.ok()) return machine_id.status();
  if (!IsHex32(*machine_id)) {
    return absl::InvalidArgumentError(fmt::format("{} does not hold a machine id (32 hex digits)",
                                                  Path(source, "/etc/machine-id")));
  }
  facts.machine_id = *machine_id;
  std::transform(facts.machine_id.begin(), facts.machine_id.end(), facts.machine_id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  absl::StatusOr<std::string> uuid =
      ReadFact(source, "/sys/class/dmi/id/product_uuid", "system UUID");
  facts.system_uuid = uuid.ok() ? *uuid : UuidFromMachineId(facts.machine_id);
  std::transform(facts.system_uuid.begin(), facts.system_uuid.end(), facts.system_uuid.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  absl::StatusOr<std::string> boot_id =
      ReadFact(source, "/proc/sys/kernel/random/boot_id", "boot id");
  if (!boot_id.ok()) return boot_id.status();
  facts.boot_id = *boot_id;

  // Software.
  absl::StatusOr<std::string> kernel = ReadFact(source, "/proc/sys/kernel/osrelease", "kernel");
  if (!kernel.ok()) return kernel.status();
  facts.kernel_version = *kernel;
  for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
    if (std::optional<std::string> text = ReadFile(Path(source, path))) {
      facts.os_image = PrettyName(*text);
      if (!facts.os_image.empty()) break;
    }
  }
  if (facts.os_image.empty()) facts.os_image = "Linux";
  std::string machine;
  if (source.machine) {
    machine = *source.machine;
  } else {
    utsname name{};
    if (uname(&name) == 0) machine = name.machine;
  }
  facts.architecture = GoArchitecture(machine);

  // Capacity.
  absl::StatusOr<std::string> cpus = ReadFact(source, "/sys/devices/system/cpu/online", "CPUs");
  if (!cpus.ok()) return cpus.status();
  facts.cpus = CountCpuList(*cpus);
  if (facts.cpus == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{}: not a CPU list", Path(source, "/sys/devices/system/cpu/online")));
  }
  std::optional<std::string> meminfo = ReadFile(Path(source, "/proc/meminfo"));
  if (!meminfo) {
    return absl::NotFoundError(fmt::format("cannot read {}", Path(source, "/proc/meminfo")));
  }
  std::stringstream lines(*meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "MemTotal: %llu kB", &kib) == 1) {
      facts.memory_bytes = kib * 1024;
      break;
    }
  }
  if (facts.memory_bytes == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{} has no MemTotal line", Path(source, "/proc/meminfo")));
  }

  struct statvfs disk {};
  if (statvfs(Path(source, "/").c_str(), &disk) == 0) {
    facts.storage_bytes = static_cast<uint64_t>(disk.f_blocks) * disk.f_frsize;
  }

  facts.addresses = source.addresses ? *source.addresses : SystemAddresses();
  return facts;
}

}  // namespace kole::edge
