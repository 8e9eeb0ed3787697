#include "apiserver-ext/node_json.h"

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>

#include "apiserver-ext/json_util.h"
#include "storage/validation.h"

namespace kole::apiserver {
namespace {

// Nodes are rendered by appending fixed JSON fragments and escaped values
// straight into the caller's buffer: this runs for every node of a list of
// a million, where a general JSON writer's per-character work showed up as
// the largest cost. The output is the same JSON a writer would produce
// (the json_body fuzz target parses it back).

void Quoted(std::string& out, std::string_view value) { AppendEscapedJsonString(value, out); }

void Condition(std::string& out, std::string_view type, storage::ConditionStatus status,
               std::string_view reason, std::string_view message, int64_t heartbeat,
               int64_t transition) {
  out += R"({"type":)";
  Quoted(out, type);
  out += R"(,"status":")";
  out += storage::ConditionStatusName(status);
  out += R"(","lastHeartbeatTime":)";
  AppendTimeOrNull(heartbeat, out);
  out += R"(,"lastTransitionTime":)";
  AppendTimeOrNull(transition, out);
  out += R"(,"reason":)";
  Quoted(out, reason);
  out += R"(,"message":)";
  Quoted(out, message);
  out += '}';
}

void Metadata(std::string& out, const storage::Node& node) {
  out += R"("metadata":{"name":)";
  Quoted(out, node.name);
  out += R"(,"uid":")";
  out += node.uid.ToString();
  out += R"(","resourceVersion":")";
  out += std::to_string(node.resource_version);
  out += R"(","creationTimestamp":")";
  AppendTimestamp(node.creation_timestamp, out);
  out += '"';
  if (!node.labels.empty()) {
    out += R"(,"labels":)";
    AppendJsonPairsObject(node.labels, out);
  }
  if (!node.annotations.empty()) {
    out += R"(,"annotations":)";
    AppendJsonPairsObject(node.annotations, out);
  }
  out += '}';
}

}  // namespace

namespace {

// A node carries several timestamps (creation, heartbeat, transitions, last
// report) and a fleet's cluster around the same seconds (registration
// bursts, report periods): a small per-thread cache, one slot per second
// modulo its size, turns most of them into a copy. The reference is valid
// until the thread's next call.
const std::string& CachedTimestamp(int64_t unix_seconds) {
  struct Slot {
    int64_t seconds = INT64_MIN;
    std::string text;
  };
  thread_local Slot cache[16];
  Slot& slot = cache[static_cast<uint64_t>(unix_seconds) % 16];
  if (slot.seconds == unix_seconds) return slot.text;

  time_t t = static_cast<time_t>(unix_seconds);
  struct tm parts;
  gmtime_r(&t, &parts);
  char buffer[32];
  size_t n = strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &parts);
  slot.text.assign(buffer, n);
  slot.seconds = unix_seconds;
  return slot.text;
}

}  // namespace

std::string FormatTimestamp(int64_t unix_seconds) { return CachedTimestamp(unix_seconds); }

void AppendJsonPairsObject(const storage::StringPairs& pairs, std::string& out) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : pairs) {
    if (!first) out += ',';
    first = false;
    AppendEscapedJsonString(k, out);
    out += ':';
    AppendEscapedJsonString(v, out);
  }
  out += '}';
}

void AppendTimestamp(int64_t unix_seconds, std::string& out) {
  out += CachedTimestamp(unix_seconds);
}

void AppendTimeOrNull(int64_t unix_seconds, std::string& out) {
  // A pre-registered node has not reported yet: zero times are null, as
  // upstream renders an unset metav1.Time.
  if (unix_seconds == 0) {
    out += "null";
    return;
  }
  out += '"';
  out += CachedTimestamp(unix_seconds);
  out += '"';
}

void AppendTaintsJson(const std::vector<storage::Taint>& taints, std::string& out) {
  if (taints.empty()) return;
  out += R"("taints":[)";
  bool first = true;
  for (const storage::Taint& taint : taints) {
    if (!first) out += ',';
    first = false;
    out += R"({"key":)";
    Quoted(out, taint.key);
    if (!taint.value.empty()) {
      out += R"(,"value":)";
      Quoted(out, taint.value);
    }
    out += R"(,"effect":)";
    Quoted(out, taint.effect);
    out += '}';
  }
  out += ']';
}

