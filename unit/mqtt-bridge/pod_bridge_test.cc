// The pods of EdgeDaemonSets between the pod store and devices: the bridge
// with a PodStore, messages in through Deliver(), everything it publishes
// caught by a recording Publisher (topic, payload, QoS, retained flag).
// Workloads are set on the PodStore directly, as the workload controller
// would. The broker path is covered by bridge_mosquitto_test.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mqtt-bridge/bridge.h"
#include "mqtt-bridge/pod_distributor.h"
#include "storage/clock.h"
#include "storage/pod_store.h"

namespace kole::bridge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Published {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retained = false;
};

class RecordingPublisher : public Publisher {
 public:
  absl::Status Publish(std::string_view topic, std::string_view payload, int qos,
                       bool retained = false) override {
    absl::MutexLock lock(&mu_);
    if (!up_) return absl::UnavailableError("no connection to the MQTT broker");
    sent_.push_back({std::string(topic), std::string(payload), qos, retained});
    return absl::OkStatus();
  }

  std::vector<Published> sent() const {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

  // What was sent to `topic`, in order.
  std::vector<Published> To(std::string_view topic) const {
    std::vector<Published> out;
    for (Published& p : sent()) {
      if (p.topic == topic) out.push_back(std::move(p));
    }
    return out;
  }

  // Messages whose topic starts with `prefix`.
  size_t CountUnder(std::string_view prefix) const {
    size_t n = 0;
    for (const Published& p : sent()) n += p.topic.starts_with(prefix) ? 1 : 0;
    return n;
  }

  void set_up(bool up) {
    absl::MutexLock lock(&mu_);
    up_ = up;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Published> sent_ ABSL_GUARDED_BY(mu_);
  bool up_ ABSL_GUARDED_BY(mu_) = true;
};

// The value of one series in the registry's text output, or -1.
double MetricValue(const metrics::MetricsRegistry& registry, std::string_view series) {
  std::string text = registry.Render();
  std::string needle = std::string(series) + " ";
  size_t at = text.find("\n" + needle);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + 1 + needle.size()));
}

storage::WorkloadSpec Workload(std::string name, std::string image = "registry/agent:1.2") {
  storage::WorkloadSpec spec;
  spec.namespace_ = "fleet";
  spec.name = std::move(name);
  spec.uid = {std::hash<std::string>()(spec.name), 0x2222};
  spec.pod_labels = {{"app", spec.name}};
  spec.pod_spec_json = R"({"containers":[{"name":"main","image":")" + image + R"("}]})";
  spec.container_names = {"main"};
  spec.container_images = {image};
  return spec;
}

storage::DaemonNodeFacts Facts(std::string node, std::string gateway = "") {
  return storage::DaemonNodeFacts{.name = std::move(node), .gateway = std::move(gateway)};
}

std::string TemplateTopic(const storage::WorkloadSpec& spec) {
  return protocol::TopicScheme().WorkloadTopic(
      spec.namespace_, spec.name, storage::RevisionString(storage::TemplateRevision(spec)));
}

protocol::PodsMessage DecodeGatewayPods(const std::string& payload) {
  protocol::PodsMessage message;
  protocol::Topic topic{protocol::Sender::kGateway, "gw", protocol::Channel::kPods};
  EXPECT_EQ(protocol::DecodePods(topic, payload, &message), protocol::DecodeError::kOk)
      << payload.substr(0, 200);
  return message;
}

class PodBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions store_options;
    store_options.clock = &clock_;
    store_options.background_maintenance = false;
    store_ = std::move(*storage::NodeStore::Open(store_options));
    pods_ = std::move(*storage::PodStore::Open({.clock = &clock_}));
    BridgeOptions options;
    options.connect = false;
    options.publisher = &publisher_;
    options.liveness_interval = absl::Hours(1);
    options.will_delay = absl::ZeroDuration();
    options.pod_resend_after = absl::Seconds(1);
    // Tests call Pass(); the distributor's own loop runs once at Start().
    options.distributor.interval = absl::Hours(1);
    absl::StatusOr<std::unique_ptr<Bridge>> bridge =
        Bridge::Create(std::move(options), store_.get(), &registry_, pods_.get());
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    bridge_ = *std::move(bridge);
    ASSERT_NE(bridge_->distributor(), nullptr);
  }

  void Send(std::string_view topic, std::string_view payload) {
    ASSERT_TRUE(bridge_->Deliver(topic, payload));
  }

  // Registers `nodes` through gateway `gateway` at epoch 1.
  void RegisterThroughGateway(const std::string& gateway, const std::vector<std::string>& nodes) {
    std::string payload = R"({"v":1,"id":1,"nodes":[)";
    for (size_t i = 0; i < nodes.size(); ++i) {
      payload += (i ? "," : "") + (R"({"node":")" + nodes[i] + R"(","epoch":1,"seq":1})");
    }
    Send("kole/v1/gateways/" + gateway + "/register", payload + "]}");
    bridge_->Drain();
    for (const std::string& node : nodes) {
      absl::StatusOr<storage::Node> stored = store_->Get(node);
      ASSERT_TRUE(stored.ok()) << node;
      ASSERT_EQ(stored->edge.gateway, gateway);
    }
  }

  void Heartbeat(const std::string& gateway, const std::string& node, uint32_t seq,
                 const std::string& pod_revision) {
    Send("kole/v1/gateways/" + gateway + "/heartbeat",
         R"({"v":1,"beats":[{"node":")" + node + R"(","epoch":1,"seq":)" + std::to_string(seq) +
             R"(,"podRev":")" + pod_revision + R"("}]})");
  }

  std::string SetRevision(const std::string& node) {
    std::optional<storage::NodePodSet> set = pods_->DesiredPodSet(node);
    EXPECT_TRUE(set.has_value()) << node;
    return set ? storage::RevisionString(set->revision) : "";
  }

  std::string Phase(const std::string& pod) {
    absl::StatusOr<storage::Pod> got = pods_->Get("fleet", pod);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->phase : "";
  }

  std::string StatusJson(const std::string& pod) {
    absl::StatusOr<storage::Pod> got = pods_->Get("fleet", pod);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->status_json : "";
  }

  size_t Pass() { return bridge_->distributor()->Pass(); }

  storage::ManualClock clock_;
  RecordingPublisher publisher_;
  metrics::MetricsRegistry registry_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<Bridge> bridge_;
};

// --- Templates --------------------------------------------------------------------------

TEST_F(PodBridgeTest, EachTemplateRevisionIsPublishedRetainedOnce) {
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1"), Facts("b", "gw-1")});
  Pass();

  std::vector<Published> templates = publisher_.To(TemplateTopic(agent));
  ASSERT_EQ(templates.size(), 1u);
  EXPECT_TRUE(templates[0].retained);
  EXPECT_EQ(templates[0].qos, 1);
  protocol::WorkloadTemplate decoded;
  ASSERT_EQ(protocol::DecodeWorkloadTemplate(templates[0].payload, &decoded),
            protocol::DecodeError::kOk);
  EXPECT_EQ(decoded.namespace_, "fleet");
  EXPECT_EQ(decoded.workload, "agent");
  EXPECT_EQ(decoded.revision, storage::RevisionString(storage::TemplateRevision(agent)));
  EXPECT_THAT(decoded.template_json, HasSubstr(R"("labels":{"app":"agent"})"));
  EXPECT_THAT(decoded.template_json, HasSubstr("registry/agent:1.2"));

  // Nothing changed: nothing is sent again.
  size_t before = publisher_.sent().size();
  EXPECT_EQ(Pass(), 0u);
  EXPECT_EQ(publisher_.sent().size(), before);

  // A second workload adds its own template, once.
  storage::WorkloadSpec other = Workload("other", "registry/other:2");
  pods_->SetWorkload(other, {Facts("a", "gw-1")});
  Pass();
  EXPECT_EQ(publisher_.To(TemplateTopic(other)).size(), 1u);
  EXPECT_EQ(publisher_.To(TemplateTopic(agent)).size(), 1u);
  EXPECT_EQ(publisher_.CountUnder("kole/v1/workloads/"), 2u);
}

