#pragma once

// EdgeSimulator: N simulated edge nodes over M MQTT connections, speaking the
// device side of the KOLE edge protocol (docs/protocol.md) through the same
// NodeProtocol rules as kole-agent. kole-edge-sim is a thin main around it.
//
// Connections: with connections == nodes, every node has its own node
// connection (client id = node name). Otherwise each connection is a gateway
// "gw-<seed>-<first node index>" fronting a contiguous slice of the fleet and
// batching its nodes' messages (at most `batch` entries and 1 MiB each).
//
// Memory: per node a 24-byte NodeState and its name in one shared arena
// (about 30 bytes); a registration is regenerated from the seeded fleet
// generator each time it is sent, never kept. About 60 MB for 1M nodes.
//
// Threads: `threads` workers each own a fixed set of connections and do all
// per-node work for them; the MQTT receive thread only copies inbound
// payloads into the owning connection's inbox. Counters are atomics read by
// any thread.
//
// Ownership and thread safety: Create() returns a stopped simulator; Start(),
// Stop() and the accessors may be called from any thread; Stop() is
// idempotent and is called by the destructor.

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edge/fault_injector.h"
#include "edge/fleet_generator.h"
#include "edge/node_state.h"
#include "edge/sim_report.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

struct SimOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string username;
  std::string password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_hostname = true;
  std::string topic_prefix = "kole/v1";

  uint64_t nodes = 1000;
  // 0: enough gateways that each fronts at most kMaxBatchNodes nodes.
  uint64_t connections = 0;
  uint64_t first_index = 0;
  FleetOptions fleet;

  absl::Duration heartbeat_interval = absl::Seconds(10);
  // Registrations per second over the whole simulator; 0 is no cap.
  double register_rate = 0;
  // Registrations sent and not yet acknowledged, at most; bounds the bytes
  // queued in the client and the broker when the cloud is slow.
  uint64_t max_pending_registrations = 50000;
  // Entries per gateway message (at most kMaxBatchNodes).
  uint32_t batch = 1000;
  // How often a connection sends what is due: gateway messages gather the
  // heartbeats of this long, so a larger value means fewer, fuller messages.
  absl::Duration flush_interval = absl::Milliseconds(500);
  int threads = 2;
  RetryPolicy retry;
  FaultOptions faults;
  // The first epoch of every node; 0 takes the current Unix time in seconds,
  // so that each run of the simulator is a newer epoch than the last.
  uint32_t epoch = 0;
  // Send every generated label, also those users own (customer, tier).
  bool send_user_labels = false;
  // Treat each registration as accepted once published (no cloud to answer;
  // broker load tests).
  bool assume_accepted = false;

  // Pods (docs/protocol.md, "Pods"): a node starts its desired set this long
  // after it arrives (spread between half and one and a half times), once
  // its connection holds every template the set names; its heartbeats then
  // carry the set's revision. This fraction of pods crash-loops instead:
  // they report CrashLoopBackOff with growing restart counts.
  absl::Duration pod_start_delay = absl::Seconds(2);
  double pod_failure_rate = 0;
  absl::Duration crash_report_interval = absl::Seconds(30);
};

// Validates and completes the options (connections, batch, threads).
absl::Status CompleteSimOptions(SimOptions* options);

// The registration the simulator sends for fleet node `index` after its
// `boot`-th restart: the generator's node with only device-owned labels
// (every label with `send_user_labels`) and the three pressure conditions
// an agent reports besides Ready. Epoch and sequence are left to the caller.
// `spec` is scratch space; both it and *r keep their buffers between calls.
// The peer benchmark (bench/peer/) creates the same nodes in kube-apiserver
// from these registrations, so both systems hold identical objects.
void FillSimulatedRegistration(const FleetGenerator& fleet, bool send_user_labels, uint64_t index,
                               uint32_t boot, NodeSpec* spec, protocol::Registration* r);

class EdgeSimulator {
 public:
  static absl::StatusOr<std::unique_ptr<EdgeSimulator>> Create(SimOptions options);
  ~EdgeSimulator();
  EdgeSimulator(const EdgeSimulator&) = delete;
  EdgeSimulator& operator=(const EdgeSimulator&) = delete;

  // Starts connecting and the workers.
  void Start();
  // Publishes the will payload of every connection that is up (a clean
  // goodbye, so the cloud marks the nodes disconnected at once), disconnects
  // and joins the workers.
  void Stop();

