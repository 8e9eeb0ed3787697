#pragma once

// The device side of the KOLE edge protocol for one node, as a small state
// machine shared by kole-agent (one node) and kole-edge-sim (a million), so
// both follow the same rules (docs/protocol.md):
//
//   kUnregistered --send registration--> kAwaitingAck
//   kAwaitingAck  --ack kAccepted-->      kAccepted (heartbeats every interval)
//   kAwaitingAck  --no ack in time-->     send again, backoff doubles
//   kAwaitingAck  --ack kRetry-->         kUnregistered, due after the backoff
//   kAwaitingAck  --ack kRejected-->      kRejected (silent), or kTombstoned
//                                         (registration retried rarely)
//   any           --control kResync-->    kUnregistered, due now, same epoch
//   any           --control kDeregister-> kDeregistered (silent for good)
//   any           --Restart()-->          kUnregistered, epoch + 1, sequence 0
//
// NodeState is plain data, 24 bytes, so a simulator can keep one per node in
// a flat array; NodeProtocol holds the timing policy and is immutable. Times
// are milliseconds on one monotonic clock chosen by the caller. Randomness is
// passed in (an Rng), so tests can make every decision deterministic.
//
// Thread safety: NodeProtocol is immutable and may be shared; a NodeState is
// owned by one thread at a time.

#include <absl/time/time.h>

#include <cstdint>

#include "edge/rng.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

enum class NodePhase : uint8_t {
  kUnregistered,  // A registration is due at due_ms.
  kAwaitingAck,   // Registration sent; resent at due_ms unless acknowledged.
  kAccepted,      // Heartbeating; the next heartbeat is due at due_ms.
  kRejected,      // Refused for good (invalid); nothing is sent.
  kTombstoned,    // Deleted in the cloud; a registration is retried at due_ms.
  kDeregistered,  // Told to stop by the cloud; nothing is sent.
};

const char* NodePhaseName(NodePhase phase);

struct NodeState {
  // 0 until the cloud assigns one (devices without storage).
  uint32_t epoch = 0;
  // The sequence number of the last message sent in this epoch.
  uint32_t sequence = 0;
  int64_t due_ms = 0;
  // Restarts so far; decides the boot id of a simulated node.
  uint16_t boot = 0;
  NodePhase phase = NodePhase::kUnregistered;
  // Registrations sent since the last acceptance, for the backoff.
  uint8_t attempts = 0;
  // Set at the first acceptance and never cleared (progress counting).
  bool accepted_once = false;
};

struct RetryPolicy {
  // Registration retries wait initial, 2x, 4x ... up to max, each scaled by a
  // random factor in [1 - jitter, 1] so that a fleet does not retry in step.
  absl::Duration initial = absl::Seconds(2);
  absl::Duration max = absl::Seconds(60);
  double jitter = 0.5;
  // How often a tombstoned node tries again (an operator may re-admit it).
  absl::Duration tombstone_retry = absl::Hours(1);
};

// What a received acknowledgement did to the state, for counters and logs.
enum class AckOutcome : uint8_t {
  kAccepted,    // The registration is accepted; heartbeats start.
  kRetry,       // The cloud asked for a retry later.
  kRejected,    // Refused for good.
  kTombstoned,  // The node was deleted in the cloud.
  kIgnored,     // Stale (older epoch) or not awaited (duplicate ack).
};

class NodeProtocol {
 public:
  NodeProtocol(absl::Duration heartbeat_interval, RetryPolicy retry);

  // True when the node has something to send at now_ms.
  static bool Due(const NodeState& state, int64_t now_ms) {
    return state.due_ms <= now_ms &&
           (state.phase == NodePhase::kUnregistered || state.phase == NodePhase::kAwaitingAck ||
            state.phase == NodePhase::kAccepted || state.phase == NodePhase::kTombstoned);
  }
  static bool WantsRegistration(const NodeState& state) {
    return state.phase != NodePhase::kAccepted;
  }

  // Records that a registration goes out now and returns its sequence
  // number. The node then waits for its ack until the backoff expires.
  uint32_t SendRegistration(NodeState* state, int64_t now_ms, Rng& rng) const;

  // Records that a heartbeat goes out now and returns its sequence number.
  // The next one is due one interval after the previous due time, so the
  // phase chosen at acceptance holds; a node that fell far behind (an
  // outage) skips the missed beats instead of sending a burst.
  uint32_t SendHeartbeat(NodeState* state, int64_t now_ms) const;

  // Applies one acknowledgement for this node. `ack.epoch` is adopted when
  // the node has none yet or the cloud states a higher one (cloud-assigned
  // epochs); an ack for an older epoch is stale and ignored.
  AckOutcome OnAck(NodeState* state, const protocol::Ack& ack, int64_t now_ms, Rng& rng) const;

  // Control messages.
  void OnResync(NodeState* state, int64_t now_ms) const;
  void OnDeregister(NodeState* state) const;

  // The device restarted: next epoch (when it has one), sequence from 1,
  // registration due now.
  void Restart(NodeState* state, int64_t now_ms) const;

  // The MQTT connection came back after a loss: heartbeats of accepted nodes
  // are due at once, and registrations in flight are retried soon (within
  // the initial backoff, spread) with a fresh backoff, since the failed
  // attempts were the broker's fault, not the cloud's answer.
  void OnReconnect(NodeState* state, int64_t now_ms, Rng& rng) const;

  // The delay before retry number `attempts` (1 = after the first send).
  absl::Duration Backoff(uint8_t attempts, Rng& rng) const;

  absl::Duration heartbeat_interval() const { return heartbeat_interval_; }
  const RetryPolicy& retry() const { return retry_; }

 private:
  int64_t interval_ms_;
  absl::Duration heartbeat_interval_;
  RetryPolicy retry_;
};

}  // namespace kole::edge
