#include "mqtt-bridge/bridge.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <utility>

#include "common/log.h"
#include "storage/validation.h"

namespace kole::bridge {
namespace {

using protocol::Channel;
using protocol::DecodeError;
using protocol::Sender;
using storage::HeartbeatOutcome;

constexpr std::string_view kHeartbeatOutcomes[] = {"applied",      "published",     "duplicate",
                                                   "stale_epoch",  "unknown_epoch", "unknown_node",
                                                   "wrong_gateway"};

// Drop reasons besides the decoder's own (protocol::DecodeErrorName).
constexpr std::string_view kUnknownTopic = "unknown_topic";
constexpr std::string_view kQueueFull = "queue_full";
constexpr std::string_view kInvalidNode = "invalid_node";
constexpr std::string_view kStoreError = "store_error";

// Resync bookkeeping is kept for at most this many nodes at once; beyond it a
// mismatch is simply seen again at the node's next heartbeat.
constexpr size_t kMaxResyncEntries = 100'000;

storage::ConditionStatus ParseConditionStatus(std::string_view status, bool* ok) {
  *ok = true;
  if (status == "True") return storage::ConditionStatus::kTrue;
  if (status == "False") return storage::ConditionStatus::kFalse;
  if (status == "Unknown") return storage::ConditionStatus::kUnknown;
  *ok = false;
  return storage::ConditionStatus::kUnknown;
}

// The store's form of a device's registration. Returns an error message for
// content the protocol decoder cannot judge (names, condition values).
std::string ToNode(const protocol::Registration& in, std::string_view gateway, storage::Node* out) {
  if (std::vector<std::string> errors = storage::IsDns1123Subdomain(in.node); !errors.empty()) {
    return fmt::format("node name {:?}: {}", in.node, errors.front());
  }
  out->name = in.node;
  out->labels = in.labels;
  out->capacity = in.capacity;
  out->allocatable = in.allocatable;
  out->addresses.clear();
  for (const protocol::Address& address : in.addresses) {
    out->addresses.push_back({address.type, address.address});
  }
  const protocol::NodeInfo& info = in.node_info;
  out->node_info = storage::NodeInfo{
      .machine_id = info.machine_id,
      .system_uuid = info.system_uuid,
      .boot_id = info.boot_id,
      .kernel_version = info.kernel_version,
      .os_image = info.os_image,
      .container_runtime_version = info.container_runtime_version,
      .kubelet_version = info.agent_version,
      .kube_proxy_version = "",
      .operating_system = info.operating_system,
      .architecture = info.architecture,
  };
  out->conditions.clear();
  for (const protocol::Condition& condition : in.conditions) {
    bool ok = false;
    storage::ConditionStatus status = ParseConditionStatus(condition.status, &ok);
    if (!ok) {
      return fmt::format("condition {:?}: status must be True, False or Unknown, not {:?}",
                         condition.type, condition.status);
    }
    if (condition.type == "Ready") {
      return "the Ready condition is the cloud's; report other conditions only";
    }
    out->conditions.push_back({condition.type, status, condition.reason, condition.message});
  }
  out->edge.epoch = in.epoch;
  out->edge.sequence = in.sequence;
  out->edge.gateway = std::string(gateway);
  return "";
}

// Logs a dropped message at most once a minute per reason, with the count
// dropped since the last line, so hostile input cannot flood the log.
class DropLog {
 public:
  void Record(std::string_view reason, std::string_view topic, std::string_view detail) {
    absl::Time now = absl::Now();
    Entry& entry = entries_[std::string(reason)];
    ++entry.since_last;
    if (now - entry.last < absl::Minutes(1)) return;
    KOLE_LOG(Warning, "Dropped device message", "reason", reason, "topic", topic, "detail", detail,
             "droppedSinceLastLog", entry.since_last);
    entry.last = now;
    entry.since_last = 0;
  }

 private:
  struct Entry {
    absl::Time last = absl::InfinitePast();
    uint64_t since_last = 0;
  };
  absl::flat_hash_map<std::string, Entry> entries_;
};

}  // namespace

// --- Metrics -------------------------------------------------------------------

struct Bridge::Metrics {
  explicit Metrics(metrics::MetricsRegistry* registry) {
    for (Channel channel :
         {Channel::kRegister, Channel::kHeartbeat, Channel::kWill, Channel::kPodStatus}) {
      received[static_cast<size_t>(channel)] = registry->AddCounter(
          "kole_bridge_messages_received_total", "Device messages received, by channel.",
          {{"channel", std::string(protocol::ChannelName(channel))}});
    }
    for (size_t i = 0; i < std::size(kHeartbeatOutcomes); ++i) {
      heartbeats[i] = registry->AddCounter("kole_bridge_heartbeats_total",
                                           "Heartbeats handled, by outcome in the store.",
                                           {{"outcome", std::string(kHeartbeatOutcomes[i])}});
    }
    for (protocol::AckResult result :
         {protocol::AckResult::kAccepted, protocol::AckResult::kRejected,
          protocol::AckResult::kRetry}) {
      registrations[static_cast<size_t>(result)] = registry->AddCounter(
          "kole_bridge_registrations_total", "Node registrations answered, by result.",
          {{"result", std::string(protocol::AckResultName(result))}});
    }
    for (Channel channel : {Channel::kAck, Channel::kControl}) {
      published[static_cast<size_t>(channel)] = registry->AddCounter(
          "kole_bridge_messages_published_total", "Messages sent to devices, by channel.",
          {{"channel", std::string(protocol::ChannelName(channel))}});
    }
    publish_failures = registry->AddCounter(
        "kole_bridge_publish_failures_total",
        "Messages to devices that could not be handed to the broker (devices retry).");
    for (protocol::ControlAction action :
         {protocol::ControlAction::kResync, protocol::ControlAction::kDeregister}) {
      controls[static_cast<size_t>(action)] = registry->AddCounter(
          "kole_bridge_control_requests_total", "Resync and deregistration requests sent.",
          {{"action", std::string(protocol::ControlActionName(action))}});
    }
    expired = registry->AddCounter("kole_bridge_nodes_expired_total",
                                   "Nodes marked Ready=Unknown after the grace period.");
    disconnected = registry->AddCounter("kole_bridge_nodes_disconnected_total",
                                        "Nodes marked disconnected by a last-will message.");
    wills_discarded = registry->AddCounter(
        "kole_bridge_wills_discarded_total",
        "Last wills not applied because the bridge's own broker connection dropped right "
        "after them (a broker shutting down sends the will of every client).");
    holding = registry->AddGauge("kole_bridge_transitions_held",
                                 "Nodes past the grace period whose transition is held back "
                                 "(a mass transition, or the cloud side unhealthy).");
    apply_seconds = registry->AddHistogram(
        "kole_bridge_apply_duration_seconds",
        "Time to decode and apply one batch of messages taken off the queue.",
        metrics::LatencyBuckets());
    queue_wait_seconds = registry->AddHistogram(
        "kole_bridge_queue_wait_seconds",
        "Time from receipt to the start of applying, for the oldest message of each batch.",
        metrics::LatencyBuckets());
  }

