// Pods of EdgeDaemonSets: selection, taints, revisions, rollouts, restarts,
// versions and watches, through PodStore as the API uses them.

#include "storage/daemon_pods.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "storage/node_store.h"
#include "storage/pod_status_table.h"
#include "storage/pod_store.h"

namespace kole::storage {
namespace {

WorkloadSpec Spec(std::string name, std::string selector = "", std::string image = "agent:1") {
  WorkloadSpec s;
  s.namespace_ = "fleet";
  s.name = std::move(name);
  s.uid = Uid{0x1234, 0x5678 + s.name.size()};
  s.node_selector = *LabelSelector::Parse(selector);
  s.pod_labels = {{"app", s.name}};
  s.pod_spec_json = R"({"containers":[{"name":"main","image":")" + image + R"("}]})";
  s.container_names = {"main"};
  s.container_images = {image};
  return s;
}

DaemonNodeFacts Node(std::string name, StringPairs labels = {}, std::vector<Taint> taints = {}) {
  DaemonNodeFacts f;
  f.name = std::move(name);
  f.labels = std::move(labels);
  f.taints = std::move(taints);
  f.ipv4 = 0x0a000001;
  return f;
}

class DaemonPodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = PodStore::Open({.clock = &clock_});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Every pod in the store, listed unpaged.
  std::vector<Pod> List(std::string_view ns = "", std::string fields = "") {
    std::vector<Pod> pods;
    PodListOptions options;
    options.namespace_ = std::string(ns);
    options.field_selector = *FieldSelector::Parse(fields);
    PodListResult result;
    absl::Status s = store_->ListEach(
        options, [&](const Pod& p) { pods.push_back(p); }, &result);
    EXPECT_TRUE(s.ok()) << s;
    return pods;
  }

  // The node's desired set and a heartbeat confirming it.
  void Confirm(const std::string& node) {
    std::optional<NodePodSet> set = store_->DesiredPodSet(node);
    ASSERT_TRUE(set.has_value());
    std::string rev = RevisionString(set->revision);
    std::pair<std::string_view, std::string_view> hb{node, rev};
    store_->ApplyPodRevisions({&hb, 1}, 30);
  }

