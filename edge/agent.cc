#include "edge/agent.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string_view>

#include "common/log.h"
#include "edge/agent_state.h"

namespace kole::edge {
namespace {

// How often the pods are polled (the process runtime's restarts and
// reaping are only as fine as this).
constexpr int64_t kPodPollMs = 1000;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Registrations compare equal when only epoch and sequence differ.
bool SameContent(protocol::Registration a, const protocol::Registration& b) {
  a.epoch = b.epoch;
  a.sequence = b.sequence;
  return a == b;
}

}  // namespace

std::string AgentVersion() { return "v" KOLE_VERSION "-kole"; }

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options, FactSource source) {
  absl::StatusOr<HostFacts> facts = ReadHostFacts(source);
  if (!facts.ok()) return facts.status();
  absl::StatusOr<std::string> node = ResolveNodeName(options, facts->hostname);
  if (!node.ok()) return node.status();
  uint32_t epoch = 0;
  if (!options.cloud_epoch) {
    absl::StatusOr<uint32_t> next = NextEpoch(options.state_dir);
    if (!next.ok()) return next.status();
    epoch = *next;
  }
  std::unique_ptr<Agent> agent(
      new Agent(std::move(options), std::move(source), *node, *std::move(facts), epoch));

  protocol::MqttClientOptions mqtt{
      .broker = agent->options_.broker,
      .client_id = agent->node_,
      .username = agent->options_.username.empty() ? agent->node_ : agent->options_.username,
      .password = agent->options_.password,
      .ca_file = agent->options_.ca_file,
      .cert_file = agent->options_.cert_file,
      .key_file = agent->options_.key_file,
      .verify_hostname = agent->options_.verify_hostname,
      .clean_session = false,
      .will = protocol::MqttWill{.topic = agent->will_topic_, .payload = agent->will_payload_},
  };
  Agent* raw = agent.get();
  absl::StatusOr<std::unique_ptr<protocol::MqttClient>> client = protocol::MqttClient::Create(
      std::move(mqtt),
      [raw](const protocol::MqttMessage& message) {
        if (message.topic.starts_with(raw->workload_prefix_)) {
          absl::MutexLock lock(&raw->mu_);
          raw->inbox_.push_back(Inbound{.workload_topic = std::string(message.topic),
                                        .payload = std::string(message.payload)});
          return;
        }
        std::optional<protocol::Topic> topic = raw->topics_.Parse(message.topic);
        if (!topic || topic->id != raw->node_ ||
            (topic->channel != protocol::Channel::kAck &&
             topic->channel != protocol::Channel::kControl &&
             topic->channel != protocol::Channel::kPods)) {
          return;
        }
        absl::MutexLock lock(&raw->mu_);
        raw->inbox_.push_back(
            Inbound{.channel = topic->channel, .payload = std::string(message.payload)});
      },
      [raw](bool connected) {
        if (!connected) return;
        absl::MutexLock lock(&raw->mu_);
        raw->reconnected_ = true;
      });
  if (!client.ok()) return client.status();
  agent->client_ = *std::move(client);
  absl::Status subscribed = agent->client_->Subscribe(
      {agent->topics_.Build(protocol::Sender::kNode, agent->node_, protocol::Channel::kAck),
       agent->topics_.Build(protocol::Sender::kNode, agent->node_, protocol::Channel::kControl),
       agent->pods_topic_},
      1);
  if (!subscribed.ok()) return subscribed;
  return agent;
}

