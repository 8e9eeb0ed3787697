#include "edge/edge_sim.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <utility>

#include "common/log.h"
#include "edge/device_labels.h"
#include "mqtt-bridge/mqtt_client.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

using protocol::Channel;
using protocol::Sender;

// One MQTT connection and the nodes it speaks for. The worker that owns it
// touches everything except `inbox`, `reconnected` and `up`, which the MQTT
// threads write.
struct EdgeSimulator::Connection {
  Sender sender = Sender::kGateway;
  std::string name;
  std::string register_topic;
  std::string heartbeat_topic;
  std::string will_topic;
  std::string will_payload;
  uint32_t begin = 0;  // Local node indices [begin, end).
  uint32_t end = 0;
  // Gateways: the local indices of their nodes sorted by name, for acks.
  std::vector<uint32_t> by_name;
  std::unique_ptr<protocol::MqttClient> client;

  // What the receive thread hands over: a message of one of the node or
  // gateway's channels, or (template true) a retained workload template.
  struct Received {
    Channel channel;
    bool workload_template;
    std::string payload;
  };
  absl::Mutex mu;
  std::vector<Received> inbox ABSL_GUARDED_BY(mu);
  std::atomic<bool> reconnected{false};
  std::atomic<bool> up{false};

  // Worker-owned.
  std::unique_ptr<FaultInjector> faults;
  Rng rng{0};
  bool holding = false;  // A message held back for reordering.
  const std::string* held_topic = nullptr;
  int held_qos = 0;
  std::string held_payload;
  uint64_t next_message_id = 1;
  int64_t next_flush_ms = 0;
  // Workload templates this connection received ("ns/workload/rev"), and the
  // pods of each set revision its nodes were sent (for crash reports).
  absl::flat_hash_set<std::string> templates;
  absl::flat_hash_map<uint32_t, std::vector<protocol::PodRef>> sets;
};

// A worker thread with its connections and reusable buffers.
struct EdgeSimulator::Worker {
  std::vector<Connection*> connections;
  std::thread thread;
  // Token bucket for the registration rate; tokens are registrations.
  double tokens = 0;
  double rate = 0;  // Per second; 0 = unlimited.
  int64_t last_refill_ms = 0;

  NodeSpec spec;
  protocol::RegisterMessage registers;
  std::vector<uint32_t> register_nodes;
  std::vector<protocol::HeartbeatEntry> beats;
  std::string payload;
  std::string spare;
  protocol::AckMessage acks;
  protocol::ControlMessage control;
  protocol::PodsMessage pods;
  protocol::WorkloadTemplate workload;
  protocol::PodStatusMessage reports;
  // Backing store of the heartbeats' pod revisions (views point here).
  std::vector<std::array<char, 8>> revisions;
  double bytes_per_registration = 1200;  // Refined as registrations are encoded.
};

namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Registration batches aim at 90 % of the payload limit, a margin for the
// per-entry size estimate; a batch that still comes out too large is halved.
constexpr double kRegisterBudgetBytes = protocol::kMaxPayloadBytes * 0.9;

}  // namespace

absl::Status CompleteSimOptions(SimOptions* o) {
  if (o->nodes == 0) return absl::InvalidArgumentError("--nodes must be at least 1");
  if (o->first_index + o->nodes > FleetGenerator::kMaxNodes) {
    return absl::InvalidArgumentError(
        fmt::format("--first-index + --nodes must not exceed {} (the fleet's address space)",
                    FleetGenerator::kMaxNodes));
  }
  if (o->connections == 0) {
    o->connections = (o->nodes + protocol::kMaxBatchNodes - 1) / protocol::kMaxBatchNodes;
  }
  if (o->connections > o->nodes) {
    return absl::InvalidArgumentError(
        fmt::format("--connections ({}) must not exceed --nodes ({})", o->connections, o->nodes));
  }
  if (o->batch == 0 || o->batch > protocol::kMaxBatchNodes) {
    return absl::InvalidArgumentError(
        fmt::format("--batch must lie in [1, {}]", protocol::kMaxBatchNodes));
  }
  if (o->threads < 1) return absl::InvalidArgumentError("--threads must be at least 1");
  o->threads = static_cast<int>(std::min<uint64_t>(o->threads, o->connections));
  if (o->heartbeat_interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError("--heartbeat-interval must be at least 10ms");
  }
  if (o->flush_interval < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("--flush-interval must be at least 1ms");
  }
  if (o->register_rate < 0) return absl::InvalidArgumentError("--register-rate must be >= 0");
  for (double rate : {o->faults.duplicate_rate, o->faults.reorder_rate, o->faults.drop_rate,
                      o->faults.malformed_rate, o->faults.restart_rate}) {
    if (rate < 0 || rate > 1) return absl::InvalidArgumentError("fault rates must lie in [0, 1]");
  }
  if (o->retry.initial <= absl::ZeroDuration() || o->retry.max < o->retry.initial) {
    return absl::InvalidArgumentError("registration retry: need 0 < initial <= max backoff");
  }
  if (o->epoch == 0) o->epoch = static_cast<uint32_t>(absl::ToUnixSeconds(absl::Now()));
  if (o->max_pending_registrations == 0) o->max_pending_registrations = 1;
  return o->fleet.Validate();
}

