// Integration of the device side with a real mosquitto: kole-edge-sim and
// kole-agent (the real binaries) against TestCloud, a small stand-in for the
// cloud bridge built on the same MqttClient and codec.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "unit/edge/edge_test_support.h"
#include "unit/edge/test_acks.h"

namespace kole::edge::testing {
namespace {

using ::testing::HasSubstr;

// True once `node` sends no heartbeat for `quiet` (longer than its interval
// plus a flush), checked until `timeout`. A message already on its way when
// the node was told to stop may still arrive, hence no single snapshot.
bool GoesQuiet(const TestCloud& cloud, const std::string& node, absl::Duration quiet,
               absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  uint32_t seen = cloud.Snapshot().at(node).heartbeats;
  while (absl::Now() < deadline) {
    absl::SleepFor(quiet);
    uint32_t now = cloud.Snapshot().at(node).heartbeats;
    if (now == seen) return true;
    seen = now;
  }
  return false;
}

const std::string kSim = std::string(KOLE_BIN_DIR) + "/kole-edge-sim";
const std::string kAgent = std::string(KOLE_BIN_DIR) + "/kole-agent";

class EdgeIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/edge-it-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    broker_ = std::make_unique<Broker>(dir_ + "/broker");
    ASSERT_TRUE(broker_->Start()) << "mosquitto did not start";
  }

  std::unique_ptr<TestCloud> StartCloud(TestCloud::AckPolicy policy = TestCloud::AcceptAll()) {
    auto cloud = std::make_unique<TestCloud>(broker_->url(), std::move(policy));
    EXPECT_TRUE(cloud->Start());
    return cloud;
  }

  std::unique_ptr<Process> StartSim(std::vector<std::string> args, const std::string& name) {
    std::vector<std::string> all = {"--broker",
                                    broker_->url(),
                                    "--seed",
                                    "5",
                                    "--heartbeat-interval",
                                    "1s",
                                    "--flush-interval",
                                    "100ms",
                                    "--retry-initial-backoff",
                                    "300ms",
                                    "--retry-max-backoff",
                                    "1s"};
    all.insert(all.end(), args.begin(), args.end());
    auto process = std::make_unique<Process>(kSim, all, dir_ + "/" + name);
    EXPECT_TRUE(process->Start());
    return process;
  }