void AppendResourcesJson(const storage::StringPairs& capacity,
                         const storage::StringPairs& allocatable, std::string& out) {
  if (!capacity.empty()) {
    out += R"("capacity":)";
    AppendJsonPairsObject(capacity, out);
    out += ',';
  }
  if (!allocatable.empty()) {
    out += R"("allocatable":)";
    AppendJsonPairsObject(allocatable, out);
    out += ',';
  }
}

void AppendSharedNodeInfoJson(const storage::NodeInfo& info, std::string& out) {
  out += R"(,"kernelVersion":)";
  Quoted(out, info.kernel_version);
  out += R"(,"osImage":)";
  Quoted(out, info.os_image);
  out += R"(,"containerRuntimeVersion":)";
  Quoted(out, info.container_runtime_version);
  out += R"(,"kubeletVersion":)";
  Quoted(out, info.kubelet_version);
  out += R"(,"kubeProxyVersion":)";
  Quoted(out, info.kube_proxy_version);
  out += R"(,"operatingSystem":)";
  Quoted(out, info.operating_system);
  out += R"(,"architecture":)";
  Quoted(out, info.architecture);
}

void AppendNodeJson(const storage::Node& node, std::string& out) {
  out += R"({"kind":"Node","apiVersion":")";
  out += kEdgeApiVersion;
  out += R"(",)";
  Metadata(out, node);

  out += R"(,"spec":{)";
  if (node.unschedulable) out += R"("unschedulable":true)";
  if (!node.taints.empty()) {
    if (node.unschedulable) out += ',';
    AppendTaintsJson(node.taints, out);
  }
  out += '}';

  out += R"(,"status":{)";
  AppendResourcesJson(node.capacity, node.allocatable, out);
  out += R"("conditions":[)";
  for (const storage::DeviceCondition& c : node.conditions) {
    Condition(out, c.type, c.status, c.reason, c.message, node.last_heartbeat_time,
              node.conditions_transition_time);
    out += ',';
  }
  Condition(out, "Ready", node.ready, node.ready_reason, node.ready_message,
            node.last_heartbeat_time, node.ready_transition_time);
  out += ']';
  if (!node.addresses.empty()) {
    out += R"(,"addresses":[)";
    bool first = true;
    for (const storage::NodeAddress& a : node.addresses) {
      if (!first) out += ',';
      first = false;
      out += R"({"type":)";
      Quoted(out, a.type);
      out += R"(,"address":)";
      Quoted(out, a.address);
      out += '}';
    }
    out += ']';
  }
  const storage::NodeInfo& info = node.node_info;
  out += R"(,"nodeInfo":{"machineID":)";
  Quoted(out, info.machine_id);
  out += R"(,"systemUUID":)";
  Quoted(out, info.system_uuid);
  out += R"(,"bootID":)";
  Quoted(out, info.boot_id);
  AppendSharedNodeInfoJson(info, out);
  out += R"(},"edge":{"connected":)";
  out += node.edge.connected ? "true" : "false";
  out += R"(,"epoch":)";
  out += std::to_string(node.edge.epoch);
  out += R"(,"sequence":)";
  out += std::to_string(node.edge.sequence);
  out += R"(,"lastReportTime":)";
  AppendTimeOrNull(node.edge.last_report_time, out);
  if (!node.edge.gateway.empty()) {
    out += R"(,"gateway":)";
    Quoted(out, node.edge.gateway);
  }
  out += "}}}";
}

void AppendNodeMetadataJson(const storage::Node& node, std::string& out) {
  out += R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",)";
  Metadata(out, node);
  out += '}';
}

void AppendListStart(std::string_view kind, std::string_view api_version, std::string& out) {
  out += R"({"kind":")";
  out += kind;
  out += R"(","apiVersion":")";
  out += api_version;
  out += R"(","items":[)";
}