absl::StatusOr<std::unique_ptr<EdgeSimulator>> EdgeSimulator::Create(SimOptions options) {
  if (absl::Status status = CompleteSimOptions(&options); !status.ok()) return status;
  absl::StatusOr<FleetGenerator> fleet = FleetGenerator::Create(options.fleet);
  if (!fleet.ok()) return fleet.status();
  std::unique_ptr<EdgeSimulator> sim(new EdgeSimulator(std::move(options), *std::move(fleet)));
  if (absl::Status status = sim->Build(); !status.ok()) return status;
  return sim;
}

EdgeSimulator::EdgeSimulator(SimOptions options, FleetGenerator fleet)
    : options_(std::move(options)),
      fleet_(std::move(fleet)),
      protocol_(options_.heartbeat_interval, options_.retry) {}

EdgeSimulator::~EdgeSimulator() { Stop(); }

int64_t EdgeSimulator::NowMs() const { return SteadyMs(); }

absl::Status EdgeSimulator::Build() {
  const uint64_t n = options_.nodes;

  // Names, back to back; the arena's final size is known only at the end.
  name_offset_.reserve(n + 1);
  names_.reserve(n * 30);
  std::string name;
  for (uint64_t i = 0; i < n; ++i) {
    name_offset_.push_back(static_cast<uint32_t>(names_.size()));
    fleet_.WriteName(options_.first_index + i, &name);
    names_.append(name);
  }
  name_offset_.push_back(static_cast<uint32_t>(names_.size()));
  names_.shrink_to_fit();

  states_.assign(n, NodeState{});
  pods_.assign(n, PodState{});
  for (NodeState& state : states_) state.epoch = options_.epoch;

  // Connections: node connections, or gateways over contiguous slices.
  const bool node_connections = options_.connections == n;
  const protocol::TopicScheme topics(options_.topic_prefix);
  // Every workload topic starts with this (the filter without its '#').
  std::string workload_prefix = topics.WorkloadFilter();
  workload_prefix.pop_back();
  const uint64_t m = options_.connections;
  for (uint64_t k = 0; k < m; ++k) {
    auto conn = std::make_unique<Connection>();
    conn->begin = static_cast<uint32_t>(n * k / m);
    conn->end = static_cast<uint32_t>(n * (k + 1) / m);
    if (node_connections) {
      conn->sender = Sender::kNode;
      conn->name.assign(names_, name_offset_[k], name_offset_[k + 1] - name_offset_[k]);
    } else {
      conn->sender = Sender::kGateway;
      conn->name = fmt::format("gw-{}-{}", options_.fleet.seed, options_.first_index + conn->begin);
      for (uint32_t i = conn->begin; i < conn->end; ++i) conn->by_name.push_back(i);
      auto name_of = [this](uint32_t i) {
        return std::string_view(names_).substr(name_offset_[i],
                                               name_offset_[i + 1] - name_offset_[i]);
      };
      std::sort(conn->by_name.begin(), conn->by_name.end(),
                [&](uint32_t a, uint32_t b) { return name_of(a) < name_of(b); });
    }
    conn->register_topic = topics.Build(conn->sender, conn->name, Channel::kRegister);
    conn->heartbeat_topic = topics.Build(conn->sender, conn->name, Channel::kHeartbeat);
    conn->will_topic = topics.Build(conn->sender, conn->name, Channel::kWill);
    protocol::EncodeWill(protocol::Will{.epoch = 0}, conn->will_payload);
    conn->faults = std::make_unique<FaultInjector>(
        options_.faults, options_.fleet.seed * 0x9e3779b97f4a7c15 + k + 1);
    conn->rng = Rng(options_.fleet.seed ^ (k * 0xbf58476d1ce4e5b9 + 7));

    protocol::MqttClientOptions mqtt{
        .broker = options_.broker,
        .client_id = conn->name,
        .username = options_.username.empty() ? conn->name : options_.username,
        .password = options_.password,
        .ca_file = options_.ca_file,
        .cert_file = options_.cert_file,
        .key_file = options_.key_file,
        .verify_hostname = options_.verify_hostname,
        // A persistent session: acks the cloud sends while we are away are
        // kept by the broker and delivered on reconnect.
        .clean_session = false,
        .will = protocol::MqttWill{.topic = conn->will_topic, .payload = conn->will_payload},
    };
    Connection* raw = conn.get();
    absl::StatusOr<std::unique_ptr<protocol::MqttClient>> client = protocol::MqttClient::Create(
        std::move(mqtt),
        [raw, topics, workload_prefix](const protocol::MqttMessage& message) {
          if (message.topic.starts_with(workload_prefix)) {
            absl::MutexLock lock(&raw->mu);
            raw->inbox.push_back({Channel::kPods, true, std::string(message.payload)});
            return;
          }
          std::optional<protocol::Topic> topic = topics.Parse(message.topic);
          if (!topic || (topic->channel != Channel::kAck && topic->channel != Channel::kControl &&
                         topic->channel != Channel::kPods)) {
            return;
          }
          absl::MutexLock lock(&raw->mu);
          raw->inbox.push_back({topic->channel, false, std::string(message.payload)});
        },
        [raw](bool connected) {
          raw->up.store(connected, std::memory_order_release);
          if (connected) raw->reconnected.store(true, std::memory_order_release);
        });
    if (!client.ok()) return client.status();
    conn->client = *std::move(client);
    absl::Status subscribed = conn->client->Subscribe(
        {topics.Build(conn->sender, conn->name, Channel::kAck),
         topics.Build(conn->sender, conn->name, Channel::kControl),
         topics.Build(conn->sender, conn->name, Channel::kPods), topics.WorkloadFilter()},
        1);
    if (!subscribed.ok()) return subscribed;
    connections_.push_back(std::move(conn));
  }

  for (int w = 0; w < options_.threads; ++w) {
    auto worker = std::make_unique<Worker>();
    worker->rate = options_.register_rate / options_.threads;
    workers_.push_back(std::move(worker));
  }
  for (size_t k = 0; k < connections_.size(); ++k) {
    workers_[k % workers_.size()]->connections.push_back(connections_[k].get());
  }
  KOLE_LOG(Info, "Simulated fleet ready", "nodes", n, "connections", m, "gateways",
           !node_connections, "firstIndex", options_.first_index, "epoch", options_.epoch,
           "nameBytes", names_.size());
  return absl::OkStatus();
}

