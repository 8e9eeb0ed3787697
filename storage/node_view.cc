#include "storage/node_view.h"

#include <charconv>
#include <cstring>

#include "storage/node_record.h"

namespace kole::storage {
namespace {

// The ids that do not have their usual form are kept, in this order, at the
// start of the record's extra blob (NodeCodec::Encode).
enum class ExtraId { kMachineId = 0, kSystemUuid = 1, kBootId = 2 };

std::string_view ExtraIdValue(const BlobPool& pool, const NodeRecord& r, ExtraId which) {
  if (r.extra == BlobPool::kNone) return {};
  std::string_view in = pool.Get(r.extra);
  std::string_view value;
  for (int i = 0; i <= static_cast<int>(which); ++i) {
    if (!ReadBlobString(in, &value)) return {};
  }
  return value;
}

}  // namespace

std::string_view NodeView::name() const { return codec_.Name(record_); }
Uid NodeView::uid() const { return codec_.uid_key().FromVersion(record_.created_rv); }
uint64_t NodeView::resource_version() const { return record_.resource_version; }
int64_t NodeView::creation_timestamp() const { return record_.created_s; }
bool NodeView::unschedulable() const { return (record_.flags & kUnschedulable) != 0; }

ConditionStatus NodeView::ready() const { return static_cast<ConditionStatus>(record_.ready); }
int64_t NodeView::ready_transition_time() const { return record_.ready_transition_s; }
int64_t NodeView::conditions_transition_time() const { return record_.conditions_transition_s; }
int64_t NodeView::last_heartbeat_time() const { return record_.heartbeat_published_s; }

bool NodeView::connected() const { return (record_.flags & kConnected) != 0; }
uint32_t NodeView::epoch() const { return record_.epoch; }
uint64_t NodeView::sequence() const { return record_.published_sequence; }
int64_t NodeView::last_report_time() const { return record_.heartbeat_published_s; }

void NodeView::ForEachLabel(
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> visit) const {
  codec_.ForEachLabel(record_, visit);
}

void NodeView::ForEachLabelPair(
    absl::FunctionRef<bool(uint32_t id, std::string_view key, std::string_view value)> visit)
    const {
  codec_.ForEachLabelPair(record_, visit);
}

void NodeView::ForEachAddress(
    absl::FunctionRef<void(std::string_view type, std::string_view address)> visit) const {
  if (record_.flags & kFastAddresses) {
    char ip[16];
    visit("InternalIP", std::string_view(ip, FormatIpv4(record_.ipv4, ip)));
    if (record_.flags & kHostnameAddress) visit("Hostname", name());
    return;
  }
  if (record_.extra == BlobPool::kNone) return;

  // The three unusual ids come first, then type/address pairs.
  std::string_view in = codec_.pool().Get(record_.extra);
  std::string_view skipped, type, address;
  for (int i = 0; i < 3; ++i) ReadBlobString(in, &skipped);
  while (ReadBlobString(in, &type) && ReadBlobString(in, &address)) visit(type, address);
}

std::string_view NodeView::machine_id(char (&buffer)[kIdBufferSize]) const {
  if (record_.flags & kMachineIdHex) {
    return {buffer, FormatHex16(record_.machine_id, false, false, buffer)};
  }
  return ExtraIdValue(codec_.pool(), record_, ExtraId::kMachineId);
}

std::string_view NodeView::system_uuid(char (&buffer)[kIdBufferSize]) const {
  if (record_.flags & kSystemUuidBytes) {
    return {buffer,
            FormatHex16(record_.system_uuid, true, record_.flags & kSystemUuidUpper, buffer)};
  }
  return ExtraIdValue(codec_.pool(), record_, ExtraId::kSystemUuid);
}

std::string_view NodeView::boot_id(char (&buffer)[kIdBufferSize]) const {
  if (record_.flags & kBootIdBytes) {
    return {buffer, FormatHex16(record_.boot_id, true, false, buffer)};
  }
  return ExtraIdValue(codec_.pool(), record_, ExtraId::kBootId);
}

NodeView::SharedIds NodeView::shared_ids() const {
  NodeProfile profile = codec_.Profile(record_);
  return {.node_info = profile.node_info,
          .resources = profile.resources,
          .conditions = profile.conditions,
          .annotations = profile.annotations,
          .taints = profile.taints,
          .gateway = profile.gateway};
}

NodeInfo NodeView::SharedNodeInfo() const {
  NodeInfo info;
  std::string_view in = codec_.pool().Get(shared_ids().node_info);
  std::string* fields[] = {
      &info.kernel_version,  &info.os_image,           &info.container_runtime_version,
      &info.kubelet_version, &info.kube_proxy_version, &info.operating_system,
      &info.architecture};
  std::string_view value;
  for (std::string* field : fields) {
    if (ReadBlobString(in, &value)) *field = std::string(value);
  }
  return info;
}

void NodeView::Resources(StringPairs* capacity, StringPairs* allocatable) const {
  // The number of capacity entries leads, so that the two lists can be told
  // apart in one blob.
  std::string_view in = codec_.pool().Get(shared_ids().resources);
  std::string_view value;
  size_t capacity_count = 0;
  if (ReadBlobString(in, &value)) {
    std::from_chars(value.data(), value.data() + value.size(), capacity_count);
  }
  *capacity = ReadPairs(in, capacity_count);
  *allocatable = ReadPairs(in);
}

void NodeView::Conditions(std::string* ready_reason, std::string* ready_message,
                          std::vector<DeviceCondition>* conditions) const {
  std::string_view in = codec_.pool().Get(shared_ids().conditions);
  std::string_view value;
  ready_reason->clear();
  ready_message->clear();
  conditions->clear();
  if (ReadBlobString(in, &value)) *ready_reason = std::string(value);
  if (ReadBlobString(in, &value)) *ready_message = std::string(value);
  std::string_view type, status, reason, message;
  while (ReadBlobString(in, &type) && ReadBlobString(in, &status) && ReadBlobString(in, &reason) &&
         ReadBlobString(in, &message)) {
    conditions->push_back({std::string(type), ParseConditionStatus(status), std::string(reason),
                           std::string(message)});
  }
}

StringPairs NodeView::Annotations() const {
  std::string_view in = codec_.pool().Get(shared_ids().annotations);
  return ReadPairs(in);
}

std::vector<Taint> NodeView::Taints() const {
  std::vector<Taint> taints;
  std::string_view in = codec_.pool().Get(shared_ids().taints);
  std::string_view key, value, effect;
  while (ReadBlobString(in, &key) && ReadBlobString(in, &value) && ReadBlobString(in, &effect)) {
    taints.push_back({std::string(key), std::string(value), std::string(effect)});
  }
  return taints;
}

std::string_view NodeView::gateway() const { return codec_.pool().Get(shared_ids().gateway); }

Node NodeView::ToNode() const {
  Node node;
  node.name = std::string(name());
  node.uid = uid();
  node.resource_version = resource_version();
  node.creation_timestamp = creation_timestamp();
  ForEachLabel([&](std::string_view key, std::string_view value) {
    node.labels.emplace_back(std::string(key), std::string(value));
    return true;
  });
  node.annotations = Annotations();
  node.unschedulable = unschedulable();
  node.taints = Taints();

  node.node_info = SharedNodeInfo();
  char buffer[kIdBufferSize];
  node.node_info.machine_id = std::string(machine_id(buffer));
  node.node_info.system_uuid = std::string(system_uuid(buffer));
  node.node_info.boot_id = std::string(boot_id(buffer));
  Resources(&node.capacity, &node.allocatable);
  ForEachAddress([&](std::string_view type, std::string_view address) {
    node.addresses.push_back({std::string(type), std::string(address)});
  });

  Conditions(&node.ready_reason, &node.ready_message, &node.conditions);
  node.ready = ready();
  node.ready_transition_time = ready_transition_time();
  node.conditions_transition_time = conditions_transition_time();
  node.last_heartbeat_time = last_heartbeat_time();

  node.edge.connected = connected();
  node.edge.epoch = epoch();
  node.edge.sequence = sequence();
  node.edge.last_report_time = last_report_time();
  node.edge.gateway = std::string(gateway());
  return node;
}

}  // namespace kole::storage
