#pragma once

// Builds protocol::Ack values for tests in one call (designated initializers
// that leave fields out trip -Wmissing-field-initializers).

#include <string>
#include <utility>

#include "mqtt-bridge/protocol.h"

namespace kole::edge::testing {

inline protocol::Ack MakeAck(std::string node, protocol::AckResult result, uint32_t epoch = 0,
                             std::string reason = "") {
  protocol::Ack ack;
  ack.node = std::move(node);
  ack.result = result;
  ack.epoch = epoch;
  ack.reason = std::move(reason);
  return ack;
}

}  // namespace kole::edge::testing