  std::string dir_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(EdgeIntegrationTest, SimRegistersEveryNodeThenHeartbeatsInOrder) {
  auto cloud = StartCloud();
  auto sim =
      StartSim({"--nodes", "200", "--connections", "4", "--status-file", dir_ + "/status"}, "sim");
  ASSERT_TRUE(cloud->WaitFor(
      [](const TestCloud& c) {
        return c.AcceptedCount() == 200 && c.NodesWithHeartbeats(3) == 200;
      },
      absl::Seconds(20)))
      << sim->Stderr();

  sim->Signal(SIGTERM);
  std::optional<int> code = sim->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 200 nodes"));
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.nodes_per_connection 50 nodes"));

  std::map<std::string, NodeRecord> nodes = cloud->Snapshot();
  ASSERT_EQ(nodes.size(), 200u);
  std::set<std::string> gateways;
  for (const auto& [name, record] : nodes) {
    EXPECT_EQ(record.order_violations, 0u) << name;
    EXPECT_FALSE(record.heartbeat_before_accept) << name;
    EXPECT_EQ(record.sender, protocol::Sender::kGateway);
    gateways.insert(record.via);
  }
  EXPECT_EQ(gateways, (std::set<std::string>{"gw-5-0", "gw-5-50", "gw-5-100", "gw-5-150"}));
  // A clean stop says goodbye on every gateway's will topic.
  EXPECT_TRUE(cloud->WaitFor([](const TestCloud& c) { return c.wills() >= 4; }, absl::Seconds(5)));

  std::ifstream status(dir_ + "/status");
  std::string text((std::istreambuf_iterator<char>(status)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("accepted=200\n"));
  EXPECT_THAT(text, HasSubstr("allRegistered=true\n"));
}

TEST_F(EdgeIntegrationTest, SimWithNodeConnectionsUsesNodeTopics) {
  auto cloud = StartCloud();
  auto sim = StartSim({"--nodes", "20", "--connections", "20", "--exit-when-registered"}, "sim");
  std::optional<int> code = sim->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value()) << sim->Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 20 nodes"));
  for (const auto& [name, record] : cloud->Snapshot()) {
    EXPECT_EQ(record.sender, protocol::Sender::kNode);
    EXPECT_EQ(record.via, name) << "a node connection speaks under its own name";
  }
  EXPECT_EQ(cloud->Snapshot().size(), 20u);
}

TEST_F(EdgeIntegrationTest, SimFailsWhenNotRegisteredWithinTheDuration) {
  // No cloud answers, so --exit-when-registered cannot succeed.
  auto sim = StartSim({"--nodes", "10", "--exit-when-registered", "--duration", "1s"}, "sim");
  std::optional<int> code = sim->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 0 nodes"));
}

TEST_F(EdgeIntegrationTest, SimSlicesOfOneFleetDoNotOverlap) {
  auto cloud = StartCloud();
  auto first = StartSim({"--nodes", "50", "--exit-when-registered"}, "first");
  auto second =
      StartSim({"--nodes", "50", "--first-index", "50", "--exit-when-registered"}, "second");
  ASSERT_EQ(first->Wait(absl::Seconds(20)), 0) << first->Stderr();
  ASSERT_EQ(second->Wait(absl::Seconds(20)), 0) << second->Stderr();
  std::map<std::string, NodeRecord> nodes = cloud->Snapshot();
  EXPECT_EQ(nodes.size(), 100u) << "the two slices name different nodes";
  std::map<std::string, int> per_gateway;
  for (const auto& [name, record] : nodes) ++per_gateway[record.via];
  EXPECT_EQ(per_gateway, (std::map<std::string, int>{{"gw-5-0", 50}, {"gw-5-50", 50}}));
}

TEST_F(EdgeIntegrationTest, SimIgnoresHostileAcknowledgementsAndControlMessages) {
  auto cloud = StartCloud(
      [](const protocol::Registration& r, uint32_t attempt) -> std::optional<protocol::Ack> {
        if (attempt == 1) return std::nullopt;  // Leave time for the garbage below.
        return MakeAck(r.node, protocol::AckResult::kAccepted, r.epoch);
      });
  auto sim = StartSim({"--nodes", "20", "--exit-when-registered"}, "sim");
  // Once the first registrations arrive the gateway is subscribed.
  ASSERT_TRUE(
      cloud->WaitFor([](const TestCloud& c) { return c.nodes().size() == 20; }, absl::Seconds(10)));
  for (const char* channel : {"ack", "control"}) {
    std::string topic = std::string("kole/v1/gateways/gw-5-0/") + channel;
    cloud->PublishRaw(topic, "\x01\x02 not json");
    cloud->PublishRaw(topic, R"({"v":1,"id":"x","acks":{"node":7}})");
    cloud->PublishRaw(topic, R"({"v":2,"action":"Deregister","nodes":[]})");
    cloud->PublishRaw(topic, std::string(2 << 20, '{'));
    // Well-formed, but for nodes that are not the gateway's own.
    cloud->PublishRaw(topic, R"({"v":1,"action":"Deregister","nodes":["someone-else"]})");
  }
  std::optional<int> code = sim->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value()) << sim->Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 20 nodes"));
}

TEST_F(EdgeIntegrationTest, SimRetriesUnansweredAndRetryAnsweredRegistrations) {
  // The first registration of every node goes unanswered (lost on the way),
  // the second gets kRetry (the cloud's disk is full), the third is accepted.
  auto cloud = StartCloud(
      [](const protocol::Registration& r, uint32_t attempt) -> std::optional<protocol::Ack> {
        if (attempt == 1) return std::nullopt;
        if (attempt == 2) {
          return MakeAck(r.node, protocol::AckResult::kRetry, 0, "StorageFull");
        }
        return MakeAck(r.node, protocol::AckResult::kAccepted, r.epoch);
      });
  auto sim = StartSim({"--nodes", "200", "--exit-when-registered"}, "sim");
  std::optional<int> code = sim->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << sim->Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 200 nodes"));
  for (const auto& [name, record] : cloud->Snapshot()) {
    EXPECT_GE(record.registrations, 3u) << name;
    EXPECT_TRUE(record.accepted) << name;
  }
  EXPECT_THAT(sim->Stdout(),
              ::testing::ContainsRegex("figure sim.registrations_retried [4-9][0-9][0-9]"));
}

TEST_F(EdgeIntegrationTest, SimUnderInjectedFaultsStillRegistersEveryNode) {
  auto cloud = StartCloud();
  auto sim = StartSim({"--nodes", "200", "--connections", "2", "--batch", "20", "--drop-rate",
                       "0.3", "--duplicate-rate", "0.2", "--reorder-rate", "0.2",
                       "--malformed-rate", "0.2", "--exit-when-registered"},
                      "sim");
  std::optional<int> code = sim->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << sim->Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(cloud->Snapshot().size(), 200u);
  EXPECT_GT(cloud->DecodeErrors(), 0u) << "malformed payloads reached the cloud";
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.faults_dropped"));
}

