// The bridge against a real mosquitto with KOLE's ACLs: registration and
// acknowledgement through the broker, identities enforced by the broker and by
// the bridge, a shared subscription over two consumers, and a broker restart.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mqtt-bridge/bridge.h"
#include "mqtt-bridge/mqtt_client.h"
#include "unit/testing/mosquitto_server.h"

namespace kole::bridge {
namespace {

using ::testing::HasSubstr;

constexpr char kCloudPassword[] = "cloud-secret";

// A device-side connection that records what the cloud sends it.
class TestDevice {
 public:
  TestDevice(const std::string& broker, const std::string& name, bool gateway) : name_(name) {
    protocol::MqttClientOptions options{.broker = broker,
                                        .client_id = name,
                                        .username = name,
                                        .password = "pw-" + name,
                                        .min_backoff = absl::Milliseconds(50),
                                        .max_backoff = absl::Milliseconds(500)};
    std::string kind = gateway ? "gateways" : "nodes";
    client_ = *protocol::MqttClient::Create(options, [this](const protocol::MqttMessage& m) {
      absl::MutexLock lock(&mu_);
      received_.emplace_back(std::string(m.topic), std::string(m.payload));
    });
    EXPECT_TRUE(client_
                    ->Subscribe({fmt::format("kole/v1/{}/{}/ack", kind, name),
                                 fmt::format("kole/v1/{}/{}/control", kind, name)},
                                1)
                    .ok());
    client_->Start();
    EXPECT_TRUE(client_->WaitConnected(absl::Seconds(10)));
  }

  void Publish(const std::string& topic, const std::string& payload, int qos = 1) {
    EXPECT_TRUE(client_->Publish(topic, payload, qos).ok());
  }