  metrics::Counter* Dropped(metrics::MetricsRegistry* registry, std::string_view reason) {
    return registry->AddCounter("kole_bridge_messages_dropped_total",
                                "Device messages dropped, by reason.",
                                {{"reason", std::string(reason)}});
  }

  static constexpr size_t kChannels = 7;
  metrics::Counter* received[kChannels] = {};
  metrics::Counter* heartbeats[std::size(kHeartbeatOutcomes)] = {};
  metrics::Counter* registrations[3] = {};
  metrics::Counter* published[kChannels] = {};
  metrics::Counter* publish_failures = nullptr;
  metrics::Counter* controls[2] = {};
  metrics::Counter* expired = nullptr;
  metrics::Counter* disconnected = nullptr;
  metrics::Counter* wills_discarded = nullptr;
  metrics::Gauge* holding = nullptr;
  metrics::Histogram* apply_seconds = nullptr;
  metrics::Histogram* queue_wait_seconds = nullptr;
};

// --- Publishing through the bridge's own connections ------------------------------

class Bridge::ConsumerPublisher : public Publisher {
 public:
  explicit ConsumerPublisher(const std::vector<std::unique_ptr<protocol::MqttClient>>* clients)
      : clients_(clients) {}

  absl::Status Publish(std::string_view topic, std::string_view payload, int qos,
                       bool retained) override {
    for (const auto& client : *clients_) {
      if (client->connected()) return client->Publish(topic, payload, qos, retained);
    }
    return absl::UnavailableError("no connection to the MQTT broker");
  }

 private:
  const std::vector<std::unique_ptr<protocol::MqttClient>>* clients_;
};

// --- The apply thread's state -------------------------------------------------------

// Everything the apply thread owns: decoding scratch, heartbeats waiting for
// the next store call, and the resync bookkeeping. Used by that thread only.
class Bridge::Applier {
 public:
  Applier(Bridge* bridge, metrics::MetricsRegistry* registry)
      : bridge_(bridge), registry_(registry), tokens_(bridge->options_.resync_per_second) {}

  void Handle(const Inbound& message) {
    std::optional<protocol::Topic> topic = bridge_->topics_.Parse(message.topic);
    if (!topic || topic->channel == Channel::kAck || topic->channel == Channel::kControl ||
        topic->channel == Channel::kPods) {
      Drop(kUnknownTopic, message.topic, "not a device-to-cloud topic of this prefix");
      return;
    }
    bridge_->metrics_->received[static_cast<size_t>(topic->channel)]->Add();
    switch (topic->channel) {
      case Channel::kHeartbeat:
        HandleHeartbeats(*topic, message);
        return;
      case Channel::kRegister:
        FlushHeartbeats(message.received);
        HandleRegister(*topic, message);
        return;
      case Channel::kWill:
        FlushHeartbeats(message.received);
        HandleWill(*topic, message);
        return;
      case Channel::kPodStatus:
        // Heartbeats that came first are applied first: a report must not be
        // overwritten by the confirmation of the set it is about.
        FlushHeartbeats(message.received);
        HandlePodStatus(*topic, message);
        return;
      default:
        return;
    }
  }

  // Applies the heartbeats gathered so far in one store call.
  void FlushHeartbeats(absl::Time now) {
    if (pending_.empty()) return;
    beats_.clear();
    for (const PendingBeat& beat : pending_) {
      beats_.push_back(storage::Heartbeat{
          .name = std::string_view(arena_).substr(beat.name_offset, beat.name_size),
          .epoch = beat.epoch,
          .sequence = beat.sequence,
          .gateway = std::string_view(arena_).substr(beat.gateway_offset, beat.gateway_size),
      });
    }
    outcomes_.assign(beats_.size(), HeartbeatOutcome::kApplied);
    absl::Status status = bridge_->store_->ApplyHeartbeats(beats_, outcomes_);
    if (!status.ok()) {
      Drop(kStoreError, "", status.ToString(), beats_.size());
    } else {
      for (size_t i = 0; i < beats_.size(); ++i) {
        bridge_->metrics_->heartbeats[static_cast<size_t>(outcomes_[i])]->Add();
        switch (outcomes_[i]) {
          case HeartbeatOutcome::kUnknownNode:
          case HeartbeatOutcome::kUnknownEpoch:
          case HeartbeatOutcome::kStaleEpoch:
            // A stale epoch is usually a late message; one that persists is a
            // device that missed its newest acknowledgement.
            Mismatch(beats_[i], outcomes_[i], now);
            break;
          case HeartbeatOutcome::kWrongGateway:
            drop_log_.Record("wrong_gateway", beats_[i].gateway,
                             fmt::format("gateway sent a heartbeat for node {:?}, which is not "
                                         "registered through it",
                                         beats_[i].name));
            break;
          default:
            break;
        }
      }
      ApplyPodRevisions();
    }
    pending_.clear();
    arena_.clear();
  }