  ManualClock clock_;
  std::unique_ptr<PodStore> store_;
};

TEST_F(DaemonPodsTest, SelectsNodesByLabelAndNamesPodsAfterNode) {
  store_->SetNodes({Node("edge-1", {{"tier", "edge"}}), Node("edge-2", {{"tier", "core"}})});
  store_->SetWorkload(Spec("agent", "tier=edge"), {Node("edge-1", {{"tier", "edge"}})});

  std::vector<Pod> pods = List();
  ASSERT_EQ(pods.size(), 1u);
  EXPECT_EQ(pods[0].name, "agent-edge-1");
  EXPECT_EQ(pods[0].node_name, "edge-1");
  EXPECT_EQ(pods[0].phase, "Pending");
  EXPECT_NE(pods[0].owner_references_json.find(R"("kind":"EdgeDaemonSet","name":"agent")"),
            std::string::npos);
  EXPECT_NE(pods[0].spec_json.find(R"("nodeName":"edge-1")"), std::string::npos);

  // A node relabelled into the selection gets the pod; out of it, loses it.
  store_->SetNodes({Node("edge-2", {{"tier", "edge"}})});
  EXPECT_EQ(List().size(), 2u);
  store_->SetNodes({Node("edge-1", {{"tier", "core"}})});
  pods = List();
  ASSERT_EQ(pods.size(), 1u);
  EXPECT_EQ(pods[0].node_name, "edge-2");

  // A node that leaves the fleet loses its pods.
  store_->RemoveNodes({"edge-2"});
  EXPECT_TRUE(List().empty());
}

TEST_F(DaemonPodsTest, TaintsNeedTolerationsAsForDaemonSets) {
  WorkloadSpec spec = Spec("agent");
  std::vector<Taint> dedicated = {{"dedicated", "gpu", "NoSchedule"}};
  EXPECT_FALSE(WorkloadSelects(spec, {}, dedicated));
  EXPECT_TRUE(WorkloadSelects(spec, {}, {{"dedicated", "gpu", "PreferNoSchedule"}}));
  // What the node lifecycle sets is tolerated without a toleration.
  EXPECT_TRUE(WorkloadSelects(spec, {}, {{"node.kubernetes.io/unreachable", "", "NoExecute"}}));
  EXPECT_TRUE(WorkloadSelects(spec, {}, {{"node.kubernetes.io/unschedulable", "", "NoSchedule"}}));

  spec.tolerations = {{"dedicated", "Equal", "cpu", ""}};
  EXPECT_FALSE(WorkloadSelects(spec, {}, dedicated));
  spec.tolerations = {{"dedicated", "Equal", "gpu", "NoExecute"}};
  EXPECT_FALSE(WorkloadSelects(spec, {}, dedicated));
  spec.tolerations = {{"dedicated", "Equal", "gpu", "NoSchedule"}};
  EXPECT_TRUE(WorkloadSelects(spec, {}, dedicated));
  spec.tolerations = {{"dedicated", "Exists", "", ""}};
  EXPECT_TRUE(WorkloadSelects(spec, {}, dedicated));
  spec.tolerations = {{"", "Exists", "", ""}};
  EXPECT_TRUE(WorkloadSelects(spec, {}, dedicated));

  store_->SetWorkload(Spec("agent"), {});
  store_->SetNodes({Node("gpu-1", {}, dedicated)});
  EXPECT_TRUE(List().empty());
  store_->SetNodes({Node("gpu-1", {}, {})});
  EXPECT_EQ(List().size(), 1u);
}

TEST_F(DaemonPodsTest, HeartbeatWithTheSetRevisionMakesPodsRunning) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1")});
  std::vector<NodePodSet> sets = store_->TakeDirtyNodes(10);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0].node, "edge-1");
  ASSERT_EQ(sets[0].pods.size(), 1u);
  EXPECT_EQ(sets[0].pods[0].workload, "agent");
  EXPECT_NE(sets[0].revision, 0u);

  // A wrong revision changes nothing and asks for a resend, not at once.
  std::pair<std::string_view, std::string_view> wrong{"edge-1", "00000000"};
  EXPECT_EQ(store_->ApplyPodRevisions({&wrong, 1}, 30), 0u);
  clock_.Advance(31);
  EXPECT_EQ(store_->ApplyPodRevisions({&wrong, 1}, 30), 1u);
  EXPECT_EQ(List()[0].phase, "Pending");
  EXPECT_EQ(store_->TakeDirtyNodes(10).size(), 1u);

  Confirm("edge-1");
  Pod pod = List()[0];
  EXPECT_EQ(pod.phase, "Running");
  EXPECT_NE(pod.status_json.find(R"("ready":true)"), std::string::npos);
  WorkloadStatus status = store_->GetWorkloadStatus("fleet", "agent");
  EXPECT_EQ(status.desired, 1u);
  EXPECT_EQ(status.ready, 1u);
  EXPECT_EQ(status.updated, 1u);
}

TEST_F(DaemonPodsTest, StatusReportsOverrideAndCrashLoopsShow) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1")});
  uint32_t rev = TemplateRevision(Spec("agent"));
  store_->ApplyPodReports("edge-1", {{.namespace_ = "fleet",
                                      .workload = "agent",
                                      .revision = rev,
                                      .phase = static_cast<uint8_t>(PodPhase::kRunning),
                                      .ready = 0,
                                      .restarts = 4,
                                      .last_restart_s = 1'700'000'000,
                                      .reason = "CrashLoopBackOff"}});
  Confirm("edge-1");  // The heartbeat does not hide the report.
  Pod pod = List()[0];
  EXPECT_NE(pod.status_json.find("CrashLoopBackOff"), std::string::npos);
  EXPECT_NE(pod.status_json.find(R"("restartCount":4)"), std::string::npos);
  EXPECT_EQ(store_->GetWorkloadStatus("fleet", "agent").ready, 0u);

  // A report for another revision is stale and ignored.
  store_->ApplyPodReports("edge-1", {{.namespace_ = "fleet",
                                      .workload = "agent",
                                      .revision = rev + 1,
                                      .phase = static_cast<uint8_t>(PodPhase::kFailed)}});
  EXPECT_NE(List()[0].phase, "Failed");
}

