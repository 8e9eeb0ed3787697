// The workload controller between real in-memory stores: nodes in a
// NodeStore, EdgeDaemonSets written through the edgedaemonsets resource into
// an ObjectStore (so the JSON is what the API stores), pods derived into a
// PodStore. Each test drives the controller with SyncOnce(true).

#include "apiserver-ext/workload_controller.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apiserver-ext/eds_resource.h"
#include "apiserver-ext/request_info.h"
#include "storage/clock.h"
#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

using testing::Request;

constexpr char kEds[] = "/apis/edge.kole.io/v1alpha1/namespaces/fleet/edgedaemonsets";

// Pods of the "agent" EdgeDaemonSet go to nodes labelled role=sensor.
std::string AgentSpec(const std::string& image = "registry/agent:1.2",
                      const std::string& tolerations = "[]") {
  return R"({"nodeSelector":{"matchLabels":{"role":"sensor"}},)"
         R"("template":{"metadata":{"labels":{"app":"agent"}},"spec":{"tolerations":)" +
         tolerations + R"(,"containers":[{"name":"agent","image":")" + image + R"("}]}}})";
}

class WorkloadControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    options.change_log.retention_seconds = 60;
    nodes_ = std::move(*storage::NodeStore::Open(options));
    pods_ = std::move(*storage::PodStore::Open({.clock = &clock_}));
    workloads_ = std::move(*storage::ObjectStore::Open({.clock = &clock_}));
    resource_ = std::make_unique<EdgeDaemonSetsResource>(workloads_.get(), &stopping_);
    controller_ = std::make_unique<WorkloadController>(nodes_.get(), pods_.get(), workloads_.get());
  }

  void AddNode(const std::string& name, storage::StringPairs labels,
               std::vector<storage::Taint> taints = {}) {
    storage::Node node;
    node.name = name;
    node.labels = std::move(labels);
    storage::NormalizePairs(node.labels);
    node.taints = std::move(taints);
    absl::StatusOr<storage::Node> created = nodes_->Create(node);
    ASSERT_TRUE(created.ok()) << created.status();
  }

  void Relabel(const std::string& name, storage::StringPairs labels) {
    absl::StatusOr<storage::Node> node = nodes_->Get(name);
    ASSERT_TRUE(node.ok()) << node.status();
    node->labels = std::move(labels);
    storage::NormalizePairs(node->labels);
    ASSERT_TRUE(nodes_->UpdateSpec(*node, 0).ok());
  }

  void Taint(const std::string& name, std::vector<storage::Taint> taints) {
    absl::StatusOr<storage::Node> node = nodes_->Get(name);
    ASSERT_TRUE(node.ok()) << node.status();
    node->taints = std::move(taints);
    ASSERT_TRUE(nodes_->UpdateSpec(*node, 0).ok());
  }

  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& body = "", const std::string& content_type = "") {
    HttpRequest request = Request(method, path, body);
    request.headers.emplace("Accept", "application/json");
    if (!content_type.empty()) request.headers.emplace("Content-Type", content_type);
    RequestInfo info = ParseRequestInfo(request.method, request.path, "", "");
    return resource_->Handle(request, info);
  }

  void CreateEds(const std::string& name, const std::string& spec) {
    HttpResponse r = Call("POST", kEds,
                          R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet",)"
                          R"("metadata":{"name":")" +
                              name + R"("},"spec":)" + spec + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  rapidjson::Document GetEds(const std::string& name) {
    HttpResponse r = Call("GET", std::string(kEds) + "/" + name);
    EXPECT_EQ(r.status, 200) << r.body;
    rapidjson::Document doc;
    doc.Parse(r.body.data(), r.body.size());
    return doc;
  }

  void Sync() { ASSERT_TRUE(controller_->SyncOnce(/*force_status=*/true)); }

  // Heartbeats of devices that run their desired pod sets.
  void ConfirmRunning(const std::vector<std::string>& nodes) {
    std::vector<std::string> revisions;
    for (const std::string& node : nodes) {
      std::optional<storage::NodePodSet> set = pods_->DesiredPodSet(node);
      ASSERT_TRUE(set.has_value()) << node;
      revisions.push_back(storage::RevisionString(set->revision));
    }
    std::vector<std::pair<std::string_view, std::string_view>> beats;
    for (size_t i = 0; i < nodes.size(); ++i) beats.emplace_back(nodes[i], revisions[i]);
    pods_->ApplyPodRevisions(beats, 30);
  }

  // (pod name, node) of every pod in the namespace, in list order.
  std::vector<std::pair<std::string, std::string>> Pods() {
    std::vector<std::pair<std::string, std::string>> out;
    storage::PodListResult result;
    absl::Status listed = pods_->ListEach(
        {.namespace_ = "fleet"},
        [&](const storage::Pod& pod) { out.emplace_back(pod.name, pod.node_name); }, &result);
    EXPECT_TRUE(listed.ok()) << listed;
    return out;
  }

  using Placement = std::vector<std::pair<std::string, std::string>>;

  storage::ManualClock clock_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<storage::NodeStore> nodes_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<storage::ObjectStore> workloads_;
  std::unique_ptr<EdgeDaemonSetsResource> resource_;
  std::unique_ptr<WorkloadController> controller_;
};