TEST_F(EdgeIntegrationTest, SimRestartsBumpEpochAndBootId) {
  auto cloud = StartCloud();
  auto sim = StartSim({"--nodes", "50", "--restart-rate", "0.2", "--epoch", "10"}, "sim");
  ASSERT_TRUE(cloud->WaitFor(
      [](const TestCloud& c) {
        size_t restarted = 0;
        for (const auto& [name, record] : c.nodes()) restarted += record.epoch > 10 ? 1 : 0;
        return restarted >= 10;
      },
      absl::Seconds(20)))
      << sim->Stderr();
  sim->Signal(SIGTERM);
  ASSERT_TRUE(sim->Wait(absl::Seconds(10)).has_value());
  for (const auto& [name, record] : cloud->Snapshot()) {
    EXPECT_EQ(record.order_violations, 0u) << name << ": (epoch, seq) went backwards";
    if (record.epoch > 10) {
      EXPECT_EQ(record.boot_ids.size(), record.epoch - 10 + 1)
          << name << ": every restart comes with a new boot id";
    }
  }
}

TEST_F(EdgeIntegrationTest, SimObeysResyncAndDeregisterOnTheGatewayControlTopic) {
  auto cloud = StartCloud();
  auto sim = StartSim({"--nodes", "20", "--epoch", "3"}, "sim");
  ASSERT_TRUE(cloud->WaitFor([](const TestCloud& c) { return c.NodesWithHeartbeats(2) == 20; },
                             absl::Seconds(20)))
      << sim->Stderr();
  std::map<std::string, NodeRecord> before = cloud->Snapshot();
  std::vector<std::string> names;
  for (const auto& [name, record] : before) names.push_back(name);
  const std::string gateway = before.begin()->second.via;
  cloud->SendControl(protocol::Sender::kGateway, gateway,
                     protocol::ControlMessage{.action = protocol::ControlAction::kResync,
                                              .nodes = {names[0], names[1], "not-my-node"},
                                              .reason = "Test"});
  cloud->SendControl(protocol::Sender::kGateway, gateway,
                     protocol::ControlMessage{.action = protocol::ControlAction::kDeregister,
                                              .nodes = {names[2]},
                                              .reason = "Deleted"});
  ASSERT_TRUE(cloud->WaitFor(
      [&](const TestCloud& c) {
        return c.nodes().at(names[0]).registrations == 2 &&
               c.nodes().at(names[1]).registrations == 2;
      },
      absl::Seconds(10)));
  EXPECT_TRUE(GoesQuiet(*cloud, names[2], absl::Milliseconds(2500), absl::Seconds(15)))
      << "a deregistered node goes quiet";
  std::map<std::string, NodeRecord> after = cloud->Snapshot();
  EXPECT_GT(after.at(names[3]).heartbeats, before.at(names[3]).heartbeats + 1);
  for (int k : {0, 1}) {
    EXPECT_EQ(after.at(names[k]).epoch, 3u) << "a resync stays in the epoch";
    EXPECT_GT(after.at(names[k]).heartbeats, before.at(names[k]).heartbeats)
        << "heartbeats resume once the resync is acknowledged";
    EXPECT_EQ(after.at(names[k]).order_violations, 0u);
  }
  EXPECT_EQ(after.at(names[4]).registrations, 1u) << "other nodes are left alone";
  sim->Signal(SIGTERM);
  ASSERT_TRUE(sim->Wait(absl::Seconds(10)).has_value());
}

TEST_F(EdgeIntegrationTest, HeartbeatsResumeAfterTheBrokerRestarts) {
  auto cloud = StartCloud();
  auto sim = StartSim({"--nodes", "200", "--connections", "2"}, "sim");
  ASSERT_TRUE(cloud->WaitFor([](const TestCloud& c) { return c.NodesWithHeartbeats(1) == 200; },
                             absl::Seconds(20)));
  std::map<std::string, NodeRecord> before = cloud->Snapshot();

  // Without persistence the restarted broker has forgotten every session.
  broker_->Stop();
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(broker_->Start());
  ASSERT_TRUE(cloud->WaitFor(
      [&before](const TestCloud& c) {
        for (const auto& [name, record] : c.nodes()) {
          if (record.heartbeats < before.at(name).heartbeats + 2) return false;
        }
        return true;
      },
      absl::Seconds(15)))
      << "some nodes did not heartbeat again after the broker came back";
  sim->Signal(SIGTERM);
  ASSERT_TRUE(sim->Wait(absl::Seconds(10)).has_value());
}

