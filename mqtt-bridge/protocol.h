#pragma once

// The KOLE edge protocol, version 1: topics and payloads exchanged between
// edge devices and the cloud over an MQTT broker. docs/protocol.md is the
// normative description for device makers; this header is its C++ form,
// shared by the cloud-side bridge and the device-side programs (kole-agent,
// kole-edge-sim). It knows no store and no HTTP.
//
// Two kinds of sender exist. A *node* connection speaks for one node under
// <prefix>/nodes/<node>/...; a *gateway* connection fronts many nodes under
// <prefix>/gateways/<gateway>/... and batches their messages. Every payload is
// a small JSON object with "v": 1.
//
//   TopicScheme topics("kole/v1");
//   std::optional<Topic> topic = topics.Parse("kole/v1/nodes/edge-1/heartbeat");
//   HeartbeatBatch batch;
//   DecodeError error = DecodeHeartbeats(*topic, payload, &batch);
//
// Decoders check structure, types, versions and size limits, never names or
// label syntax: that is the receiver's policy (the bridge validates with the
// Kubernetes rules). Decoded string_views point into the batch or, for the
// node named by a node topic, into the parsed Topic's string, so a batch is
// valid only while both live.
//
// Thread safety: free functions and immutable objects; a batch or message is
// owned by one thread at a time.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::protocol {

inline constexpr int kVersion = 1;
inline constexpr std::string_view kDefaultTopicPrefix = "kole/v1";

// --- Limits (docs/protocol.md, "Size limits") -------------------------------

// Any one payload. Larger messages are dropped unread.
inline constexpr size_t kMaxPayloadBytes = 1 << 20;
// Nodes in one gateway batch (registrations, heartbeats, acknowledgements).
inline constexpr size_t kMaxBatchNodes = 1000;
// Entries in each map or list of one registration (labels, capacity, ...).
inline constexpr size_t kMaxRegistrationEntries = 64;
// Any one string value.
inline constexpr size_t kMaxStringBytes = 1024;

// --- Topics ------------------------------------------------------------------

enum class Sender : uint8_t { kNode, kGateway };

enum class Channel : uint8_t {
  // Device to cloud.
  kRegister,   // QoS 1. Registration or full-state report; acknowledged.
  kHeartbeat,  // QoS 0. Liveness and sequence.
  kWill,       // QoS 1. Last will: the connection is gone.
  kPodStatus,  // QoS 1. What the device's pods are doing (failures, restarts).
  // Cloud to device.
  kAck,      // QoS 1. Registration acknowledgements.
  kControl,  // QoS 1. Resync and deregistration.
  kPods,     // QoS 1. The desired pod set: references to workload templates.
};

std::string_view ChannelName(Channel channel);

struct Topic {
  Sender sender = Sender::kNode;
  std::string_view id;  // The node or gateway name; a view into the parsed topic.
  Channel channel = Channel::kHeartbeat;
};

// Builds and parses topic names under one prefix. Immutable.
class TopicScheme {
 public:
  explicit TopicScheme(std::string prefix = std::string(kDefaultTopicPrefix));

  const std::string& prefix() const { return prefix_; }

  // <prefix>/nodes/<id>/<channel> or <prefix>/gateways/<id>/<channel>.
  std::string Build(Sender sender, std::string_view id, Channel channel) const;

  // nullopt for anything that is not exactly a KOLE topic: another prefix, an
  // unknown sender kind or channel, an empty id, extra levels.
  std::optional<Topic> Parse(std::string_view topic) const;

  // <prefix>/workloads/<namespace>/<workload>/<revision>: the retained
  // template of one revision of an EdgeDaemonSet, read by every device that
  // runs it (docs/protocol.md, "Pods").
  std::string WorkloadTopic(std::string_view namespace_, std::string_view workload,
                            std::string_view revision) const;
  // The filter that matches every workload topic, for ACLs and tools.
  std::string WorkloadFilter() const;

  // What the cloud subscribes to: every device-to-cloud channel of every node
  // and gateway. With a non-empty share group, as MQTT shared subscriptions
  // ("$share/<group>/...") so several consumers split the stream.
  std::vector<std::string> CloudSubscriptions(std::string_view share_group) const;

 private:
  std::string prefix_;
};

// --- Messages ----------------------------------------------------------------

using StringPairs = std::vector<std::pair<std::string, std::string>>;

struct Address {
  std::string type;  // InternalIP, ExternalIP, Hostname, ...
  std::string address;
  bool operator==(const Address&) const = default;
};

