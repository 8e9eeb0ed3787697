#include "edge/device_labels.h"

#include <fmt/format.h>

#include <array>

namespace kole::edge {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!IsAlnum(name.front()) || !IsAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

bool IsDeviceOwnedLabel(std::string_view key) {
  static constexpr std::array<std::string_view, 6> kExact = {
      "kubernetes.io/hostname",
      "kubernetes.io/arch",
      "kubernetes.io/os",
      "node.kubernetes.io/instance-type",
      "topology.kubernetes.io/region",
      "topology.kubernetes.io/zone",
  };
  for (std::string_view exact : kExact) {
    if (key == exact) return true;
  }
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view prefix = key.substr(0, slash);
  constexpr std::string_view kDomain = "edge.kole.io";
  if (prefix == kDomain) return true;
  return prefix.size() > kDomain.size() + 1 && prefix.ends_with(kDomain) &&
         prefix[prefix.size() - kDomain.size() - 1] == '.';
}

absl::Status ValidateDnsSubdomain(std::string_view name) {
  auto invalid = [name](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::format("{:?} is not a valid DNS-1123 subdomain: {}", name, why));
  };
  if (name.empty()) return invalid("it is empty");
  if (name.size() > 253) return invalid("it is longer than 253 characters");
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
    if (label.empty()) return invalid("it has an empty part between dots");
    if (label.size() > 63) return invalid("a part is longer than 63 characters");
    if (!IsLowerAlnum(label.front()) || !IsLowerAlnum(label.back())) {
      return invalid("each part must start and end with a lowercase letter or digit");
    }
    for (char c : label) {
      if (!IsLowerAlnum(c) && c != '-') {
        return invalid("only lowercase letters, digits, '-' and '.' are allowed");
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelKey(std::string_view key) {
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    absl::Status prefix = ValidateDnsSubdomain(key.substr(0, slash));
    if (!prefix.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("label key {:?}: prefix: {}", key, std::string(prefix.message())));
    }
    name = key.substr(slash + 1);
  }
  if (!IsLabelName(name)) {
    return absl::InvalidArgumentError(fmt::format(
        "label key {:?}: the name must be 1-63 characters of [A-Za-z0-9._-], starting and "
        "ending with a letter or digit",
        key));
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelValue(std::string_view value) {
  if (value.empty() || IsLabelName(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(fmt::format(
      "label value {:?} must be at most 63 characters of [A-Za-z0-9._-], starting and ending "
      "with a letter or digit",
      value));
}

}  // namespace kole::edge