TEST_F(PodBridgeTest, TemplatesGoOutBeforeThePodSetsThatNameThem) {
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1")});
  Pass();
  std::vector<Published> sent = publisher_.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].topic, TemplateTopic(Workload("agent")));
  EXPECT_EQ(sent[1].topic, "kole/v1/gateways/gw-1/pods");
}

TEST_F(PodBridgeTest, TemplateNoLongerUsedIsClearedWithAnEmptyRetainedMessage) {
  storage::WorkloadSpec v1 = Workload("agent", "registry/agent:1");
  storage::WorkloadSpec v2 = Workload("agent", "registry/agent:2");
  pods_->SetWorkload(v1, {Facts("a", "gw-1")});
  Pass();

  // A new template: nodes may still run the old one until the rollout
  // moved them, so both are retained.
  pods_->SetWorkload(v2, {Facts("a", "gw-1")});
  Pass();
  EXPECT_EQ(publisher_.To(TemplateTopic(v2)).size(), 1u);
  EXPECT_EQ(publisher_.To(TemplateTopic(v1)).size(), 1u);

  // The rollout moves the (never started) pod at once: v1 is unused.
  EXPECT_EQ(pods_->Rollout(), 1u);
  Pass();
  std::vector<Published> old = publisher_.To(TemplateTopic(v1));
  ASSERT_EQ(old.size(), 2u);
  EXPECT_EQ(old[1].payload, "");
  EXPECT_TRUE(old[1].retained);
  EXPECT_EQ(MetricValue(registry_, "kole_bridge_workload_templates_cleared_total"), 1);

  // Deleting the workload clears its last template too.
  pods_->RemoveWorkload("fleet", "agent");
  Pass();
  std::vector<Published> current = publisher_.To(TemplateTopic(v2));
  ASSERT_EQ(current.size(), 2u);
  EXPECT_EQ(current[1].payload, "");
  EXPECT_TRUE(current[1].retained);
}

TEST_F(PodBridgeTest, TemplateThatCouldNotBeSentIsRetriedOnTheNextPass) {
  publisher_.set_up(false);
  pods_->SetWorkload(Workload("agent"), {Facts("a")});
  EXPECT_EQ(Pass(), 0u);
  EXPECT_GE(MetricValue(registry_, "kole_bridge_publish_failures_total"), 2);
  publisher_.set_up(true);
  EXPECT_EQ(Pass(), 1u);  // The pod set was queued again.
  EXPECT_EQ(publisher_.To(TemplateTopic(Workload("agent"))).size(), 1u);
  EXPECT_EQ(publisher_.To("kole/v1/nodes/a/pods").size(), 1u);
}

// --- Pod sets ---------------------------------------------------------------------------

TEST_F(PodBridgeTest, PodSetsAreBatchedPerGateway) {
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1"), Facts("b", "gw-1"), Facts("c", "gw-1"),
                             Facts("d", "gw-2"), Facts("e")});
  EXPECT_EQ(Pass(), 5u);

  std::vector<Published> gw1 = publisher_.To("kole/v1/gateways/gw-1/pods");
  ASSERT_EQ(gw1.size(), 1u);
  EXPECT_FALSE(gw1[0].retained);
  EXPECT_EQ(gw1[0].qos, 1);
  protocol::PodsMessage message = DecodeGatewayPods(gw1[0].payload);
  ASSERT_EQ(message.nodes.size(), 3u);
  std::string rev = storage::RevisionString(storage::TemplateRevision(agent));
  for (const protocol::NodePods& node : message.nodes) {
    EXPECT_EQ(node.pod_revision, SetRevision(node.node)) << node.node;
    ASSERT_EQ(node.pods.size(), 1u);
    EXPECT_EQ(node.pods[0].name, "agent-" + node.node);
    EXPECT_EQ(node.pods[0].namespace_, "fleet");
    EXPECT_EQ(node.pods[0].workload, "agent");
    EXPECT_EQ(node.pods[0].revision, rev);
  }
  EXPECT_EQ(
      DecodeGatewayPods(publisher_.To("kole/v1/gateways/gw-2/pods").at(0).payload).nodes.size(),
      1u);

  // A node without a gateway gets its set on its own topic, in the flat form.
  std::vector<Published> own = publisher_.To("kole/v1/nodes/e/pods");
  ASSERT_EQ(own.size(), 1u);
  protocol::PodsMessage flat;
  protocol::Topic topic{protocol::Sender::kNode, "e", protocol::Channel::kPods};
  ASSERT_EQ(protocol::DecodePods(topic, own[0].payload, &flat), protocol::DecodeError::kOk);
  EXPECT_EQ(flat.nodes[0].pod_revision, SetRevision("e"));
  EXPECT_TRUE(publisher_.To("kole/v1/nodes/a/pods").empty());

  EXPECT_EQ(MetricValue(registry_, "kole_bridge_pod_sets_sent_total"), 5);
  EXPECT_EQ(MetricValue(registry_, R"(kole_bridge_messages_published_total{channel="pods"})"), 3);
}