  SimCounters Counters() const;
  // True once every node has been accepted at least once.
  bool AllRegistered() const;
  // Seconds from Start() until AllRegistered() first held; < 0 before.
  double RegisterSeconds() const;

  const SimOptions& options() const { return options_; }

 private:
  struct Connection;
  struct Worker;
  // A node's pods: 16 bytes per node.
  struct PodState {
    uint32_t desired = 0;   // Revision of the set the cloud sent; 0: none.
    uint32_t running = 0;   // Revision of the set the node runs; 0: none.
    uint32_t due_s = 0;     // Seconds since start when `desired` starts or a crash is reported.
    uint16_t restarts = 0;  // Of a crash-looping pod.
    uint8_t failing = 0;    // The set crash-loops.
    uint8_t has_set = 0;    // A set arrived at least once.
  };

  explicit EdgeSimulator(SimOptions options, FleetGenerator fleet);
  absl::Status Build();
  int64_t NowMs() const;
  std::string_view NameOf(uint32_t i) const;

  // Worker-side steps; each touches only the connections of its worker.
  void RunWorker(Worker* worker);
  void HandleInbox(Worker& worker, Connection& conn, int64_t now);
  void Flush(Worker& worker, Connection& conn, int64_t now);
  // The local index of a node of `conn`, or -1 when it is not one of its own.
  int64_t FindNode(const Connection& conn, std::string_view node) const;
  void ApplyAck(Connection& conn, uint32_t i, const protocol::Ack& ack, int64_t now);
  void ApplyPods(Connection& conn, const protocol::NodePods& pods, int64_t now);
  // Starts due pod sets and queues crash reports; appends reports to `out`.
  void AdvancePods(Connection& conn, uint32_t i, int64_t now, protocol::PodStatusMessage* out);
  void FillRegistration(Worker& worker, uint32_t i, protocol::Registration* r);
  // Encodes worker.register_nodes[from, to) as one message, or two halves
  // when the payload would pass the protocol's limit.
  void SendRegistrations(Worker& worker, Connection& conn, size_t from, size_t to);
  void SendHeartbeats(Worker& worker, Connection& conn);
  void SendPodReports(Worker& worker, Connection& conn);
  // Publishes with the connection's faults applied.
  void Publish(Worker& worker, Connection& conn, const std::string& topic, std::string& payload,
               int qos);
  bool PublishRaw(Connection& conn, const std::string& topic, std::string_view payload, int qos);
  void ReleaseHeld(Connection& conn);
  // Keeps the phase gauges and the registered count in step with a node
  // that went from `before` to `state`.
  void Count(NodePhase before, bool was_registered, const NodeState& state);

  const SimOptions options_;
  const FleetGenerator fleet_;
  const NodeProtocol protocol_;

  // Per node (local index i is fleet index first_index + i).
  std::string names_;                  // Every name, back to back.
  std::vector<uint32_t> name_offset_;  // nodes + 1 offsets into names_.
  std::vector<NodeState> states_;
  std::vector<PodState> pods_;

  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Worker>> workers_;

  absl::Time start_time_;
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool started_ = false;

  std::atomic<uint64_t> registered_{0};  // Nodes accepted at least once.
  std::atomic<uint64_t> accepted_{0};    // Nodes accepted now.
  std::atomic<uint64_t> rejected_{0};    // Nodes refused, tombstoned or deregistered now.
  std::atomic<uint64_t> pending_{0};     // Registrations awaiting an ack.
  std::atomic<int64_t> registered_at_ms_{-1};
  std::atomic<uint64_t> registrations_sent_{0};
  std::atomic<uint64_t> registrations_retried_{0};
  std::atomic<uint64_t> acks_received_{0};
  std::atomic<uint64_t> heartbeats_sent_{0};
  std::atomic<uint64_t> messages_sent_{0};
  std::atomic<uint64_t> publish_failures_{0};
  std::atomic<uint64_t> resyncs_{0};
  std::atomic<uint64_t> restarts_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> duplicated_{0};
  std::atomic<uint64_t> reordered_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> pod_sets_received_{0};
  std::atomic<uint64_t> nodes_with_set_{0};
  std::atomic<uint64_t> templates_received_{0};
  std::atomic<uint64_t> pods_running_{0};  // Nodes running a non-empty desired set.
  std::atomic<uint64_t> pods_failing_{0};  // ... of which crash-loop.
  std::atomic<uint64_t> pod_reports_sent_{0};
};

}  // namespace kole::edge