TEST_F(EdgeIntegrationTest, RegistrationsLostInABrokerOutageAreRetriedUntilAcknowledged) {
  // No cloud listens at first: every registration is lost. Then the broker
  // goes away for two seconds and comes back empty (no persistence).
  auto sim = StartSim({"--nodes", "200", "--exit-when-registered"}, "sim");
  absl::SleepFor(absl::Seconds(1));
  broker_->Stop();
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(broker_->Start());
  auto cloud = StartCloud();
  std::optional<int> code = sim->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << sim->Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(sim->Stdout(), HasSubstr("figure sim.registered 200 nodes"));
  EXPECT_EQ(cloud->Snapshot().size(), 200u);
}

class AgentIntegrationTest : public EdgeIntegrationTest {
 protected:
  std::unique_ptr<Process> StartAgent(const std::string& name,
                                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--broker",
                                     broker_->url(),
                                     "--facts-root",
                                     std::string(KOLE_EDGE_TESTDATA) + "/rpi",
                                     "--state-dir",
                                     dir_ + "/agent-state",
                                     "--heartbeat-interval",
                                     "300ms",
                                     "--retry-initial-backoff",
                                     "300ms",
                                     "--labels",
                                     "edge.kole.io/site=lab-1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto process = std::make_unique<Process>(kAgent, args, dir_ + "/" + name);
    EXPECT_TRUE(process->Start());
    return process;
  }
};

TEST_F(AgentIntegrationTest, AgentRegistersHeartbeatsAndSaysGoodbye) {
  auto cloud = StartCloud();
  auto agent = StartAgent("agent1");
  ASSERT_TRUE(cloud->WaitFor(
      [](const TestCloud& c) {
        auto it = c.nodes().find("pi-lab-07");
        return it != c.nodes().end() && it->second.accepted && it->second.heartbeats >= 3;
      },
      absl::Seconds(15)))
      << agent->Stderr();
  NodeRecord first = cloud->Snapshot().at("pi-lab-07");
  EXPECT_EQ(first.epoch, 1u);
  EXPECT_EQ(first.sender, protocol::Sender::kNode);
  EXPECT_EQ(first.boot_id, "6d1f2e0c-4a57-4b7e-9d2b-0f6a3c1e8b55");
  EXPECT_EQ(first.order_violations, 0u);
  EXPECT_FALSE(first.heartbeat_before_accept);

  agent->Signal(SIGTERM);
  std::optional<int> code = agent->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  ASSERT_TRUE(cloud->WaitFor([](const TestCloud& c) { return c.wills() == 1; }, absl::Seconds(5)))
      << "a clean stop publishes the will payload itself";
  EXPECT_EQ(cloud->will_epochs().at(0), 1u);

  // The next start is a newer epoch, its sequence starting again.
  auto again = StartAgent("agent2");
  ASSERT_TRUE(cloud->WaitFor(
      [seen = first.heartbeats](const TestCloud& c) {
        const NodeRecord& r = c.nodes().at("pi-lab-07");
        return r.epoch == 2 && r.heartbeats >= seen + 2;
      },
      absl::Seconds(15)))
      << again->Stderr();
  EXPECT_EQ(cloud->Snapshot().at("pi-lab-07").order_violations, 0u);
  again->Signal(SIGTERM);
  ASSERT_TRUE(again->Wait(absl::Seconds(10)).has_value());
}

TEST_F(AgentIntegrationTest, AgentAnswersResyncWithARegistrationInTheSameEpoch) {
  auto cloud = StartCloud();
  auto agent = StartAgent("agent");
  ASSERT_TRUE(cloud->WaitFor(
      [](const TestCloud& c) {
        auto it = c.nodes().find("pi-lab-07");
        return it != c.nodes().end() && it->second.heartbeats >= 2;
      },
      absl::Seconds(15)))
      << agent->Stderr();
  NodeRecord before = cloud->Snapshot().at("pi-lab-07");
  cloud->SendControl(
      protocol::Sender::kNode, "pi-lab-07",
      protocol::ControlMessage{
          .action = protocol::ControlAction::kResync, .nodes = {"pi-lab-07"}, .reason = "Test"});
  ASSERT_TRUE(cloud->WaitFor(
      [&before](const TestCloud& c) {
        return c.nodes().at("pi-lab-07").registrations > before.registrations;
      },
      absl::Seconds(10)));
  NodeRecord after = cloud->Snapshot().at("pi-lab-07");
  EXPECT_EQ(after.epoch, before.epoch);
  EXPECT_GT(after.last_registration_sequence, before.last_sequence);

  cloud->SendControl(protocol::Sender::kNode, "pi-lab-07",
                     protocol::ControlMessage{.action = protocol::ControlAction::kDeregister,
                                              .nodes = {"pi-lab-07"},
                                              .reason = "Deleted"});
  EXPECT_TRUE(GoesQuiet(*cloud, "pi-lab-07", absl::Seconds(1), absl::Seconds(10)))
      << "a deregistered node sends nothing more";
  agent->Signal(SIGTERM);
  ASSERT_TRUE(agent->Wait(absl::Seconds(10)).has_value());
}