  // The pod revision of every heartbeat the store applied: a match marks the
  // node's pods running, a mismatch queues its set to be sent again.
  void ApplyPodRevisions() {
    if (bridge_->pods_ == nullptr) return;
    revisions_.clear();
    for (size_t i = 0; i < beats_.size(); ++i) {
      if (outcomes_[i] != HeartbeatOutcome::kApplied &&
          outcomes_[i] != HeartbeatOutcome::kPublished) {
        continue;
      }
      const PendingBeat& beat = pending_[i];
      revisions_.emplace_back(beats_[i].name,
                              std::string_view(arena_).substr(beat.rev_offset, beat.rev_size));
    }
    int64_t resend = absl::ToInt64Seconds(bridge_->options_.pod_resend_after);
    bridge_->pods_->ApplyPodRevisions(revisions_, resend);
  }

  void HandlePodStatus(const protocol::Topic& topic, const Inbound& message) {
    if (bridge_->pods_ == nullptr) return;
    protocol::PodStatusMessage decoded;
    DecodeError error = protocol::DecodePodStatus(topic, message.payload, &decoded);
    if (error != DecodeError::kOk) {
      Drop(protocol::DecodeErrorName(error), message.topic, "pod status payload refused");
      return;
    }
    std::string_view gateway = topic.sender == Sender::kGateway ? topic.id : std::string_view();
    for (const protocol::NodePodStatus& node : decoded.nodes) {
      // A gateway speaks only for its own nodes; reports are rare (failures
      // and restarts), so reading the node is affordable here.
      absl::StatusOr<storage::Node> known = bridge_->store_->Get(node.node);
      if (!known.ok() || known->edge.gateway != gateway) {
        Drop(kInvalidNode, message.topic,
             fmt::format("pod status for node {:?}, which is not registered through this "
                         "connection",
                         node.node));
        continue;
      }
      std::vector<storage::DaemonPodReport> reports;
      for (const protocol::PodStatus& p : node.pods) {
        std::optional<uint32_t> rev = storage::ParseRevision(p.revision);
        if (!rev) continue;
        storage::PodPhase phase = storage::PodPhase::kUnknown;
        if (p.phase == "Pending") phase = storage::PodPhase::kPending;
        if (p.phase == "Running") phase = storage::PodPhase::kRunning;
        if (p.phase == "Succeeded") phase = storage::PodPhase::kSucceeded;
        if (p.phase == "Failed") phase = storage::PodPhase::kFailed;
        reports.push_back({.namespace_ = p.namespace_,
                           .workload = p.workload,
                           .revision = *rev,
                           .phase = static_cast<uint8_t>(phase),
                           .ready = static_cast<uint8_t>(std::min<uint32_t>(p.ready, 255)),
                           .restarts = static_cast<uint16_t>(std::min<uint32_t>(p.restarts, 65535)),
                           .last_restart_s = static_cast<uint32_t>(p.last_restart),
                           .reason = p.reason});
      }
      bridge_->pods_->ApplyPodReports(node.node, reports);
    }
  }

 private:
  struct PendingBeat {
    uint32_t name_offset, name_size;
    uint32_t gateway_offset, gateway_size;
    uint32_t rev_offset, rev_size;
    uint32_t epoch, sequence;
  };
  struct PendingWill {
    Sender sender;
    std::string id;
    uint32_t epoch;
    absl::Time received;
    int64_t heard_since;
    uint64_t generation;
  };
  struct ResyncEntry {
    absl::Time first_seen;
    absl::Time last_sent = absl::InfinitePast();
  };

  void Drop(std::string_view reason, std::string_view topic, std::string_view detail,
            uint64_t count = 1) {
    bridge_->metrics_->Dropped(registry_, reason)->Add(count);
    drop_log_.Record(reason, topic, detail);
  }

  void HandleHeartbeats(const protocol::Topic& topic, const Inbound& message) {
    DecodeError error = protocol::DecodeHeartbeats(topic, message.payload, &decoded_beats_);
    if (error != DecodeError::kOk) {
      Drop(protocol::DecodeErrorName(error), message.topic, "heartbeat payload refused");
      return;
    }
    std::string_view gateway = topic.sender == Sender::kGateway ? topic.id : std::string_view();
    for (const protocol::HeartbeatEntry& beat : decoded_beats_.beats) {
      PendingBeat pending{};
      pending.name_offset = static_cast<uint32_t>(arena_.size());
      pending.name_size = static_cast<uint32_t>(beat.node.size());
      arena_ += beat.node;
      pending.gateway_offset = static_cast<uint32_t>(arena_.size());
      pending.gateway_size = static_cast<uint32_t>(gateway.size());
      arena_ += gateway;
      pending.rev_offset = static_cast<uint32_t>(arena_.size());
      pending.rev_size = static_cast<uint32_t>(beat.pod_revision.size());
      arena_ += beat.pod_revision;
      pending.epoch = beat.epoch;
      pending.sequence = beat.sequence;
      pending_.push_back(pending);
    }
    if (pending_.size() >= bridge_->options_.apply_batch) FlushHeartbeats(message.received);
  }

