#include "apiserver-ext/node_render.h"

#include <charconv>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"

namespace kole::apiserver {
namespace {

using storage::NodeView;

void Quoted(std::string& out, std::string_view value) { AppendEscapedJsonString(value, out); }

void AppendNumber(uint64_t value, std::string& out) {
  char buffer[24];
  char* end = std::to_chars(buffer, buffer + sizeof(buffer), value).ptr;
  out.append(buffer, end);
}

void AppendUid(const storage::Uid& uid, std::string& out) {
  // 8-4-4-4-12 lowercase hex, written in place (Uid::ToString allocates).
  static constexpr char kDigits[] = "0123456789abcdef";
  char text[36];
  int at = 0;
  auto hex = [&](uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) text[at++] = kDigits[(v >> (4 * i)) & 0xF];
  };
  hex(uid.hi >> 32, 8);
  text[at++] = '-';
  hex(uid.hi >> 16, 4);
  text[at++] = '-';
  hex(uid.hi, 4);
  text[at++] = '-';
  hex(uid.lo >> 48, 4);
  text[at++] = '-';
  hex(uid.lo, 12);
  out.append(text, sizeof(text));
}

// A cached fragment for `id`, made by `make` on the first use.
template <typename T, typename Make>
const T& Cached(absl::flat_hash_map<uint32_t, T>& cache, uint32_t id, size_t max, Make&& make) {
  auto it = cache.find(id);
  if (it != cache.end()) return it->second;
  if (cache.size() >= max) cache.clear();
  return cache.emplace(id, make()).first->second;
}

}  // namespace

const std::string& NodeRenderer::Annotations(const NodeView& node, uint32_t id) {
  return Cached(annotations_, id, kMaxCached, [&] {
    std::string out;
    storage::StringPairs pairs = node.Annotations();
    if (!pairs.empty()) {
      out += R"(,"annotations":)";
      AppendJsonPairsObject(pairs, out);
    }
    return out;
  });
}

const std::string& NodeRenderer::Taints(const NodeView& node, uint32_t id) {
  return Cached(taints_, id, kMaxCached, [&] {
    std::string out;
    AppendTaintsJson(node.Taints(), out);
    return out;
  });
}

const std::string& NodeRenderer::Resources(const NodeView& node, uint32_t id) {
  return Cached(resources_, id, kMaxCached, [&] {
    std::string out;
    storage::StringPairs capacity, allocatable;
    node.Resources(&capacity, &allocatable);
    AppendResourcesJson(capacity, allocatable, out);
    return out;
  });
}

const std::string& NodeRenderer::NodeInfo(const NodeView& node, uint32_t id) {
  return Cached(node_info_, id, kMaxCached, [&] {
    std::string out;
    AppendSharedNodeInfoJson(node.SharedNodeInfo(), out);
    return out;
  });
}

const std::string& NodeRenderer::Gateway(const NodeView& node, uint32_t id) {
  return Cached(gateways_, id, kMaxCached, [&] {
    std::string out;
    std::string_view gateway = node.gateway();
    if (!gateway.empty()) {
      out += R"(,"gateway":)";
      Quoted(out, gateway);
    }
    return out;
  });
}

const NodeRenderer::ConditionFragments& NodeRenderer::Conditions(const NodeView& node,
                                                                 uint32_t id) {
  return Cached(conditions_, id, kMaxCached, [&] {
    ConditionFragments fragments;
    std::string ready_reason, ready_message;
    std::vector<storage::DeviceCondition> conditions;
    node.Conditions(&ready_reason, &ready_message, &conditions);
    auto tail = [](std::string_view reason, std::string_view message) {
      std::string out = R"(,"reason":)";
      Quoted(out, reason);
      out += R"(,"message":)";
      Quoted(out, message);
      out += '}';
      return out;
    };
    for (const storage::DeviceCondition& c : conditions) {
      std::string head = R"({"type":)";
      Quoted(head, c.type);
      head += R"(,"status":")";
      head += storage::ConditionStatusName(c.status);
      head += R"(","lastHeartbeatTime":)";
      fragments.device.emplace_back(std::move(head), tail(c.reason, c.message) + ',');
    }
    fragments.ready_tail = tail(ready_reason, ready_message);
    return fragments;
  });
}

const NodeRenderer::InfoCells& NodeRenderer::Cells(const NodeView& node, uint32_t id) {
  return Cached(cells_, id, kMaxCached, [&] {
    storage::NodeInfo info = node.SharedNodeInfo();
    auto cell = [](const std::string& value) {
      std::string out;
      AppendJsonString(value.empty() ? "<unknown>" : value, out);
      return out;
    };
    return InfoCells{.version = cell(info.kubelet_version),
                     .os_image = cell(info.os_image),
                     .kernel = cell(info.kernel_version),
                     .runtime = cell(info.container_runtime_version)};
  });
}

