#include "edge/fault_injector.h"

#include "mqtt-bridge/protocol.h"

namespace kole::edge {

const char* MalformedKindName(MalformedKind kind) {
  switch (kind) {
    case MalformedKind::kGarbage:
      return "garbage";
    case MalformedKind::kOversized:
      return "oversized";
    case MalformedKind::kWrongType:
      return "wrongType";
    case MalformedKind::kWrongVersion:
      return "wrongVersion";
    case MalformedKind::kTruncated:
      return "truncated";
  }
  return "unknown";
}

FaultDecision FaultInjector::Decide() {
  // Every draw is made whatever the outcome, so that changing one rate does
  // not shift the decisions of the others.
  FaultDecision decision;
  bool drop = rng_.Chance(options_.drop_rate);
  bool duplicate = rng_.Chance(options_.duplicate_rate);
  bool hold = rng_.Chance(options_.reorder_rate);
  bool malformed = rng_.Chance(options_.malformed_rate);
  auto kind = static_cast<MalformedKind>(rng_.Below(kMalformedKinds));
  decision.drop = drop;
  decision.duplicate = duplicate && !drop;
  decision.hold = hold && !drop;
  decision.malformed = malformed;
  decision.malformed_kind = kind;
  return decision;
}

void FaultInjector::MakeMalformed(MalformedKind kind, const std::string& valid, std::string* out) {
  out->clear();
  switch (kind) {
    case MalformedKind::kGarbage: {
      size_t length = 1 + rng_.Below(64);
      for (size_t i = 0; i < length; ++i) out->push_back(static_cast<char>(rng_.Next() & 0xff));
      // A leading byte that no JSON document starts with keeps it garbage.
      (*out)[0] = '\x01';
      break;
    }
    case MalformedKind::kOversized:
      out->reserve(protocol::kMaxPayloadBytes + 64);
      out->append("{\"v\":1,\"pad\":\"");
      out->append(protocol::kMaxPayloadBytes, 'x');
      out->append("\"}");
      break;
    case MalformedKind::kWrongType:
      out->append(R"({"v":1,"node":7,"epoch":"one","seq":[1],"id":"x","nodes":{}})");
      break;
    case MalformedKind::kWrongVersion:
      out->append(R"({"v":99,"epoch":1,"seq":1})");
      break;
    case MalformedKind::kTruncated:
      out->assign(valid.substr(0, valid.size() / 2));
      if (out->empty()) out->assign("{");
      break;
  }
}

}  // namespace kole::edge
