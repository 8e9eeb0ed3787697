#include "edge/node_state.h"

#include <algorithm>

namespace kole::edge {

const char* NodePhaseName(NodePhase phase) {
  switch (phase) {
    case NodePhase::kUnregistered:
      return "Unregistered";
    case NodePhase::kAwaitingAck:
      return "AwaitingAck";
    case NodePhase::kAccepted:
      return "Accepted";
    case NodePhase::kRejected:
      return "Rejected";
    case NodePhase::kTombstoned:
      return "Tombstoned";
    case NodePhase::kDeregistered:
      return "Deregistered";
  }
  return "Unknown";
}

NodeProtocol::NodeProtocol(absl::Duration heartbeat_interval, RetryPolicy retry)
    : interval_ms_(std::max<int64_t>(1, absl::ToInt64Milliseconds(heartbeat_interval))),
      heartbeat_interval_(heartbeat_interval),
      retry_(retry) {}

absl::Duration NodeProtocol::Backoff(uint8_t attempts, Rng& rng) const {
  absl::Duration delay = retry_.initial;
  for (uint8_t i = 1; i < attempts && delay < retry_.max; ++i) delay *= 2;
  delay = std::min(delay, retry_.max);
  double jitter = std::clamp(retry_.jitter, 0.0, 1.0);
  return delay * (1.0 - jitter * rng.Uniform());
}

uint32_t NodeProtocol::SendRegistration(NodeState* state, int64_t now_ms, Rng& rng) const {
  if (state->attempts < 255) ++state->attempts;
  state->phase = NodePhase::kAwaitingAck;
  state->due_ms = now_ms + absl::ToInt64Milliseconds(Backoff(state->attempts, rng));
  return ++state->sequence;
}

uint32_t NodeProtocol::SendHeartbeat(NodeState* state, int64_t now_ms) const {
  state->due_ms += interval_ms_;
  if (state->due_ms <= now_ms) {
    // Behind by more than an interval: keep the phase, skip what was missed.
    int64_t behind = now_ms - state->due_ms;
    state->due_ms += (behind / interval_ms_ + 1) * interval_ms_;
  }
  return ++state->sequence;
}

AckOutcome NodeProtocol::OnAck(NodeState* state, const protocol::Ack& ack, int64_t now_ms,
                               Rng& rng) const {
  if (state->epoch != 0 && ack.epoch != 0 && ack.epoch < state->epoch) return AckOutcome::kIgnored;
  switch (ack.result) {
    case protocol::AckResult::kAccepted:
      if (state->phase != NodePhase::kAwaitingAck && state->phase != NodePhase::kUnregistered) {
        return AckOutcome::kIgnored;
      }
      if (ack.epoch > state->epoch) {
        // A cloud-assigned epoch restarts the sequence the cloud expects.
        if (state->epoch != 0) state->sequence = 0;
        state->epoch = ack.epoch;
      }
      state->phase = NodePhase::kAccepted;
      state->attempts = 0;
      state->accepted_once = true;
      // A random phase within one interval, so nodes do not beat in step.
      state->due_ms = now_ms + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(interval_ms_)));
      return AckOutcome::kAccepted;
    case protocol::AckResult::kRetry:
      if (state->phase != NodePhase::kAwaitingAck) return AckOutcome::kIgnored;
      state->phase = NodePhase::kUnregistered;
      state->due_ms = now_ms + absl::ToInt64Milliseconds(Backoff(state->attempts, rng));
      return AckOutcome::kRetry;
    case protocol::AckResult::kRejected:
      if (state->phase != NodePhase::kAwaitingAck && state->phase != NodePhase::kUnregistered) {
        return AckOutcome::kIgnored;
      }
      state->attempts = 0;
      if (ack.reason == "Tombstoned") {
        state->phase = NodePhase::kTombstoned;
        state->due_ms = now_ms + absl::ToInt64Milliseconds(retry_.tombstone_retry);
        return AckOutcome::kTombstoned;
      }
      state->phase = NodePhase::kRejected;
      return AckOutcome::kRejected;
  }
  return AckOutcome::kIgnored;
}

void NodeProtocol::OnResync(NodeState* state, int64_t now_ms) const {
  if (state->phase == NodePhase::kDeregistered || state->phase == NodePhase::kRejected) return;
  state->phase = NodePhase::kUnregistered;
  state->attempts = 0;
  state->due_ms = now_ms;
}

void NodeProtocol::OnDeregister(NodeState* state) const { state->phase = NodePhase::kDeregistered; }

void NodeProtocol::Restart(NodeState* state, int64_t now_ms) const {
  if (state->epoch != 0) ++state->epoch;
  state->sequence = 0;
  state->attempts = 0;
  ++state->boot;
  if (state->phase != NodePhase::kDeregistered && state->phase != NodePhase::kRejected) {
    state->phase = NodePhase::kUnregistered;
    state->due_ms = now_ms;
  }
}

void NodeProtocol::OnReconnect(NodeState* state, int64_t now_ms, Rng& rng) const {
  switch (state->phase) {
    case NodePhase::kAccepted:
      state->due_ms = now_ms;
      break;
    case NodePhase::kAwaitingAck:
    case NodePhase::kUnregistered:
      state->attempts = 0;
      state->due_ms =
          std::min(state->due_ms,
                   now_ms + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(
                                std::max<int64_t>(1, absl::ToInt64Milliseconds(retry_.initial))))));
      break;
    default:
      break;
  }
}

}  // namespace kole::edge
