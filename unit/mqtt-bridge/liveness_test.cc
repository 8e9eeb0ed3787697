// LivenessPolicy on a fake clock: the pause while the cloud side is unhealthy,
// the clock reset on recovery, and the hold and gradual release of a mass
// transition.

#include "mqtt-bridge/liveness.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace kole::bridge {
namespace {

using ::testing::ElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// The defaults, spelled out so the arithmetic below reads on its own:
// threshold max(100, 10% of the fleet), a two-minute hold, then 1% of the
// fleet per second.
LivenessOptions Options() {
  LivenessOptions options;
  options.mass_fraction = 0.1;
  options.mass_min_nodes = 100;
  options.mass_hold = absl::Minutes(2);
  options.mass_release_per_second = 0.01;
  return options;
}

// A policy with the options above, ticked at offsets from kStart.
class LivenessTest : public ::testing::Test {
 protected:
  LivenessDecision TickAt(absl::Duration since_start, size_t expired, size_t nodes,
                          bool healthy = true) {
    return policy_.Tick(kStart + since_start, healthy, expired, nodes);
  }

  LivenessPolicy policy_{Options()};
};

TEST_F(LivenessTest, FewExpiredNodesAreAllMarked) {
  LivenessDecision decision = TickAt(absl::ZeroDuration(), 5, 1000);
  EXPECT_EQ(decision.limit, 5u);
  EXPECT_FALSE(decision.paused);
  EXPECT_FALSE(decision.holding);
  EXPECT_FALSE(decision.reset_clocks);
}

TEST_F(LivenessTest, NothingExpiredMarksNothing) {
  LivenessDecision decision = TickAt(absl::ZeroDuration(), 0, 1000);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_FALSE(decision.holding);
}

TEST_F(LivenessTest, ExpiredAtTheFractionThresholdIsNotAMassTransition) {
  LivenessDecision decision = TickAt(absl::ZeroDuration(), 1000, 10000);
  EXPECT_EQ(decision.limit, 1000u);
  EXPECT_FALSE(decision.holding);
}

TEST_F(LivenessTest, OneOverTheFractionThresholdIsHeld) {
  LivenessDecision decision = TickAt(absl::ZeroDuration(), 1001, 10000);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_TRUE(decision.holding);
}

TEST_F(LivenessTest, SmallFleetUsesTheMinimumNodeThreshold) {
  // 10% of 150 is 15, but up to 100 nodes at once is never a mass transition.
  EXPECT_EQ(TickAt(absl::ZeroDuration(), 100, 150).limit, 100u);
  LivenessDecision decision = TickAt(absl::Seconds(1), 101, 150);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_TRUE(decision.holding);
}

TEST_F(LivenessTest, UnhealthyCloudPausesWithLimitZero) {
  LivenessDecision decision = TickAt(absl::ZeroDuration(), 5, 1000, /*healthy=*/false);
  EXPECT_TRUE(decision.paused);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_FALSE(decision.reset_clocks);
  EXPECT_FALSE(decision.holding);
}

TEST_F(LivenessTest, StaysPausedForAsLongAsTheCloudIsUnhealthy) {
  for (int second = 0; second < 600; second += 10) {
    LivenessDecision decision = TickAt(absl::Seconds(second), 900, 1000, /*healthy=*/false);
    EXPECT_TRUE(decision.paused) << second;
    EXPECT_EQ(decision.limit, 0u) << second;
    EXPECT_FALSE(decision.reset_clocks) << second;
  }
}

TEST_F(LivenessTest, RecoveryResetsTheClocksOnceWithoutMarking) {
  TickAt(absl::ZeroDuration(), 5, 1000, /*healthy=*/false);
  LivenessDecision decision = TickAt(absl::Seconds(1), 5, 1000);
  EXPECT_TRUE(decision.reset_clocks);
  EXPECT_FALSE(decision.paused);
  EXPECT_EQ(decision.limit, 0u);
}

TEST_F(LivenessTest, AfterTheResetTicksAreNormalAgain) {
  TickAt(absl::ZeroDuration(), 5, 1000, /*healthy=*/false);
  TickAt(absl::Seconds(1), 5, 1000);
  LivenessDecision decision = TickAt(absl::Seconds(2), 5, 1000);
  EXPECT_FALSE(decision.reset_clocks);
  EXPECT_EQ(decision.limit, 5u);
  decision = TickAt(absl::Seconds(3), 7, 1000);
  EXPECT_FALSE(decision.reset_clocks);
  EXPECT_EQ(decision.limit, 7u);
}

TEST_F(LivenessTest, AHealthyStartDoesNotResetTheClocks) {
  EXPECT_FALSE(TickAt(absl::ZeroDuration(), 0, 1000).reset_clocks);
  EXPECT_FALSE(TickAt(absl::Seconds(1), 0, 1000).reset_clocks);
}

TEST_F(LivenessTest, MassTransitionIsHeldForTheHoldPeriod) {
  for (int second = 0; second < 120; ++second) {
    LivenessDecision decision = TickAt(absl::Seconds(second), 500, 1000);
    EXPECT_TRUE(decision.holding) << second;
    EXPECT_EQ(decision.limit, 0u) << second;
    EXPECT_FALSE(decision.paused) << second;
  }
}

TEST_F(LivenessTest, AfterTheHoldNodesAreReleasedAtTheConfiguredRate) {
  // 1% of 10000 nodes per second: 100 a second, ticking once a second.
  TickAt(absl::ZeroDuration(), 5000, 10000);
  size_t expired = 5000;
  for (int second = 120; second < 130; ++second) {
    LivenessDecision decision = TickAt(absl::Seconds(second), expired, 10000);
    EXPECT_EQ(decision.limit, 100u) << second;
    EXPECT_TRUE(decision.holding) << second;
    expired -= decision.limit;
  }
}

TEST_F(LivenessTest, ReleaseFollowsTheTimeBetweenTicks) {
  TickAt(absl::ZeroDuration(), 5000, 10000);
  EXPECT_EQ(TickAt(absl::Seconds(120), 5000, 10000).limit, 100u);
  EXPECT_EQ(TickAt(absl::Seconds(125), 4900, 10000).limit, 500u);
  EXPECT_EQ(TickAt(absl::Seconds(125) + absl::Milliseconds(500), 4400, 10000).limit, 50u);
}

TEST(LivenessPolicy, FractionalReleaseCreditCarriesAcrossTicks) {
  // 12.5% of 20 nodes is 2.5 a second (exact in binary): 2, 3, 2, 3, ...
  LivenessOptions options = Options();
  options.mass_min_nodes = 1;
  options.mass_release_per_second = 0.125;
  LivenessPolicy policy(options);
  policy.Tick(kStart, true, 10, 20);
  std::vector<size_t> limits;
  for (int second = 120; second < 126; ++second) {
    limits.push_back(policy.Tick(kStart + absl::Seconds(second), true, 10, 20).limit);
  }
  EXPECT_THAT(limits, ElementsAre(2, 3, 2, 3, 2, 3));
}

TEST_F(LivenessTest, FrequentTicksDoNotReleaseFasterThanTheRate) {
  // 1% of 150 nodes is 1.5 a second; ticking ten times a second must still
  // release about 15 in ten seconds, not one per tick.
  TickAt(absl::ZeroDuration(), 140, 150);
  size_t released = 0;
  for (int tick = 0; tick < 100; ++tick) {
    released += TickAt(absl::Seconds(120) + tick * absl::Milliseconds(100), 140, 150).limit;
  }
  EXPECT_GE(released, 14u);
  EXPECT_LE(released, 17u);
}

TEST_F(LivenessTest, ReleaseNeverExceedsTheExpiredCount) {
  // A minute between ticks earns 60% of the fleet, more than the 50% expired.
  TickAt(absl::ZeroDuration(), 5000, 10000);
  TickAt(absl::Seconds(120), 5000, 10000);
  LivenessDecision decision = TickAt(absl::Seconds(180), 4900, 10000);
  EXPECT_EQ(decision.limit, 4900u);
  EXPECT_FALSE(decision.holding);
}

TEST_F(LivenessTest, DroppingUnderTheThresholdClearsTheHold) {
  TickAt(absl::ZeroDuration(), 500, 1000);
  EXPECT_TRUE(TickAt(absl::Seconds(60), 500, 1000).holding);

  // The devices came back: only a few are still silent, and they are marked.
  LivenessDecision decision = TickAt(absl::Seconds(61), 3, 1000);
  EXPECT_FALSE(decision.holding);
  EXPECT_EQ(decision.limit, 3u);

  // A new mass transition is held for a full period from its own start.
  EXPECT_TRUE(TickAt(absl::Seconds(90), 500, 1000).holding);
  EXPECT_EQ(TickAt(absl::Seconds(120), 500, 1000).limit, 0u);
  EXPECT_EQ(TickAt(absl::Seconds(209), 500, 1000).limit, 0u);
  EXPECT_GT(TickAt(absl::Seconds(210), 500, 1000).limit, 0u);
}

TEST_F(LivenessTest, AnUnhealthySpellRestartsTheHold) {
  TickAt(absl::ZeroDuration(), 500, 1000);
  TickAt(absl::Seconds(100), 500, 1000, /*healthy=*/false);
  EXPECT_TRUE(TickAt(absl::Seconds(101), 500, 1000).reset_clocks);

  EXPECT_TRUE(TickAt(absl::Seconds(102), 500, 1000).holding);
  EXPECT_EQ(TickAt(absl::Seconds(221), 500, 1000).limit, 0u);
  EXPECT_GT(TickAt(absl::Seconds(222), 500, 1000).limit, 0u);
}

TEST_F(LivenessTest, OptionsAreKept) {
  LivenessOptions options = Options();
  options.mass_min_nodes = 7;
  LivenessPolicy policy(options);
  EXPECT_EQ(policy.options().mass_min_nodes, 7u);
}

}  // namespace
}  // namespace kole::bridge
