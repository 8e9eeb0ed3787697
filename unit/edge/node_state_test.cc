#include "edge/node_state.h"

#include <gtest/gtest.h>

#include "unit/edge/test_acks.h"

namespace kole::edge {
namespace {

using testing::MakeAck;

RetryPolicy Policy() {
  return RetryPolicy{.initial = absl::Seconds(2),
                     .max = absl::Seconds(60),
                     .jitter = 0,
                     .tombstone_retry = absl::Hours(1)};
}

protocol::Ack Accepted(uint32_t epoch) {
  return MakeAck("n", protocol::AckResult::kAccepted, epoch);
}

TEST(NodeProtocol, RegistrationRetriesDoubleUpToTheMaximum) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 3};
  std::vector<int64_t> waits;
  int64_t now = 0;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(NodeProtocol::Due(state, now));
    protocol.SendRegistration(&state, now, rng);
    EXPECT_EQ(state.phase, NodePhase::kAwaitingAck);
    waits.push_back(state.due_ms - now);
    now = state.due_ms;
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000}));
  EXPECT_EQ(state.sequence, 8u) << "every registration takes the next sequence number";
}

TEST(NodeProtocol, JitterShortensTheWaitWithinItsFraction) {
  RetryPolicy policy = Policy();
  policy.jitter = 0.5;
  NodeProtocol protocol(absl::Seconds(10), policy);
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    absl::Duration wait = protocol.Backoff(1, rng);
    EXPECT_GE(wait, absl::Seconds(1));
    EXPECT_LE(wait, absl::Seconds(2));
  }
}

TEST(NodeProtocol, NoHeartbeatBeforeTheRegistrationIsAccepted) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 1};
  protocol.SendRegistration(&state, 0, rng);
  EXPECT_FALSE(NodeProtocol::Due(state, 1999));
  EXPECT_TRUE(NodeProtocol::WantsRegistration(state));
  EXPECT_EQ(protocol.OnAck(&state, Accepted(1), 500, rng), AckOutcome::kAccepted);
  EXPECT_FALSE(NodeProtocol::WantsRegistration(state));
  EXPECT_TRUE(state.accepted_once);
  // The first heartbeat lands within one interval of the acceptance.
  EXPECT_GE(state.due_ms, 500);
  EXPECT_LT(state.due_ms, 10500);
}

TEST(NodeProtocol, HeartbeatsKeepTheirPhaseAndIncrementTheSequence) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 1};
  protocol.SendRegistration(&state, 0, rng);
  protocol.OnAck(&state, Accepted(1), 0, rng);
  int64_t phase = state.due_ms;
  EXPECT_EQ(protocol.SendHeartbeat(&state, phase + 3), 2u);
  EXPECT_EQ(state.due_ms, phase + 10000) << "a late send does not shift the phase";
  EXPECT_EQ(protocol.SendHeartbeat(&state, phase + 10000), 3u);
  // After an outage of a minute the missed beats are skipped, not sent in a burst.
  protocol.SendHeartbeat(&state, phase + 80000);
  EXPECT_GT(state.due_ms, phase + 80000);
  EXPECT_EQ((state.due_ms - phase) % 10000, 0);
}

TEST(NodeProtocol, RetryAckWaitsTheBackoffThenRegistersAgain) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 1};
  protocol.SendRegistration(&state, 0, rng);
  protocol::Ack retry = MakeAck("n", protocol::AckResult::kRetry, 0, "DiskFull");
  EXPECT_EQ(protocol.OnAck(&state, retry, 100, rng), AckOutcome::kRetry);
  EXPECT_EQ(state.phase, NodePhase::kUnregistered);
  EXPECT_EQ(state.due_ms, 2100);
  EXPECT_FALSE(NodeProtocol::Due(state, 2099));
  EXPECT_TRUE(NodeProtocol::Due(state, 2100));
}

TEST(NodeProtocol, RejectedStaysQuiet) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 1};
  protocol.SendRegistration(&state, 0, rng);
  protocol::Ack rejected = MakeAck("n", protocol::AckResult::kRejected, 0, "InvalidName");
  EXPECT_EQ(protocol.OnAck(&state, rejected, 0, rng), AckOutcome::kRejected);
  EXPECT_FALSE(NodeProtocol::Due(state, int64_t{1} << 50));
}

TEST(NodeProtocol, TombstonedRetriesHourly) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 1};
  protocol.SendRegistration(&state, 0, rng);
  protocol::Ack tombstoned = MakeAck("n", protocol::AckResult::kRejected, 0, "Tombstoned");
  EXPECT_EQ(protocol.OnAck(&state, tombstoned, 0, rng), AckOutcome::kTombstoned);
  EXPECT_FALSE(NodeProtocol::Due(state, 3599999));
  EXPECT_TRUE(NodeProtocol::Due(state, 3600000));
  EXPECT_TRUE(NodeProtocol::WantsRegistration(state));
}