// status.nodeInfo, in the core/v1 field names on the wire.
struct NodeInfo {
  std::string machine_id;
  std::string system_uuid;
  std::string boot_id;
  std::string kernel_version;
  std::string os_image;
  std::string container_runtime_version;
  std::string agent_version;  // kubeletVersion on the wire and in the API.
  std::string operating_system;
  std::string architecture;
  bool operator==(const NodeInfo&) const = default;
};

// A condition the device reports besides Ready (DiskPressure, ...).
struct Condition {
  std::string type;
  std::string status;  // "True", "False" or "Unknown".
  std::string reason;
  std::string message;
  bool operator==(const Condition&) const = default;
};

// Everything a device states about one node: sent at registration and again,
// unchanged in form, whenever that state changes or the cloud asks for a
// resync. A repeat is harmless.
struct Registration {
  std::string node;
  // The device's persisted boot counter, or 0 to have the cloud assign the
  // next epoch (returned in the acknowledgement).
  uint32_t epoch = 0;
  // The sequence number of this message within the epoch.
  uint32_t sequence = 0;
  StringPairs labels;  // Device-owned labels (docs/protocol.md lists the keys).
  StringPairs capacity;
  StringPairs allocatable;
  std::vector<Address> addresses;
  NodeInfo node_info;
  std::vector<Condition> conditions;
  bool operator==(const Registration&) const = default;
};

// One message on a register channel: a node's own registration, or up to
// kMaxBatchNodes from a gateway. `id` is the sender's correlation number,
// echoed in the acknowledgement.
struct RegisterMessage {
  uint64_t id = 0;
  std::vector<Registration> nodes;
  bool operator==(const RegisterMessage&) const = default;
};

struct HeartbeatEntry {
  std::string_view node;  // On a node topic: the topic's node.
  uint32_t epoch = 0;
  uint32_t sequence = 0;
  // The revision of the pod set the node runs ("" if none).
  std::string_view pod_revision;
};

// Decoded heartbeats. Reused across messages to avoid allocation.
struct HeartbeatBatch {
  std::vector<HeartbeatEntry> beats;
  // The decoded strings `beats` point into, replaced by the next decode into
  // this batch. A copied or moved batch's views still point here.
  std::string arena;
};

struct Will {
  // The epoch of the connection that left (node topics); 0 when unknown or
  // for a gateway, whose will covers every node registered through it.
  uint32_t epoch = 0;
};

enum class AckResult : uint8_t {
  kAccepted,
  // Do not retry: the name or content is invalid, or the node was deleted
  // (tombstoned) and needs re-admission by an operator.
  kRejected,
  // Retry later with backoff: the cloud cannot make the registration durable
  // now (for example its disk is full).
  kRetry,
};

std::string_view AckResultName(AckResult result);

struct Ack {
  std::string node;
  AckResult result = AckResult::kAccepted;
  uint32_t epoch = 0;             // The node's epoch from now on (kAccepted).
  uint64_t resource_version = 0;  // The node's version after the write (kAccepted).
  std::string reason;             // A CamelCase reason for kRejected and kRetry.
  std::string message;            // Human-readable detail.
  bool operator==(const Ack&) const = default;
};

struct AckMessage {
  uint64_t id = 0;  // The RegisterMessage id this answers.
  std::vector<Ack> acks;
  bool operator==(const AckMessage&) const = default;
};

enum class ControlAction : uint8_t {
  // Send the full state again (a Registration with the current epoch): the
  // cloud has no record of this epoch, or lost state.
  kResync,
  // The node was deleted: stop sending for it. A registration gets
  // kRejected/Tombstoned until an operator re-admits the node.
  kDeregister,
};

std::string_view ControlActionName(ControlAction action);

struct ControlMessage {
  ControlAction action = ControlAction::kResync;
  std::vector<std::string> nodes;  // On a node topic: exactly that node.
  std::string reason;
  bool operator==(const ControlMessage&) const = default;
};

// One pod a node is to run: which workload, at which template revision, and
// how often the cloud restarted it (a delete through the API).
struct PodRef {
  std::string namespace_;
  std::string name;      // The pod's name in the API.
  std::string workload;  // The EdgeDaemonSet; its template is on WorkloadTopic().
  std::string revision;  // 8 hex digits.
  uint32_t restart = 0;
  bool operator==(const PodRef&) const = default;
};

// The full desired pod set of one node. A device runs exactly these pods;
// once it does, its heartbeats carry `pod_revision`.
struct NodePods {
  std::string node;
  std::string pod_revision;  // "" for the empty set.
  std::vector<PodRef> pods;
  bool operator==(const NodePods&) const = default;
};