void AppendListEnd(uint64_t resource_version, std::string_view continue_token, std::string& out) {
  // List metadata goes last: the continue token is known only once the page
  // has been streamed, and JSON clients do not depend on key order.
  out += R"(],"metadata":{"resourceVersion":")";
  out += std::to_string(resource_version);
  out += '"';
  if (!continue_token.empty()) {
    // Tokens are base64url with a fixed prefix: nothing to escape.
    out += R"(,"continue":")";
    out += continue_token;
    out += '"';
  }
  out += "}}";
}

void AppendNodeListStart(std::string& out) { AppendListStart("NodeList", kEdgeApiVersion, out); }

void AppendNodeListEnd(uint64_t resource_version, std::string_view continue_token,
                       std::string& out) {
  AppendListEnd(resource_version, continue_token, out);
}

bool ParseTimestamp(std::string_view text, int64_t* unix_seconds) {
  if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != 'Z') {
    return false;
  }
  auto num = [&](size_t at, size_t n, int* out) {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
  };
  struct tm parts = {};
  int year, month, day, hour, minute, second;
  if (!num(0, 4, &year) || !num(5, 2, &month) || !num(8, 2, &day) || !num(11, 2, &hour) ||
      !num(14, 2, &minute) || !num(17, 2, &second)) {
    return false;
  }
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  *unix_seconds = static_cast<int64_t>(timegm(&parts));
  return true;
}

namespace {

using rapidjson::Value;

// Walks a body, remembering the first type error and every unknown field.
class NodeReader {
 public:
  NodeReader(ParsedNode* parsed, ApiError* error) : parsed_(parsed), error_(error) {}

  bool failed() const { return failed_; }

  void TypeError(std::string_view path, std::string_view want) {
    if (failed_) return;
    failed_ = true;
    *error_ = BadRequest(
        fmt::format("json: cannot unmarshal {} into field {} of type {}", "value", path, want));
  }

  void Fail(ApiError e) {
    if (failed_) return;
    failed_ = true;
    *error_ = std::move(e);
  }

  void Unknown(std::string path) { parsed_->unknown_fields.push_back(std::move(path)); }

  bool String(const Value& v, std::string_view path, std::string* out) {
    if (v.IsNull()) return true;
    if (!v.IsString()) {
      TypeError(path, "string");
      return false;
    }
    out->assign(v.GetString(), v.GetStringLength());
    return true;
  }

  void Pairs(const Value& v, std::string_view path, storage::StringPairs* out) {
    out->clear();
    if (v.IsNull()) return;
    if (!v.IsObject()) return TypeError(path, "map[string]string");
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      std::string value;
      if (m->value.IsNull()) continue;
      if (!String(m->value, path, &value)) return;
      out->emplace_back(std::string(m->name.GetString(), m->name.GetStringLength()),
                        std::move(value));
    }
  }

  template <typename F>
  void Object(const Value& v, std::string_view path, F&& field) {
    if (v.IsNull()) return;
    if (!v.IsObject()) return TypeError(path, "object");
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      std::string_view name(m->name.GetString(), m->name.GetStringLength());
      std::string child = path.empty() ? std::string(name) : fmt::format("{}.{}", path, name);
      if (!field(name, m->value, child)) Unknown(child);
      if (failed_) return;
    }
  }

  template <typename F>
  void Array(const Value& v, std::string_view path, F&& item) {
    if (v.IsNull()) return;
    if (!v.IsArray()) return TypeError(path, "array");
    for (rapidjson::SizeType i = 0; i < v.Size() && !failed_; ++i) {
      item(v[i], fmt::format("{}[{}]", path, i));
    }
  }

 private:
  ParsedNode* parsed_;
  ApiError* error_;
  bool failed_ = false;
};

storage::ConditionStatus ParseConditionStatus(std::string_view s) {
  if (s == "True") return storage::ConditionStatus::kTrue;
  if (s == "False") return storage::ConditionStatus::kFalse;
  return storage::ConditionStatus::kUnknown;
}

}  // namespace