TEST(NodeProtocol, AckForAnOlderEpochIsIgnored) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 5};
  protocol.SendRegistration(&state, 0, rng);
  EXPECT_EQ(protocol.OnAck(&state, Accepted(4), 0, rng), AckOutcome::kIgnored);
  EXPECT_EQ(state.phase, NodePhase::kAwaitingAck);
}

TEST(NodeProtocol, DuplicateAckIsIgnored) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 5};
  protocol.SendRegistration(&state, 0, rng);
  EXPECT_EQ(protocol.OnAck(&state, Accepted(5), 0, rng), AckOutcome::kAccepted);
  int64_t due = state.due_ms;
  EXPECT_EQ(protocol.OnAck(&state, Accepted(5), 0, rng), AckOutcome::kIgnored);
  EXPECT_EQ(state.due_ms, due);
}

TEST(NodeProtocol, CloudAssignedEpochIsAdoptedAndKeepsTheSequence) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state;  // epoch 0: let the cloud assign one.
  EXPECT_EQ(protocol.SendRegistration(&state, 0, rng), 1u);
  EXPECT_EQ(protocol.OnAck(&state, Accepted(12), 0, rng), AckOutcome::kAccepted);
  EXPECT_EQ(state.epoch, 12u);
  EXPECT_EQ(protocol.SendHeartbeat(&state, state.due_ms), 2u);
}

TEST(NodeProtocol, ResyncRegistersAgainInTheSameEpochWithANewSequence) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 2};
  protocol.SendRegistration(&state, 0, rng);
  protocol.OnAck(&state, Accepted(2), 0, rng);
  protocol.SendHeartbeat(&state, state.due_ms);
  protocol.OnResync(&state, 50000);
  EXPECT_TRUE(NodeProtocol::Due(state, 50000));
  EXPECT_TRUE(NodeProtocol::WantsRegistration(state));
  EXPECT_EQ(protocol.SendRegistration(&state, 50000, rng), 3u);
  EXPECT_EQ(state.epoch, 2u);
  EXPECT_EQ(protocol.OnAck(&state, Accepted(2), 50001, rng), AckOutcome::kAccepted);
}

TEST(NodeProtocol, DeregisterSilencesTheNodeEvenAfterResync) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 2};
  protocol.SendRegistration(&state, 0, rng);
  protocol.OnAck(&state, Accepted(2), 0, rng);
  protocol.OnDeregister(&state);
  protocol.OnResync(&state, 0);
  EXPECT_FALSE(NodeProtocol::Due(state, int64_t{1} << 50));
}

TEST(NodeProtocol, RestartStartsTheNextEpochAtSequenceOne) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState state{.epoch = 7};
  protocol.SendRegistration(&state, 0, rng);
  protocol.OnAck(&state, Accepted(7), 0, rng);
  protocol.SendHeartbeat(&state, state.due_ms);
  protocol.Restart(&state, 30000);
  EXPECT_EQ(state.epoch, 8u);
  EXPECT_EQ(state.boot, 1u);
  EXPECT_TRUE(NodeProtocol::Due(state, 30000));
  EXPECT_EQ(protocol.SendRegistration(&state, 30000, rng), 1u);
  // A late ack for the old epoch does not accept the new registration.
  EXPECT_EQ(protocol.OnAck(&state, Accepted(7), 30001, rng), AckOutcome::kIgnored);
  EXPECT_EQ(protocol.OnAck(&state, Accepted(8), 30002, rng), AckOutcome::kAccepted);
}

TEST(NodeProtocol, ReconnectMakesHeartbeatsDueAtOnceAndRetriesSoon) {
  NodeProtocol protocol(absl::Seconds(10), Policy());
  Rng rng(1);
  NodeState accepted{.epoch = 1};
  protocol.SendRegistration(&accepted, 0, rng);
  protocol.OnAck(&accepted, Accepted(1), 0, rng);
  protocol.OnReconnect(&accepted, 70000, rng);
  EXPECT_TRUE(NodeProtocol::Due(accepted, 70000));

  NodeState waiting{.epoch = 1};
  int64_t now = 0;
  for (int i = 0; i < 6; ++i) {  // Backoff has grown to a minute.
    protocol.SendRegistration(&waiting, now, rng);
    now = waiting.due_ms;
  }
  protocol.OnReconnect(&waiting, now - 50000, rng);
  EXPECT_LE(waiting.due_ms, now - 50000 + 2000);
  EXPECT_EQ(waiting.attempts, 0);
}

}  // namespace
}  // namespace kole::edge