Agent::Agent(AgentOptions options, FactSource source, std::string node, HostFacts facts,
             uint32_t epoch)
    : options_(std::move(options)),
      source_(std::move(source)),
      node_(std::move(node)),
      topics_(options_.topic_prefix),
      protocol_(options_.heartbeat_interval, options_.retry),
      start_epoch_(epoch),
      facts_(std::move(facts)),
      rng_(std::hash<std::string>{}(node_) ^ static_cast<uint64_t>(SteadyMs())) {
  register_topic_ = topics_.Build(protocol::Sender::kNode, node_, protocol::Channel::kRegister);
  heartbeat_topic_ = topics_.Build(protocol::Sender::kNode, node_, protocol::Channel::kHeartbeat);
  will_topic_ = topics_.Build(protocol::Sender::kNode, node_, protocol::Channel::kWill);
  pods_topic_ = topics_.Build(protocol::Sender::kNode, node_, protocol::Channel::kPods);
  podstatus_topic_ = topics_.Build(protocol::Sender::kNode, node_, protocol::Channel::kPodStatus);
  workload_prefix_ = topics_.WorkloadFilter();
  workload_prefix_.pop_back();  // The filter without its '#'.
  protocol::EncodeWill(protocol::Will{.epoch = epoch}, will_payload_);
  registration_ = BuildRegistration(options_, node_, facts_, AgentVersion());
  state_.epoch = epoch;

  PodSetRunnerOptions pods{.node = node_, .runtime = options_.runtime};
  if (options_.runtime == PodRuntimeKind::kProcess) {
    pods.process = ProcessRuntimeOptions{.work_dir = options_.state_dir + "/pods",
                                         .initial_backoff = options_.pod_restart_backoff,
                                         .max_backoff = options_.pod_restart_max_backoff,
                                         .stop_grace = options_.pod_stop_grace_period};
  }
  pods_ = std::make_unique<PodSetRunner>(std::move(pods));
}

Agent::~Agent() {
  Stop();
  if (client_) client_->Stop();
}

NodeState Agent::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void Agent::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

void Agent::Run() {
  KOLE_LOG(Info, "Starting kole-agent", "node", node_, "broker", options_.broker, "epoch",
           start_epoch_, "cloudEpoch", options_.cloud_epoch, "bootID", facts_.boot_id, "runtime",
           PodRuntimeName(options_.runtime), "version", AgentVersion());
  client_->Start();
  facts_due_ms_ = SteadyMs() + absl::ToInt64Milliseconds(options_.facts_interval);
  while (true) {
    int64_t now = SteadyMs();
    HandleInbox(now);
    if (now >= facts_due_ms_) {
      RefreshFacts(now);
      facts_due_ms_ = now + absl::ToInt64Milliseconds(options_.facts_interval);
    }
    if (now >= pods_due_ms_) {
      PollPods();
      pods_due_ms_ = now + kPodPollMs;
    }
    if (client_->connected()) SendDue(now);

    // Sleep until something is due, a message arrives or Stop().
    int64_t due;
    {
      absl::MutexLock lock(&mu_);
      due = std::min({state_.due_ms, facts_due_ms_, pods_due_ms_});
    }
    int64_t wait = std::clamp<int64_t>(due - SteadyMs(), 1, 1000);
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || reconnected_ || !inbox_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&woken), absl::Milliseconds(wait));
    if (stop_) break;
  }

  // A clean goodbye: the will payload, then a disconnect that flushes it.
  if (client_->connected()) {
    absl::Status sent = client_->Publish(will_topic_, will_payload_, 1);
    if (!sent.ok()) KOLE_LOG(Warning, "Could not send the goodbye", "node", node_, "err", sent);
  }
  client_->Stop(absl::Seconds(2));
  pods_.reset();
  KOLE_LOG(Info, "kole-agent stopped", "node", node_);
}