bool ParseNode(const rapidjson::Value& body, ParsedNode* parsed, ApiError* error,
               std::vector<StatusCause>* causes) {
  NodeReader r(parsed, error);
  storage::Node& node = parsed->node;
  if (!body.IsObject()) {
    *error = BadRequest("the request body must be a JSON object");
    return false;
  }
  std::string kind, api_version;
  r.Object(body, "", [&](std::string_view name, const Value& v, const std::string& path) {
    if (name == "kind") return r.String(v, path, &kind);
    if (name == "apiVersion") return r.String(v, path, &api_version);
    if (name == "metadata") {
      r.Object(v, path, [&](std::string_view f, const Value& mv, const std::string& p) {
        if (f == "name") return r.String(mv, p, &node.name);
        if (f == "generateName") return r.String(mv, p, &parsed->generate_name);
        if (f == "labels") return r.Pairs(mv, p, &node.labels), true;
        if (f == "annotations") return r.Pairs(mv, p, &node.annotations), true;
        if (f == "resourceVersion") {
          std::string rv;
          if (!r.String(mv, p, &rv)) return true;
          if (rv.empty()) return true;
          parsed->has_resource_version = true;
          char* end = nullptr;
          errno = 0;
          unsigned long long n = strtoull(rv.c_str(), &end, 10);
          if (errno != 0 || end == rv.c_str() || *end != '\0') {
            r.Fail(BadRequest(fmt::format("invalid resourceVersion {:?}", rv)));
            return true;
          }
          parsed->resource_version = n;
          return true;
        }
        // Set by the server or not kept for nodes: accepted and ignored,
        // as upstream ignores what it resets.
        return f == "uid" || f == "creationTimestamp" || f == "generation" ||
               f == "managedFields" || f == "selfLink" || f == "namespace" || f == "finalizers" ||
               f == "ownerReferences" || f == "deletionTimestamp" ||
               f == "deletionGracePeriodSeconds";
      });
      return true;
    }
    if (name == "spec") {
      r.Object(v, path, [&](std::string_view f, const Value& sv, const std::string& p) {
        if (f == "unschedulable") {
          if (sv.IsNull()) return true;
          if (!sv.IsBool()) return r.TypeError(p, "bool"), true;
          node.unschedulable = sv.GetBool();
          return true;
        }
        if (f == "taints") {
          r.Array(sv, p, [&](const Value& tv, const std::string& tp) {
            storage::Taint taint;
            r.Object(tv, tp, [&](std::string_view tf, const Value& x, const std::string& xp) {
              if (tf == "key") return r.String(x, xp, &taint.key);
              if (tf == "value") return r.String(x, xp, &taint.value);
              if (tf == "effect") return r.String(x, xp, &taint.effect);
              return tf == "timeAdded";
            });
            node.taints.push_back(std::move(taint));
          });
          return true;
        }
        return f == "podCIDR" || f == "podCIDRs" || f == "providerID" || f == "configSource" ||
               f == "externalID";
      });
      return true;
    }
    if (name == "status") {
      r.Object(v, path, [&](std::string_view f, const Value& sv, const std::string& p) {
        if (f == "capacity") return r.Pairs(sv, p, &node.capacity), true;
        if (f == "allocatable") return r.Pairs(sv, p, &node.allocatable), true;
        if (f == "addresses") {
          r.Array(sv, p, [&](const Value& av, const std::string& ap) {
            storage::NodeAddress address;
            r.Object(av, ap, [&](std::string_view af, const Value& x, const std::string& xp) {
              if (af == "type") return r.String(x, xp, &address.type);
              if (af == "address") return r.String(x, xp, &address.address);
              return false;
            });
            node.addresses.push_back(std::move(address));
          });
          return true;
        }
        if (f == "conditions") {
          r.Array(sv, p, [&](const Value& cv, const std::string& cp) {
            storage::DeviceCondition c;
            std::string status;
            r.Object(cv, cp, [&](std::string_view cf, const Value& x, const std::string& xp) {
              if (cf == "type") return r.String(x, xp, &c.type);
              if (cf == "status") return r.String(x, xp, &status);
              if (cf == "reason") return r.String(x, xp, &c.reason);
              if (cf == "message") return r.String(x, xp, &c.message);
              return cf == "lastHeartbeatTime" || cf == "lastTransitionTime";
            });
            c.status = ParseConditionStatus(status);
            if (c.type == "Ready") {
              node.ready = c.status;
              node.ready_reason = c.reason;
              node.ready_message = c.message;
            } else {
              node.conditions.push_back(std::move(c));
            }
          });
          return true;
        }
        if (f == "nodeInfo") {
          storage::NodeInfo& i = node.node_info;
          r.Object(sv, p, [&](std::string_view nf, const Value& x, const std::string& xp) {
            if (nf == "machineID") return r.String(x, xp, &i.machine_id);
            if (nf == "systemUUID") return r.String(x, xp, &i.system_uuid);
            if (nf == "bootID") return r.String(x, xp, &i.boot_id);
            if (nf == "kernelVersion") return r.String(x, xp, &i.kernel_version);
            if (nf == "osImage") return r.String(x, xp, &i.os_image);
            if (nf == "containerRuntimeVersion")
              return r.String(x, xp, &i.container_runtime_version);
            if (nf == "kubeletVersion") return r.String(x, xp, &i.kubelet_version);
            if (nf == "kubeProxyVersion") return r.String(x, xp, &i.kube_proxy_version);
            if (nf == "operatingSystem") return r.String(x, xp, &i.operating_system);
            if (nf == "architecture") return r.String(x, xp, &i.architecture);
            return false;
          });
          return true;
        }
        // status.edge is the cloud's; accepted and ignored.
        return f == "edge" || f == "daemonEndpoints" || f == "images" || f == "volumesInUse" ||
               f == "volumesAttached" || f == "phase";
      });
      return true;
    }
    return false;
  });
  if (r.failed()) return false;
  if (!kind.empty() && kind != "Node") {
    *error = BadRequest(fmt::format("the body has kind {:?}; this resource takes Node", kind));
    return false;
  }
  if (!api_version.empty() && api_version != kEdgeApiVersion) {
    *error = BadRequest(fmt::format("the body has apiVersion {:?}; this resource takes {}",
                                    api_version, kEdgeApiVersion));
    return false;
  }
  storage::NormalizePairs(node.labels);
  storage::NormalizePairs(node.annotations);
  *causes = ValidateNodeFields(node);
  return true;
}

