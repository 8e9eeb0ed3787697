#pragma once

// Helpers every benchmark binary shares: the `figure NAME VALUE UNIT` line of
// DESIGN §7, wall-clock timing, resident memory, and the store's form of a
// node from the seeded fleet generator.
//
// Thread safety: free functions; Figure() and Note() write whole lines.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

#include "edge/fleet_generator.h"
#include "storage/node.h"

namespace kole::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::duration elapsed) {
  return std::chrono::duration<double>(elapsed).count();
}
inline double Seconds(Clock::time_point start) { return Seconds(Clock::now() - start); }

// One figure on its own line of standard output, flushed at once so that a
// harness reading the output sees it while the benchmark goes on.
inline void Figure(std::string_view name, double value, std::string_view unit) {
  std::printf("figure %.*s %.6g %.*s\n", static_cast<int>(name.size()), name.data(), value,
              static_cast<int>(unit.size()), unit.data());
  std::fflush(stdout);
}

// Human-readable progress on standard error, apart from the figures.
inline void Note(const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); }

// This process's resident set, in bytes (0 if /proc cannot be read).
inline size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  size_t total = 0, resident = 0;
  if (std::fscanf(f, "%zu %zu", &total, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The node as its agent would register it, in the store's form.
inline storage::Node ToNode(const edge::NodeSpec& spec) {
  storage::Node node;
  node.name = spec.name;
  node.labels = spec.labels;
  node.annotations = spec.annotations;
  node.capacity = spec.capacity;
  node.allocatable = spec.allocatable;
  for (const edge::NodeAddress& a : spec.addresses) node.addresses.push_back({a.type, a.address});
  storage::NodeInfo& info = node.node_info;
  info.machine_id = spec.machine_id;
  info.system_uuid = spec.system_uuid;
  info.boot_id = spec.boot_id;
  info.kernel_version = spec.kernel_version;
  info.os_image = spec.os_image;
  info.container_runtime_version = spec.container_runtime_version;
  info.kubelet_version = spec.agent_version;
  info.operating_system = spec.operating_system;
  info.architecture = spec.architecture;
  return node;
}

inline  // The key=value lines of the simulator's --status-file.
    std::map<std::string, double>
    ReadStatus(const std::string& path) {
  std::map<std::string, double> status;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    char* end = nullptr;
    double value = std::strtod(line.c_str() + eq + 1, &end);
    if (end != line.c_str() + eq + 1) status[line.substr(0, eq)] = value;
  }
  return status;
}

}  // namespace kole::bench