TEST_F(DaemonPodsTest, RollingUpdateKeepsWithinMaxUnavailable) {
  std::vector<DaemonNodeFacts> nodes;
  for (int i = 0; i < 10; ++i) nodes.push_back(Node("edge-" + std::to_string(i)));
  WorkloadSpec v1 = Spec("agent");
  v1.max_unavailable = 2;
  store_->SetNodes(nodes);
  store_->SetWorkload(v1, nodes);
  for (const auto& n : nodes) Confirm(n.name);
  EXPECT_EQ(store_->GetWorkloadStatus("fleet", "agent").ready, 10u);
  EXPECT_EQ(store_->TakeDirtyNodes(100).size(), 10u);  // The first sets, sent.

  WorkloadSpec v2 = Spec("agent", "", "agent:2");
  v2.max_unavailable = 2;
  store_->SetWorkload(v2, nodes);
  EXPECT_EQ(store_->GetWorkloadStatus("fleet", "agent").updated, 0u);

  size_t rounds = 0;
  while (store_->GetWorkloadStatus("fleet", "agent").updated < 10) {
    ASSERT_LT(++rounds, 20u);
    size_t moved = store_->Rollout();
    EXPECT_LE(moved, 2u);
    WorkloadStatus s = store_->GetWorkloadStatus("fleet", "agent");
    EXPECT_LE(s.unavailable, 2u) << "round " << rounds;
    // A second pass before the devices answer moves nothing more.
    EXPECT_EQ(store_->Rollout(), 0u);
    for (const NodePodSet& set : store_->TakeDirtyNodes(100)) {
      EXPECT_EQ(set.pods[0].revision, TemplateRevision(v2));
      Confirm(set.node);
    }
  }
  EXPECT_EQ(rounds, 5u);
  for (const Pod& pod : List()) {
    EXPECT_NE(pod.spec_json.find("agent:2"), std::string::npos);
    EXPECT_EQ(pod.phase, "Running");
  }
}

TEST_F(DaemonPodsTest, PercentMaxUnavailableRoundsUp) {
  std::vector<DaemonNodeFacts> nodes;
  for (int i = 0; i < 30; ++i) nodes.push_back(Node("edge-" + std::to_string(i)));
  WorkloadSpec v1 = Spec("agent");
  v1.max_unavailable = 10;
  v1.max_unavailable_percent = true;
  store_->SetWorkload(v1, nodes);
  for (const auto& n : nodes) Confirm(n.name);
  WorkloadSpec v2 = Spec("agent", "", "agent:2");
  v2.max_unavailable = 10;
  v2.max_unavailable_percent = true;
  store_->SetWorkload(v2, nodes);
  EXPECT_EQ(store_->Rollout(), 3u);
}

TEST_F(DaemonPodsTest, DeleteRestartsWithNewUidAndDeletedThenAdded) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1")});
  Confirm("edge-1");
  Pod before = List()[0];
  uint64_t rv = store_->resource_version();
  auto watcher = store_->Watch(rv, "", {}, {});
  ASSERT_TRUE(watcher.ok());

  absl::StatusOr<Pod> deleted = store_->Delete("fleet", before.name, 0);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->uid, before.uid);

  auto events = (*watcher)->Next(10, absl::Now());
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].type, EventType::kDeleted);
  EXPECT_EQ((*events)[0].pod.uid, before.uid);
  EXPECT_EQ((*events)[1].type, EventType::kAdded);
  EXPECT_FALSE((*events)[1].pod.uid == before.uid);
  EXPECT_EQ((*events)[1].pod.name, before.name);
  EXPECT_EQ((*events)[1].pod.phase, "Pending");
  EXPECT_LT((*events)[0].pod.resource_version, (*events)[1].pod.resource_version);

  // The device is told: the set revision changed.
  std::vector<NodePodSet> sets = store_->TakeDirtyNodes(10);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0].pods[0].restart, (*events)[1].pod.uid == before.uid ? 0u : 2u);
}