void EdgeSimulator::Start() {
  if (started_) return;
  started_ = true;
  start_time_ = absl::Now();
  for (auto& conn : connections_) conn->client->Start();
  for (auto& worker : workers_) {
    Worker* raw = worker.get();
    raw->last_refill_ms = NowMs();
    raw->thread = std::thread([this, raw] { RunWorker(raw); });
  }
}

void EdgeSimulator::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  for (auto& conn : connections_) {
    if (conn->client->connected()) {
      (void)conn->client->Publish(conn->will_topic, conn->will_payload, 1);
    }
  }
  // MqttClient::Stop() waits for its disconnect to drain; a thousand of them
  // one after another would take minutes, so they run side by side.
  constexpr size_t kParallelStops = 128;
  for (size_t first = 0; first < connections_.size(); first += kParallelStops) {
    std::vector<std::thread> stoppers;
    size_t last = std::min(connections_.size(), first + kParallelStops);
    for (size_t k = first; k < last; ++k) {
      stoppers.emplace_back([this, k] { connections_[k]->client->Stop(absl::Milliseconds(500)); });
    }
    for (std::thread& stopper : stoppers) stopper.join();
  }
}

SimCounters EdgeSimulator::Counters() const {
  SimCounters c;
  c.nodes = options_.nodes;
  c.connections = connections_.size();
  for (const auto& conn : connections_) c.connections_up += conn->up.load() ? 1 : 0;
  c.registered = registered_.load();
  c.accepted = accepted_.load();
  c.rejected = rejected_.load();
  c.registrations_sent = registrations_sent_.load();
  c.registrations_retried = registrations_retried_.load();
  c.acks_received = acks_received_.load();
  c.heartbeats_sent = heartbeats_sent_.load();
  c.messages_sent = messages_sent_.load();
  c.publish_failures = publish_failures_.load();
  c.resyncs = resyncs_.load();
  c.restarts = restarts_.load();
  c.dropped = dropped_.load();
  c.duplicated = duplicated_.load();
  c.reordered = reordered_.load();
  c.malformed = malformed_.load();
  c.pod_sets_received = pod_sets_received_.load();
  c.nodes_with_pod_set = nodes_with_set_.load();
  c.templates_received = templates_received_.load();
  c.pods_running = pods_running_.load();
  c.pods_failing = pods_failing_.load();
  c.pod_reports_sent = pod_reports_sent_.load();
  return c;
}

