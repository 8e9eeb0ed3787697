#pragma once

// Agent: kole-agent's engine. One node, one MQTT node connection
// (client id and user name = node name, persistent session, last will on
// <prefix>/nodes/<node>/will), the NodeProtocol rules shared with the
// simulator: register until acknowledged, then heartbeat; resync and
// deregistration from the cloud; the epoch persisted in the state directory
// (or assigned by the cloud with --cloud-epoch). Facts are read again every
// facts_interval and a change is sent as a new registration.
//
// Pods: the node's desired pod set (<prefix>/nodes/<node>/pods) and the
// retained templates it names go to a PodSetRunner, polled about once a
// second; its podRev rides on the heartbeats and its reports go out on
// <prefix>/nodes/<node>/podstatus (QoS 1) once the registration is accepted.
// The agent subscribes to <prefix>/workloads/<ns>/<workload>/+ for each
// workload a set names, the first time one does. MqttClient cannot
// unsubscribe, so those subscriptions stay for the rest of the run (one per
// workload ever run, not per revision).
//
//   absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(options, source);
//   std::thread run([&] { (*agent)->Run(); });
//   ...
//   (*agent)->Stop();  // Sends the will payload itself, disconnects.
//   run.join();
//
// Thread safety: Run() on one thread; Stop() and the accessors from any.

#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "edge/agent_config.h"
#include "edge/host_facts.h"
#include "edge/node_state.h"
#include "edge/pod_set_runner.h"
#include "mqtt-bridge/mqtt_client.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

class Agent {
 public:
  // Reads the facts, resolves the node name, takes the next epoch (durable
  // before anything is sent) and creates the MQTT client, unconnected.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options, FactSource source);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Connects and runs until Stop(). On the way out it publishes the will
  // payload (the broker sends the will only when a connection is lost, and
  // a clean stop should mark the node disconnected at once), disconnects,
  // and stops its pods (with --runtime=process, up to the stop grace period).
  void Run();
  void Stop();

  const std::string& node_name() const { return node_; }
  // The epoch this run started with (0 with --cloud-epoch).
  uint32_t start_epoch() const { return start_epoch_; }
  NodeState state() const;

 private:
  Agent(AgentOptions options, FactSource source, std::string node, HostFacts facts, uint32_t epoch);
  // A message from the receive thread: one of the node's channels, or a
  // workload template (channel unused, topic set).
  struct Inbound {
    protocol::Channel channel = protocol::Channel::kAck;
    std::string workload_topic;
    std::string payload;
  };

  void HandleInbox(int64_t now_ms);
  void HandleAck(const protocol::Ack& ack, int64_t now_ms);
  void HandlePods(const std::string& payload);
  void HandleTemplate(const std::string& topic, const std::string& payload);
  // Subscribes to the template topics of workloads the desired set names.
  void SubscribeWorkloads();
  void PollPods();
  void RefreshFacts(int64_t now_ms);
  void SendDue(int64_t now_ms);

  const AgentOptions options_;
  const FactSource source_;
  const std::string node_;
  const protocol::TopicScheme topics_;
  const NodeProtocol protocol_;
  const uint32_t start_epoch_;
  std::string register_topic_;
  std::string heartbeat_topic_;
  std::string will_topic_;
  std::string will_payload_;
  std::string pods_topic_;
  std::string podstatus_topic_;
  // Every workload topic starts with this: "<prefix>/workloads/".
  std::string workload_prefix_;
  std::unique_ptr<protocol::MqttClient> client_;

  // Owned by Run()'s thread.
  HostFacts facts_;
  protocol::Registration registration_;
  Rng rng_;
  uint64_t next_message_id_ = 1;
  int64_t facts_due_ms_ = 0;
  AckOutcome last_outcome_ = AckOutcome::kIgnored;
  std::unique_ptr<PodSetRunner> pods_;
  int64_t pods_due_ms_ = 0;
  // (namespace, workload) whose template filter is subscribed.
  std::set<std::pair<std::string, std::string>> workload_subscriptions_;

  mutable absl::Mutex mu_;
  NodeState state_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool reconnected_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Inbound> inbox_ ABSL_GUARDED_BY(mu_);
};

// "v<version>-kole": the kubeletVersion the agent reports.
std::string AgentVersion();

}  // namespace kole::edge