  void HandleRegister(const protocol::Topic& topic, const Inbound& message) {
    DecodedRegister local;
    const DecodedRegister* decoded = message.decoded.get();
    if (decoded == nullptr) {
      local.error = protocol::DecodeRegisterEntries(topic, message.payload, &local.message,
                                                    &local.entry_errors);
      decoded = &local;
    }
    if (decoded->error != DecodeError::kOk) {
      Drop(protocol::DecodeErrorName(decoded->error), message.topic,
           "registration payload refused");
      return;
    }
    const protocol::RegisterMessage& request = decoded->message;
    const std::vector<DecodeError>& entry_errors = decoded->entry_errors;
    bool via_gateway = topic.sender == Sender::kGateway;
    std::string_view gateway = via_gateway ? topic.id : std::string_view();

    AckGroup group;
    group.topic = bridge_->topics_.Build(topic.sender, topic.id, Channel::kAck);
    group.on_node_topic = !via_gateway;
    group.message.id = request.id;
    for (size_t i = 0; i < request.nodes.size(); ++i) {
      const protocol::Registration& registration = request.nodes[i];
      if (entry_errors[i] != DecodeError::kOk) {
        // One bad entry of a gateway batch: answered if it has a name (so the
        // gateway stops resending it), dropped otherwise; the others go on.
        Drop(protocol::DecodeErrorName(entry_errors[i]), message.topic,
             "registration entry refused");
        if (registration.node.empty()) continue;
        protocol::Ack& ack = group.message.acks.emplace_back();
        ack.node = registration.node;
        Reject(&ack, "Invalid",
               fmt::format("the entry does not decode: {}",
                           protocol::DecodeErrorName(entry_errors[i])));
        bridge_->metrics_->registrations[static_cast<size_t>(ack.result)]->Add();
        continue;
      }
      protocol::Ack& ack = group.message.acks.emplace_back();
      ack.node = registration.node;
      Register(registration, gateway, &ack, &group.durable_token);
      bridge_->metrics_->registrations[static_cast<size_t>(ack.result)]->Add();
      if (ack.result == protocol::AckResult::kAccepted) ForgetMismatch(registration.node);
    }

    if (group.message.acks.empty()) return;  // Nothing could be answered.
    absl::MutexLock lock(&bridge_->ack_mu_);
    bridge_->acks_.push_back(std::move(group));
    ++bridge_->acks_queued_;
  }

  void Register(const protocol::Registration& registration, std::string_view gateway,
                protocol::Ack* ack, uint64_t* durable_token) {
    std::string invalid = ToNode(registration, gateway, &node_);
    if (!invalid.empty()) {
      Reject(ack, "Invalid", invalid);
      Drop(kInvalidNode, registration.node, invalid);
      return;
    }
    if (bridge_->store_->IsTombstoned(registration.node)) {
      Reject(ack, "Tombstoned",
             "the node was deleted; an operator must re-admit it before it can register");
      return;
    }
    absl::StatusOr<storage::RegisterResult> result = bridge_->store_->Register(node_);
    if (result.ok()) {
      ack->result = protocol::AckResult::kAccepted;
      ack->epoch = result->epoch;
      ack->resource_version = result->resource_version;
      *durable_token = std::max(*durable_token, result->durable_token);
      return;
    }
    switch (result.status().code()) {
      case absl::StatusCode::kInvalidArgument:
        Reject(ack, "Invalid", std::string(result.status().message()));
        return;
      case absl::StatusCode::kPermissionDenied:
        Reject(ack, "NotYourNode", std::string(result.status().message()));
        return;
      case absl::StatusCode::kFailedPrecondition:
        // The tombstone was checked above, so this is an epoch behind the
        // node's: the device lost its boot counter and should send epoch 0.
        Reject(ack, bridge_->store_->IsTombstoned(registration.node) ? "Tombstoned" : "StaleEpoch",
               std::string(result.status().message()));
        return;
      default:
        ack->result = protocol::AckResult::kRetry;
        ack->reason = "Unavailable";
        ack->message = "the cloud cannot store the registration now; retry later";
        drop_log_.Record(kStoreError, registration.node, result.status().ToString());
        return;
    }
  }

  void ForgetMismatch(const std::string& node) {
    if (!resync_.empty()) resync_.erase(node);
  }

  static void Reject(protocol::Ack* ack, std::string_view reason, std::string message) {
    ack->result = protocol::AckResult::kRejected;
    ack->reason = std::string(reason);
    ack->message = std::move(message);
  }

  void HandleWill(const protocol::Topic& topic, const Inbound& message) {
    protocol::Will will;
    DecodeError error = protocol::DecodeWill(message.payload, &will);
    if (error != DecodeError::kOk) {
      Drop(protocol::DecodeErrorName(error), message.topic, "will payload refused");
      return;
    }
    wills_.push_back(PendingWill{
        .sender = topic.sender,
        .id = std::string(topic.id),
        .epoch = will.epoch,
        .received = message.received,
        // A heartbeat in a later second than the will means the device is back.
        .heard_since = bridge_->store_->MonotonicSeconds() + 1,
        .generation = bridge_->ConnectionGeneration(),
    });
    ApplyDueWills(message.received);
  }