TEST_F(DaemonPodsTest, EveryEventHasItsOwnVersionAndAWatchResumesAnywhere) {
  std::vector<DaemonNodeFacts> nodes;
  for (int i = 0; i < 200; ++i) nodes.push_back(Node("edge-" + std::to_string(i)));
  // Version 0 means "from now" to a watch: start past it, in another namespace.
  WorkloadSpec other = Spec("other");
  other.namespace_ = "default";
  store_->SetWorkload(other, {Node("warmup")});
  uint64_t start = store_->resource_version();
  store_->SetWorkload(Spec("agent"), nodes);
  for (const auto& n : nodes) Confirm(n.name);
  uint64_t end = store_->resource_version();
  EXPECT_EQ(end - start, 400u);  // 200 added, 200 running.

  // A watch resumed from any version inside the burst gets exactly the rest.
  for (uint64_t from : {start, start + 1, start + 199, start + 200, end - 1}) {
    auto w = store_->Watch(from, "fleet", {}, {});
    ASSERT_TRUE(w.ok()) << w.status();
    auto events = (*w)->Next(10000, absl::Now());
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), end - from) << "from " << from;
    uint64_t prev = from;
    for (const PodWatchEvent& e : *events) {
      EXPECT_EQ(e.pod.resource_version, prev + 1);
      prev = e.pod.resource_version;
    }
  }
  // A watch in another namespace sees nothing of it.
  auto elsewhere = store_->Watch(start, "default", {}, {});
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_TRUE((*elsewhere)->Next(10000, absl::Now())->empty());
}

TEST_F(DaemonPodsTest, HistoryPastRetentionIsExpired) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1"), Node("edge-2")});
  uint64_t first = store_->resource_version() - 1;
  clock_.Advance(400);
  store_->SetWorkload(Spec("agent"), {Node("edge-1"), Node("edge-2"), Node("edge-3")});
  store_->Rollout();  // Trims.
  auto w = store_->Watch(first, "", {}, {});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(IsExpired(w.status()));
  EXPECT_TRUE(store_->Watch(store_->resource_version() - 1, "", {}, {}).ok());
}

TEST_F(DaemonPodsTest, PagesCoverEveryPodOnceAndFieldSelectorFindsTheNode) {
  std::vector<DaemonNodeFacts> nodes;
  for (int i = 0; i < 57; ++i) nodes.push_back(Node("edge-" + std::to_string(i)));
  store_->SetWorkload(Spec("agent"), nodes);
  store_->SetWorkload(Spec("agent-b"), nodes);

  std::set<std::string> seen;
  PodListOptions options;
  options.limit = 10;
  int pages = 0;
  do {
    PodListResult result;
    ASSERT_TRUE(
        store_
            ->ListEach(
                options, [&](const Pod& p) { EXPECT_TRUE(seen.insert(p.name).second); }, &result)
            .ok());
    options.continue_token = result.continue_token;
    ++pages;
  } while (!options.continue_token.empty());
  EXPECT_EQ(seen.size(), 114u);
  EXPECT_GE(pages, 12);

  std::vector<Pod> on = List("fleet", "spec.nodeName=edge-7");
  ASSERT_EQ(on.size(), 2u);
  EXPECT_EQ(on[0].name, "agent-edge-7");
  EXPECT_EQ(on[1].name, "agent-b-edge-7");
  EXPECT_TRUE(List("default").empty());
}

TEST_F(DaemonPodsTest, LongNodeNamesGiveValidStableNames) {
  std::string node(250, 'a');
  std::string name = DaemonPodName("agent", node);
  EXPECT_LE(name.size(), 253u);
  EXPECT_EQ(name, DaemonPodName("agent", node));
  EXPECT_NE(name, DaemonPodName("agent", std::string(249, 'a') + "b"));
  EXPECT_NE(name.back(), '-');

  store_->SetWorkload(Spec("agent"), {Node(node)});
  absl::StatusOr<Pod> pod = store_->Get("fleet", name);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->node_name, node);
}

