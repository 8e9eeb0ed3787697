#pragma once

// Bridge turns the edge protocol's message stream (protocol.h) into store
// updates and answers devices. Inside kole-apiserver it sits between the MQTT
// broker and the NodeStore:
//
//   consumers (MqttClient, shared subscription)  --> bounded inbound queue
//   apply thread: decode, check identity and order, Register / ApplyHeartbeats
//                 in batches, MarkDisconnected on last wills
//   ack thread:   waits until registrations are durable, then acknowledges
//   liveness:     Ready=Unknown after the grace period (LivenessPolicy)
//   deregister:   watches the store and tells deleted nodes to stop
//
//   auto bridge = Bridge::Create(options, store, &registry);
//   (*bridge)->Start();
//   ...
//   (*bridge)->Stop();
//
// Back-pressure: a consumer whose message does not fit the queue waits up to
// queue_full_wait; Paho then reads nothing more from that socket, so the
// broker queues (and, past its own limit, drops and counts). After the wait
// the message is dropped and counted as shed, and liveness pauses, so the
// cloud's overload never marks the fleet NotReady. Memory stays bounded.
//
// Bad input (malformed, oversized, wrong types, unknown versions, names
// spoofed against the topic or a gateway's nodes) is dropped, counted in
// kole_bridge_messages_dropped_total{reason} and logged at most once per
// reason per minute; it never stops the stream.
//
// Ownership: the bridge borrows the store and the metrics registry, which
// must outlive it. Thread safety: Start, Stop, Deliver, Drain and status may
// be called from any thread.

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "mqtt-bridge/liveness.h"
#include "mqtt-bridge/mqtt_client.h"
#include "mqtt-bridge/pod_distributor.h"
#include "mqtt-bridge/protocol.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"

namespace kole::bridge {

// Where the bridge's replies go. The default is the bridge's own MQTT
// connection; the in-process benchmark and tests pass their own.
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual absl::Status Publish(std::string_view topic, std::string_view payload, int qos,
                               bool retained = false) = 0;
};

struct BridgeOptions {
  // The broker connection. client_id is a base: consumer i connects as
  // "<client_id>-<i>" with a persistent session.
  protocol::MqttClientOptions mqtt;
  std::string topic_prefix = std::string(protocol::kDefaultTopicPrefix);
  // MQTT shared-subscription group; empty subscribes plainly (one consumer).
  std::string share_group = "kole";
  int consumers = 1;
  // false: no broker at all; messages come only through Deliver().
  bool connect = true;
  Publisher* publisher = nullptr;  // Not owned. Default: consumer 0.

  size_t queue_capacity = 200'000;  // Messages.
  absl::Duration queue_full_wait = absl::Milliseconds(200);
  size_t apply_batch = 8192;  // Messages taken off the queue per pass.

  LivenessOptions liveness;
  absl::Duration liveness_interval = absl::Seconds(1);
  // The stream counts as lagging when the oldest queued message is older.
  absl::Duration lag_threshold = absl::Seconds(5);
  // After a drop for lack of room, the cloud counts as shedding this long.
  absl::Duration shedding_window = absl::Seconds(10);

  // A last will is applied only after this delay, and only if the bridge's
  // own connection stayed up meanwhile: a broker that shuts down sends the
  // will of every client it drops, which must not mark the fleet NotReady.
  // A node heard from after its will arrived is left alone.
  absl::Duration will_delay = absl::Seconds(3);

  // A node whose heartbeat names another pod revision than its desired set
  // gets the set again, at most this often (it may still be fetching).
  absl::Duration pod_resend_after = absl::Seconds(30);
  PodDistributorOptions distributor;

  // A heartbeat from an epoch or node the store does not know asks the device
  // for its full state once the mismatch has lasted this long (a registration
  // may simply be behind it in the stream), at most resync_per_second overall
  // and once per resync_interval per node.
  absl::Duration resync_after = absl::Seconds(15);
  absl::Duration resync_interval = absl::Minutes(5);
  double resync_per_second = 200;
};

struct BridgeStatus {
  int consumers_connected = 0;
  int consumers = 0;
  size_t queue_depth = 0;
  bool lagging = false;
  bool shedding = false;
  bool liveness_paused = false;
  bool holding_transitions = false;
};

