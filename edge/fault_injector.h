#pragma once

// FaultInjector decides, message by message, which faults kole-edge-sim
// injects on one connection, so the cloud side meets what real fleets send:
// lost messages, duplicates (a QoS 1 redelivery, a device that retries too
// eagerly), reordering (shared subscriptions, persistent sessions) and
// malformed payloads (buggy or hostile firmware). Device restarts are decided
// here too, per heartbeat.
//
// Rates are probabilities per message in [0, 1]. Decisions come from an Rng
// seeded by the caller, so one seed reproduces a run: two injectors with the
// same options and seed return the same sequence of decisions.
//
// Thread safety: none; each connection owns its injector.

#include <cstdint>
#include <string>

#include "edge/rng.h"

namespace kole::edge {

struct FaultOptions {
  double duplicate_rate = 0;  // Send the message twice.
  double reorder_rate = 0;    // Hold the message back and send it after the next one.
  double drop_rate = 0;       // Do not send the message.
  double malformed_rate = 0;  // Also send a bad payload on the same topic.
  double restart_rate = 0;    // Per heartbeat: the node restarts instead.

  bool any() const {
    return duplicate_rate > 0 || reorder_rate > 0 || drop_rate > 0 || malformed_rate > 0 ||
           restart_rate > 0;
  }
};

enum class MalformedKind : uint8_t {
  kGarbage,       // Bytes that are not JSON.
  kOversized,     // A JSON-looking payload over the 1 MiB protocol limit.
  kWrongType,     // Valid JSON, version 1, fields of the wrong type.
  kWrongVersion,  // Valid JSON with an unknown protocol version.
  kTruncated,     // A valid payload cut short.
};
inline constexpr int kMalformedKinds = 5;

const char* MalformedKindName(MalformedKind kind);

struct FaultDecision {
  bool drop = false;
  bool duplicate = false;
  bool hold = false;  // Reorder: send after the next message of the connection.
  bool malformed = false;
  MalformedKind malformed_kind = MalformedKind::kGarbage;
};

class FaultInjector {
 public:
  FaultInjector(const FaultOptions& options, uint64_t seed) : options_(options), rng_(seed) {}

  // Decides the faults for the next message. A dropped message is neither
  // duplicated nor held.
  FaultDecision Decide();

  // True when the node due for a heartbeat restarts instead.
  bool Restart() { return rng_.Chance(options_.restart_rate); }

  // Writes a bad payload of `kind` into *out, derived from `valid` (a real
  // payload of the same channel) where the kind needs one.
  void MakeMalformed(MalformedKind kind, const std::string& valid, std::string* out);

  const FaultOptions& options() const { return options_; }

 private:
  FaultOptions options_;
  Rng rng_;
};

}  // namespace kole::edge
