// The bridge in process: messages go in through Deliver(), replies come out
// through a recording Publisher, the store is real (in memory unless a test
// needs durability). The broker path is covered by bridge_mosquitto_test.

#include "mqtt-bridge/bridge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "storage/clock.h"

namespace kole::bridge {
namespace {

using ::testing::HasSubstr;

class RecordingPublisher : public Publisher {
 public:
  absl::Status Publish(std::string_view topic, std::string_view payload, int qos,
                       bool retained = false) override {
    absl::MutexLock lock(&mu_);
    sent_.emplace_back(std::string(topic), std::string(payload));
    return absl::OkStatus();
  }

  std::vector<std::pair<std::string, std::string>> sent() const {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

  // The payloads sent to `topic`, waiting up to a few seconds for `count`.
  std::vector<std::string> WaitFor(const std::string& topic, size_t count = 1) const {
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    std::vector<std::string> payloads;
    while (absl::Now() < deadline) {
      payloads.clear();
      for (const auto& [t, p] : sent()) {
        if (t == topic) payloads.push_back(p);
      }
      if (payloads.size() >= count) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return payloads;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, std::string>> sent_ ABSL_GUARDED_BY(mu_);
};

// The value of one series in the registry's text output, or -1.
double MetricValue(const metrics::MetricsRegistry& registry, std::string_view series) {
  std::string text = registry.Render();
  std::string needle = std::string(series) + " ";
  size_t at = text.find("\n" + needle);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + 1 + needle.size()));
}

std::string Registration(std::string_view node, uint32_t epoch, std::string_view extra = "") {
  return fmt::format(
      R"({{"v":1,"id":7,"node":"{}","epoch":{},"seq":1,"labels":{{"kubernetes.io/arch":"arm64"}},)"
      R"("capacity":{{"cpu":"4"}},"nodeInfo":{{"bootID":"b-1","architecture":"arm64"}}{}}})",
      node, epoch, extra);
}

std::string Heartbeat(uint32_t epoch, uint32_t seq) {
  return fmt::format(R"({{"v":1,"epoch":{},"seq":{}}})", epoch, seq);
}

class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override { Open({}); }

  void Open(storage::StoreOptions store_options, BridgeOptions options = {}) {
    bridge_.reset();
    store_.reset();
    store_options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<storage::NodeStore>> store =
        storage::NodeStore::Open(std::move(store_options));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    options.connect = false;
    options.publisher = &publisher_;
    options.liveness_interval = absl::Hours(1);  // Tests call CheckLiveness().
    if (options.will_delay == BridgeOptions().will_delay) options.will_delay = absl::ZeroDuration();
    registry_ = std::make_unique<metrics::MetricsRegistry>();
    absl::StatusOr<std::unique_ptr<Bridge>> bridge =
        Bridge::Create(std::move(options), store_.get(), registry_.get());
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    bridge_ = *std::move(bridge);
  }

  void Send(std::string_view topic, std::string_view payload) {
    ASSERT_TRUE(bridge_->Deliver(topic, payload));
  }

  // Registers `node` on its own topic and returns the epoch it was given.
  uint32_t RegisterNode(std::string_view node) {
    Send(fmt::format("kole/v1/nodes/{}/register", node), Registration(node, 0));
    bridge_->Drain();
    protocol::AckMessage ack;
    std::vector<std::string> acks = publisher_.WaitFor(fmt::format("kole/v1/nodes/{}/ack", node));
    EXPECT_FALSE(acks.empty());
    if (acks.empty()) return 0;
    EXPECT_EQ(protocol::DecodeAck(acks.back(), &ack), protocol::DecodeError::kOk);
    return ack.acks.empty() ? 0 : ack.acks[0].epoch;
  }