TEST_F(AgentIntegrationTest, AgentWithCloudEpochAdoptsTheAcknowledgedEpoch) {
  // TestCloud answers epoch 0 with epoch 100.
  auto cloud = StartCloud();
  auto agent = StartAgent("agent", {"--cloud-epoch"});
  ASSERT_TRUE(cloud->WaitFor(
      [](const TestCloud& c) {
        auto it = c.nodes().find("pi-lab-07");
        return it != c.nodes().end() && it->second.heartbeats >= 2;
      },
      absl::Seconds(15)))
      << agent->Stderr();
  NodeRecord record = cloud->Snapshot().at("pi-lab-07");
  EXPECT_EQ(record.epoch, 100u) << "heartbeats carry the cloud's epoch";
  EXPECT_EQ(record.order_violations, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/agent-state/state"))
      << "a device without storage writes no state";
  agent->Signal(SIGTERM);
  ASSERT_TRUE(agent->Wait(absl::Seconds(10)).has_value());
}

// The enrollment path: the broker requires a client certificate and takes
// the certificate's common name as the user name, the identity its ACLs key
// on. The agent and a gateway of the simulator connect with their own.
TEST(EdgeTlsTest, AgentAndSimConnectWithClientCertificates) {
  std::string dir = ::testing::TempDir() + "/edge-it-tls";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(MakeCertificates(dir + "/pki", {"kole-test-cloud", "pi-lab-07", "gw-9-0"}));
  const std::string pki = dir + "/pki/";
  Broker broker(dir + "/broker",
                "cafile " + pki + "ca.pem\ncertfile " + pki + "broker.pem\nkeyfile " + pki +
                    "broker-key.pem\nrequire_certificate true\nuse_identity_as_username true\n",
                /*tls=*/true);
  ASSERT_TRUE(broker.Start());
  TestCloud cloud(broker.url());
  cloud.SetTls(pki + "ca.pem", pki + "kole-test-cloud.pem", pki + "kole-test-cloud-key.pem");
  ASSERT_TRUE(cloud.Start());

  Process agent(kAgent,
                {"--broker", broker.url(), "--facts-root", std::string(KOLE_EDGE_TESTDATA) + "/rpi",
                 "--state-dir", dir + "/agent-state", "--heartbeat-interval", "300ms", "--ca-file",
                 pki + "ca.pem", "--cert-file", pki + "pi-lab-07.pem", "--key-file",
                 pki + "pi-lab-07-key.pem"},
                dir + "/agent");
  ASSERT_TRUE(agent.Start());
  Process sim(kSim,
              {"--broker", broker.url(), "--seed", "9", "--nodes", "30", "--heartbeat-interval",
               "1s", "--flush-interval", "100ms", "--ca-file", pki + "ca.pem", "--cert-file",
               pki + "gw-9-0.pem", "--key-file", pki + "gw-9-0-key.pem", "--exit-when-registered"},
              dir + "/sim");
  ASSERT_TRUE(sim.Start());

  std::optional<int> code = sim.Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value()) << sim.Stderr();
  EXPECT_EQ(*code, 0) << sim.Stderr();
  ASSERT_TRUE(cloud.WaitFor(
      [](const TestCloud& c) {
        auto it = c.nodes().find("pi-lab-07");
        return it != c.nodes().end() && it->second.heartbeats >= 2;
      },
      absl::Seconds(15)))
      << agent.Stderr();
  EXPECT_EQ(cloud.Snapshot().size(), 31u);
  agent.Signal(SIGTERM);
  ASSERT_TRUE(agent.Wait(absl::Seconds(10)).has_value());
}

}  // namespace
}  // namespace kole::edge::testing
