#include "storage/node.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace kole::storage {

void NormalizePairs(StringPairs& pairs) {
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  // Keep the last of a run of equal keys, as a JSON object with a repeated
  // key would.
  StringPairs out;
  out.reserve(pairs.size());
  for (auto& pair : pairs) {
    if (!out.empty() && out.back().first == pair.first) {
      out.back().second = std::move(pair.second);
    } else {
      out.push_back(std::move(pair));
    }
  }
  pairs = std::move(out);
}

std::string_view ConditionStatusName(ConditionStatus status) {
  switch (status) {
    case ConditionStatus::kTrue:
      return "True";
    case ConditionStatus::kFalse:
      return "False";
    case ConditionStatus::kUnknown:
      return "Unknown";
  }
  return "Unknown";
}

Uid Uid::Random() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  Uid uid{rng(), rng()};
  uid.hi = (uid.hi & ~0xF000ull) | 0x4000ull;                         // version 4
  uid.lo = (uid.lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  return uid;
}

std::string Uid::ToString() const {
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xFFFF,
                     hi & 0xFFFF, lo >> 48, lo & 0xFFFFFFFFFFFFull);
}

bool IsDeviceOwnedLabel(std::string_view key) {
  static constexpr std::string_view kDeviceKeys[] = {
      "kubernetes.io/arch",
      "kubernetes.io/hostname",
      "kubernetes.io/os",
      "node.kubernetes.io/instance-type",
      "topology.kubernetes.io/region",
      "topology.kubernetes.io/zone",
  };
  for (std::string_view device_key : kDeviceKeys) {
    if (key == device_key) return true;
  }
  // The edge.kole.io prefix and its subdomains (site.edge.kole.io/...).
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view prefix = key.substr(0, slash);
  constexpr std::string_view kEdgePrefix = "edge.kole.io";
  return prefix == kEdgePrefix ||
         (prefix.size() > kEdgePrefix.size() && prefix.ends_with(kEdgePrefix) &&
          prefix[prefix.size() - kEdgePrefix.size() - 1] == '.');
}

}  // namespace kole::storage