 public:
  // Applies wills whose delay has passed; drops those that arrived just
  // before the bridge lost its own connection.
  void ApplyDueWills(absl::Time now) {
    while (!wills_.empty() && now - wills_.front().received >= bridge_->options_.will_delay) {
      PendingWill will = std::move(wills_.front());
      wills_.pop_front();
      if (will.generation != bridge_->ConnectionGeneration()) {
        bridge_->metrics_->wills_discarded->Add();
        continue;
      }
      if (will.sender == Sender::kGateway) {
        absl::StatusOr<size_t> changed =
            bridge_->store_->MarkGatewayDisconnected(will.id, will.heard_since);
        if (changed.ok()) {
          bridge_->metrics_->disconnected->Add(*changed);
          KOLE_VLOG(2, "Gateway disconnected", "gateway", will.id, "nodes", *changed);
        }
        continue;
      }
      absl::Status status =
          bridge_->store_->MarkDisconnected(will.id, will.epoch, will.heard_since);
      if (status.ok()) {
        bridge_->metrics_->disconnected->Add();
        KOLE_VLOG(3, "Node disconnected", "node", will.id);
      }
    }
  }

 private:
  // A heartbeat for a node or epoch the store does not know. Most are a
  // registration still behind it in the stream; one that persists gets a
  // resync (or, for a deleted node, a deregistration), rate-limited.
  void Mismatch(const storage::Heartbeat& beat, HeartbeatOutcome outcome, absl::Time now) {
    // A flood of these (a store restored from an old backup) must stay cheap:
    // one lookup without allocation; names are checked only when added.
    auto it = resync_.find(absl::string_view(beat.name.data(), beat.name.size()));
    if (it == resync_.end()) {
      // When the table is full, a new name is not tracked (it is seen again at
      // its next heartbeat). Pruning scans the whole table, so it runs at most
      // once a second, not once per name of a flood.
      if (resync_.size() >= kMaxResyncEntries && now - last_prune_ >= absl::Seconds(1)) {
        last_prune_ = now;
        Prune(now);
      }
      if (resync_.size() >= kMaxResyncEntries) return;
      if (!storage::IsDns1123Subdomain(beat.name).empty()) return;
      resync_.emplace(std::string(beat.name), ResyncEntry{.first_seen = now});
      return;
    }
    ResyncEntry& entry = it->second;
    const BridgeOptions& options = bridge_->options_;
    if (now - entry.first_seen < options.resync_after) return;
    if (now - entry.last_sent < options.resync_interval) return;
    if (!TakeToken(now)) return;
    entry.last_sent = now;

    bool deleted =
        outcome == HeartbeatOutcome::kUnknownNode && bridge_->store_->IsTombstoned(beat.name);
    protocol::ControlMessage control;
    control.action =
        deleted ? protocol::ControlAction::kDeregister : protocol::ControlAction::kResync;
    control.nodes.emplace_back(beat.name);
    control.reason = deleted                                     ? "Tombstoned"
                     : outcome == HeartbeatOutcome::kUnknownNode ? "UnknownNode"
                                                                 : "UnknownEpoch";
    bool via_gateway = !beat.gateway.empty();
    std::string topic =
        via_gateway ? bridge_->topics_.Build(Sender::kGateway, beat.gateway, Channel::kControl)
                    : bridge_->topics_.Build(Sender::kNode, beat.name, Channel::kControl);
    std::string payload;
    protocol::EncodeControl(control, !via_gateway, payload);
    bridge_->metrics_->controls[static_cast<size_t>(control.action)]->Add();
    bridge_->Publish(topic, payload, protocol::ChannelName(Channel::kControl));
  }