void NodeRenderer::AppendMetadata(const NodeView& node, uint32_t annotations_id, std::string& out) {
  out += R"("metadata":{"name":)";
  Quoted(out, node.name());
  out += R"(,"uid":")";
  AppendUid(node.uid(), out);
  out += R"(","resourceVersion":")";
  AppendNumber(node.resource_version(), out);
  out += R"(","creationTimestamp":")";
  AppendTimestamp(node.creation_timestamp(), out);
  out += '"';

  // Label pairs repeat across the fleet (sites, hardware, tiers): each is
  // escaped once. The hostname label is the node's own.
  bool first = true;
  node.ForEachLabelPair([&](uint32_t id, std::string_view key, std::string_view value) {
    out += first ? R"(,"labels":{)" : ",";
    first = false;
    if (id == 0) {
      Quoted(out, key);
      out += ':';
      Quoted(out, value);
      return true;
    }
    out += Cached(label_pairs_, id, kMaxCached, [&] {
      std::string pair;
      Quoted(pair, key);
      pair += ':';
      Quoted(pair, value);
      return pair;
    });
    return true;
  });
  if (!first) out += '}';

  out += Annotations(node, annotations_id);
  out += '}';
}

void NodeRenderer::AppendJson(const NodeView& node, std::string& out) {
  const NodeView::SharedIds ids = node.shared_ids();
  out += R"({"kind":"Node","apiVersion":")";
  out += kEdgeApiVersion;
  out += R"(",)";
  AppendMetadata(node, ids.annotations, out);

  out += R"(,"spec":{)";
  const std::string& taints = Taints(node, ids.taints);
  if (node.unschedulable()) {
    out += R"("unschedulable":true)";
    if (!taints.empty()) out += ',';
  }
  out += taints;
  out += '}';

  // Status: the conditions' times are the node's own, the rest is shared.
  out += R"(,"status":{)";
  out += Resources(node, ids.resources);
  out += R"("conditions":[)";
  const ConditionFragments& conditions = Conditions(node, ids.conditions);
  const int64_t heartbeat = node.last_heartbeat_time();
  for (const auto& [head, tail] : conditions.device) {
    out += head;
    AppendTimeOrNull(heartbeat, out);
    out += R"(,"lastTransitionTime":)";
    AppendTimeOrNull(node.conditions_transition_time(), out);
    out += tail;
  }
  out += R"({"type":"Ready","status":")";
  out += storage::ConditionStatusName(node.ready());
  out += R"(","lastHeartbeatTime":)";
  AppendTimeOrNull(heartbeat, out);
  out += R"(,"lastTransitionTime":)";
  AppendTimeOrNull(node.ready_transition_time(), out);
  out += conditions.ready_tail;
  out += ']';

  bool first = true;
  node.ForEachAddress([&](std::string_view type, std::string_view address) {
    out += first ? R"(,"addresses":[)" : ",";
    first = false;
    out += R"({"type":)";
    Quoted(out, type);
    out += R"(,"address":)";
    Quoted(out, address);
    out += '}';
  });
  if (!first) out += ']';

  char buffer[NodeView::kIdBufferSize];
  out += R"(,"nodeInfo":{"machineID":)";
  Quoted(out, node.machine_id(buffer));
  out += R"(,"systemUUID":)";
  Quoted(out, node.system_uuid(buffer));
  out += R"(,"bootID":)";
  Quoted(out, node.boot_id(buffer));
  out += NodeInfo(node, ids.node_info);

  out += R"(},"edge":{"connected":)";
  out += node.connected() ? "true" : "false";
  out += R"(,"epoch":)";
  AppendNumber(node.epoch(), out);
  out += R"(,"sequence":)";
  AppendNumber(node.sequence(), out);
  out += R"(,"lastReportTime":)";
  AppendTimeOrNull(node.last_report_time(), out);
  out += Gateway(node, ids.gateway);
  out += "}}}";
}

void NodeRenderer::AppendMetadataJson(const NodeView& node, std::string& out) {
  out += R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",)";
  AppendMetadata(node, node.shared_ids().annotations, out);
  out += '}';
}

void NodeRenderer::AppendTableRow(const NodeView& node, int64_t now, IncludeObject include,
                                  std::string& out) {
  const NodeView::SharedIds ids = node.shared_ids();
  out += R"({"cells":[)";
  AppendJsonString(node.name(), out);
  out += ',';
  AppendJsonString(NodeStatusCell(node.ready(), node.unschedulable()), out);
  out += ',';
  NodeRoles roles;
  node.ForEachLabel([&](std::string_view key, std::string_view value) {
    roles.Add(key, value);
    return true;
  });
  AppendJsonString(roles.Cell(), out);
  out += ',';
  AppendJsonString(HumanDuration(now - node.creation_timestamp()), out);
  out += ',';
  const InfoCells& cells = Cells(node, ids.node_info);
  out += cells.version;
  out += ',';

  // kubectl's INTERNAL-IP and EXTERNAL-IP: the first address of each type.
  std::string internal_ip, external_ip;
  bool has_internal = false, has_external = false;
  node.ForEachAddress([&](std::string_view type, std::string_view address) {
    if (!has_internal && type == "InternalIP") {
      has_internal = true;
      internal_ip = address;
    } else if (!has_external && type == "ExternalIP") {
      has_external = true;
      external_ip = address;
    }
  });
  AppendJsonString(has_internal ? internal_ip : "<none>", out);
  out += ',';
  AppendJsonString(has_external ? external_ip : "<none>", out);
  out += ',';
  out += cells.os_image;
  out += ',';
  out += cells.kernel;
  out += ',';
  out += cells.runtime;
  out += ']';

  if (include == IncludeObject::kMetadata) {
    out += R"(,"object":)";
    AppendMetadataJson(node, out);
  } else if (include == IncludeObject::kObject) {
    out += R"(,"object":)";
    AppendJson(node, out);
  }
  out += '}';
}

}  // namespace kole::apiserver