  storage::ManualClock clock_;
  RecordingPublisher publisher_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<metrics::MetricsRegistry> registry_;
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BridgeTest, RegistrationIsStoredAndAcknowledged) {
  bridge_->Start();
  Send("kole/v1/nodes/edge-1/register", Registration("edge-1", 0));
  bridge_->Drain();

  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/nodes/edge-1/ack");
  ASSERT_EQ(acks.size(), 1u);
  protocol::AckMessage ack;
  ASSERT_EQ(protocol::DecodeAck(acks[0], &ack), protocol::DecodeError::kOk);
  EXPECT_EQ(ack.id, 7u);
  ASSERT_EQ(ack.acks.size(), 1u);
  EXPECT_EQ(ack.acks[0].result, protocol::AckResult::kAccepted);
  EXPECT_EQ(ack.acks[0].epoch, 1u);
  absl::StatusOr<storage::Node> node = store_->Get("edge-1");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->resource_version, ack.acks[0].resource_version);
  EXPECT_EQ(node->node_info.boot_id, "b-1");
  EXPECT_EQ(node->ready, storage::ConditionStatus::kTrue);
}

TEST_F(BridgeTest, RegistrationIsAcknowledgedOnlyOnceDurable) {
  std::string dir = (std::filesystem::path(::testing::TempDir()) / "bridge-durable").string();
  std::filesystem::remove_all(dir);
  Open({.data_dir = dir});
  bridge_->Start();
  Send("kole/v1/nodes/edge-1/register", Registration("edge-1", 0));
  bridge_->Drain();
  ASSERT_EQ(publisher_.WaitFor("kole/v1/nodes/edge-1/ack").size(), 1u);
  bridge_.reset();
  store_.reset();

  // What was acknowledged survives a restart.
  Open({.data_dir = dir});
  EXPECT_TRUE(store_->Get("edge-1").ok());
}

TEST_F(BridgeTest, GatewayRegistersAndHeartbeatsForItsNodes) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/register",
       R"({"v":1,"id":3,"nodes":[{"node":"a","epoch":5,"seq":1},{"node":"b","epoch":0,"seq":1}]})");
  bridge_->Drain();
  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/gateways/gw-1/ack");
  ASSERT_EQ(acks.size(), 1u);
  protocol::AckMessage ack;
  ASSERT_EQ(protocol::DecodeAck(acks[0], &ack), protocol::DecodeError::kOk);
  ASSERT_EQ(ack.acks.size(), 2u);
  EXPECT_EQ(ack.acks[0].epoch, 5u);  // The device's own boot counter.
  EXPECT_EQ(ack.acks[1].epoch, 1u);  // Assigned by the cloud.
  EXPECT_EQ(store_->Get("a")->edge.gateway, "gw-1");

  Send("kole/v1/gateways/gw-1/heartbeat",
       R"({"v":1,"beats":[{"node":"a","epoch":5,"seq":2},{"node":"b","epoch":1,"seq":2}]})");
  bridge_->Drain();
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_heartbeats_total{outcome="applied"})"), 2);
}

TEST_F(BridgeTest, GatewayCannotSpeakForAnotherGatewaysNode) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/register", R"({"v":1,"id":1,"nodes":[{"node":"a","epoch":1}]})");
  bridge_->Drain();

  Send("kole/v1/gateways/gw-2/heartbeat", R"({"v":1,"beats":[{"node":"a","epoch":1,"seq":9}]})");
  Send("kole/v1/gateways/gw-2/register", R"({"v":1,"id":2,"nodes":[{"node":"a","epoch":2}]})");
  bridge_->Drain();

  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_heartbeats_total{outcome="wrong_gateway"})"), 1);
  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/gateways/gw-2/ack");
  ASSERT_EQ(acks.size(), 1u);
  protocol::AckMessage ack;
  ASSERT_EQ(protocol::DecodeAck(acks[0], &ack), protocol::DecodeError::kOk);
  EXPECT_EQ(ack.acks[0].result, protocol::AckResult::kRejected);
  EXPECT_EQ(ack.acks[0].reason, "NotYourNode");
  EXPECT_EQ(store_->Get("a")->edge.gateway, "gw-1");
  EXPECT_EQ(store_->Get("a")->edge.epoch, 1u);
}

TEST_F(BridgeTest, NodesOwnConnectionMayLeaveItsGateway) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/register", R"({"v":1,"id":1,"nodes":[{"node":"a","epoch":1}]})");
  Send("kole/v1/nodes/a/register", Registration("a", 2));
  bridge_->Drain();
  EXPECT_EQ(store_->Get("a")->edge.gateway, "");
}

TEST_F(BridgeTest, DuplicateAndStaleHeartbeatsAreCountedNotApplied) {
  bridge_->Start();
  uint32_t epoch = RegisterNode("edge-1");
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch, 5));
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch, 5));
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch, 4));
  bridge_->Drain();
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_heartbeats_total{outcome="applied"})"), 1);
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_heartbeats_total{outcome="duplicate"})"), 2);
}