  bool TakeToken(absl::Time now) {
    double rate = bridge_->options_.resync_per_second;
    tokens_ = std::min(rate, tokens_ + rate * absl::ToDoubleSeconds(now - last_refill_));
    last_refill_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

  void Prune(absl::Time now) {
    absl::Duration keep = bridge_->options_.resync_interval + bridge_->options_.resync_after;
    absl::erase_if(resync_, [&](const auto& entry) {
      absl::Time last = std::max(entry.second.first_seen, entry.second.last_sent);
      return now - last > keep;
    });
  }

  Bridge* const bridge_;
  metrics::MetricsRegistry* const registry_;
  DropLog drop_log_;

  protocol::HeartbeatBatch decoded_beats_;
  std::string arena_;  // Names of pending heartbeats.
  std::vector<PendingBeat> pending_;
  std::vector<storage::Heartbeat> beats_;
  std::vector<std::pair<std::string_view, std::string_view>> revisions_;
  std::vector<HeartbeatOutcome> outcomes_;

  storage::Node node_;

  std::deque<PendingWill> wills_;
  absl::flat_hash_map<std::string, ResyncEntry> resync_;
  absl::Time last_prune_ = absl::InfinitePast();
  double tokens_;  // Resync budget: a token bucket that starts full.
  absl::Time last_refill_ = absl::Now();
};

// --- Bridge ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Bridge>> Bridge::Create(BridgeOptions options,
                                                       storage::NodeStore* store,
                                                       metrics::MetricsRegistry* registry,
                                                       storage::PodStore* pods) {
  if (store == nullptr || registry == nullptr) {
    return absl::InvalidArgumentError("the bridge needs a store and a metrics registry");
  }
  if (options.consumers < 1 || options.consumers > 64) {
    return absl::InvalidArgumentError("--mqtt-consumers must be between 1 and 64");
  }
  if (options.consumers > 1 && options.share_group.empty()) {
    return absl::InvalidArgumentError(
        "more than one MQTT consumer needs a shared-subscription group (--mqtt-share-group)");
  }
  if (options.queue_capacity == 0 || options.apply_batch == 0) {
    return absl::InvalidArgumentError("the bridge's queue capacity and batch must be positive");
  }
  if (options.liveness.grace_period < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--node-monitor-grace-period must be at least 1s");
  }
  if (options.topic_prefix.empty() ||
      options.topic_prefix.find_first_of("+#") != std::string::npos) {
    return absl::InvalidArgumentError("the MQTT topic prefix must be non-empty, without + or #");
  }

  std::unique_ptr<Bridge> bridge(new Bridge(std::move(options), store, registry, pods));
  if (bridge->options_.connect) {
    std::vector<std::string> reliable, heartbeats;
    for (std::string& filter : bridge->topics_.CloudSubscriptions(bridge->options_.share_group)) {
      bool heartbeat = filter.ends_with(protocol::ChannelName(Channel::kHeartbeat));
      (heartbeat ? heartbeats : reliable).push_back(std::move(filter));
    }
    for (int i = 0; i < bridge->options_.consumers; ++i) {
      protocol::MqttClientOptions mqtt = bridge->options_.mqtt;
      mqtt.client_id = fmt::format("{}-{}", bridge->options_.mqtt.client_id, i);
      mqtt.clean_session = false;
      Bridge* self = bridge.get();
      absl::StatusOr<std::unique_ptr<protocol::MqttClient>> client = protocol::MqttClient::Create(
          mqtt, [self](const protocol::MqttMessage& m) { self->Enqueue(m.topic, m.payload); });
      if (!client.ok()) return client.status();
      // Heartbeats at QoS 0: they carry state, the next one replaces a lost one,
      // and QoS 1 to a busy consumer starves it (mqtt-measurements.md).
      if (absl::Status s = (*client)->Subscribe(heartbeats, 0); !s.ok()) return s;
      if (absl::Status s = (*client)->Subscribe(reliable, 1); !s.ok()) return s;
      bridge->consumers_.push_back(*std::move(client));
    }
  }
  if (bridge->publisher_ == nullptr) {
    bridge->own_publisher_ = std::make_unique<ConsumerPublisher>(&bridge->consumers_);
    bridge->publisher_ = bridge->own_publisher_.get();
  }
  bridge->applier_ = std::make_unique<Applier>(bridge.get(), registry);
  if (pods != nullptr) {
    Bridge* b = bridge.get();
    bridge->distributor_ = std::make_unique<PodDistributor>(
        b->options_.distributor, &b->topics_, pods, b->publisher_,
        [b] { return b->ConnectionGeneration(); }, registry);
  }

  Bridge* self = bridge.get();
  registry->AddCallbackGauge("kole_bridge_queue_depth", "Device messages waiting to be applied.",
                             [self] { return static_cast<double>(self->status().queue_depth); });
  registry->AddGauge("kole_bridge_queue_capacity", "The inbound queue's bound, in messages.")
      ->Set(static_cast<int64_t>(self->options_.queue_capacity));
  registry->AddCallbackGauge(
      "kole_bridge_consumers_connected", "MQTT consumer connections that are up.",
      [self] { return static_cast<double>(self->status().consumers_connected); });
  registry->AddCallbackGauge("kole_bridge_liveness_paused",
                             "1 while grace clocks are paused because the cloud side is unhealthy.",
                             [self] { return self->liveness_paused_.load() ? 1.0 : 0.0; });
  registry->AddCallbackGauge("kole_bridge_connected_nodes", "Nodes whose device connection is up.",
                             [store] { return static_cast<double>(store->CountConnected()); });
  return bridge;
}

Bridge::Bridge(BridgeOptions options, storage::NodeStore* store, metrics::MetricsRegistry* registry,
               storage::PodStore* pods)
    : options_(std::move(options)),
      topics_(options_.topic_prefix),
      store_(store),
      pods_(pods),
      metrics_(std::make_unique<Metrics>(registry)),
      publisher_(options_.publisher),
      liveness_(options_.liveness) {
  // Create every drop series up front so dashboards see zeros, not gaps.
  for (DecodeError error :
       {DecodeError::kTooLarge, DecodeError::kMalformed, DecodeError::kUnsupportedVersion,
        DecodeError::kWrongType, DecodeError::kMissingField, DecodeError::kTopicMismatch}) {
    metrics_->Dropped(registry, protocol::DecodeErrorName(error));
  }
  for (std::string_view reason : {kUnknownTopic, kQueueFull, kInvalidNode, kStoreError}) {
    metrics_->Dropped(registry, reason);
  }
  dropped_queue_full_ = metrics_->Dropped(registry, kQueueFull);
  dropped_too_large_ =
      metrics_->Dropped(registry, protocol::DecodeErrorName(DecodeError::kTooLarge));
}

Bridge::~Bridge() { Stop(); }

void Bridge::Start() {
  if (started_) return;
  started_ = true;
  store_->ResetLivenessClocks();
  apply_thread_ = std::thread([this] { ApplyLoop(); });
  ack_thread_ = std::thread([this] { AckLoop(); });
  liveness_thread_ = std::thread([this] { LivenessLoop(); });
  deregister_thread_ = std::thread([this] { DeregisterLoop(); });
  if (distributor_ != nullptr) distribute_thread_ = std::thread([this] { distributor_->Run(); });
  for (auto& consumer : consumers_) consumer->Start();
  KOLE_LOG(Info, "MQTT bridge started", "broker", options_.connect ? options_.mqtt.broker : "none",
           "consumers", consumers_.size(), "shareGroup", options_.share_group, "topicPrefix",
           options_.topic_prefix, "gracePeriod",
           absl::FormatDuration(options_.liveness.grace_period));
}

void Bridge::Stop() {
  if (!started_) return;
  started_ = false;
  for (auto& consumer : consumers_) consumer->Stop(absl::ZeroDuration());
  {
    absl::MutexLock lock(&stop_mu_);
    stop_ = true;
  }
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  apply_thread_.join();
  {
    absl::MutexLock lock(&ack_mu_);
    acks_stopping_ = true;
  }
  ack_thread_.join();
  liveness_thread_.join();
  deregister_thread_.join();
  if (distributor_ != nullptr) {
    distributor_->Stop();
    distribute_thread_.join();
  }
  KOLE_LOG(Info, "MQTT bridge stopped");
}

bool Bridge::Deliver(std::string_view topic, std::string_view payload) {
  return Enqueue(topic, payload);
}

bool Bridge::Enqueue(std::string_view topic, std::string_view payload) {
  if (payload.size() > protocol::kMaxPayloadBytes) {
    dropped_too_large_->Add();  // Never copied.
    return false;
  }
  Inbound inbound{std::string(topic), "", absl::Now(), nullptr};
  std::optional<protocol::Topic> parsed = topics_.Parse(inbound.topic);
  if (parsed && parsed->channel == Channel::kRegister) {
    // Decoded here, on the consumer's thread, in parallel with the apply
    // thread; only store work is left for that one.
    inbound.decoded = std::make_unique<DecodedRegister>();
    inbound.decoded->error = protocol::DecodeRegisterEntries(
        *parsed, payload, &inbound.decoded->message, &inbound.decoded->entry_errors);
  } else {
    inbound.payload = std::string(payload);
  }

  absl::MutexLock lock(&queue_mu_);
  if (queue_.size() >= options_.queue_capacity && !stopping_) {
    queue_mu_.AwaitWithTimeout(absl::Condition(this, &Bridge::QueueHasRoom),
                               options_.queue_full_wait);
  }
  if (queue_.size() >= options_.queue_capacity || stopping_) {
    last_shed_ = absl::Now();
    dropped_queue_full_->Add();
    return false;
  }
  queue_.push_back(std::move(inbound));
  ++enqueued_;
  return true;
}

void Bridge::ApplyLoop() {
  std::vector<Inbound> batch;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&queue_mu_);
      // Wakes at least every 250 ms while wills wait for their delay.
      queue_mu_.AwaitWithTimeout(absl::Condition(
                                     +[](Bridge* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                       return !self->queue_.empty() || self->stopping_;
                                     },
                                     this),
                                 absl::Milliseconds(250));
      if (queue_.empty() && stopping_) return;
      size_t take = std::min(queue_.size(), options_.apply_batch);
      for (size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    absl::Time start = absl::Now();
    applier_->ApplyDueWills(start);
    if (batch.empty()) continue;
    metrics_->queue_wait_seconds->Observe(absl::ToDoubleSeconds(start - batch.front().received));
    for (const Inbound& message : batch) applier_->Handle(message);
    applier_->FlushHeartbeats(start);
    metrics_->apply_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));

    absl::MutexLock lock(&queue_mu_);
    applied_ += batch.size();
  }
}