// One message on a pods channel: one node's set on a node topic, up to
// kMaxBatchNodes on a gateway topic.
struct PodsMessage {
  std::vector<NodePods> nodes;
  bool operator==(const PodsMessage&) const = default;
};

// What a device reports about one pod it was told to run. A pod running as
// told needs no report: the heartbeat's pod revision says so.
struct PodStatus {
  std::string namespace_;
  std::string workload;
  std::string revision;
  std::string phase;   // Pending, Running, Succeeded, Failed.
  uint32_t ready = 0;  // Ready containers.
  uint32_t restarts = 0;
  uint64_t last_restart = 0;  // Unix seconds; 0 if never.
  std::string reason;         // CrashLoopBackOff, ImagePullBackOff, Error, ...
  bool operator==(const PodStatus&) const = default;
};

struct NodePodStatus {
  std::string node;
  std::vector<PodStatus> pods;
  bool operator==(const NodePodStatus&) const = default;
};

struct PodStatusMessage {
  std::vector<NodePodStatus> nodes;
  bool operator==(const PodStatusMessage&) const = default;
};

// The retained template of one workload revision.
struct WorkloadTemplate {
  std::string namespace_;
  std::string workload;
  std::string revision;
  // {"metadata":{"labels":..,"annotations":..},"spec":{<pod spec>}} as JSON.
  std::string template_json;
  bool operator==(const WorkloadTemplate&) const = default;
};

// Entries in a pod set or status report of one node.
inline constexpr size_t kMaxPodsPerNode = 110;

// --- Decoding ----------------------------------------------------------------

// Why a payload was refused. Each value is a metric label
// (kole_bridge_messages_dropped_total{reason=...}), so names are stable.
enum class DecodeError : uint8_t {
  kOk,
  kTooLarge,            // Over kMaxPayloadBytes, or a string or list over its limit.
  kMalformed,           // Not a JSON object.
  kUnsupportedVersion,  // "v" missing or not 1.
  kWrongType,           // A field has the wrong JSON type or range.
  kMissingField,        // A required field is absent.
  kTopicMismatch,       // A node topic's payload names another node, or has a batch.
};

std::string_view DecodeErrorName(DecodeError error);

// On a node topic the payload may omit "node" (the topic names it); if present
// it must match. On a gateway topic every entry names its node.
DecodeError DecodeRegister(const Topic& topic, std::string_view payload, RegisterMessage* out);
// As DecodeRegister, but one bad entry of a gateway batch does not refuse the
// others: it is decoded as far as its node name, and entry_errors[i] says why
// out->nodes[i] is unusable (kOk for good entries). Errors of the envelope
// (JSON, "v", "id", the batch list itself) still refuse the whole message. The
// cloud uses this so it can answer each node of a batch.
DecodeError DecodeRegisterEntries(const Topic& topic, std::string_view payload,
                                  RegisterMessage* out, std::vector<DecodeError>* entry_errors);
DecodeError DecodeHeartbeats(const Topic& topic, std::string_view payload, HeartbeatBatch* out);
DecodeError DecodeWill(std::string_view payload, Will* out);
DecodeError DecodeAck(std::string_view payload, AckMessage* out);
DecodeError DecodeControl(std::string_view payload, ControlMessage* out);
DecodeError DecodePods(const Topic& topic, std::string_view payload, PodsMessage* out);
DecodeError DecodePodStatus(const Topic& topic, std::string_view payload, PodStatusMessage* out);
DecodeError DecodeWorkloadTemplate(std::string_view payload, WorkloadTemplate* out);

// --- Encoding ----------------------------------------------------------------

// Each appends one JSON payload to `out`. With `on_node_topic`, the single
// entry is written in the node topic's flat form.
void EncodeRegister(const RegisterMessage& message, bool on_node_topic, std::string& out);
void EncodeHeartbeats(std::span<const HeartbeatEntry> beats, bool on_node_topic, std::string& out);
void EncodeWill(const Will& will, std::string& out);
void EncodeAck(const AckMessage& message, bool on_node_topic, std::string& out);
void EncodeControl(const ControlMessage& message, bool on_node_topic, std::string& out);
void EncodePods(const PodsMessage& message, bool on_node_topic, std::string& out);
void EncodePodStatus(const PodStatusMessage& message, bool on_node_topic, std::string& out);
void EncodeWorkloadTemplate(const WorkloadTemplate& workload, std::string& out);

}  // namespace kole::protocol