TEST_F(PodBridgeTest, NodeLeavingEverySelectionGetsTheEmptySet) {
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1"), Facts("b", "gw-1")});
  Pass();
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1")});
  EXPECT_EQ(Pass(), 1u);
  std::vector<Published> sent = publisher_.To("kole/v1/gateways/gw-1/pods");
  ASSERT_EQ(sent.size(), 2u);
  protocol::PodsMessage message = DecodeGatewayPods(sent[1].payload);
  ASSERT_EQ(message.nodes.size(), 1u);
  EXPECT_EQ(message.nodes[0].node, "b");
  EXPECT_EQ(message.nodes[0].pod_revision, "");
  EXPECT_TRUE(message.nodes[0].pods.empty());
}

TEST_F(PodBridgeTest, GatewayOfManyNodesIsSplitAtTheBatchLimit) {
  std::vector<storage::DaemonNodeFacts> nodes;
  for (size_t i = 0; i < 2 * protocol::kMaxBatchNodes + 10; ++i) {
    nodes.push_back(Facts("n" + std::to_string(i), "gw-1"));
  }
  pods_->SetWorkload(Workload("agent"), nodes);
  EXPECT_EQ(Pass(), nodes.size());
  std::vector<Published> sent = publisher_.To("kole/v1/gateways/gw-1/pods");
  ASSERT_EQ(sent.size(), 3u);
  std::set<std::string> seen;
  for (const Published& p : sent) {
    for (const protocol::NodePods& node : DecodeGatewayPods(p.payload).nodes)
      seen.insert(node.node);
  }
  EXPECT_EQ(seen.size(), nodes.size());
}

TEST_F(PodBridgeTest, GatewayMessagesStayUnderThePayloadLimit) {
  // A thousand nodes behind one gateway, each running sixteen workloads: in
  // one message that is over 1 MiB, which the gateway would refuse unread.
  std::vector<storage::DaemonNodeFacts> nodes;
  for (size_t i = 0; i < protocol::kMaxBatchNodes; ++i) {
    nodes.push_back(Facts("edge-node-" + std::to_string(100000 + i), "gw-1"));
  }
  for (int w = 0; w < 16; ++w) pods_->SetWorkload(Workload("workload-" + std::to_string(w)), nodes);
  EXPECT_EQ(Pass(), nodes.size());

  std::vector<Published> sent = publisher_.To("kole/v1/gateways/gw-1/pods");
  EXPECT_GE(sent.size(), 2u);
  std::set<std::string> seen;
  for (const Published& p : sent) {
    EXPECT_LE(p.payload.size(), protocol::kMaxPayloadBytes);
    for (const protocol::NodePods& node : DecodeGatewayPods(p.payload).nodes) {
      EXPECT_EQ(node.pods.size(), 16u);
      seen.insert(node.node);
    }
  }
  EXPECT_EQ(seen.size(), nodes.size());
}