void Bridge::AckLoop() {
  std::vector<AckGroup> groups;
  while (true) {
    groups.clear();
    {
      absl::MutexLock lock(&ack_mu_);
      ack_mu_.Await(absl::Condition(
          +[](Bridge* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !self->acks_.empty() || self->acks_stopping_;
          },
          this));
      if (acks_.empty() && acks_stopping_) return;
      while (!acks_.empty()) {
        groups.push_back(std::move(acks_.front()));
        acks_.pop_front();
      }
    }

    // One wait covers every group: the log is durable in order.
    uint64_t token = 0;
    for (const AckGroup& group : groups) token = std::max(token, group.durable_token);
    absl::Status durable = token == 0 ? absl::OkStatus() : store_->WaitDurable(token);
    std::string payload;
    for (AckGroup& group : groups) {
      if (!durable.ok()) {
        for (protocol::Ack& ack : group.message.acks) {
          if (ack.result != protocol::AckResult::kAccepted) continue;
          ack = protocol::Ack{.node = ack.node,
                              .result = protocol::AckResult::kRetry,
                              .reason = "NotDurable",
                              .message = "the cloud could not make the registration durable"};
        }
      }
      payload.clear();
      protocol::EncodeAck(group.message, group.on_node_topic, payload);
      Publish(group.topic, payload, protocol::ChannelName(Channel::kAck));
    }
    if (!durable.ok()) {
      KOLE_LOG_EVERY_N(Error, 100, "Registrations not durable; devices will retry", "err", durable);
    }

    absl::MutexLock lock(&ack_mu_);
    acks_sent_ += groups.size();
  }
}

void Bridge::Publish(const std::string& topic, const std::string& payload,
                     std::string_view channel) {
  absl::Status status = publisher_->Publish(topic, payload, /*qos=*/1);
  if (!status.ok()) {
    metrics_->publish_failures->Add();
    KOLE_VLOG(2, "Publish to device failed; it will retry", "topic", topic, "err", status);
    return;
  }
  metrics_
      ->published[channel == protocol::ChannelName(Channel::kAck)
                      ? static_cast<size_t>(Channel::kAck)
                      : static_cast<size_t>(Channel::kControl)]
      ->Add();
}

void Bridge::Drain() {
  // Each wait is for a count taken at the start, so traffic that keeps
  // arriving cannot hold Drain() forever.
  struct Reached {
    const uint64_t* done;
    uint64_t target;
    bool Check() const { return *done >= target; }
  };
  {
    absl::MutexLock lock(&queue_mu_);
    Reached applied{&applied_, enqueued_};
    queue_mu_.Await(absl::Condition(&applied, &Reached::Check));
  }
  absl::MutexLock lock(&ack_mu_);
  Reached sent{&acks_sent_, acks_queued_};
  ack_mu_.Await(absl::Condition(&sent, &Reached::Check));
}