TEST_F(BridgeTest, BadPayloadsAreDroppedByReasonAndTheStreamGoesOn) {
  bridge_->Start();
  Send("kole/v1/nodes/edge-1/register", "{not json");
  Send("kole/v1/nodes/edge-1/register", R"({"v":2,"node":"edge-1"})");
  Send("kole/v1/nodes/edge-1/heartbeat", R"({"v":1,"epoch":"one","seq":1})");
  Send("kole/v1/nodes/edge-1/heartbeat", R"({"v":1,"node":"edge-2","epoch":1,"seq":1})");
  Send("kole/v1/nodes/Not_A_Name/register", Registration("Not_A_Name", 0));
  Send("kole/v1/elsewhere/edge-1/heartbeat", Heartbeat(1, 1));
  EXPECT_FALSE(bridge_->Deliver("kole/v1/nodes/edge-1/register",
                                std::string(protocol::kMaxPayloadBytes + 1, ' ')));
  bridge_->Drain();

  auto dropped = [&](std::string_view reason) {
    return MetricValue(*registry_,
                       fmt::format(R"(kole_bridge_messages_dropped_total{{reason="{}"}})", reason));
  };
  EXPECT_EQ(dropped("malformed"), 1);
  EXPECT_EQ(dropped("unsupported_version"), 1);
  EXPECT_EQ(dropped("wrong_type"), 1);
  EXPECT_EQ(dropped("topic_mismatch"), 1);
  EXPECT_EQ(dropped("unknown_topic"), 1);
  EXPECT_EQ(dropped("too_large"), 1);
  // An invalid name is answered, so the device stops retrying.
  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/nodes/Not_A_Name/ack");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_THAT(acks[0], HasSubstr(R"("reason":"Invalid")"));

  EXPECT_GT(RegisterNode("edge-1"), 0u);
}

TEST_F(BridgeTest, OneBadEntryDoesNotSinkAGatewayBatch) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/register",
       R"({"v":1,"id":4,"nodes":[{"node":"good","epoch":1},)"
       R"({"node":"bad","epoch":"one"},{"epoch":1},{"node":"also-good","epoch":1}]})");
  bridge_->Drain();

  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/gateways/gw-1/ack");
  ASSERT_EQ(acks.size(), 1u);
  protocol::AckMessage ack;
  ASSERT_EQ(protocol::DecodeAck(acks[0], &ack), protocol::DecodeError::kOk);
  ASSERT_EQ(ack.acks.size(), 3u);  // The nameless entry cannot be answered.
  EXPECT_EQ(ack.acks[0].result, protocol::AckResult::kAccepted);
  EXPECT_EQ(ack.acks[1].node, "bad");
  EXPECT_EQ(ack.acks[1].result, protocol::AckResult::kRejected);
  EXPECT_EQ(ack.acks[2].result, protocol::AckResult::kAccepted);
  EXPECT_TRUE(store_->Get("good").ok());
  EXPECT_TRUE(store_->Get("also-good").ok());
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_messages_dropped_total{reason="wrong_type"})"),
            1);
}

TEST_F(BridgeTest, ReadyConditionFromTheDeviceIsRejected) {
  bridge_->Start();
  Send("kole/v1/nodes/edge-1/register",
       Registration("edge-1", 0, R"(,"conditions":[{"type":"Ready","status":"True"}])"));
  bridge_->Drain();
  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/nodes/edge-1/ack");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_THAT(acks[0], HasSubstr("Rejected"));
  EXPECT_FALSE(store_->Get("edge-1").ok());
}

TEST_F(BridgeTest, WillMarksTheNodeDisconnectedUnlessItIsFromAnOldEpoch) {
  bridge_->Start();
  uint32_t epoch = RegisterNode("edge-1");
  Send("kole/v1/nodes/edge-1/will", fmt::format(R"({{"v":1,"epoch":{}}})", epoch + 7));
  bridge_->Drain();
  EXPECT_TRUE(store_->Get("edge-1")->edge.connected);

  Send("kole/v1/nodes/edge-1/will", fmt::format(R"({{"v":1,"epoch":{}}})", epoch));
  bridge_->Drain();
  absl::StatusOr<storage::Node> node = store_->Get("edge-1");
  EXPECT_FALSE(node->edge.connected);
  EXPECT_EQ(node->ready, storage::ConditionStatus::kUnknown);

  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch, 2));
  bridge_->Drain();
  EXPECT_EQ(store_->Get("edge-1")->ready, storage::ConditionStatus::kTrue);
}