void Agent::HandleInbox(int64_t now) {
  std::vector<Inbound> inbox;
  bool reconnected;
  {
    absl::MutexLock lock(&mu_);
    inbox.swap(inbox_);
    reconnected = reconnected_;
    reconnected_ = false;
    if (reconnected) protocol_.OnReconnect(&state_, now, rng_);
  }
  for (const auto& [channel, workload_topic, payload] : inbox) {
    if (!workload_topic.empty()) {
      HandleTemplate(workload_topic, payload);
      continue;
    }
    if (channel == protocol::Channel::kPods) {
      HandlePods(payload);
      continue;
    }
    if (channel == protocol::Channel::kAck) {
      protocol::AckMessage message;
      if (protocol::DecodeError e = protocol::DecodeAck(payload, &message);
          e != protocol::DecodeError::kOk) {
        KOLE_LOG_EVERY_N(Warning, 100, "Dropped an undecodable acknowledgement", "node", node_,
                         "reason", protocol::DecodeErrorName(e));
        continue;
      }
      for (const protocol::Ack& ack : message.acks) {
        if (ack.node.empty() || ack.node == node_) HandleAck(ack, now);
      }
      continue;
    }
    protocol::ControlMessage control;
    if (protocol::DecodeError e = protocol::DecodeControl(payload, &control);
        e != protocol::DecodeError::kOk) {
      KOLE_LOG_EVERY_N(Warning, 100, "Dropped an undecodable control message", "node", node_,
                       "reason", protocol::DecodeErrorName(e));
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (control.action == protocol::ControlAction::kResync) {
      KOLE_VLOG(2, "Cloud asked for a resync", "node", node_, "reason", control.reason);
      protocol_.OnResync(&state_, now);
    } else {
      KOLE_LOG(Warning, "Node deregistered by the cloud; sending nothing more", "node", node_,
               "reason", control.reason);
      protocol_.OnDeregister(&state_);
    }
  }
}

void Agent::HandleAck(const protocol::Ack& ack, int64_t now) {
  AckOutcome outcome;
  uint32_t epoch;
  {
    absl::MutexLock lock(&mu_);
    outcome = protocol_.OnAck(&state_, ack, now, rng_);
    epoch = state_.epoch;
  }
  switch (outcome) {
    case AckOutcome::kAccepted:
      KOLE_LOG(Info, "Registration accepted", "node", node_, "epoch", epoch, "resourceVersion",
               ack.resource_version);
      // The cloud may know a higher epoch than the state file (a restored
      // device): keep it, so the next start is newer still.
      if (!options_.cloud_epoch && epoch > start_epoch_) {
        if (absl::Status saved = SaveEpoch(options_.state_dir, epoch); !saved.ok()) {
          KOLE_LOG(Error, "Could not store the epoch", "node", node_, "err", saved);
        }
      }
      break;
    case AckOutcome::kRetry:
      KOLE_VLOG(1, "Cloud asked to retry the registration later", "node", node_, "reason",
                ack.reason, "message", ack.message);
      break;
    case AckOutcome::kRejected:
      KOLE_LOG(Error, "Registration rejected; not retrying", "node", node_, "reason", ack.reason,
               "message", ack.message);
      break;
    case AckOutcome::kTombstoned:
      if (last_outcome_ != AckOutcome::kTombstoned) {
        KOLE_LOG(Warning, "Node was deleted in the cloud; retrying rarely until re-admitted",
                 "node", node_, "retryEvery", absl::FormatDuration(options_.retry.tombstone_retry));
      }
      break;
    case AckOutcome::kIgnored:
      KOLE_VLOG(4, "Ignored an acknowledgement", "node", node_, "ackEpoch", ack.epoch);
      return;
  }
  last_outcome_ = outcome;
}

void Agent::HandlePods(const std::string& payload) {
  protocol::PodsMessage message;
  if (protocol::DecodeError e = protocol::DecodePods(
          protocol::Topic{protocol::Sender::kNode, node_, protocol::Channel::kPods}, payload,
          &message);
      e != protocol::DecodeError::kOk) {
    KOLE_LOG_EVERY_N(Warning, 100, "Dropped an undecodable pod set", "node", node_, "reason",
                     protocol::DecodeErrorName(e));
    return;
  }
  for (const protocol::NodePods& set : message.nodes) pods_->SetDesired(set);
  SubscribeWorkloads();
  pods_due_ms_ = 0;  // Apply at once if the templates are there.
}

void Agent::HandleTemplate(const std::string& topic, const std::string& payload) {
  // <prefix>/workloads/<namespace>/<workload>/<revision>
  std::string_view rest = std::string_view(topic).substr(workload_prefix_.size());
  size_t first = rest.find('/');
  size_t second = first == std::string_view::npos ? first : rest.find('/', first + 1);
  if (first == 0 || second == std::string_view::npos || second == first + 1 ||
      second + 1 == rest.size() || rest.find('/', second + 1) != std::string_view::npos) {
    KOLE_LOG_EVERY_N(Warning, 100, "Ignored a message on a malformed workload topic", "node", node_,
                     "topic", topic);
    return;
  }
  pods_->OnTemplate(rest.substr(0, first), rest.substr(first + 1, second - first - 1),
                    rest.substr(second + 1), payload);
  pods_due_ms_ = 0;
}

void Agent::SubscribeWorkloads() {
  std::vector<std::string> filters;
  for (auto& workload : pods_->Workloads()) {
    if (workload_subscriptions_.contains(workload)) continue;
    filters.push_back(topics_.WorkloadTopic(workload.first, workload.second, "+"));
    workload_subscriptions_.insert(std::move(workload));
  }
  if (filters.empty()) return;
  KOLE_VLOG(2, "Subscribing to workload templates", "node", node_, "filters", filters.size(),
            "first", filters.front());
  if (absl::Status subscribed = client_->Subscribe(filters, 1); !subscribed.ok()) {
    KOLE_LOG(Error, "Could not subscribe to workload templates", "node", node_, "err", subscribed);
  }
}

void Agent::PollPods() {
  std::vector<protocol::PodStatus> due = pods_->Poll(absl::Now());
  if (due.empty()) return;

  // The cloud takes reports only from a registered node; until then (and
  // while disconnected) they wait for a later poll.
  {
    absl::MutexLock lock(&mu_);
    if (state_.phase != NodePhase::kAccepted) return;
  }
  if (!client_->connected()) return;
  protocol::PodStatusMessage message;
  message.nodes.push_back(protocol::NodePodStatus{.node = node_, .pods = due});
  std::string payload;
  protocol::EncodePodStatus(message, /*on_node_topic=*/true, payload);
  if (absl::Status sent = client_->Publish(podstatus_topic_, payload, 1); !sent.ok()) {
    KOLE_LOG_EVERY_N(Warning, 100, "Publish failed", "node", node_, "err", sent);
    return;
  }
  pods_->ReportsSent(due);
}

void Agent::RefreshFacts(int64_t now) {
  absl::StatusOr<HostFacts> facts = ReadHostFacts(source_);
  if (!facts.ok()) {
    KOLE_LOG_EVERY_N(Warning, 10, "Could not read the host facts again", "node", node_, "err",
                     facts.status());
    return;
  }
  protocol::Registration fresh = BuildRegistration(options_, node_, *facts, AgentVersion());
  if (SameContent(fresh, registration_)) return;
  KOLE_LOG(Info, "Host facts changed; registering again", "node", node_);
  facts_ = *std::move(facts);
  registration_ = std::move(fresh);
  absl::MutexLock lock(&mu_);
  protocol_.OnResync(&state_, now);
}

void Agent::SendDue(int64_t now) {
  std::string payload;
  std::string* topic;
  int qos;
  {
    absl::MutexLock lock(&mu_);
    if (!NodeProtocol::Due(state_, now)) return;
    if (NodeProtocol::WantsRegistration(state_)) {
      uint32_t sequence = protocol_.SendRegistration(&state_, now, rng_);
      registration_.epoch = state_.epoch;
      registration_.sequence = sequence;
      protocol::RegisterMessage message{.id = next_message_id_++, .nodes = {registration_}};
      protocol::EncodeRegister(message, /*on_node_topic=*/true, payload);
      topic = &register_topic_;
      qos = 1;
      KOLE_VLOG(2, "Sending registration", "node", node_, "epoch", state_.epoch, "seq", sequence,
                "attempt", static_cast<int>(state_.attempts));
    } else {
      uint32_t sequence = protocol_.SendHeartbeat(&state_, now);
      std::string pod_revision = pods_->HeartbeatRevision(absl::Now());
      protocol::HeartbeatEntry beat{
          .node = node_, .epoch = state_.epoch, .sequence = sequence, .pod_revision = pod_revision};
      protocol::EncodeHeartbeats({&beat, 1}, /*on_node_topic=*/true, payload);
      topic = &heartbeat_topic_;
      qos = 0;
      KOLE_VLOG(5, "Sending heartbeat", "node", node_, "epoch", state_.epoch, "seq", sequence);
    }
  }
  absl::Status sent = client_->Publish(*topic, payload, qos);
  if (!sent.ok()) {
    KOLE_LOG_EVERY_N(Warning, 100, "Publish failed", "node", node_, "err", sent);
  }
}

}  // namespace kole::edge
