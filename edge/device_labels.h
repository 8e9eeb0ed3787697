#pragma once

// Which labels a device may set on its node, and the Kubernetes syntax rules
// they must follow. DESIGN §3: the device owns the labels under a documented
// device prefix; users own every other label, and a re-registration never
// overwrites them. The device-owned keys are:
//
//   kubernetes.io/hostname, kubernetes.io/arch, kubernetes.io/os
//   node.kubernetes.io/instance-type
//   topology.kubernetes.io/region, topology.kubernetes.io/zone
//   edge.kole.io/<name> and <sub>.edge.kole.io/<name>
//
// The first six are the ones upstream's kubelet sets itself.
//
// Thread safety: free functions.

#include <absl/status/status.h>

#include <string_view>

namespace kole::edge {

bool IsDeviceOwnedLabel(std::string_view key);

// InvalidArgument unless `key` is a qualified label key (optional DNS-1123
// subdomain prefix and '/', then a name of at most 63 characters of
// [A-Za-z0-9._-] that starts and ends with an alphanumeric).
absl::Status ValidateLabelKey(std::string_view key);

// InvalidArgument unless `value` is empty or follows the label name rule.
absl::Status ValidateLabelValue(std::string_view value);

// InvalidArgument unless `name` is a DNS-1123 subdomain: at most 253
// characters, dot-separated labels of [a-z0-9-] that start and end with an
// alphanumeric. Node names and label prefixes follow it.
absl::Status ValidateDnsSubdomain(std::string_view name);

}  // namespace kole::edge