TEST_F(BridgeTest, WillOfANodeThatIsBackAlreadyChangesNothing) {
  BridgeOptions options;
  options.will_delay = absl::Milliseconds(300);
  Open({}, options);
  bridge_->Start();
  uint32_t epoch = RegisterNode("edge-1");

  // The will waits out its delay; meanwhile the device reconnects and beats.
  Send("kole/v1/nodes/edge-1/will", R"({"v":1})");
  bridge_->Drain();
  clock_.Advance(1);
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch, 2));
  bridge_->Drain();
  absl::SleepFor(absl::Milliseconds(800));

  EXPECT_TRUE(store_->Get("edge-1")->edge.connected);
  EXPECT_EQ(store_->Get("edge-1")->ready, storage::ConditionStatus::kTrue);
}

TEST_F(BridgeTest, WillIsAppliedAfterItsDelay) {
  BridgeOptions options;
  options.will_delay = absl::Milliseconds(300);
  Open({}, options);
  bridge_->Start();
  RegisterNode("edge-1");
  Send("kole/v1/nodes/edge-1/will", R"({"v":1})");
  bridge_->Drain();
  EXPECT_TRUE(store_->Get("edge-1")->edge.connected);

  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (store_->Get("edge-1")->edge.connected && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(store_->Get("edge-1")->edge.connected);
}

TEST_F(BridgeTest, GatewayWillDisconnectsEveryNodeBehindIt) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/register",
       R"({"v":1,"id":1,"nodes":[{"node":"a","epoch":1},{"node":"b","epoch":1}]})");
  Send("kole/v1/nodes/c/register", Registration("c", 1));
  Send("kole/v1/gateways/gw-1/will", R"({"v":1})");
  bridge_->Drain();
  EXPECT_FALSE(store_->Get("a")->edge.connected);
  EXPECT_FALSE(store_->Get("b")->edge.connected);
  EXPECT_TRUE(store_->Get("c")->edge.connected);
}

TEST_F(BridgeTest, DeletedNodeIsToldToStopAndCannotRegisterAgain) {
  bridge_->Start();
  RegisterNode("edge-1");
  absl::SleepFor(absl::Milliseconds(50));  // Let the deregistration watch start.
  ASSERT_TRUE(store_->Delete("edge-1", 0, /*tombstone=*/true).ok());

  std::vector<std::string> controls = publisher_.WaitFor("kole/v1/nodes/edge-1/control");
  ASSERT_EQ(controls.size(), 1u);
  protocol::ControlMessage control;
  ASSERT_EQ(protocol::DecodeControl(controls[0], &control), protocol::DecodeError::kOk);
  EXPECT_EQ(control.action, protocol::ControlAction::kDeregister);
  EXPECT_EQ(control.nodes, std::vector<std::string>{"edge-1"});

  Send("kole/v1/nodes/edge-1/register", Registration("edge-1", 0));
  bridge_->Drain();
  std::vector<std::string> acks = publisher_.WaitFor("kole/v1/nodes/edge-1/ack", 2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_THAT(acks[1], HasSubstr(R"("reason":"Tombstoned")"));
}

TEST_F(BridgeTest, PersistingUnknownEpochGetsOneResync) {
  BridgeOptions options;
  options.resync_after = absl::ZeroDuration();
  Open({}, options);
  bridge_->Start();
  uint32_t epoch = RegisterNode("edge-1");

  // The device restarted with a boot counter the cloud has not seen.
  for (uint32_t seq = 1; seq <= 5; ++seq) {
    Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch + 1, seq));
    bridge_->Drain();
  }
  std::vector<std::string> controls = publisher_.WaitFor("kole/v1/nodes/edge-1/control");
  ASSERT_EQ(controls.size(), 1u);  // Once per resync interval, not per heartbeat.
  protocol::ControlMessage control;
  ASSERT_EQ(protocol::DecodeControl(controls[0], &control), protocol::DecodeError::kOk);
  EXPECT_EQ(control.action, protocol::ControlAction::kResync);
  EXPECT_EQ(control.reason, "UnknownEpoch");
}

