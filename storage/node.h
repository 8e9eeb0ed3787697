#pragma once

// The expanded, self-contained form of an edge node: what the API renders and
// what the bridge and the API hand to NodeStore. NodeStore keeps nodes in a
// compact form (node_record.h) and converts at its boundary; outside storage/
// that form is read only through NodeView (node_view.h), which hides its
// layout.
//
// Field meanings follow core/v1 Node. Times are Unix seconds (Kubernetes
// timestamps have one-second resolution on the wire).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::storage {

// Key/value pairs sorted by key with unique keys: labels, annotations and
// resource quantities.
using StringPairs = std::vector<std::pair<std::string, std::string>>;

// Sorts by key and keeps the last value given for a repeated key.
void NormalizePairs(StringPairs& pairs);

enum class ConditionStatus : uint8_t { kUnknown = 0, kTrue = 1, kFalse = 2 };

std::string_view ConditionStatusName(ConditionStatus status);

// A 128-bit object UID, printed in the canonical 8-4-4-4-12 form.
struct Uid {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // A random version-4 UID.
  static Uid Random();
  std::string ToString() const;
  bool operator==(const Uid&) const = default;
};

struct Taint {
  std::string key;
  std::string value;
  std::string effect;  // NoSchedule, PreferNoSchedule or NoExecute.
  bool operator==(const Taint&) const = default;
};

// A condition the device reports about itself (MemoryPressure, DiskPressure,
// PIDPressure, NetworkUnavailable, or a custom type). Ready is not one of
// them: the cloud decides Ready from heartbeats.
struct DeviceCondition {
  std::string type;
  ConditionStatus status = ConditionStatus::kUnknown;
  std::string reason;
  std::string message;
  bool operator==(const DeviceCondition&) const = default;
};

struct NodeAddress {
  std::string type;  // InternalIP, ExternalIP, Hostname, ...
  std::string address;
  bool operator==(const NodeAddress&) const = default;
};

struct NodeInfo {
  std::string machine_id;
  std::string system_uuid;
  std::string boot_id;
  std::string kernel_version;
  std::string os_image;
  std::string container_runtime_version;
  std::string kubelet_version;  // The agent's version, as kubelet reports its own.
  std::string kube_proxy_version;
  std::string operating_system;
  std::string architecture;
  bool operator==(const NodeInfo&) const = default;
};

// status.edge: what the cloud knows of the device's MQTT session. `sequence`
// and `last_report_time` are the values last published (see NodeStore's
// report period), not the live ones.
struct EdgeStatus {
  bool connected = false;
  uint32_t epoch = 0;
  uint64_t sequence = 0;
  int64_t last_report_time = 0;
  std::string gateway;  // The gateway the node registered through, if any.
  bool operator==(const EdgeStatus&) const = default;
};

struct Node {
  // metadata
  std::string name;
  Uid uid;
  uint64_t resource_version = 0;
  int64_t creation_timestamp = 0;
  StringPairs labels;
  StringPairs annotations;

  // spec (owned by users)
  bool unschedulable = false;
  std::vector<Taint> taints;

  // status (owned by the device and the cloud)
  StringPairs capacity;
  StringPairs allocatable;
  std::vector<NodeAddress> addresses;
  NodeInfo node_info;
  ConditionStatus ready = ConditionStatus::kUnknown;
  std::string ready_reason;
  std::string ready_message;
  int64_t ready_transition_time = 0;
  int64_t last_heartbeat_time = 0;
  std::vector<DeviceCondition> conditions;
  int64_t conditions_transition_time = 0;
  EdgeStatus edge;

  bool operator==(const Node&) const = default;
};

// Labels whose keys the device owns (docs/storage.md): a registration sets them, a
// user's write cannot change them. Every other label belongs to users.
bool IsDeviceOwnedLabel(std::string_view key);

}  // namespace kole::storage
