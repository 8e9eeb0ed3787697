// The device programs against the real cloud side: kole-edge-sim and
// kole-agent (the binaries) through a mosquitto with KOLE's ACLs and
// passwords into the real Bridge and NodeStore. This is the check that both
// ends read docs/protocol.md the same way.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "mqtt-bridge/bridge.h"
#include "storage/clock.h"
#include "storage/node_store.h"
#include "unit/edge/edge_test_support.h"
#include "unit/testing/mosquitto_server.h"

namespace kole::edge::testing {
namespace {

using ::testing::HasSubstr;

const std::string kSim = std::string(KOLE_BIN_DIR) + "/kole-edge-sim";
const std::string kAgent = std::string(KOLE_BIN_DIR) + "/kole-agent";
constexpr const char* kCloudPassword = "cloud-secret";
constexpr const char* kDevicePassword = "device-secret";

class EdgeBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/edge-bridge-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);

    kole::testing::MosquittoOptions options;
    options.users = {{"kole-cloud", kCloudPassword}};
    for (const char* user : {"gw-5-0", "gw-5-100", "pi-lab-07"}) {
      options.users.emplace_back(user, kDevicePassword);
    }
    broker_ = std::make_unique<kole::testing::MosquittoServer>(options);
    ASSERT_TRUE(broker_->Start().ok());

    storage::StoreOptions store_options;
    store_options.clock = &clock_;
    store_ = *storage::NodeStore::Open(store_options);
    bridge::BridgeOptions bridge_options;
    protocol::MqttClientOptions& mqtt = bridge_options.mqtt;
    mqtt.broker = broker_->url();
    mqtt.client_id = "kole-cloud";
    mqtt.username = "kole-cloud";
    mqtt.password = kCloudPassword;
    mqtt.min_backoff = absl::Milliseconds(50);
    mqtt.max_backoff = absl::Milliseconds(500);
    bridge_options.liveness_interval = absl::Hours(1);
    bridge_ = *bridge::Bridge::Create(bridge_options, store_.get(), &registry_);
    bridge_->Start();
    ASSERT_TRUE(WaitUntil([&] { return bridge_->status().consumers_connected == 1; }));
  }

  static bool WaitUntil(const std::function<bool()>& done,
                        absl::Duration timeout = absl::Seconds(20)) {
    absl::Time deadline = absl::Now() + timeout;
    while (!done()) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // The value of one sample line of the bridge's metrics, or -1.
  double Metric(const std::string& sample) {
    std::string text = registry_.Render();
    size_t at = text.find(sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 1));
  }

  std::string dir_;
  storage::ManualClock clock_;
  std::unique_ptr<kole::testing::MosquittoServer> broker_;
  std::unique_ptr<storage::NodeStore> store_;
  metrics::MetricsRegistry registry_;
  std::unique_ptr<bridge::Bridge> bridge_;
};

TEST_F(EdgeBridgeTest, SimulatedFleetRegistersIntoTheStoreAndHeartbeats) {
  Process sim(kSim,
              {"--broker",
               broker_->url(),
               "--password",
               kDevicePassword,
               "--seed",
               "5",
               "--nodes",
               "200",
               "--connections",
               "2",
               "--heartbeat-interval",
               "1s",
               "--flush-interval",
               "100ms",
               "--retry-initial-backoff",
               "300ms",
               "--retry-max-backoff",
               "1s",
               "--status-file",
               dir_ + "/status"},
              dir_ + "/sim");
  ASSERT_TRUE(sim.Start());
  ASSERT_TRUE(WaitUntil([&] {
    return std::filesystem::exists(dir_ + "/status") && [&] {
      std::ifstream in(dir_ + "/status");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      return text.find("allRegistered=true") != std::string::npos;
    }();
  })) << sim.Stderr();

  // Every simulated node is in the store, registered through its gateway,
  // with the fleet generator's identity.
  absl::StatusOr<storage::ListResult> list = store_->List({});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->nodes.size(), 200u);
  size_t via_first = 0;
  for (const storage::Node& node : list->nodes) {
    EXPECT_TRUE(node.edge.gateway == "gw-5-0" || node.edge.gateway == "gw-5-100") << node.name;
    via_first += node.edge.gateway == "gw-5-0" ? 1 : 0;
    EXPECT_FALSE(node.node_info.boot_id.empty());
  }
  EXPECT_EQ(via_first, 100u);

  // Heartbeats are applied, none dropped for being stale or malformed.
  EXPECT_TRUE(WaitUntil([&] {
    return Metric("kole_bridge_heartbeats_total{outcome=\"applied\"}") >= 400;
  })) << registry_.Render();

  sim.Signal(SIGTERM);
  std::optional<int> code = sim.Wait(absl::Seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim.Stdout(), HasSubstr("figure sim.registered 200 nodes"));
  // The gateways' goodbye marks their nodes disconnected.
  EXPECT_TRUE(WaitUntil([&] { return store_->CountConnected() == 0; })) << registry_.Render();
}

TEST_F(EdgeBridgeTest, AgentRegistersItsFactsIntoTheStore) {
  Process agent(kAgent,
                {"--broker", broker_->url(), "--password", kDevicePassword, "--facts-root",
                 std::string(KOLE_EDGE_TESTDATA) + "/rpi", "--state-dir", dir_ + "/state",
                 "--heartbeat-interval", "300ms", "--labels", "edge.kole.io/site=lab-1"},
                dir_ + "/agent");
  ASSERT_TRUE(agent.Start());
  ASSERT_TRUE(WaitUntil([&] { return store_->Get("pi-lab-07").ok(); })) << agent.Stderr();
  storage::Node node = *store_->Get("pi-lab-07");
  EXPECT_EQ(node.node_info.boot_id, "6d1f2e0c-4a57-4b7e-9d2b-0f6a3c1e8b55");
  EXPECT_EQ(node.node_info.machine_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(node.node_info.kernel_version, "6.6.31+rpt-rpi-v8");
  EXPECT_EQ(node.edge.epoch, 1u);
  EXPECT_THAT(node.labels, ::testing::Contains(
                               std::pair<std::string, std::string>("edge.kole.io/site", "lab-1")));
  EXPECT_TRUE(WaitUntil([&] {
    return Metric("kole_bridge_heartbeats_total{outcome=\"applied\"}") >= 3;
  })) << registry_.Render();

  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.Wait(absl::Seconds(10)), 0);
  EXPECT_TRUE(WaitUntil([&] { return !store_->Get("pi-lab-07")->edge.connected; }))
      << "the agent's goodbye marks the node disconnected";
}

}  // namespace
}  // namespace kole::edge::testing