TEST_F(PodBridgeTest, PodSetThatCouldNotBeSentIsSentOnALaterPass) {
  publisher_.set_up(false);
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1"), Facts("b", "gw-1")});
  EXPECT_EQ(Pass(), 0u);
  publisher_.set_up(true);
  EXPECT_EQ(Pass(), 2u);
  EXPECT_EQ(publisher_.To("kole/v1/gateways/gw-1/pods").size(), 1u);
}

// --- Heartbeats and status reports ------------------------------------------------------

TEST_F(PodBridgeTest, HeartbeatWithTheSetRevisionTurnsPodsRunning) {
  bridge_->Start();
  RegisterThroughGateway("gw-1", {"a", "b"});
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1"), Facts("b", "gw-1")});
  Pass();
  EXPECT_EQ(Phase("agent-a"), "Pending");

  Heartbeat("gw-1", "a", 2, SetRevision("a"));
  Heartbeat("gw-1", "b", 2, "");  // Not running the set yet.
  bridge_->Drain();

  std::vector<std::string> running;
  storage::PodListResult result;
  storage::PodListOptions options{.namespace_ = "fleet"};
  options.field_selector = *storage::FieldSelector::Parse("status.phase=Running");
  ASSERT_TRUE(pods_
                  ->ListEach(
                      options, [&](const storage::Pod& p) { running.push_back(p.name); }, &result)
                  .ok());
  EXPECT_EQ(running, std::vector<std::string>{"agent-a"});
  EXPECT_THAT(StatusJson("agent-a"), HasSubstr(R"("type":"Ready","status":"True")"));
  EXPECT_EQ(Phase("agent-b"), "Pending");
  EXPECT_EQ(pods_->GetWorkloadStatus("fleet", "agent").ready, 1u);
}

TEST_F(PodBridgeTest, WrongRevisionQueuesAResendAfterTheDelay) {
  bridge_->Start();
  RegisterThroughGateway("gw-1", {"a", "b"});
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1"), Facts("b", "gw-1")});
  Pass();
  ASSERT_EQ(publisher_.To("kole/v1/gateways/gw-1/pods").size(), 1u);

  // Just sent: the device may still be fetching.
  Heartbeat("gw-1", "b", 2, "00000001");
  bridge_->Drain();
  EXPECT_EQ(Pass(), 0u);

  clock_.Advance(2);
  Heartbeat("gw-1", "a", 3, SetRevision("a"));
  Heartbeat("gw-1", "b", 3, "00000001");
  bridge_->Drain();
  EXPECT_EQ(Pass(), 1u);
  std::vector<Published> sent = publisher_.To("kole/v1/gateways/gw-1/pods");
  ASSERT_EQ(sent.size(), 2u);
  protocol::PodsMessage again = DecodeGatewayPods(sent[1].payload);
  ASSERT_EQ(again.nodes.size(), 1u);
  EXPECT_EQ(again.nodes[0].node, "b");
  EXPECT_EQ(again.nodes[0].pod_revision, SetRevision("b"));

  // Once it runs the set, heartbeats ask for nothing more.
  clock_.Advance(2);
  Heartbeat("gw-1", "b", 4, SetRevision("b"));
  bridge_->Drain();
  EXPECT_EQ(Pass(), 0u);
  EXPECT_EQ(Phase("agent-b"), "Running");
}

TEST_F(PodBridgeTest, HeartbeatOfAnUnregisteredNodeChangesNoPod) {
  bridge_->Start();
  RegisterThroughGateway("gw-1", {"a"});
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1"), Facts("b", "gw-1")});
  Pass();
  Heartbeat("gw-1", "b", 2, SetRevision("b"));  // b never registered.
  bridge_->Drain();
  EXPECT_EQ(Phase("agent-b"), "Pending");
}