  // Waits for a message on a topic ending in `suffix` that contains `text`.
  std::string WaitFor(std::string_view suffix, std::string_view text = "",
                      absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      {
        absl::MutexLock lock(&mu_);
        for (const auto& [topic, payload] : received_) {
          if (topic.ends_with(suffix) && payload.find(text) != std::string::npos) return payload;
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }

  protocol::MqttClient* client() { return client_.get(); }

 private:
  std::string name_;
  std::unique_ptr<protocol::MqttClient> client_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, std::string>> received_ ABSL_GUARDED_BY(mu_);
};

class BridgeMosquittoTest : public ::testing::Test {
 protected:
  void StartBroker(bool persistence = false) {
    testing::MosquittoOptions options;
    options.users = {{"kole-cloud", kCloudPassword}};
    for (const char* user : {"edge-1", "edge-2", "gw-1", "gw-2"}) {
      options.users.emplace_back(user, std::string("pw-") + user);
    }
    options.persistence = persistence;
    broker_ = std::make_unique<testing::MosquittoServer>(options);
    ASSERT_TRUE(broker_->Start().ok());
  }

  void StartBridge(int consumers = 1) {
    store_ = *storage::NodeStore::Open({.clock = &clock_});
    BridgeOptions options;
    options.mqtt = {.broker = broker_->url(),
                    .client_id = "kole-cloud",
                    .username = "kole-cloud",
                    .password = kCloudPassword,
                    .min_backoff = absl::Milliseconds(50),
                    .max_backoff = absl::Milliseconds(500)};
    options.consumers = consumers;
    options.liveness_interval = absl::Hours(1);
    bridge_ = *Bridge::Create(options, store_.get(), &registry_);
    bridge_->Start();
    WaitUntil([&] { return bridge_->status().consumers_connected == consumers; });
  }

  static void WaitUntil(const std::function<bool()>& done,
                        absl::Duration timeout = absl::Seconds(15)) {
    absl::Time deadline = absl::Now() + timeout;
    while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE(done()) << "timed out";
  }

  static std::string Registration(std::string_view node, uint32_t epoch) {
    return fmt::format(R"({{"v":1,"id":1,"node":"{}","epoch":{},"seq":1}})", node, epoch);
  }

  storage::ManualClock clock_;
  std::unique_ptr<testing::MosquittoServer> broker_;
  std::unique_ptr<storage::NodeStore> store_;
  metrics::MetricsRegistry registry_;
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BridgeMosquittoTest, NodeRegistersAndIsAcknowledgedThroughTheBroker) {
  StartBroker();
  StartBridge();
  TestDevice device(broker_->url(), "edge-1", /*gateway=*/false);

  device.Publish("kole/v1/nodes/edge-1/register", Registration("edge-1", 3));
  std::string ack = device.WaitFor("/ack");
  EXPECT_THAT(ack, HasSubstr(R"("result":"Accepted")"));
  EXPECT_THAT(ack, HasSubstr(R"("epoch":3)"));
  EXPECT_TRUE(store_->Get("edge-1").ok());

  device.Publish("kole/v1/nodes/edge-1/heartbeat", R"({"v":1,"epoch":3,"seq":2})", 0);
  WaitUntil([&] {
    return registry_.Render().find("kole_bridge_heartbeats_total{outcome=\"applied\"} 1\n") !=
           std::string::npos;
  });
}

TEST_F(BridgeMosquittoTest, BrokerStopsADevicePublishingAsAnotherNode) {
  StartBroker();
  StartBridge();
  TestDevice device(broker_->url(), "edge-1", /*gateway=*/false);

  // edge-1's credentials cannot write under edge-2's topic: the broker drops it.
  device.Publish("kole/v1/nodes/edge-2/register", Registration("edge-2", 1));
  device.Publish("kole/v1/nodes/edge-1/register", Registration("edge-1", 1));
  ASSERT_THAT(device.WaitFor("/ack"), HasSubstr("Accepted"));
  bridge_->Drain();

  EXPECT_FALSE(store_->Get("edge-2").ok());
  EXPECT_TRUE(store_->Get("edge-1").ok());
}

TEST_F(BridgeMosquittoTest, GatewayCannotSpeakForNodesThatAreNotItsOwn) {
  StartBroker();
  StartBridge();
  TestDevice gw1(broker_->url(), "gw-1", /*gateway=*/true);
  TestDevice gw2(broker_->url(), "gw-2", /*gateway=*/true);

  gw1.Publish("kole/v1/gateways/gw-1/register",
              R"({"v":1,"id":1,"nodes":[{"node":"site-a-1","epoch":1}]})");
  ASSERT_THAT(gw1.WaitFor("/ack"), HasSubstr("Accepted"));

  // gw-2 may publish on its own topic, but not for gw-1's node.
  gw2.Publish("kole/v1/gateways/gw-2/heartbeat",
              R"({"v":1,"beats":[{"node":"site-a-1","epoch":1,"seq":5}]})", 0);
  gw2.Publish("kole/v1/gateways/gw-2/register",
              R"({"v":1,"id":2,"nodes":[{"node":"site-a-1","epoch":9}]})");
  EXPECT_THAT(gw2.WaitFor("/ack"), HasSubstr("NotYourNode"));
  bridge_->Drain();

  EXPECT_EQ(store_->Get("site-a-1")->edge.gateway, "gw-1");
  EXPECT_EQ(store_->Get("site-a-1")->edge.epoch, 1u);
  EXPECT_THAT(registry_.Render(),
              HasSubstr("kole_bridge_heartbeats_total{outcome=\"wrong_gateway\"} 1\n"));
}

TEST_F(BridgeMosquittoTest, TwoConsumersShareTheStream) {
  StartBroker();
  StartBridge(/*consumers=*/2);
  TestDevice gateway(broker_->url(), "gw-1", /*gateway=*/true);

  // 40 registration messages of 25 nodes each; every one is answered once.
  for (int message = 0; message < 40; ++message) {
    std::string nodes;
    for (int i = 0; i < 25; ++i) {
      if (!nodes.empty()) nodes += ',';
      nodes += fmt::format(R"({{"node":"n-{}-{}","epoch":1}})", message, i);
    }
    gateway.Publish("kole/v1/gateways/gw-1/register",
                    fmt::format(R"({{"v":1,"id":{},"nodes":[{}]}})", message, nodes));
  }
  WaitUntil([&] { return store_->Stats().nodes == 1000; });
  for (int message = 0; message < 40; ++message) {
    EXPECT_FALSE(gateway.WaitFor("/ack", fmt::format(R"("id":{},)", message)).empty()) << message;
  }
  // Both consumers carried part of it.
  EXPECT_THAT(registry_.Render(), HasSubstr("kole_bridge_consumers_connected 2\n"));
}

TEST_F(BridgeMosquittoTest, BrokerRestartPausesLivenessAndTheBridgeResubscribes) {
  StartBroker(/*persistence=*/false);
  StartBridge();
  {
    TestDevice device(broker_->url(), "edge-1", /*gateway=*/false);
    device.Publish("kole/v1/nodes/edge-1/register", Registration("edge-1", 1));
    ASSERT_THAT(device.WaitFor("/ack"), HasSubstr("Accepted"));
  }

  broker_->Stop();
  WaitUntil([&] { return bridge_->status().consumers_connected == 0; });
  clock_.Advance(120);  // Far past the grace period, while the cloud is blind.
  bridge_->CheckLiveness();
  EXPECT_TRUE(bridge_->status().liveness_paused);
  EXPECT_EQ(store_->Get("edge-1")->ready, storage::ConditionStatus::kTrue);

  // A broker without persistence forgot every subscription: the bridge must
  // make them again for the device's next message to reach the store.
  ASSERT_TRUE(broker_->Start().ok());
  WaitUntil([&] { return bridge_->status().consumers_connected == 1; });
  bridge_->CheckLiveness();  // Healthy again: clocks restart.
  EXPECT_FALSE(bridge_->status().liveness_paused);
  bridge_->CheckLiveness();
  EXPECT_EQ(store_->Get("edge-1")->ready, storage::ConditionStatus::kTrue);

  TestDevice device(broker_->url(), "edge-1", /*gateway=*/false);
  device.Publish("kole/v1/nodes/edge-1/heartbeat", R"({"v":1,"epoch":1,"seq":7})", 0);
  WaitUntil([&] {
    return registry_.Render().find("kole_bridge_heartbeats_total{outcome=\"applied\"} 1\n") !=
           std::string::npos;
  });
}

}  // namespace
}  // namespace kole::bridge
