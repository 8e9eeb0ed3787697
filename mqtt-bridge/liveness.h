#pragma once

// LivenessPolicy decides, once per tick, how many nodes whose heartbeats have
// stopped may be marked Ready=Unknown. It holds no store: the bridge counts
// the expired nodes, asks the policy, and applies its answer. Keeping the
// decision pure makes the rules below testable with a fake clock.
//
// The rules (docs/protocol.md, "Liveness"), modelled on upstream's node
// lifecycle controller and its disruption mode:
//
//   - While the cloud side is unhealthy (the bridge is disconnected from the
//     broker, lagging behind the stream or shedding load) nothing expires:
//     the silence is ours, not the devices'.
//   - When it becomes healthy again the grace clocks restart (every node gets
//     a full grace period from now), as they do at process start.
//   - A tick that would mark more than max(mass_min_nodes,
//     mass_fraction × nodes) at once is a mass transition. It is held back
//     for mass_hold, which covers a broker or network fault the bridge could
//     not see; if the silence outlasts that, nodes are released at
//     mass_release_per_second × nodes per second, so a real outage (a site
//     losing power) still shows, gradually.
//
// Thread safety: not thread-safe; one owner (the bridge's liveness thread).

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace kole::bridge {

struct LivenessOptions {
  // --node-monitor-grace-period: silence after which a node is Ready=Unknown.
  absl::Duration grace_period = absl::Seconds(40);
  double mass_fraction = 0.1;
  size_t mass_min_nodes = 100;
  absl::Duration mass_hold = absl::Minutes(2);
  double mass_release_per_second = 0.01;
};

struct LivenessDecision {
  // Mark at most this many expired nodes now.
  size_t limit = 0;
  // Restart every node's grace clock before anything else.
  bool reset_clocks = false;
  bool paused = false;   // The cloud side is unhealthy.
  bool holding = false;  // A mass transition is being held back.
};

class LivenessPolicy {
 public:
  explicit LivenessPolicy(LivenessOptions options) : options_(options) {}

  // `expired`: nodes past the grace period and not yet Ready=Unknown;
  // `nodes`: the fleet's size.
  LivenessDecision Tick(absl::Time now, bool cloud_healthy, size_t expired, size_t nodes);

  const LivenessOptions& options() const { return options_; }

 private:
  LivenessOptions options_;
  bool paused_ = false;
  std::optional<absl::Time> hold_since_;
  std::optional<absl::Time> last_release_;
  double release_credit_ = 0;  // Fractional nodes carried between ticks.
};

}  // namespace kole::bridge