// 300,000 heartbeats for names the store has never seen, three times the
// resync table's capacity. They must stay cheap: before each new name past the
// capacity rescanned the whole table, and a flood like this held the apply
// thread for minutes.
TEST_F(BridgeTest, FloodOfUnknownNamesDoesNotHoldUpRegistrations) {
  bridge_->Start();
  for (int batch = 0; batch < 300; ++batch) {
    std::string beats;
    for (int i = 0; i < 1000; ++i) {
      if (!beats.empty()) beats += ',';
      beats += fmt::format(R"({{"node":"ghost-{}-{}","epoch":1,"seq":1}})", batch, i);
    }
    Send("kole/v1/gateways/gw-flood/heartbeat", fmt::format(R"({{"v":1,"beats":[{}]}})", beats));
  }
  EXPECT_GT(RegisterNode("edge-1"), 0u);
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_heartbeats_total{outcome="unknown_node"})"),
            300000);
}

TEST_F(BridgeTest, UnknownEpochIsNotResyncedBeforeItPersists) {
  bridge_->Start();  // Default resync_after: 15 s.
  uint32_t epoch = RegisterNode("edge-1");
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch + 1, 1));
  Send("kole/v1/nodes/edge-1/heartbeat", Heartbeat(epoch + 1, 2));
  bridge_->Drain();
  absl::SleepFor(absl::Milliseconds(20));
  for (const auto& [topic, payload] : publisher_.sent()) {
    EXPECT_EQ(topic.find("/control"), std::string::npos) << topic;
  }
}

TEST_F(BridgeTest, FullQueueShedsAndPausesLiveness) {
  BridgeOptions options;
  options.queue_capacity = 1;
  options.queue_full_wait = absl::ZeroDuration();
  Open({}, options);
  // Not started: nothing drains the queue.
  EXPECT_TRUE(bridge_->Deliver("kole/v1/nodes/a/heartbeat", Heartbeat(1, 1)));
  EXPECT_FALSE(bridge_->Deliver("kole/v1/nodes/a/heartbeat", Heartbeat(1, 2)));
  EXPECT_EQ(MetricValue(*registry_, R"(kole_bridge_messages_dropped_total{reason="queue_full"})"),
            1);
  EXPECT_TRUE(bridge_->status().shedding);
  bridge_->CheckLiveness();
  EXPECT_TRUE(bridge_->status().liveness_paused);
}

TEST_F(BridgeTest, SilentNodeBecomesUnknownAfterTheGracePeriod) {
  bridge_->Start();
  RegisterNode("edge-1");
  RegisterNode("edge-2");
  clock_.Advance(30);
  Send("kole/v1/nodes/edge-2/heartbeat", Heartbeat(1, 2));
  bridge_->Drain();
  clock_.Advance(15);  // edge-1 silent for 45 s, edge-2 for 15 s.

  bridge_->CheckLiveness();
  EXPECT_EQ(store_->Get("edge-1")->ready, storage::ConditionStatus::kUnknown);
  EXPECT_EQ(store_->Get("edge-2")->ready, storage::ConditionStatus::kTrue);
  EXPECT_EQ(MetricValue(*registry_, "kole_bridge_nodes_expired_total"), 1);
}

TEST_F(BridgeTest, MassSilenceIsHeldBack) {
  BridgeOptions options;
  options.liveness.mass_min_nodes = 2;
  options.liveness.mass_fraction = 0.5;
  Open({}, options);
  bridge_->Start();
  for (int i = 0; i < 5; ++i) RegisterNode(fmt::format("edge-{}", i));
  clock_.Advance(60);

  bridge_->CheckLiveness();
  EXPECT_TRUE(bridge_->status().holding_transitions);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(store_->Get(fmt::format("edge-{}", i))->ready, storage::ConditionStatus::kTrue);
  }
  EXPECT_EQ(MetricValue(*registry_, "kole_bridge_transitions_held"), 5);
}

TEST_F(BridgeTest, RejectsInconsistentOptions) {
  metrics::MetricsRegistry registry;
  BridgeOptions options;
  options.consumers = 2;
  options.share_group = "";
  EXPECT_FALSE(Bridge::Create(options, store_.get(), &registry).ok());
  options = {};
  options.topic_prefix = "kole/#";
  EXPECT_FALSE(Bridge::Create(options, store_.get(), &registry).ok());
  options = {};
  options.liveness.grace_period = absl::ZeroDuration();
  EXPECT_FALSE(Bridge::Create(options, store_.get(), &registry).ok());
}

}  // namespace
}  // namespace kole::bridge
