#include "apiserver-ext/node_json.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <climits>
#include <ctime>

namespace kole::apiserver {
namespace {

// rapidjson's writer over our std::string, without an intermediate buffer.
class StringSink {
 public:
  using Ch = char;
  explicit StringSink(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}

 private:
  std::string& out_;
};

using JsonWriter = rapidjson::Writer<StringSink>;

void Key(JsonWriter& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void String(JsonWriter& w, std::string_view value) {
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void Field(JsonWriter& w, std::string_view key, std::string_view value) {
  Key(w, key);
  String(w, value);
}

void Pairs(JsonWriter& w, std::string_view key, const storage::StringPairs& pairs) {
  Key(w, key);
  w.StartObject();
  for (const auto& [k, v] : pairs) Field(w, k, v);
  w.EndObject();
}

void Condition(JsonWriter& w, std::string_view type, storage::ConditionStatus status,
               std::string_view reason, std::string_view message, int64_t heartbeat,
               int64_t transition) {
  w.StartObject();
  Field(w, "type", type);
  Field(w, "status", storage::ConditionStatusName(status));
  Field(w, "lastHeartbeatTime", FormatTimestamp(heartbeat));
  Field(w, "lastTransitionTime", FormatTimestamp(transition));
  Field(w, "reason", reason);
  Field(w, "message", message);
  w.EndObject();
}

}  // namespace

std::string FormatTimestamp(int64_t unix_seconds) {
  // A node carries five timestamps and a fleet's cluster around a few
  // seconds (registration bursts, report periods): remember the last one.
  thread_local int64_t cached_seconds = INT64_MIN;
  thread_local std::string cached;
  if (unix_seconds == cached_seconds) return cached;

  time_t t = static_cast<time_t>(unix_seconds);
  struct tm parts;
  gmtime_r(&t, &parts);
  char buffer[32];
  size_t n = strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &parts);
  cached.assign(buffer, n);
  cached_seconds = unix_seconds;
  return cached;
}

void AppendNodeJson(const storage::Node& node, std::string& out) {
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "Node");
  Field(w, "apiVersion", kEdgeApiVersion);

  Key(w, "metadata");
  w.StartObject();
  Field(w, "name", node.name);
  Field(w, "uid", node.uid.ToString());
  Field(w, "resourceVersion", std::to_string(node.resource_version));
  Field(w, "creationTimestamp", FormatTimestamp(node.creation_timestamp));
  if (!node.labels.empty()) Pairs(w, "labels", node.labels);
  if (!node.annotations.empty()) Pairs(w, "annotations", node.annotations);
  w.EndObject();

  Key(w, "spec");
  w.StartObject();
  if (node.unschedulable) {
    Key(w, "unschedulable");
    w.Bool(true);
  }
  if (!node.taints.empty()) {
    Key(w, "taints");
    w.StartArray();
    for (const storage::Taint& taint : node.taints) {
      w.StartObject();
      Field(w, "key", taint.key);
      if (!taint.value.empty()) Field(w, "value", taint.value);
      Field(w, "effect", taint.effect);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();

  Key(w, "status");
  w.StartObject();
  if (!node.capacity.empty()) Pairs(w, "capacity", node.capacity);
  if (!node.allocatable.empty()) Pairs(w, "allocatable", node.allocatable);
  Key(w, "conditions");
  w.StartArray();
  for (const storage::DeviceCondition& c : node.conditions) {
    Condition(w, c.type, c.status, c.reason, c.message, node.last_heartbeat_time,
              node.conditions_transition_time);
  }
  Condition(w, "Ready", node.ready, node.ready_reason, node.ready_message, node.last_heartbeat_time,
            node.ready_transition_time);
  w.EndArray();
  if (!node.addresses.empty()) {
    Key(w, "addresses");
    w.StartArray();
    for (const storage::NodeAddress& a : node.addresses) {
      w.StartObject();
      Field(w, "type", a.type);
      Field(w, "address", a.address);
      w.EndObject();
    }
    w.EndArray();
  }
  const storage::NodeInfo& info = node.node_info;
  Key(w, "nodeInfo");
  w.StartObject();
  Field(w, "machineID", info.machine_id);
  Field(w, "systemUUID", info.system_uuid);
  Field(w, "bootID", info.boot_id);
  Field(w, "kernelVersion", info.kernel_version);
  Field(w, "osImage", info.os_image);
  Field(w, "containerRuntimeVersion", info.container_runtime_version);
  Field(w, "kubeletVersion", info.kubelet_version);
  Field(w, "kubeProxyVersion", info.kube_proxy_version);
  Field(w, "operatingSystem", info.operating_system);
  Field(w, "architecture", info.architecture);
  w.EndObject();
  Key(w, "edge");
  w.StartObject();
  Key(w, "connected");
  w.Bool(node.edge.connected);
  Key(w, "epoch");
  w.Uint(node.edge.epoch);
  Key(w, "sequence");
  w.Uint64(node.edge.sequence);
  Field(w, "lastReportTime", FormatTimestamp(node.edge.last_report_time));
  if (!node.edge.gateway.empty()) Field(w, "gateway", node.edge.gateway);
  w.EndObject();
  w.EndObject();

  w.EndObject();
}

void AppendNodeListStart(std::string& out) {
  out += R"({"kind":"NodeList","apiVersion":")";
  out += kEdgeApiVersion;
  out += R"(","items":[)";
}

void AppendNodeListEnd(uint64_t resource_version, std::string_view continue_token,
                       std::string& out) {
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

}  // namespace kole::apiserver
