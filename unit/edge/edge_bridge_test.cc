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
#include "storage/daemon_pods.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"
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

// kole-agent with --runtime=process against the real bridge with a pod store:
// an EdgeDaemonSet's pod runs on the device, the API shows it Running once
// the heartbeat confirms the set, a delete through the API restarts it, a
// crash loop shows as CrashLoopBackOff, and deselecting the node stops it.
// The broker runs without ACLs (the test broker's ACLs do not yet list the
// pods channels).
class EdgeBridgePodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/edge-bridge-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/out");
    broker_ = std::make_unique<kole::testing::MosquittoServer>(
        kole::testing::MosquittoOptions{.allow_anonymous = true});
    ASSERT_TRUE(broker_->Start().ok());
    store_ = *storage::NodeStore::Open(storage::StoreOptions{});
    pods_ = *storage::PodStore::Open({});
    bridge::BridgeOptions options;
    options.mqtt.broker = broker_->url();
    options.mqtt.client_id = "kole-cloud";
    options.mqtt.min_backoff = absl::Milliseconds(50);
    options.mqtt.max_backoff = absl::Milliseconds(500);
    options.liveness_interval = absl::Hours(1);
    options.pod_resend_after = absl::Seconds(1);
    options.distributor.interval = absl::Milliseconds(50);
    bridge_ = *bridge::Bridge::Create(options, store_.get(), &registry_, pods_.get());
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

  // An EdgeDaemonSet whose one container runs `script` with /bin/sh.
  static storage::WorkloadSpec ShellWorkload(const std::string& name, const std::string& script) {
    std::string quoted;
    for (char c : script) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    storage::WorkloadSpec spec;
    spec.namespace_ = "edge";
    spec.name = name;
    spec.uid = storage::Uid{0x1234, 0x5678 + name.size()};
    spec.pod_labels = {{"app", name}};
    spec.pod_spec_json = R"({"containers":[{"name":"main","image":"busybox:1.36",)"
                         R"("command":["/bin/sh","-c",")" +
                         quoted + R"("]}],"restartPolicy":"Always"})";
    spec.container_names = {"main"};
    spec.container_images = {"busybox:1.36"};
    return spec;
  }

  static storage::DaemonNodeFacts Node() {
    storage::DaemonNodeFacts facts;
    facts.name = "pi-lab-07";
    return facts;
  }

  std::optional<storage::Pod> GetPod(const std::string& workload) {
    absl::StatusOr<storage::Pod> pod =
        pods_->Get("edge", storage::DaemonPodName(workload, "pi-lab-07"));
    if (!pod.ok()) return std::nullopt;
    return *pod;
  }

  std::vector<std::string> Lines(const std::string& name) {
    std::ifstream in(dir_ + "/out/" + name);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  std::string dir_;
  std::unique_ptr<kole::testing::MosquittoServer> broker_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  metrics::MetricsRegistry registry_;
  std::unique_ptr<bridge::Bridge> bridge_;
};

TEST_F(EdgeBridgePodsTest, AgentRunsTheDaemonSetPodAndTheApiShowsIt) {
  Process agent(kAgent,
                {"--broker", broker_->url(), "--facts-root",
                 std::string(KOLE_EDGE_TESTDATA) + "/rpi", "--state-dir", dir_ + "/state",
                 "--heartbeat-interval", "300ms", "--runtime=process", "--pod-restart-backoff",
                 "200ms", "--pod-restart-max-backoff", "400ms", "--pod-stop-grace-period", "1s"},
                dir_ + "/agent");
  ASSERT_TRUE(agent.Start());
  ASSERT_TRUE(WaitUntil([&] { return store_->Get("pi-lab-07").ok(); })) << agent.Stderr();

  // The pod runs, and the API shows it Running and ready.
  pods_->SetWorkload(ShellWorkload("logger", "echo $$$$ >> " + dir_ + "/out/logger; exec sleep 60"),
                     {Node()});
  ASSERT_TRUE(WaitUntil([&] { return Lines("logger").size() == 1; })) << agent.Stderr();
  ASSERT_TRUE(WaitUntil([&] {
    std::optional<storage::Pod> pod = GetPod("logger");
    return pod && pod->phase == "Running" &&
           pod->status_json.find(R"("status":"True")") != std::string::npos;
  })) << (GetPod("logger") ? GetPod("logger")->status_json : "no pod")
      << agent.Stderr();
  storage::Pod before = *GetPod("logger");

  // kubectl delete pod: the device restarts it; the API shows a new pod,
  // Running again, with no restarts.
  ASSERT_TRUE(pods_->Delete("edge", before.name, 0).ok());
  ASSERT_TRUE(WaitUntil([&] { return Lines("logger").size() == 2; })) << agent.Stderr();
  EXPECT_NE(Lines("logger")[0], Lines("logger")[1]);
  ASSERT_TRUE(WaitUntil([&] {
    std::optional<storage::Pod> pod = GetPod("logger");
    return pod && pod->phase == "Running" && !(pod->uid == before.uid) &&
           pod->status_json.find(R"("status":"True")") != std::string::npos;
  })) << GetPod("logger")->status_json;
  EXPECT_NE(GetPod("logger")->status_json.find(R"("restartCount":0)"), std::string::npos)
      << GetPod("logger")->status_json;

  // A crash loop shows as such, with its restarts.
  pods_->SetWorkload(ShellWorkload("crasher", "exit 1"), {Node()});
  ASSERT_TRUE(WaitUntil([&] {
    std::optional<storage::Pod> pod = GetPod("crasher");
    return pod && pod->status_json.find("CrashLoopBackOff") != std::string::npos &&
           pod->status_json.find(R"("restartCount":0)") == std::string::npos;
  })) << (GetPod("crasher") ? GetPod("crasher")->status_json : "no pod")
      << agent.Stderr();
  EXPECT_NE(GetPod("logger")->status_json.find(R"("status":"True")"), std::string::npos)
      << "the healthy pod stays ready: " << GetPod("logger")->status_json;

  // A node the workload no longer selects stops the pod.
  pid_t pid = std::stoi(Lines("logger")[1]);
  pods_->SetWorkload(ShellWorkload("logger", "echo $$$$ >> " + dir_ + "/out/logger; exec sleep 60"),
                     {});
  EXPECT_TRUE(WaitUntil([&] { return kill(pid, 0) != 0; })) << agent.Stderr();
  EXPECT_FALSE(GetPod("logger").has_value());

  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.Wait(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace kole::edge::testing