TEST_F(WorkloadControllerTest, EdgeDaemonSetRunsAPodOnEveryMatchingNodeOnly) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}, {"zone", "north"}});
  AddNode("edge-c", {{"role", "camera"}});
  AddNode("edge-d", {});
  CreateEds("agent", AgentSpec());
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}, {"agent-edge-b", "edge-b"}}));

  absl::StatusOr<storage::Pod> pod = pods_->Get("fleet", "agent-edge-a");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->phase, "Pending");
  EXPECT_NE(pod->owner_references_json.find(R"("kind":"EdgeDaemonSet","name":"agent")"),
            std::string::npos)
      << pod->owner_references_json;
  EXPECT_NE(pod->owner_references_json.find(GetEds("agent")["metadata"]["uid"].GetString()),
            std::string::npos);
  bool app_label = false;
  for (const auto& [k, v] : pod->labels) app_label |= k == "app" && v == "agent";
  EXPECT_TRUE(app_label);
  EXPECT_NE(pod->spec_json.find("registry/agent:1.2"), std::string::npos);
}

TEST_F(WorkloadControllerTest, MatchExpressionsSelectNodes) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "camera"}});
  AddNode("edge-c", {{"role", "gateway"}});
  CreateEds("agent", R"({"nodeSelector":{"matchExpressions":[{"key":"role","operator":"In",)"
                     R"("values":["sensor","camera"]}]},)"
                     R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})");
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}, {"agent-edge-b", "edge-b"}}));
}

TEST_F(WorkloadControllerTest, NodeAddedLaterGetsItsPod) {
  CreateEds("agent", AgentSpec());
  Sync();
  EXPECT_TRUE(Pods().empty());
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "camera"}});
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}}));
}

TEST_F(WorkloadControllerTest, RelabelledNodeGainsAndLosesItsPod) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "camera"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ASSERT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}}));

  Relabel("edge-b", {{"role", "sensor"}});
  Relabel("edge-a", {{"role", "camera"}});
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-b", "edge-b"}}));
}

TEST_F(WorkloadControllerTest, TaintedNodeGetsNoPodWithoutAToleration) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}}, {{"dedicated", "ml", "NoSchedule"}});
  AddNode("edge-c", {{"role", "sensor"}}, {{"quarantine", "", "NoExecute"}});
  // PreferNoSchedule keeps nothing away.
  AddNode("edge-d", {{"role", "sensor"}}, {{"soft", "", "PreferNoSchedule"}});
  CreateEds("agent", AgentSpec());
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}, {"agent-edge-d", "edge-d"}}));
}

TEST_F(WorkloadControllerTest, TolerationLetsThePodOntoATaintedNode) {
  AddNode("edge-a", {{"role", "sensor"}}, {{"dedicated", "ml", "NoSchedule"}});
  AddNode("edge-b", {{"role", "sensor"}}, {{"dedicated", "db", "NoSchedule"}});
  CreateEds("agent", AgentSpec("x", R"([{"key":"dedicated","operator":"Equal","value":"ml",)"
                                    R"("effect":"NoSchedule"}])"));
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}}));
}

TEST_F(WorkloadControllerTest, NodeLifecycleTaintsAreToleratedAsByDaemonSets) {
  AddNode("edge-a", {{"role", "sensor"}},
          {{"node.kubernetes.io/unreachable", "", "NoExecute"},
           {"node.kubernetes.io/unschedulable", "", "NoSchedule"}});
  CreateEds("agent", AgentSpec());
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}}));
}

TEST_F(WorkloadControllerTest, NodeTaintedLaterLosesItsPod) {
  AddNode("edge-a", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ASSERT_EQ(Pods().size(), 1u);
  Taint("edge-a", {{"evict", "now", "NoExecute"}});
  Sync();
  EXPECT_TRUE(Pods().empty());
}

TEST_F(WorkloadControllerTest, DeletedNodeLosesItsPod) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ASSERT_TRUE(nodes_->Delete("edge-a", 0, /*tombstone=*/false).ok());
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-b", "edge-b"}}));
  EXPECT_FALSE(pods_->DesiredPodSet("edge-a").has_value());
}