bool EdgeSimulator::AllRegistered() const { return registered_.load() >= options_.nodes; }

double EdgeSimulator::RegisterSeconds() const {
  int64_t at = registered_at_ms_.load();
  return at < 0 ? -1 : static_cast<double>(at) / 1000.0;
}

std::string_view EdgeSimulator::NameOf(uint32_t i) const {
  return std::string_view(names_).substr(name_offset_[i], name_offset_[i + 1] - name_offset_[i]);
}

void EdgeSimulator::Count(NodePhase before, bool was_registered, const NodeState& state) {
  auto gauge = [this](NodePhase phase) -> std::atomic<uint64_t>* {
    switch (phase) {
      case NodePhase::kAccepted:
        return &accepted_;
      case NodePhase::kAwaitingAck:
        return &pending_;
      case NodePhase::kRejected:
      case NodePhase::kTombstoned:
      case NodePhase::kDeregistered:
        return &rejected_;
      case NodePhase::kUnregistered:
        return nullptr;
    }
    return nullptr;
  };
  if (std::atomic<uint64_t>* left = gauge(before)) left->fetch_sub(1, std::memory_order_relaxed);
  if (std::atomic<uint64_t>* entered = gauge(state.phase)) {
    entered->fetch_add(1, std::memory_order_relaxed);
  }
  if (state.accepted_once && !was_registered) {
    uint64_t registered = registered_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (registered == options_.nodes) {
      absl::Duration took = absl::Now() - start_time_;
      registered_at_ms_.store(absl::ToInt64Milliseconds(took));
      KOLE_LOG(Info, "Every simulated node is registered", "nodes", options_.nodes, "seconds",
               absl::ToDoubleSeconds(took));
    }
  }
}

namespace {

// Pod timings are kept in tenths of a second of the steady clock.
uint32_t Tenths(int64_t ms) { return static_cast<uint32_t>(ms / 100); }

// Whether the pod set `revision` crash-loops on node `i`: fixed per node and
// revision, so a resend or a restart of the simulator decides the same way.
bool SetFails(uint32_t i, uint32_t revision, double rate) {
  if (rate <= 0) return false;
  uint64_t x = (uint64_t{i} << 32 | revision) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<double>(x >> 11) * 0x1.0p-53 < rate;
}

}  // namespace

void EdgeSimulator::ApplyPods(Connection& conn, const protocol::NodePods& set, int64_t now) {
  int64_t found = FindNode(conn, set.node);
  if (found < 0) return;
  uint32_t i = static_cast<uint32_t>(found);
  PodState& p = pods_[i];
  uint32_t revision = 0;
  if (!set.pod_revision.empty()) {
    auto [end, err] = std::from_chars(
        set.pod_revision.data(), set.pod_revision.data() + set.pod_revision.size(), revision, 16);
    if (err != std::errc() || end != set.pod_revision.data() + set.pod_revision.size()) return;
  }
  pod_sets_received_.fetch_add(1, std::memory_order_relaxed);
  if (!p.has_set) {
    p.has_set = 1;
    nodes_with_set_.fetch_add(1, std::memory_order_relaxed);
  }
  if (revision != 0 && !conn.sets.contains(revision)) {
    std::vector<protocol::PodRef> refs = set.pods;
    for (protocol::PodRef& ref : refs) ref.name.clear();  // Per node; not needed.
    conn.sets.emplace(revision, std::move(refs));
  }
  if (revision == p.desired) return;  // A resend of what the node has.
  p.desired = revision;
  if (revision == 0) {
    // Every pod removed: stop at once.
    if (p.running != 0) pods_running_.fetch_sub(1, std::memory_order_relaxed);
    if (p.failing) pods_failing_.fetch_sub(1, std::memory_order_relaxed);
    p = PodState{.has_set = 1};
    return;
  }
  int64_t delay = absl::ToInt64Milliseconds(options_.pod_start_delay);
  int64_t spread =
      delay / 2 + static_cast<int64_t>(conn.rng.Below(static_cast<uint64_t>(delay) + 1));
  p.due_s = std::max<uint32_t>(1, Tenths(now + spread));
}