bool Bridge::QueueHasRoom() const { return queue_.size() < options_.queue_capacity || stopping_; }

uint64_t Bridge::ConnectionGeneration() const {
  uint64_t losses = 0;
  for (const auto& consumer : consumers_) losses += consumer->stats().connection_losses;
  return losses;
}

bool Bridge::CloudHealthy(absl::Time now) const {
  if (options_.connect) {
    for (const auto& consumer : consumers_) {
      if (!consumer->connected()) return false;
    }
  }
  absl::MutexLock lock(&queue_mu_);
  if (now - last_shed_ < options_.shedding_window) return false;
  if (!queue_.empty() && now - queue_.front().received > options_.lag_threshold) return false;
  return true;
}

void Bridge::CheckLiveness() {
  absl::MutexLock lock(&liveness_mu_);
  absl::Time now = absl::Now();
  int64_t grace = absl::ToInt64Seconds(options_.liveness.grace_period);
  bool healthy = CloudHealthy(now);
  size_t expired = store_->CountExpired(grace);
  size_t nodes = store_->Stats().nodes;
  LivenessDecision decision = liveness_.Tick(now, healthy, expired, nodes);

  bool was_paused = liveness_paused_.exchange(decision.paused);
  if (decision.paused && !was_paused) {
    KOLE_LOG(
        Warning, "Node liveness paused: the cloud side is not receiving the full stream", "status",
        status().consumers_connected < static_cast<int>(consumers_.size()) ? "disconnected"
                                                                           : "lagging or shedding");
  }
  if (decision.reset_clocks) {
    store_->ResetLivenessClocks();
    KOLE_LOG(Info, "Node liveness resumed; every node's grace period restarts now");
  }
  bool was_holding = holding_.exchange(decision.holding);
  metrics_->holding->Set(decision.holding || decision.paused ? static_cast<int64_t>(expired) : 0);
  if (decision.holding && !was_holding) {
    KOLE_LOG(Warning, "Holding back a mass transition to Ready=Unknown", "expired", expired,
             "nodes", nodes, "hold", absl::FormatDuration(options_.liveness.mass_hold));
  }
  if (decision.limit == 0) return;

  absl::StatusOr<size_t> marked = store_->ExpireHeartbeats(grace, decision.limit);
  if (!marked.ok()) {
    KOLE_LOG_EVERY_N(Error, 60, "Marking silent nodes Ready=Unknown failed", "err",
                     marked.status());
    return;
  }
  metrics_->expired->Add(*marked);
  if (*marked > 0) {
    KOLE_VLOG(1, "Nodes marked Ready=Unknown after the grace period", "count", *marked);
  }
}

void Bridge::LivenessLoop() {
  while (true) {
    {
      absl::MutexLock lock(&stop_mu_);
      stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.liveness_interval);
      if (stop_) return;
    }
    CheckLiveness();
  }
}

// Deleted nodes are told to stop. The store's change log is the source, so a
// delete through any path (API, deletecollection) reaches the device.
void Bridge::DeregisterLoop() {
  std::unique_ptr<storage::NodeWatcher> watcher;
  while (true) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_) return;
    }
    if (watcher == nullptr) {
      absl::StatusOr<std::unique_ptr<storage::NodeWatcher>> watch =
          store_->Watch(store_->resource_version());
      if (!watch.ok()) {
        absl::MutexLock lock(&stop_mu_);
        stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1));
        continue;
      }
      watcher = *std::move(watch);
    }
    absl::StatusOr<std::vector<storage::WatchEvent>> events =
        watcher->Next(1024, absl::Now() + absl::Milliseconds(500));
    if (!events.ok()) {
      if (storage::IsExpired(events.status())) {
        KOLE_LOG(Warning,
                 "Deregistration watch fell behind the change log; nodes deleted meanwhile "
                 "learn it at their next heartbeat");
      }
      watcher.reset();
      continue;
    }
    std::string payload;
    for (const storage::WatchEvent& event : *events) {
      if (event.type != storage::EventType::kDeleted) continue;
      protocol::ControlMessage control{.action = protocol::ControlAction::kDeregister,
                                       .nodes = {event.node.name},
                                       .reason = "Deleted"};
      bool via_gateway = !event.node.edge.gateway.empty();
      std::string topic =
          via_gateway ? topics_.Build(Sender::kGateway, event.node.edge.gateway, Channel::kControl)
                      : topics_.Build(Sender::kNode, event.node.name, Channel::kControl);
      payload.clear();
      protocol::EncodeControl(control, !via_gateway, payload);
      metrics_->controls[static_cast<size_t>(protocol::ControlAction::kDeregister)]->Add();
      Publish(topic, payload, protocol::ChannelName(Channel::kControl));
      KOLE_VLOG(2, "Told deleted node to stop", "node", event.node.name);
    }
  }
}

BridgeStatus Bridge::status() const {
  BridgeStatus status;
  status.consumers = static_cast<int>(consumers_.size());
  for (const auto& consumer : consumers_) status.consumers_connected += consumer->connected();
  absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&queue_mu_);
    status.queue_depth = queue_.size();
    status.shedding = now - last_shed_ < options_.shedding_window;
    status.lagging = !queue_.empty() && now - queue_.front().received > options_.lag_threshold;
  }
  status.liveness_paused = liveness_paused_.load();
  status.holding_transitions = holding_.load();
  return status;
}

}  // namespace kole::bridge