TEST_F(WorkloadControllerTest, NodeDeletedWhileTheWatchExpiredLosesItsPodAtResync) {
  // The node change log drops the deletion before the controller reads it:
  // the resync that follows must still take the pod off the node.
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ASSERT_EQ(Pods().size(), 2u);

  ASSERT_TRUE(nodes_->Delete("edge-b", 0, /*tombstone=*/false).ok());
  clock_.Advance(120);
  AddNode("edge-c", {{"role", "camera"}});
  ASSERT_TRUE(nodes_->Maintain().ok());
  Sync();  // Finds the watch expired.
  Sync();  // Lists the fleet again.
  EXPECT_EQ(Pods(), (Placement{{"agent-edge-a", "edge-a"}}));
}

TEST_F(WorkloadControllerTest, StatusIsWrittenBack) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  AddNode("edge-c", {{"role", "camera"}});
  CreateEds("agent", AgentSpec());
  Sync();
  rapidjson::Document doc = GetEds("agent");
  const rapidjson::Value& status = doc["status"];
  EXPECT_EQ(status["desiredNumberScheduled"].GetInt(), 2);
  EXPECT_EQ(status["currentNumberScheduled"].GetInt(), 2);
  EXPECT_EQ(status["updatedNumberScheduled"].GetInt(), 2);
  EXPECT_EQ(status["numberReady"].GetInt(), 0);
  EXPECT_EQ(status["numberAvailable"].GetInt(), 0);
  EXPECT_EQ(status["numberUnavailable"].GetInt(), 2);
  EXPECT_EQ(status["observedGeneration"].GetInt(), 1);
  EXPECT_STREQ(status["conditions"][0]["status"].GetString(), "False");
  // The status write is not a spec change.
  EXPECT_EQ(doc["metadata"]["generation"].GetInt(), 1);
}

TEST_F(WorkloadControllerTest, StatusCountsPodsTheDevicesConfirm) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  std::optional<storage::NodePodSet> set = pods_->DesiredPodSet("edge-a");
  ASSERT_TRUE(set.has_value());
  std::string rev = storage::RevisionString(set->revision);
  std::vector<std::pair<std::string_view, std::string_view>> beats = {{"edge-a", rev}};
  pods_->ApplyPodRevisions(beats, 30);
  Sync();
  rapidjson::Document doc = GetEds("agent");
  EXPECT_EQ(doc["status"]["numberReady"].GetInt(), 1);
  EXPECT_EQ(doc["status"]["numberAvailable"].GetInt(), 1);
  EXPECT_EQ(doc["status"]["numberUnavailable"].GetInt(), 1);
  EXPECT_EQ(pods_->Get("fleet", "agent-edge-a")->phase, "Running");
}

TEST_F(WorkloadControllerTest, NewTemplateRollsOutAndObservedGenerationFollows) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  uint32_t old_rev = pods_->GetWorkloadStatus("fleet", "agent").revision;

  HttpResponse r =
      Call("PATCH", std::string(kEds) + "/agent",
           R"({"spec":)" + AgentSpec("registry/agent:1.3") + "}", "application/merge-patch+json");
  ASSERT_EQ(r.status, 200) << r.body;
  Sync();
  storage::WorkloadStatus s = pods_->GetWorkloadStatus("fleet", "agent");
  EXPECT_NE(s.revision, old_rev);
  rapidjson::Document doc = GetEds("agent");
  EXPECT_EQ(doc["metadata"]["generation"].GetInt(), 2);
  EXPECT_EQ(doc["status"]["observedGeneration"].GetInt(), 2);
  // Neither pod was available, so both move to the new template at once.
  EXPECT_EQ(doc["status"]["updatedNumberScheduled"].GetInt(), 2);
  absl::StatusOr<storage::Pod> pod = pods_->Get("fleet", "agent-edge-b");
  ASSERT_TRUE(pod.ok());
  EXPECT_NE(pod->spec_json.find("registry/agent:1.3"), std::string::npos) << pod->spec_json;
}

TEST_F(WorkloadControllerTest, RollingUpdateMovesAvailablePodsOneAtATime) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ConfirmRunning({"edge-a", "edge-b"});
  ASSERT_EQ(
      Call("PATCH", std::string(kEds) + "/agent",
           R"({"spec":)" + AgentSpec("registry/agent:1.3") + "}", "application/merge-patch+json")
          .status,
      200);
  Sync();
  EXPECT_EQ(GetEds("agent")["status"]["updatedNumberScheduled"].GetInt(), 1);
}