void EdgeSimulator::AdvancePods(Connection& conn, uint32_t i, int64_t now,
                                protocol::PodStatusMessage* out) {
  PodState& p = pods_[i];
  uint32_t tenths = Tenths(now);
  if (tenths < p.due_s) return;
  auto set = conn.sets.find(p.desired);
  if (p.desired != p.running) {
    // A device starts a set once it holds every template it names.
    if (set != conn.sets.end()) {
      for (const protocol::PodRef& ref : set->second) {
        if (!conn.templates.contains(
                fmt::format("{}/{}/{}", ref.namespace_, ref.workload, ref.revision))) {
          p.due_s = tenths + 10;
          return;
        }
      }
    }
    if (p.running == 0) pods_running_.fetch_add(1, std::memory_order_relaxed);
    p.running = p.desired;
    bool fails = SetFails(i, p.desired, options_.pod_failure_rate);
    if (fails != static_cast<bool>(p.failing)) {
      if (fails) {
        pods_failing_.fetch_add(1, std::memory_order_relaxed);
      } else {
        pods_failing_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    p.failing = fails ? 1 : 0;
    p.restarts = 0;
    p.due_s = fails ? tenths + 1 : 0;
    return;
  }
  if (!p.failing || set == conn.sets.end()) {
    p.due_s = 0;
    return;
  }
  // A crash loop: another restart, reported; the next one later.
  ++p.restarts;
  protocol::NodePodStatus report;
  report.node = std::string(NameOf(i));
  for (const protocol::PodRef& ref : set->second) {
    report.pods.push_back({.namespace_ = ref.namespace_,
                           .workload = ref.workload,
                           .revision = ref.revision,
                           .phase = "Running",
                           .ready = 0,
                           .restarts = p.restarts,
                           .last_restart = static_cast<uint64_t>(absl::ToUnixSeconds(absl::Now())),
                           .reason = "CrashLoopBackOff"});
  }
  out->nodes.push_back(std::move(report));
  p.due_s = tenths + static_cast<uint32_t>(std::max<int64_t>(
                         1, absl::ToInt64Milliseconds(options_.crash_report_interval) / 100));
}

void EdgeSimulator::SendPodReports(Worker& worker, Connection& conn) {
  std::vector<protocol::NodePodStatus>& nodes = worker.reports.nodes;
  if (nodes.empty()) return;
  const protocol::TopicScheme topics(options_.topic_prefix);
  std::string topic = topics.Build(conn.sender, conn.name, Channel::kPodStatus);
  bool single = conn.sender == Sender::kNode;
  size_t step = single ? 1 : protocol::kMaxBatchNodes;
  for (size_t from = 0; from < nodes.size(); from += step) {
    protocol::PodStatusMessage message;
    for (size_t k = from; k < std::min(nodes.size(), from + step); ++k) {
      message.nodes.push_back(std::move(nodes[k]));
    }
    worker.payload.clear();
    protocol::EncodePodStatus(message, single, worker.payload);
    Publish(worker, conn, topic, worker.payload, 1);
    uint64_t entries = 0;
    for (const auto& n : message.nodes) entries += n.pods.size();
    pod_reports_sent_.fetch_add(entries, std::memory_order_relaxed);
  }
  nodes.clear();
}

int64_t EdgeSimulator::FindNode(const Connection& conn, std::string_view node) const {
  if (conn.sender == Sender::kNode) {
    return node.empty() || node == conn.name ? static_cast<int64_t>(conn.begin) : -1;
  }
  auto it = std::lower_bound(conn.by_name.begin(), conn.by_name.end(), node,
                             [this](uint32_t a, std::string_view b) { return NameOf(a) < b; });
  if (it == conn.by_name.end() || NameOf(*it) != node) return -1;
  return *it;
}

void EdgeSimulator::ApplyAck(Connection& conn, uint32_t i, const protocol::Ack& ack, int64_t now) {
  NodeState& state = states_[i];
  NodePhase before = state.phase;
  bool was_registered = state.accepted_once;
  AckOutcome outcome = protocol_.OnAck(&state, ack, now, conn.rng);
  if (outcome == AckOutcome::kIgnored) return;
  if (outcome == AckOutcome::kRejected || outcome == AckOutcome::kTombstoned) {
    KOLE_LOG_EVERY_N(Warning, 1000, "Registration rejected", "node", NameOf(i), "reason",
                     ack.reason, "message", ack.message);
  }
  Count(before, was_registered, state);
}

void EdgeSimulator::HandleInbox(Worker& worker, Connection& conn, int64_t now) {
  std::vector<Connection::Received> inbox;
  {
    absl::MutexLock lock(&conn.mu);
    inbox.swap(conn.inbox);
  }
  for (auto& [channel, workload_template, payload] : inbox) {
    if (workload_template) {
      if (protocol::DecodeWorkloadTemplate(payload, &worker.workload) ==
          protocol::DecodeError::kOk) {
        conn.templates.insert(fmt::format("{}/{}/{}", worker.workload.namespace_,
                                          worker.workload.workload, worker.workload.revision));
        templates_received_.fetch_add(1, std::memory_order_relaxed);
      }
      // Else the empty payload that clears a retained template: nothing to do.
      continue;
    }
    switch (channel) {
      case Channel::kAck:
        if (protocol::DecodeAck(payload, &worker.acks) != protocol::DecodeError::kOk) {
          KOLE_LOG_EVERY_N(Warning, 1000, "Undecodable acknowledgement", "connection", conn.name);
          break;
        }
        acks_received_.fetch_add(worker.acks.acks.size(), std::memory_order_relaxed);
        for (const protocol::Ack& ack : worker.acks.acks) {
          int64_t i = FindNode(conn, ack.node);
          if (i >= 0) ApplyAck(conn, static_cast<uint32_t>(i), ack, now);
        }
        break;
      case Channel::kControl:
        if (protocol::DecodeControl(payload, &worker.control) != protocol::DecodeError::kOk) {
          KOLE_LOG_EVERY_N(Warning, 1000, "Undecodable control message", "connection", conn.name);
          break;
        }
        for (const std::string& node : worker.control.nodes) {
          int64_t i = FindNode(conn, node);
          if (i < 0) continue;
          NodeState& state = states_[i];
          NodePhase before = state.phase;
          if (worker.control.action == protocol::ControlAction::kResync) {
            protocol_.OnResync(&state, now);
            resyncs_.fetch_add(1, std::memory_order_relaxed);
          } else {
            protocol_.OnDeregister(&state);
            KOLE_LOG_EVERY_N(Info, 1000, "Node deregistered by the cloud", "node", node, "reason",
                             worker.control.reason);
          }
          Count(before, state.accepted_once, state);
        }
        break;
      case Channel::kPods:
        if (protocol::DecodePods(protocol::Topic{conn.sender, conn.name, Channel::kPods}, payload,
                                 &worker.pods) != protocol::DecodeError::kOk) {
          KOLE_LOG_EVERY_N(Warning, 1000, "Undecodable pod set", "connection", conn.name);
          break;
        }
        for (const protocol::NodePods& node : worker.pods.nodes) ApplyPods(conn, node, now);
        break;
      default:
        break;
    }
  }
}

bool EdgeSimulator::PublishRaw(Connection& conn, const std::string& topic, std::string_view payload,
                               int qos) {
  if (!conn.client->Publish(topic, payload, qos).ok()) {
    publish_failures_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  messages_sent_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void EdgeSimulator::Publish(Worker& worker, Connection& conn, const std::string& topic,
                            std::string& payload, int qos) {
  if (!options_.faults.any()) {
    PublishRaw(conn, topic, payload, qos);
    return;
  }
  FaultDecision d = conn.faults->Decide();
  if (d.malformed) {
    conn.faults->MakeMalformed(d.malformed_kind, payload, &worker.spare);
    if (PublishRaw(conn, topic, worker.spare, qos)) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (d.drop) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (d.hold && !conn.holding) {
    // Reordering: this one goes out after the connection's next message.
    conn.holding = true;
    conn.held_topic = &topic;
    conn.held_qos = qos;
    conn.held_payload.swap(payload);
    reordered_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  PublishRaw(conn, topic, payload, qos);
  if (d.duplicate && PublishRaw(conn, topic, payload, qos)) {
    duplicated_.fetch_add(1, std::memory_order_relaxed);
  }
  ReleaseHeld(conn);
}

void EdgeSimulator::ReleaseHeld(Connection& conn) {
  if (!conn.holding) return;
  conn.holding = false;
  PublishRaw(conn, *conn.held_topic, conn.held_payload, conn.held_qos);
}

void FillSimulatedRegistration(const FleetGenerator& fleet, bool send_user_labels, uint64_t index,
                               uint32_t boot, NodeSpec* spec, protocol::Registration* r) {
  fleet.FillNode(index, boot, spec);

  // Swaps rather than copies: both sides keep their buffers for the next node.
  r->node.swap(spec->name);
  r->labels.clear();
  for (auto& label : spec->labels) {
    if (send_user_labels || IsDeviceOwnedLabel(label.first)) r->labels.push_back(std::move(label));
  }
  r->capacity.swap(spec->capacity);
  r->allocatable.swap(spec->allocatable);
  r->addresses.resize(spec->addresses.size());
  for (size_t a = 0; a < spec->addresses.size(); ++a) {
    r->addresses[a].type.swap(spec->addresses[a].type);
    r->addresses[a].address.swap(spec->addresses[a].address);
  }
  protocol::NodeInfo& info = r->node_info;
  info.machine_id.swap(spec->machine_id);
  info.system_uuid.swap(spec->system_uuid);
  info.boot_id.swap(spec->boot_id);
  info.kernel_version.swap(spec->kernel_version);
  info.os_image.swap(spec->os_image);
  info.container_runtime_version.swap(spec->container_runtime_version);
  info.agent_version.swap(spec->agent_version);
  info.operating_system.swap(spec->operating_system);
  info.architecture.swap(spec->architecture);
  if (r->conditions.size() != 3) {
    r->conditions = {
        {"MemoryPressure", "False", "AgentHasSufficientMemory", "agent has sufficient memory"},
        {"DiskPressure", "False", "AgentHasNoDiskPressure", "agent has no disk pressure"},
        {"PIDPressure", "False", "AgentHasSufficientPID", "agent has sufficient PID"},
    };
  }
}

void EdgeSimulator::FillRegistration(Worker& worker, uint32_t i, protocol::Registration* r) {
  const NodeState& state = states_[i];
  FillSimulatedRegistration(fleet_, options_.send_user_labels, options_.first_index + i, state.boot,
                            &worker.spec, r);
  r->epoch = state.epoch;
  r->sequence = state.sequence;
}

void EdgeSimulator::SendRegistrations(Worker& worker, Connection& conn, size_t from, size_t to) {
  protocol::RegisterMessage& message = worker.registers;
  message.id = conn.next_message_id++;
  message.nodes.resize(to - from);
  for (size_t k = from; k < to; ++k) {
    FillRegistration(worker, worker.register_nodes[k], &message.nodes[k - from]);
  }
  worker.payload.clear();
  protocol::EncodeRegister(message, conn.sender == Sender::kNode, worker.payload);

  // The batch size is estimated from the last payload; halve when the
  // estimate was wrong and the payload passed the protocol's limit.
  if (worker.payload.size() > protocol::kMaxPayloadBytes && to - from > 1) {
    size_t middle = from + (to - from) / 2;
    SendRegistrations(worker, conn, from, middle);
    SendRegistrations(worker, conn, middle, to);
    return;
  }
  worker.bytes_per_registration =
      static_cast<double>(worker.payload.size()) / static_cast<double>(to - from);
  Publish(worker, conn, conn.register_topic, worker.payload, 1);
}

void EdgeSimulator::SendHeartbeats(Worker& worker, Connection& conn) {
  if (worker.beats.empty()) return;
  worker.payload.clear();
  protocol::EncodeHeartbeats(worker.beats, conn.sender == Sender::kNode, worker.payload);
  Publish(worker, conn, conn.heartbeat_topic, worker.payload, 0);
  worker.beats.clear();
}

void EdgeSimulator::Flush(Worker& worker, Connection& conn, int64_t now) {
  worker.register_nodes.clear();
  worker.beats.clear();
  const bool single = conn.sender == Sender::kNode;
  const size_t register_cap = std::clamp<size_t>(
      static_cast<size_t>(kRegisterBudgetBytes / worker.bytes_per_registration), 1, options_.batch);
  uint64_t heartbeats = 0;
  uint64_t registrations = 0;
  uint64_t retried = 0;

  worker.revisions.resize(options_.batch + 1);
  worker.reports.nodes.clear();
  for (uint32_t i = conn.begin; i < conn.end; ++i) {
    NodeState& state = states_[i];
    if (pods_[i].due_s != 0) AdvancePods(conn, i, now, &worker.reports);
    if (!NodeProtocol::Due(state, now)) continue;

    // A simulated restart replaces the heartbeat with a new registration.
    if (state.phase == NodePhase::kAccepted && conn.faults->Restart()) {
      NodePhase before = state.phase;
      protocol_.Restart(&state, now);
      Count(before, true, state);
      restarts_.fetch_add(1, std::memory_order_relaxed);
    }

    if (state.phase == NodePhase::kAccepted) {
      uint32_t sequence = protocol_.SendHeartbeat(&state, now);
      std::string_view revision;
      if (uint32_t running = pods_[i].running; running != 0) {
        std::array<char, 8>& text = worker.revisions[worker.beats.size()];
        fmt::format_to_n(text.data(), text.size(), "{:08x}", running);
        revision = std::string_view(text.data(), text.size());
      }
      worker.beats.push_back(protocol::HeartbeatEntry{
          .node = NameOf(i), .epoch = state.epoch, .sequence = sequence, .pod_revision = revision});
      ++heartbeats;
      if (single || worker.beats.size() >= options_.batch) SendHeartbeats(worker, conn);
      continue;
    }

    // A registration, within the pending cap and the rate.
    bool fresh = state.phase != NodePhase::kAwaitingAck;
    if (fresh && pending_.load(std::memory_order_relaxed) >= options_.max_pending_registrations) {
      continue;
    }
    if (worker.rate > 0) {
      if (worker.tokens < 1) continue;
      worker.tokens -= 1;
    }
    if (state.attempts > 0) ++retried;
    NodePhase before = state.phase;
    protocol_.SendRegistration(&state, now, conn.rng);
    Count(before, state.accepted_once, state);
    worker.register_nodes.push_back(i);
    ++registrations;
    if (single || worker.register_nodes.size() >= register_cap) {
      SendRegistrations(worker, conn, 0, worker.register_nodes.size());
      worker.register_nodes.clear();
    }
  }
  if (!worker.register_nodes.empty()) {
    SendRegistrations(worker, conn, 0, worker.register_nodes.size());
  }
  SendHeartbeats(worker, conn);
  SendPodReports(worker, conn);
  ReleaseHeld(conn);
  registrations_sent_.fetch_add(registrations, std::memory_order_relaxed);
  registrations_retried_.fetch_add(retried, std::memory_order_relaxed);
  heartbeats_sent_.fetch_add(heartbeats, std::memory_order_relaxed);

  if (options_.assume_accepted && registrations > 0) {
    // No cloud answers: accept what was just sent.
    protocol::Ack accepted;
    accepted.result = protocol::AckResult::kAccepted;
    for (uint32_t i = conn.begin; i < conn.end; ++i) {
      if (states_[i].phase != NodePhase::kAwaitingAck) continue;
      accepted.epoch = states_[i].epoch;
      ApplyAck(conn, i, accepted, now);
    }
  }
}

void EdgeSimulator::RunWorker(Worker* worker) {
  const int64_t flush_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.flush_interval));
  const int64_t tick_ms = std::min<int64_t>(flush_ms, 20);
  size_t offset = 0;
  while (true) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stopping_) return;
    }
    int64_t now = NowMs();
    if (worker->rate > 0) {
      // The burst is a flush interval's worth: connections spend tokens only
      // when they flush.
      worker->tokens =
          std::min(worker->tokens + worker->rate * (now - worker->last_refill_ms) / 1000.0,
                   std::max(1.0, worker->rate * (flush_ms + tick_ms) / 1000.0));
    }
    worker->last_refill_ms = now;
    int64_t next = now + tick_ms;

    // Inboxes every tick, sends at each connection's flush time. Rotating
    // the first connection keeps a capped rate fair across them.
    size_t count = worker->connections.size();
    for (size_t j = 0; j < count; ++j) {
      Connection& conn = *worker->connections[(offset + j) % count];
      HandleInbox(*worker, conn, now);
      if (conn.reconnected.exchange(false, std::memory_order_acq_rel)) {
        for (uint32_t i = conn.begin; i < conn.end; ++i) {
          protocol_.OnReconnect(&states_[i], now, conn.rng);
        }
        // Soon, but not every connection in the same tick: they all come
        // back together after a broker restart.
        conn.next_flush_ms =
            now + static_cast<int64_t>(conn.rng.Below(std::min<int64_t>(flush_ms, 200)));
      }
      if (!conn.client->connected() || now < conn.next_flush_ms) continue;
      conn.next_flush_ms = now + flush_ms;
      Flush(*worker, conn, now);
    }
    offset = count == 0 ? 0 : (offset + 1) % count;

    int64_t wait = std::max<int64_t>(1, next - NowMs());
    absl::MutexLock lock(&stop_mu_);
    stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(wait));
  }
}

}  // namespace kole::edge