class Bridge {
 public:
  // With `pods`, the bridge also distributes the pods of EdgeDaemonSets
  // (pod_distributor.h) and applies what devices report about them.
  static absl::StatusOr<std::unique_ptr<Bridge>> Create(BridgeOptions options,
                                                        storage::NodeStore* store,
                                                        metrics::MetricsRegistry* metrics,
                                                        storage::PodStore* pods = nullptr);
  ~Bridge();  // Stop().
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Restarts the store's grace clocks, then starts the threads and connects.
  void Start();
  // Disconnects, applies what is queued, acknowledges what became durable.
  void Stop();

  // Hands one message to the bridge as a consumer would (tests, the
  // in-process benchmark). Returns false if it was shed.
  bool Deliver(std::string_view topic, std::string_view payload);

  // Blocks until everything delivered so far is applied and acknowledged.
  void Drain();

  // Runs one liveness pass now (tests; the liveness thread does it on its own).
  void CheckLiveness();
  // Sends pending templates and pod sets now (tests, benchmarks); null
  // without a pod store.
  PodDistributor* distributor() { return distributor_.get(); }

  BridgeStatus status() const;

 private:
  // A registration decoded by the consumer thread that received it, so that
  // the apply thread, which serialises on the store, does only store work.
  struct DecodedRegister {
    protocol::DecodeError error = protocol::DecodeError::kOk;
    protocol::RegisterMessage message;
    std::vector<protocol::DecodeError> entry_errors;
  };
  struct Inbound {
    std::string topic;
    std::string payload;  // Empty for registrations, which arrive decoded.
    absl::Time received;
    std::unique_ptr<DecodedRegister> decoded;
  };
  struct AckGroup {
    uint64_t durable_token = 0;
    std::string topic;
    protocol::AckMessage message;
    bool on_node_topic = true;
  };
  struct Metrics;
  class ConsumerPublisher;
  class Applier;

  Bridge(BridgeOptions options, storage::NodeStore* store, metrics::MetricsRegistry* registry,
         storage::PodStore* pods);

  bool Enqueue(std::string_view topic, std::string_view payload);
  bool QueueHasRoom() const ABSL_SHARED_LOCKS_REQUIRED(queue_mu_);
  void ApplyLoop();
  void AckLoop();
  void LivenessLoop();
  void DeregisterLoop();
  bool CloudHealthy(absl::Time now) const;
  // Grows each time a consumer connection is lost.
  uint64_t ConnectionGeneration() const;
  void Publish(const std::string& topic, const std::string& payload, std::string_view channel);

  const BridgeOptions options_;
  const protocol::TopicScheme topics_;
  storage::NodeStore* const store_;
  storage::PodStore* const pods_;  // Null: no pod distribution.
  std::unique_ptr<PodDistributor> distributor_;
  std::unique_ptr<Metrics> metrics_;
  metrics::Counter* dropped_queue_full_ = nullptr;
  metrics::Counter* dropped_too_large_ = nullptr;
  std::vector<std::unique_ptr<protocol::MqttClient>> consumers_;
  std::unique_ptr<ConsumerPublisher> own_publisher_;
  Publisher* publisher_ = nullptr;
  std::unique_ptr<Applier> applier_;
  LivenessPolicy liveness_;

  mutable absl::Mutex queue_mu_;
  std::deque<Inbound> queue_ ABSL_GUARDED_BY(queue_mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(queue_mu_) = 0;
  uint64_t applied_ ABSL_GUARDED_BY(queue_mu_) = 0;  // Taken off and fully handled.
  absl::Time last_shed_ ABSL_GUARDED_BY(queue_mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  mutable absl::Mutex ack_mu_;
  std::deque<AckGroup> acks_ ABSL_GUARDED_BY(ack_mu_);
  uint64_t acks_queued_ ABSL_GUARDED_BY(ack_mu_) = 0;
  uint64_t acks_sent_ ABSL_GUARDED_BY(ack_mu_) = 0;
  bool acks_stopping_ ABSL_GUARDED_BY(ack_mu_) = false;

  absl::Mutex liveness_mu_;  // Serialises liveness passes.
  std::atomic<bool> liveness_paused_{false};
  std::atomic<bool> holding_{false};
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool started_ = false;

  std::thread apply_thread_;
  std::thread ack_thread_;
  std::thread liveness_thread_;
  std::thread deregister_thread_;
  std::thread distribute_thread_;
};

}  // namespace kole::bridge