// A podstatus payload: a crash-looping pod, as kole-edge-sim reports it, in
// the gateway's batch form or (`flat`) a node topic's.
std::string CrashLoopReport(const std::string& node, const std::string& rev, bool flat = false) {
  std::string entry = R"("node":")" + node +
                      R"(","pods":[{"namespace":"fleet","workload":"agent","rev":")" + rev +
                      R"(","phase":"Running","ready":0,"restarts":4,"lastRestart":1700000000,)"
                      R"("reason":"CrashLoopBackOff"}])";
  return flat ? R"({"v":1,)" + entry + "}" : R"({"v":1,"nodes":[{)" + entry + "}]}";
}

TEST_F(PodBridgeTest, PodStatusFromTheNodesGatewayIsApplied) {
  bridge_->Start();
  RegisterThroughGateway("gw-1", {"a"});
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1")});
  std::string rev = storage::RevisionString(storage::TemplateRevision(agent));

  Send("kole/v1/gateways/gw-1/podstatus", CrashLoopReport("a", rev));
  bridge_->Drain();
  std::string status = StatusJson("agent-a");
  EXPECT_THAT(status, HasSubstr(R"("waiting":{"reason":"CrashLoopBackOff"})"));
  EXPECT_THAT(status, HasSubstr(R"("restartCount":4)"));
  EXPECT_THAT(status, HasSubstr(R"("type":"Ready","status":"False")"));
  EXPECT_EQ(MetricValue(registry_, R"(kole_bridge_messages_received_total{channel="podstatus"})"),
            1);

  // The heartbeat that confirms the set does not paper over the report.
  Heartbeat("gw-1", "a", 2, SetRevision("a"));
  bridge_->Drain();
  EXPECT_THAT(StatusJson("agent-a"), HasSubstr("CrashLoopBackOff"));
  EXPECT_EQ(pods_->GetWorkloadStatus("fleet", "agent").ready, 0u);
}

TEST_F(PodBridgeTest, PodStatusAfterAHeartbeatInTheSameBatchWins) {
  // The device adopted its set (heartbeat with podRev), then its image pull
  // failed (podstatus). Both reach the apply thread in one batch: the
  // report, which came later, must be what the pod shows.
  storage::Node node;
  node.name = "a";
  node.edge.gateway = "gw-1";
  node.edge.epoch = 1;
  ASSERT_TRUE(store_->Register(node).ok());
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1")});
  std::string rev = storage::RevisionString(storage::TemplateRevision(agent));
  Heartbeat("gw-1", "a", 2, SetRevision("a"));
  Send("kole/v1/gateways/gw-1/podstatus",
       R"({"v":1,"nodes":[{"node":"a","pods":[{"namespace":"fleet","workload":"agent",)"
       R"("rev":")" +
           rev + R"(","phase":"Pending","reason":"ImagePullBackOff"}]}]})");
  bridge_->Start();  // Both messages are queued: one batch.
  bridge_->Drain();
  EXPECT_EQ(Phase("agent-a"), "Pending");
  EXPECT_THAT(StatusJson("agent-a"), HasSubstr("ImagePullBackOff"));
}

TEST_F(PodBridgeTest, PodStatusForAnotherGatewaysNodeIsDropped) {
  bridge_->Start();
  RegisterThroughGateway("gw-1", {"a"});
  RegisterThroughGateway("gw-2", {"z"});
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1"), Facts("z", "gw-2")});
  std::string rev = storage::RevisionString(storage::TemplateRevision(agent));
  double before =
      MetricValue(registry_, R"(kole_bridge_messages_dropped_total{reason="invalid_node"})");

  Send("kole/v1/gateways/gw-2/podstatus", CrashLoopReport("a", rev));
  // Nor may a node's own connection speak for a node behind a gateway.
  Send("kole/v1/nodes/a/podstatus", CrashLoopReport("a", rev, /*flat=*/true));
  // Nor anyone for a node that is not registered.
  Send("kole/v1/gateways/gw-2/podstatus", CrashLoopReport("ghost", rev));
  bridge_->Drain();

  EXPECT_THAT(StatusJson("agent-a"), Not(HasSubstr("CrashLoopBackOff")));
  EXPECT_EQ(MetricValue(registry_, R"(kole_bridge_messages_dropped_total{reason="invalid_node"})"),
            before + 3);
}