std::vector<StatusCause> ValidateNodeFields(const storage::Node& node) {
  std::vector<StatusCause> causes;
  auto add = [&](std::string field, std::string_view value, const std::vector<std::string>& errs) {
    for (const std::string& e : errs) {
      causes.push_back(
          {"FieldValueInvalid", fmt::format("Invalid value: {:?}: {}", value, e), field});
    }
  };
  if (node.name.empty()) {
    causes.push_back({"FieldValueRequired", "Required value: name or generateName is required",
                      "metadata.name"});
  } else {
    add("metadata.name", node.name, storage::IsDns1123Subdomain(node.name));
  }
  for (const auto& [k, v] : node.labels) {
    add("metadata.labels", k, storage::IsQualifiedName(k));
    add(fmt::format("metadata.labels[{}]", k), v, storage::IsValidLabelValue(v));
  }
  for (const auto& [k, v] : node.annotations) {
    add("metadata.annotations", k, storage::IsQualifiedName(k));
  }
  for (size_t i = 0; i < node.taints.size(); ++i) {
    const storage::Taint& t = node.taints[i];
    add(fmt::format("spec.taints[{}].key", i), t.key, storage::IsQualifiedName(t.key));
    add(fmt::format("spec.taints[{}].value", i), t.value, storage::IsValidLabelValue(t.value));
    if (t.effect != "NoSchedule" && t.effect != "PreferNoSchedule" && t.effect != "NoExecute") {
      causes.push_back({"FieldValueNotSupported",
                        fmt::format("Unsupported value: {:?}: supported values: \"NoExecute\", "
                                    "\"NoSchedule\", \"PreferNoSchedule\"",
                                    t.effect),
                        fmt::format("spec.taints[{}].effect", i)});
    }
  }
  return causes;
}

}  // namespace kole::apiserver
