#include "edge/edge_sim.h"

#include <gtest/gtest.h>

namespace kole::edge {
namespace {

TEST(SimOptions, DefaultConnectionsFrontAtMostAThousandNodesEach) {
  SimOptions options;
  options.nodes = 1'000'000;
  ASSERT_TRUE(CompleteSimOptions(&options).ok());
  EXPECT_EQ(options.connections, 1000u);
  options = SimOptions{};
  options.nodes = 1001;
  ASSERT_TRUE(CompleteSimOptions(&options).ok());
  EXPECT_EQ(options.connections, 2u);
}

TEST(SimOptions, ThreadsNeverExceedConnections) {
  SimOptions options;
  options.nodes = 10;
  options.threads = 8;
  ASSERT_TRUE(CompleteSimOptions(&options).ok());
  EXPECT_EQ(options.threads, 1);
}

TEST(SimOptions, EpochZeroTakesTheClock) {
  SimOptions options;
  ASSERT_TRUE(CompleteSimOptions(&options).ok());
  EXPECT_GT(options.epoch, 1'700'000'000u);
}

TEST(SimOptions, InvalidOptionsAreRefused) {
  auto refused = [](auto change) {
    SimOptions options;
    change(options);
    return !CompleteSimOptions(&options).ok();
  };
  EXPECT_TRUE(refused([](SimOptions& o) { o.nodes = 0; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.connections = o.nodes + 1; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.batch = 0; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.batch = 1001; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.faults.drop_rate = 1.5; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.first_index = FleetGenerator::kMaxNodes; }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.heartbeat_interval = absl::Milliseconds(1); }));
  EXPECT_TRUE(refused([](SimOptions& o) { o.fleet.site_count = 0; }));
}

TEST(EdgeSimulator, CreateBuildsTheFleetWithoutConnecting) {
  SimOptions options;
  options.broker = "tcp://127.0.0.1:1";  // Never dialled: Start() is not called.
  options.nodes = 2500;
  absl::StatusOr<std::unique_ptr<EdgeSimulator>> sim = EdgeSimulator::Create(options);
  ASSERT_TRUE(sim.ok()) << sim.status();
  SimCounters counters = (*sim)->Counters();
  EXPECT_EQ(counters.nodes, 2500u);
  EXPECT_EQ(counters.connections, 3u);
  EXPECT_EQ(counters.connections_up, 0u);
  EXPECT_EQ(counters.registered, 0u);
  EXPECT_FALSE((*sim)->AllRegistered());
  EXPECT_LT((*sim)->RegisterSeconds(), 0);
}

TEST(EdgeSimulator, BadBrokerUrlIsRefused) {
  SimOptions options;
  options.broker = "http://127.0.0.1:1883";
  options.nodes = 10;
  EXPECT_FALSE(EdgeSimulator::Create(options).ok());
}

}  // namespace
}  // namespace kole::edge