TEST_F(PodBridgeTest, PodStatusThatDoesNotDecodeIsDroppedByReason) {
  bridge_->Start();
  Send("kole/v1/gateways/gw-1/podstatus", R"({"v":1,"nodes":[{"node":"a"}]})");
  Send("kole/v1/nodes/a/podstatus", R"({"v":1,"node":"b","pods":[]})");
  bridge_->Drain();
  EXPECT_EQ(MetricValue(registry_, R"(kole_bridge_messages_dropped_total{reason="missing_field"})"),
            1);
  EXPECT_EQ(
      MetricValue(registry_, R"(kole_bridge_messages_dropped_total{reason="topic_mismatch"})"), 1);
}

TEST_F(PodBridgeTest, DeviceMessageOnThePodsChannelIsDropped) {
  bridge_->Start();
  Send("kole/v1/nodes/a/pods", R"({"v":1,"pods":[]})");
  bridge_->Drain();
  EXPECT_EQ(MetricValue(registry_, R"(kole_bridge_messages_dropped_total{reason="unknown_topic"})"),
            1);
}

// --- The distributor on its own ---------------------------------------------------------

// The bridge's connection generation only moves with a real broker
// (connect=false has no consumers), so republishing is checked on a
// distributor whose generation the test controls.
TEST_F(PodBridgeTest, TemplatesArePublishedAgainAfterTheConnectionGenerationChanges) {
  protocol::TopicScheme topics;
  metrics::MetricsRegistry registry;
  RecordingPublisher publisher;
  uint64_t generation = 0;
  PodDistributor distributor(
      {}, &topics, pods_.get(), &publisher, [&] { return generation; }, &registry);
  storage::WorkloadSpec agent = Workload("agent");
  pods_->SetWorkload(agent, {Facts("a", "gw-1")});
  distributor.Pass();
  distributor.Pass();
  ASSERT_EQ(publisher.To(TemplateTopic(agent)).size(), 1u);

  ++generation;
  distributor.Pass();
  std::vector<Published> templates = publisher.To(TemplateTopic(agent));
  ASSERT_EQ(templates.size(), 2u);
  EXPECT_TRUE(templates[1].retained);
  EXPECT_EQ(templates[1].payload, templates[0].payload);
  EXPECT_EQ(MetricValue(registry, "kole_bridge_workload_templates_published_total"), 2);
}

TEST_F(PodBridgeTest, PassMayRunWhileTheDistributorLoopRuns) {
  bridge_->Start();  // Its loop passes once now, then every hour.
  pods_->SetWorkload(Workload("agent"), {Facts("a", "gw-1")});
  for (int i = 0; i < 50; ++i) Pass();
  EXPECT_EQ(publisher_.To(TemplateTopic(Workload("agent"))).size(), 1u);
  EXPECT_EQ(publisher_.To("kole/v1/gateways/gw-1/pods").size(), 1u);
}

TEST(PodBridge, BridgeWithoutAPodStoreDistributesNothing) {
  storage::ManualClock clock;
  storage::StoreOptions store_options;
  store_options.clock = &clock;
  store_options.background_maintenance = false;
  std::unique_ptr<storage::NodeStore> store = std::move(*storage::NodeStore::Open(store_options));
  metrics::MetricsRegistry registry;
  RecordingPublisher publisher;
  BridgeOptions options;
  options.connect = false;
  options.publisher = &publisher;
  options.liveness_interval = absl::Hours(1);
  absl::StatusOr<std::unique_ptr<Bridge>> bridge =
      Bridge::Create(std::move(options), store.get(), &registry);
  ASSERT_TRUE(bridge.ok()) << bridge.status();
  EXPECT_EQ((*bridge)->distributor(), nullptr);
  (*bridge)->Start();
  ASSERT_TRUE((*bridge)->Deliver("kole/v1/nodes/a/podstatus", R"({"v":1,"pods":[]})"));
  (*bridge)->Drain();
  EXPECT_TRUE(publisher.sent().empty());
}

}  // namespace
}  // namespace kole::bridge