TEST_F(WorkloadControllerTest, OnDeleteLeavesRunningPodsOnTheirTemplate) {
  std::string spec = AgentSpec();
  spec.insert(1, R"("updateStrategy":{"type":"OnDelete"},)");
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", spec);
  Sync();
  ConfirmRunning({"edge-a", "edge-b"});

  std::string next = AgentSpec("registry/agent:1.3");
  next.insert(1, R"("updateStrategy":{"type":"OnDelete"},)");
  ASSERT_EQ(Call("PATCH", std::string(kEds) + "/agent", R"({"spec":)" + next + "}",
                 "application/merge-patch+json")
                .status,
            200);
  Sync();
  Sync();
  rapidjson::Document doc = GetEds("agent");
  EXPECT_EQ(doc["status"]["observedGeneration"].GetInt(), 2);
  EXPECT_EQ(doc["status"]["updatedNumberScheduled"].GetInt(), 0);
  EXPECT_NE(pods_->Get("fleet", "agent-edge-a")->spec_json.find("registry/agent:1.2"),
            std::string::npos);

  // Deleting a pod is what moves it to the new template.
  ASSERT_TRUE(pods_->Delete("fleet", "agent-edge-a", 0).ok());
  Sync();
  EXPECT_NE(pods_->Get("fleet", "agent-edge-a")->spec_json.find("registry/agent:1.3"),
            std::string::npos);
  EXPECT_NE(pods_->Get("fleet", "agent-edge-b")->spec_json.find("registry/agent:1.2"),
            std::string::npos);
  EXPECT_EQ(GetEds("agent")["status"]["updatedNumberScheduled"].GetInt(), 1);
}

TEST_F(WorkloadControllerTest, DeletingTheEdgeDaemonSetRemovesItsPods) {
  AddNode("edge-a", {{"role", "sensor"}});
  AddNode("edge-b", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  CreateEds("other", R"({"template":{"spec":{"containers":[{"name":"o","image":"o"}]}}})");
  Sync();
  ASSERT_EQ(Pods().size(), 4u);
  ASSERT_EQ(Call("DELETE", std::string(kEds) + "/agent").status, 200);
  Sync();
  EXPECT_EQ(Pods(), (Placement{{"other-edge-a", "edge-a"}, {"other-edge-b", "edge-b"}}));
  EXPECT_FALSE(pods_->GetWorkloadStatus("fleet", "agent").exists);
  std::optional<storage::NodePodSet> set = pods_->DesiredPodSet("edge-a");
  ASSERT_TRUE(set.has_value());
  ASSERT_EQ(set->pods.size(), 1u);
  EXPECT_EQ(set->pods[0].workload, "other");
}

TEST_F(WorkloadControllerTest, EdgeDaemonSetDeletedWhileTheWatchExpiredLosesItsPodsAtResync) {
  workloads_ = std::move(*storage::ObjectStore::Open({.clock = &clock_, .max_history = 1}));
  resource_ = std::make_unique<EdgeDaemonSetsResource>(workloads_.get(), &stopping_);
  controller_ = std::make_unique<WorkloadController>(nodes_.get(), pods_.get(), workloads_.get());
  AddNode("edge-a", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  ASSERT_EQ(Pods().size(), 1u);
  ASSERT_EQ(Call("DELETE", std::string(kEds) + "/agent").status, 200);
  CreateEds("later", R"({"template":{"spec":{"containers":[{"name":"l","image":"l"}]}}})");
  Sync();  // Finds the watch expired.
  Sync();  // Lists the EdgeDaemonSets again.
  EXPECT_EQ(Pods(), (Placement{{"later-edge-a", "edge-a"}}));
}

TEST_F(WorkloadControllerTest, RecreatedEdgeDaemonSetGetsNewPods) {
  AddNode("edge-a", {{"role", "sensor"}});
  CreateEds("agent", AgentSpec());
  Sync();
  std::string first_uid = pods_->Get("fleet", "agent-edge-a")->uid.ToString();
  ASSERT_EQ(Call("DELETE", std::string(kEds) + "/agent").status, 200);
  CreateEds("agent", AgentSpec());
  Sync();
  absl::StatusOr<storage::Pod> pod = pods_->Get("fleet", "agent-edge-a");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_NE(pod->uid.ToString(), first_uid);
  EXPECT_NE(pod->owner_references_json.find(GetEds("agent")["metadata"]["uid"].GetString()),
            std::string::npos);
}

TEST_F(WorkloadControllerTest, NodeFactsCarryGatewayAndInternalIp) {
  storage::Node node;
  node.name = "edge-a";
  node.edge.gateway = "gw-1";
  node.addresses = {{"Hostname", "edge-a"}, {"InternalIP", "10.1.2.3"}};
  storage::DaemonNodeFacts facts = NodeFacts(node);
  EXPECT_EQ(facts.name, "edge-a");
  EXPECT_EQ(facts.gateway, "gw-1");
  EXPECT_EQ(facts.ipv4, (10u << 24) | (1u << 16) | (2u << 8) | 3u);
}

}  // namespace
}  // namespace kole::apiserver
