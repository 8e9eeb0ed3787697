#include "edge/agent_state.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "edge/node_state.h"
#include "unit/edge/test_acks.h"

namespace kole::edge {
namespace {

using testing::MakeAck;

std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/agent-state-" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(AgentState, FirstStartIsEpochOne) {
  std::string dir = FreshDir("first");
  absl::StatusOr<uint32_t> epoch = NextEpoch(dir);
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  EXPECT_EQ(*epoch, 1u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/state.tmp"));
}

TEST(AgentState, EveryStartIsANewerEpoch) {
  std::string dir = FreshDir("restarts");
  for (uint32_t expected = 1; expected <= 5; ++expected) {
    absl::StatusOr<uint32_t> epoch = NextEpoch(dir);
    ASSERT_TRUE(epoch.ok());
    EXPECT_EQ(*epoch, expected);
  }
  absl::StatusOr<uint32_t> stored = LoadEpoch(dir);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 5u);
}

TEST(AgentState, CorruptStateFileIsRefused) {
  std::string dir = FreshDir("corrupt");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/state") << "garbage\n";
  absl::StatusOr<uint32_t> epoch = NextEpoch(dir);
  ASSERT_FALSE(epoch.ok());
  EXPECT_EQ(epoch.status().code(), absl::StatusCode::kDataLoss);
}

TEST(AgentState, SaveOverwritesAtomically) {
  std::string dir = FreshDir("save");
  ASSERT_TRUE(SaveEpoch(dir, 41).ok());
  ASSERT_TRUE(SaveEpoch(dir, 42).ok());
  std::ifstream in(dir + "/state");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "epoch 42\n");
}

// What the cloud sees across agent restarts: each run's messages carry a
// higher epoch and a sequence that starts again at 1, so (epoch, sequence)
// only ever increases.
TEST(AgentState, SequenceOrderHoldsAcrossRestarts) {
  std::string dir = FreshDir("sequence");
  NodeProtocol protocol(absl::Seconds(10), RetryPolicy{.jitter = 0});
  Rng rng(5);
  std::pair<uint32_t, uint32_t> last{0, 0};
  for (int run = 0; run < 3; ++run) {
    absl::StatusOr<uint32_t> epoch = NextEpoch(dir);
    ASSERT_TRUE(epoch.ok());
    NodeState state{.epoch = *epoch};
    int64_t now = 0;
    uint32_t sequence = protocol.SendRegistration(&state, now, rng);
    EXPECT_EQ(sequence, 1u);
    EXPECT_GT(std::pair(state.epoch, sequence), last);
    last = {state.epoch, sequence};
    protocol.OnAck(&state, MakeAck("n", protocol::AckResult::kAccepted, state.epoch), now, rng);
    for (int beat = 0; beat < 4; ++beat) {
      now = state.due_ms;
      sequence = protocol.SendHeartbeat(&state, now);
      EXPECT_GT(std::pair(state.epoch, sequence), last);
      last = {state.epoch, sequence};
    }
  }
  EXPECT_EQ(last.first, 3u);
}

}  // namespace
}  // namespace kole::edge
