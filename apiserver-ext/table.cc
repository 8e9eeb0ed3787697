#include "apiserver-ext/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"

namespace kole::apiserver {
namespace {

struct Column {
  std::string_view name;
  std::string_view type;
  std::string_view format;
  std::string_view description;
  int priority;
};

constexpr Column kNodeColumns[] = {
    {"Name", "string", "name", "Name must be unique within a namespace.", 0},
    {"Status", "string", "", "The status of the node", 0},
    {"Roles", "string", "", "The roles of the node", 0},
    {"Age", "string", "", "CreationTimestamp of the object, as a duration.", 0},
    {"Version", "string", "", "Version of the edge agent.", 0},
    {"Internal-IP", "string", "", "List of internal IPs of the node.", 1},
    {"External-IP", "string", "", "List of external IPs of the node.", 1},
    {"OS-Image", "string", "", "OS image of the node, from /etc/os-release.", 1},
    {"Kernel-Version", "string", "", "Kernel version of the node (uname -r).", 1},
    {"Container-Runtime", "string", "", "Container runtime and its version.", 1},
};

std::string FirstAddress(const storage::Node& node, std::string_view type) {
  for (const storage::NodeAddress& a : node.addresses) {
    if (a.type == type) return a.address;
  }
  return "<none>";
}

std::string OrUnknown(const std::string& s) { return s.empty() ? "<unknown>" : s; }

}  // namespace

std::string HumanDuration(int64_t s) {
  if (s < -1) return "<invalid>";
  if (s < 0) return "0s";
  if (s < 60 * 2) return fmt::format("{}s", s);
  int64_t minutes = s / 60;
  if (minutes < 10) {
    int64_t rest = s % 60;
    return rest == 0 ? fmt::format("{}m", minutes) : fmt::format("{}m{}s", minutes, rest);
  }
  if (minutes < 60 * 3) return fmt::format("{}m", minutes);
  int64_t hours = s / 3600;
  if (hours < 8) {
    int64_t rest = minutes % 60;
    return rest == 0 ? fmt::format("{}h", hours) : fmt::format("{}h{}m", hours, rest);
  }
  if (hours < 48) return fmt::format("{}h", hours);
  if (hours < 24 * 8) {
    int64_t rest = hours % 24;
    return rest == 0 ? fmt::format("{}d", hours / 24) : fmt::format("{}d{}h", hours / 24, rest);
  }
  if (hours < 24 * 365 * 2) return fmt::format("{}d", hours / 24);
  if (hours < 24 * 365 * 8) {
    int64_t days = (hours / 24) % 365;
    return days == 0 ? fmt::format("{}y", hours / 24 / 365)
                     : fmt::format("{}y{}d", hours / 24 / 365, days);
  }
  return fmt::format("{}y", hours / 24 / 365);
}

std::string NodeStatusCell(storage::ConditionStatus ready, bool unschedulable) {
  // kubectl prints "Not<type>" for a Ready condition that is not True,
  // Unknown included; every node served here has that condition.
  std::string status = ready == storage::ConditionStatus::kTrue ? "Ready" : "NotReady";
  if (unschedulable) status += ",SchedulingDisabled";
  return status;
}

std::string NodeStatusCell(const storage::Node& node) {
  return NodeStatusCell(node.ready, node.unschedulable);
}

void NodeRoles::Add(std::string_view key, std::string_view value) {
  constexpr std::string_view kRolePrefix = "node-role.kubernetes.io/";
  if (key.size() > kRolePrefix.size() && key.starts_with(kRolePrefix)) {
    roles_.emplace_back(key.substr(kRolePrefix.size()));
  } else if (key == "kubernetes.io/role" && !value.empty()) {
    roles_.emplace_back(value);
  }
}

std::string NodeRoles::Cell() {
  if (roles_.empty()) return "<none>";
  std::sort(roles_.begin(), roles_.end());
  roles_.erase(std::unique(roles_.begin(), roles_.end()), roles_.end());
  std::string out;
  for (const std::string& r : roles_) {
    if (!out.empty()) out += ',';
    out += r;
  }
  return out;
}

std::string NodeRolesCell(const storage::Node& node) {
  NodeRoles roles;
  for (const auto& [key, value] : node.labels) roles.Add(key, value);
  return roles.Cell();
}

void AppendNodeTableStart(std::string_view version, bool with_columns, std::string& out) {
  out += R"({"kind":"Table","apiVersion":"meta.k8s.io/)";
  out += version;
  out += R"(","columnDefinitions":[)";
  if (with_columns) {
    bool first = true;
    for (const Column& c : kNodeColumns) {
      if (!first) out += ',';
      first = false;
      StringSink sink(out);
      JsonWriter w(sink);
      w.StartObject();
      Field(w, "name", c.name);
      Field(w, "type", c.type);
      Field(w, "format", c.format);
      Field(w, "description", c.description);
      Key(w, "priority");
      w.Int(c.priority);
      w.EndObject();
    }
  }
  out += R"(],"rows":[)";
}

void AppendNodeTableRow(const storage::Node& node, int64_t now, IncludeObject include,
                        std::string& out) {
  out += R"({"cells":[)";
  std::string cells[] = {
      node.name,
      NodeStatusCell(node),
      NodeRolesCell(node),
      HumanDuration(now - node.creation_timestamp),
      OrUnknown(node.node_info.kubelet_version),
      FirstAddress(node, "InternalIP"),
      FirstAddress(node, "ExternalIP"),
      OrUnknown(node.node_info.os_image),
      OrUnknown(node.node_info.kernel_version),
      OrUnknown(node.node_info.container_runtime_version),
  };
  bool first = true;
  for (const std::string& c : cells) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(c, out);
  }
  out += ']';
  if (include == IncludeObject::kMetadata) {
    out += R"(,"object":)";
    AppendNodeMetadataJson(node, out);
  } else if (include == IncludeObject::kObject) {
    out += R"(,"object":)";
    AppendNodeJson(node, out);
  }
  out += '}';
}

void AppendTableEnd(uint64_t resource_version, std::string_view continue_token, std::string& out) {
  AppendListEnd(resource_version, continue_token, out);
}

}  // namespace kole::apiserver
