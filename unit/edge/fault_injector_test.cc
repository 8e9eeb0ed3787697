#include "edge/fault_injector.h"

#include <gtest/gtest.h>

#include "mqtt-bridge/protocol.h"

namespace kole::edge {
namespace {

bool Same(const FaultDecision& a, const FaultDecision& b) {
  return a.drop == b.drop && a.duplicate == b.duplicate && a.hold == b.hold &&
         a.malformed == b.malformed && a.malformed_kind == b.malformed_kind;
}

TEST(FaultInjector, SameSeedSameDecisions) {
  FaultOptions options{.duplicate_rate = 0.2,
                       .reorder_rate = 0.2,
                       .drop_rate = 0.2,
                       .malformed_rate = 0.2,
                       .restart_rate = 0.1};
  FaultInjector a(options, 42);
  FaultInjector b(options, 42);
  FaultInjector c(options, 43);
  int differences = 0;
  for (int i = 0; i < 1000; ++i) {
    FaultDecision da = a.Decide();
    EXPECT_TRUE(Same(da, b.Decide()));
    EXPECT_EQ(a.Restart(), b.Restart());
    differences += Same(da, c.Decide()) ? 0 : 1;
    c.Restart();
  }
  EXPECT_GT(differences, 100) << "another seed gives another run";
}

TEST(FaultInjector, ZeroRatesInjectNothing) {
  FaultInjector injector(FaultOptions{}, 1);
  for (int i = 0; i < 10000; ++i) {
    FaultDecision d = injector.Decide();
    EXPECT_FALSE(d.drop || d.duplicate || d.hold || d.malformed);
    EXPECT_FALSE(injector.Restart());
  }
}

TEST(FaultInjector, RatesAreRoughlyHonoured) {
  FaultInjector injector(FaultOptions{.duplicate_rate = 0.1, .drop_rate = 0.3}, 9);
  int drops = 0, duplicates = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    FaultDecision d = injector.Decide();
    drops += d.drop;
    duplicates += d.duplicate;
    EXPECT_FALSE(d.drop && d.duplicate) << "a dropped message is not also duplicated";
  }
  EXPECT_NEAR(drops / double(n), 0.3, 0.02);
  // Duplicates are drawn for the messages that were not dropped.
  EXPECT_NEAR(duplicates / double(n), 0.1 * 0.7, 0.02);
}

TEST(FaultInjector, MalformedPayloadsFailToDecode) {
  FaultInjector injector(FaultOptions{.malformed_rate = 1}, 3);
  protocol::TopicScheme topics;
  protocol::Topic topic = *topics.Parse("kole/v1/gateways/gw-1-0/heartbeat");
  protocol::HeartbeatEntry beat{.node = "a", .epoch = 1, .sequence = 2, .pod_revision = {}};
  std::string valid;
  protocol::EncodeHeartbeats({&beat, 1}, false, valid);
  protocol::HeartbeatBatch batch;
  ASSERT_EQ(protocol::DecodeHeartbeats(topic, valid, &batch), protocol::DecodeError::kOk);
  for (int k = 0; k < kMalformedKinds; ++k) {
    std::string bad;
    injector.MakeMalformed(static_cast<MalformedKind>(k), valid, &bad);
    EXPECT_NE(protocol::DecodeHeartbeats(topic, bad, &batch), protocol::DecodeError::kOk)
        << MalformedKindName(static_cast<MalformedKind>(k));
  }
  std::string oversized;
  injector.MakeMalformed(MalformedKind::kOversized, valid, &oversized);
  EXPECT_GT(oversized.size(), protocol::kMaxPayloadBytes);
}

}  // namespace
}  // namespace kole::edge
