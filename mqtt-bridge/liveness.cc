#include "mqtt-bridge/liveness.h"

#include <algorithm>
#include <cmath>

namespace kole::bridge {

LivenessDecision LivenessPolicy::Tick(absl::Time now, bool cloud_healthy, size_t expired,
                                      size_t nodes) {
  LivenessDecision decision;
  if (!cloud_healthy) {
    paused_ = true;
    hold_since_.reset();
    last_release_.reset();
    decision.paused = true;
    return decision;
  }
  if (paused_) {
    // The counts were taken with the old clocks; act on them next tick.
    paused_ = false;
    decision.reset_clocks = true;
    return decision;
  }

  double threshold =
      std::max(static_cast<double>(options_.mass_min_nodes), options_.mass_fraction * nodes);
  if (expired == 0 || static_cast<double>(expired) <= threshold) {
    hold_since_.reset();
    last_release_.reset();
    release_credit_ = 0;
    decision.limit = expired;
    return decision;
  }

  if (!hold_since_) hold_since_ = now;
  if (now - *hold_since_ < options_.mass_hold) {
    decision.holding = true;
    return decision;
  }

  // Past the hold: release gradually.
  absl::Duration elapsed = last_release_ ? now - *last_release_ : absl::Seconds(1);
  last_release_ = now;
  release_credit_ += options_.mass_release_per_second * static_cast<double>(nodes) *
                     absl::ToDoubleSeconds(elapsed);
  double whole = std::floor(release_credit_);
  release_credit_ -= whole;
  decision.limit = std::min(expired, static_cast<size_t>(std::max(whole, 0.0)));
  decision.holding = decision.limit < expired;
  return decision;
}

}  // namespace kole::bridge