TEST_F(DaemonPodsTest, RemovingTheWorkloadDeletesEveryPodAndEmptiesTheSets) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1"), Node("edge-2")});
  store_->TakeDirtyNodes(10);
  store_->RemoveWorkload("fleet", "agent");
  EXPECT_TRUE(List().empty());
  std::vector<NodePodSet> sets = store_->TakeDirtyNodes(10);
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_TRUE(sets[0].pods.empty());
  EXPECT_EQ(sets[0].revision, 0u);
}

TEST_F(DaemonPodsTest, VersionsDoNotGoBackAcrossARestart) {
  char tmpl[] = "/tmp/kole-daemon-pods-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  uint64_t before;
  {
    auto store = PodStore::Open({.data_dir = dir, .clock = &clock_});
    ASSERT_TRUE(store.ok());
    (*store)->SetWorkload(Spec("agent"), {Node("edge-1"), Node("edge-2")});
    before = (*store)->resource_version();
  }
  auto store = PodStore::Open({.data_dir = dir, .clock = &clock_});
  ASSERT_TRUE(store.ok());
  EXPECT_GT((*store)->resource_version(), before);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kole::storage

namespace kole::storage {
namespace {

TEST_F(DaemonPodsTest, StandalonePodsReachTheirNodeAndTakeItsStatus) {
  store_->SetNodes({Node("edge-1"), Node("edge-2")});
  Pod pod;
  pod.namespace_ = "default";
  pod.name = "probe";
  pod.node_name = "edge-1";
  pod.spec_json = R"({"nodeName":"edge-1","containers":[{"name":"c","image":"probe:1"}]})";
  ASSERT_TRUE(store_->Create(pod).ok());

  // Its node gets it in its set, under the standalone workload name; the
  // template is published like an EdgeDaemonSet's.
  std::vector<NodePodSet> sets = store_->TakeDirtyNodes(10);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0].node, "edge-1");
  ASSERT_EQ(sets[0].pods.size(), 1u);
  EXPECT_EQ(sets[0].pods[0].name, "probe");
  EXPECT_EQ(sets[0].pods[0].workload, "pod:probe");
  bool published = false;
  for (const WorkloadTemplateInfo& t : store_->WorkloadTemplates()) {
    published |= t.workload == "pod:probe" && t.namespace_ == "default";
  }
  EXPECT_TRUE(published);

  // The stored pod is the only one listed, Pending until the device confirms.
  std::vector<Pod> pods = List();
  ASSERT_EQ(pods.size(), 1u);
  EXPECT_EQ(pods[0].phase, "Pending");
  Confirm("edge-1");
  absl::StatusOr<Pod> running = store_->Get("default", "probe");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->phase, "Running");
  EXPECT_NE(running->status_json.find(R"("ready":true)"), std::string::npos);

  // Deleting it empties the node's set.
  ASSERT_TRUE(store_->Delete("default", "probe", 0).ok());
  sets = store_->TakeDirtyNodes(10);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_TRUE(sets[0].pods.empty());
}

}  // namespace
}  // namespace kole::storage

namespace kole::storage {
namespace {

TEST_F(DaemonPodsTest, NoScheduleTaintKeepsARunningPodAndNoExecuteEvictsIt) {
  store_->SetWorkload(Spec("agent"), {Node("edge-1")});
  ASSERT_EQ(List().size(), 1u);
  store_->SetNodes({Node("edge-1", {}, {{"maintenance", "", "NoSchedule"}})});
  EXPECT_EQ(List().size(), 1u);
  // A new node with the same taint gets no pod.
  store_->SetNodes({Node("edge-2", {}, {{"maintenance", "", "NoSchedule"}})});
  EXPECT_EQ(List().size(), 1u);
  store_->SetNodes({Node("edge-1", {}, {{"maintenance", "", "NoExecute"}})});
  EXPECT_TRUE(List().empty());
}

}  // namespace
}  // namespace kole::storage
