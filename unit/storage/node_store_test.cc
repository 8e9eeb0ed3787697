#include "storage/node_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

namespace kole::storage {
namespace {

Node DeviceNode(std::string name, std::string site = "site-1") {
  Node node;
  node.name = std::move(name);
  node.labels = {{"kubernetes.io/arch", "arm64"},
                 {"kubernetes.io/hostname", node.name},
                 {"edge.kole.io/site", site},
                 {"tier", "edge"}};
  node.capacity = {{"cpu", "4"}, {"memory", "3906Mi"}};
  node.allocatable = {{"cpu", "4"}, {"memory", "3706Mi"}};
  node.addresses = {{"InternalIP", "10.0.0.7"}, {"Hostname", node.name}};
  node.node_info.machine_id = "0123456789abcdef0123456789abcdef";
  node.node_info.system_uuid = "01234567-89ab-4def-8123-456789abcdef";
  node.node_info.boot_id = "fedcba98-7654-4321-8fed-cba987654321";
  node.node_info.kernel_version = "6.1.0-18-arm64";
  node.node_info.os_image = "Debian GNU/Linux 12 (bookworm)";
  node.node_info.kubelet_version = "kole-agent/v0.1.0";
  node.node_info.operating_system = "linux";
  node.node_info.architecture = "arm64";
  NormalizePairs(node.labels);
  return node;
}

void SetLabel(Node& node, const std::string& key, const std::string& value) {
  node.labels.push_back({key, value});
  NormalizePairs(node.labels);
}

class NodeStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    options.report_period_seconds = 60;
    auto store = NodeStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // A second store on the same clock that keeps history for `seconds`.
  std::unique_ptr<NodeStore> OpenWithRetention(int64_t seconds) {
    StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    options.change_log.retention_seconds = seconds;
    return std::move(*NodeStore::Open(options));
  }

  RegisterResult MustRegister(const Node& node) {
    auto result = store_->Register(node);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : RegisterResult{};
  }

  std::vector<std::string> Names(const ListResult& list) {
    std::vector<std::string> names;
    for (const Node& node : list.nodes) names.push_back(node.name);
    return names;
  }

  ManualClock clock_;
  std::unique_ptr<NodeStore> store_;
};

TEST_F(NodeStoreTest, RegisteredNodeReadsBackWithEveryField) {
  Node reported = DeviceNode("edge-1");
  RegisterResult result = MustRegister(reported);
  EXPECT_TRUE(result.created);
  EXPECT_EQ(result.epoch, 1u);

  auto node = store_->Get("edge-1");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->labels, reported.labels);
  EXPECT_EQ(node->capacity, reported.capacity);
  EXPECT_EQ(node->allocatable, reported.allocatable);
  EXPECT_EQ(node->addresses, reported.addresses);
  EXPECT_EQ(node->node_info, reported.node_info);
  EXPECT_EQ(node->ready, ConditionStatus::kTrue);
  EXPECT_TRUE(node->edge.connected);
  EXPECT_EQ(node->resource_version, result.resource_version);
  EXPECT_EQ(node->creation_timestamp, clock_.WallSeconds());
  EXPECT_NE(node->uid, Uid{});
}

TEST_F(NodeStoreTest, UnusualIdentifiersAndAddressesRoundTrip) {
  Node reported = DeviceNode("edge-odd");
  reported.node_info.machine_id = "not-hex";
  reported.node_info.system_uuid = "01234567-89AB-4DEF-8123-456789ABCDEF";
  reported.node_info.boot_id = "";
  reported.addresses = {{"ExternalIP", "2001:db8::1"}, {"InternalIP", "10.1.2.3"}};
  std::erase_if(reported.labels,
                [](const auto& label) { return label.first == "kubernetes.io/hostname"; });
  MustRegister(reported);

  auto node = store_->Get("edge-odd");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->node_info, reported.node_info);
  EXPECT_EQ(node->addresses, reported.addresses);
  EXPECT_EQ(node->labels, reported.labels);
}

TEST_F(NodeStoreTest, HeartbeatBeforeFirstRegistrationIsUnknownEpoch) {
  Node node;
  node.name = "pre-1";
  ASSERT_TRUE(store_->Create(node).ok());
  Heartbeat beat{"pre-1", 0, 1};
  HeartbeatOutcome outcome;
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  EXPECT_EQ(outcome, HeartbeatOutcome::kUnknownEpoch);
  EXPECT_EQ(store_->Get("pre-1")->ready, ConditionStatus::kUnknown);
}

TEST_F(NodeStoreTest, InvalidAnnotationsAndTaintsAreRejected) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  desired.annotations = {{"not a key!", "x"}};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateSpec(desired, 0).status()));
  desired.annotations = {{"big", std::string(300 << 10, 'x')}};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateSpec(desired, 0).status()));
  desired.annotations = {};
  desired.taints = {{"dedicated", "x", "Bogus"}};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateSpec(desired, 0).status()));
  desired.taints = {{"", "x", "NoSchedule"}};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateSpec(desired, 0).status()));
  // Nothing was written, and the store still takes valid writes.
  desired.taints = {{"dedicated", "x", "NoSchedule"}};
  EXPECT_TRUE(store_->UpdateSpec(desired, 0).ok());
}

TEST_F(NodeStoreTest, NonsenseOptionsAreRejectedAtOpen) {
  StoreOptions options;
  options.background_maintenance = false;
  options.snapshots_to_keep = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(NodeStore::Open(options).status()));
  options.snapshots_to_keep = 2;
  options.report_period_seconds = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(NodeStore::Open(options).status()));
}

TEST_F(NodeStoreTest, InvalidNameIsRejected) {
  auto result = store_->Register(DeviceNode("Edge_1"));
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
}

TEST_F(NodeStoreTest, ReRegistrationKeepsUserOwnedFields) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  desired.labels.push_back({"owner", "team-a"});
  desired.taints = {{"dedicated", "cameras", "NoSchedule"}};
  desired.unschedulable = true;
  desired.annotations = {{"note", "pilot"}};
  ASSERT_TRUE(store_->UpdateSpec(desired, 0).ok());

  Node again = DeviceNode("edge-1", "site-2");
  again.labels.push_back({"owner", "device-says-otherwise"});
  RegisterResult result = MustRegister(again);
  EXPECT_FALSE(result.created);
  EXPECT_EQ(result.epoch, 2u);

  Node node = *store_->Get("edge-1");
  StringPairs expected_labels = {{"edge.kole.io/site", "site-2"},
                                 {"kubernetes.io/arch", "arm64"},
                                 {"kubernetes.io/hostname", "edge-1"},
                                 {"owner", "team-a"},
                                 {"tier", "edge"}};
  EXPECT_EQ(node.labels, expected_labels);
  EXPECT_EQ(node.taints, desired.taints);
  EXPECT_TRUE(node.unschedulable);
  EXPECT_EQ(node.annotations, desired.annotations);
}

TEST_F(NodeStoreTest, RepeatedRegistrationGetsNoNewVersion) {
  Node reported = DeviceNode("edge-1");
  reported.edge.epoch = 5;
  RegisterResult first = MustRegister(reported);
  RegisterResult second = MustRegister(reported);
  EXPECT_EQ(second.resource_version, first.resource_version);
  EXPECT_EQ(store_->resource_version(), first.resource_version);
}

TEST_F(NodeStoreTest, RegistrationWithOlderEpochIsRejected) {
  Node reported = DeviceNode("edge-1");
  reported.edge.epoch = 5;
  MustRegister(reported);
  reported.edge.epoch = 4;
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Register(reported).status()));
}

TEST_F(NodeStoreTest, HeartbeatIsAppliedInPlaceWithoutNewVersion) {
  MustRegister(DeviceNode("edge-1"));
  uint64_t rv = store_->resource_version();

  Heartbeat beat{"edge-1", 1, 1};
  HeartbeatOutcome outcome;
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  EXPECT_EQ(outcome, HeartbeatOutcome::kApplied);
  EXPECT_EQ(store_->resource_version(), rv);
}

TEST_F(NodeStoreTest, HeartbeatPublishesOncePerReportPeriod) {
  MustRegister(DeviceNode("edge-1"));
  uint64_t rv = store_->resource_version();
  clock_.Advance(61);

  Heartbeat beat{"edge-1", 1, 7};
  HeartbeatOutcome outcome;
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  EXPECT_EQ(outcome, HeartbeatOutcome::kPublished);
  EXPECT_EQ(store_->resource_version(), rv + 1);
  Node node = *store_->Get("edge-1");
  EXPECT_EQ(node.edge.sequence, 7u);
  EXPECT_EQ(node.last_heartbeat_time, clock_.WallSeconds());

  beat.sequence = 8;
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  EXPECT_EQ(outcome, HeartbeatOutcome::kApplied);
}

TEST_F(NodeStoreTest, RefreshesOfABurstSpreadOverTheLastQuarterOfThePeriod) {
  for (int i = 0; i < 200; ++i) MustRegister(DeviceNode(fmt::format("n{}", i)));
  auto beat_all = [&](uint32_t sequence) {
    size_t published = 0;
    for (int i = 0; i < 200; ++i) {
      std::string name = fmt::format("n{}", i);
      Heartbeat beat{name, 1, sequence};
      HeartbeatOutcome outcome;
      EXPECT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
      published += outcome == HeartbeatOutcome::kPublished;
    }
    return published;
  };
  clock_.Advance(44);  // Below 3/4 of the 60 s period: nobody is due.
  EXPECT_EQ(beat_all(1), 0u);
  clock_.Advance(8);  // Some are due, not all.
  size_t early = beat_all(2);
  EXPECT_GT(early, 0u);
  EXPECT_LT(early, 200u);
  clock_.Advance(8);  // The full period: everybody has refreshed once.
  EXPECT_EQ(early + beat_all(3), 200u);
}

TEST_F(NodeStoreTest, HeartbeatOutcomesClassifyDuplicatesEpochsAndStrangers) {
  Node reported = DeviceNode("edge-1");
  reported.edge.epoch = 3;
  MustRegister(reported);
  Heartbeat beats[] = {{"edge-1", 3, 5}, {"edge-1", 3, 5}, {"edge-1", 3, 4},
                       {"edge-1", 2, 9}, {"edge-1", 4, 1}, {"nobody", 1, 1}};
  HeartbeatOutcome outcomes[6];
  ASSERT_TRUE(store_->ApplyHeartbeats(beats, outcomes).ok());
  EXPECT_EQ(outcomes[0], HeartbeatOutcome::kApplied);
  EXPECT_EQ(outcomes[1], HeartbeatOutcome::kDuplicate);
  EXPECT_EQ(outcomes[2], HeartbeatOutcome::kDuplicate);
  EXPECT_EQ(outcomes[3], HeartbeatOutcome::kStaleEpoch);
  EXPECT_EQ(outcomes[4], HeartbeatOutcome::kUnknownEpoch);
  EXPECT_EQ(outcomes[5], HeartbeatOutcome::kUnknownNode);
}

TEST_F(NodeStoreTest, MissedHeartbeatsMarkReadyUnknownAndNextHeartbeatRevives) {
  MustRegister(DeviceNode("edge-1"));
  MustRegister(DeviceNode("edge-2"));
  clock_.Advance(30);
  Heartbeat beat{"edge-2", 1, 1};
  HeartbeatOutcome outcome;
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  clock_.Advance(15);

  EXPECT_EQ(store_->CountExpired(40), 1u);
  auto expired = store_->ExpireHeartbeats(40, 100);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, 1u);
  EXPECT_EQ(store_->Get("edge-1")->ready, ConditionStatus::kUnknown);
  EXPECT_EQ(store_->Get("edge-1")->ready_reason, "NodeStatusUnknown");
  EXPECT_EQ(store_->Get("edge-2")->ready, ConditionStatus::kTrue);
  EXPECT_EQ(store_->CountExpired(40), 0u);

  beat = {"edge-1", 1, 1};
  ASSERT_TRUE(store_->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  EXPECT_EQ(outcome, HeartbeatOutcome::kPublished);
  EXPECT_EQ(store_->Get("edge-1")->ready, ConditionStatus::kTrue);
}

TEST_F(NodeStoreTest, ExpiryRespectsTheLimit) {
  for (int i = 0; i < 10; ++i) MustRegister(DeviceNode("edge-" + std::to_string(i)));
  clock_.Advance(100);
  EXPECT_EQ(*store_->ExpireHeartbeats(40, 3), 3u);
  EXPECT_EQ(store_->CountExpired(40), 7u);
}

TEST_F(NodeStoreTest, ResetLivenessClocksPausesExpiry) {
  MustRegister(DeviceNode("edge-1"));
  clock_.Advance(100);
  store_->ResetLivenessClocks();
  EXPECT_EQ(store_->CountExpired(40), 0u);
}

TEST_F(NodeStoreTest, LastWillMarksDisconnectedAtOnce) {
  MustRegister(DeviceNode("edge-1"));
  ASSERT_TRUE(store_->MarkDisconnected("edge-1").ok());
  Node node = *store_->Get("edge-1");
  EXPECT_FALSE(node.edge.connected);
  EXPECT_EQ(node.ready, ConditionStatus::kUnknown);
  EXPECT_EQ(node.ready_reason, "EdgeAgentDisconnected");
}

TEST_F(NodeStoreTest, UpdateSpecRefusesChangesToDeviceLabels) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  SetLabel(desired, "kubernetes.io/arch", "amd64");
  auto updated = store_->UpdateSpec(desired, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(updated.status())) << updated.status();
}

TEST_F(NodeStoreTest, UpdateSpecIgnoresStatus) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  desired.capacity = {{"cpu", "64"}};
  desired.labels.push_back({"owner", "x"});
  Node updated = *store_->UpdateSpec(desired, 0);
  EXPECT_EQ(updated.capacity, DeviceNode("edge-1").capacity);
}

TEST_F(NodeStoreTest, UpdateStatusWritesConditionsButNotLabels) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  desired.conditions = {{"DiskPressure", ConditionStatus::kTrue, "Full", "disk 97% full"}};
  desired.labels.push_back({"owner", "x"});
  clock_.Advance(5);
  Node updated = *store_->UpdateStatus(desired, 0);
  EXPECT_EQ(updated.conditions, desired.conditions);
  EXPECT_EQ(updated.conditions_transition_time, clock_.WallSeconds());
  EXPECT_EQ(updated.labels, DeviceNode("edge-1").labels);
}

TEST_F(NodeStoreTest, StaleResourceVersionConflicts) {
  MustRegister(DeviceNode("edge-1"));
  Node desired = *store_->Get("edge-1");
  uint64_t rv = desired.resource_version;
  desired.labels.push_back({"owner", "a"});
  ASSERT_TRUE(store_->UpdateSpec(desired, rv).ok());
  SetLabel(desired, "owner", "b");
  EXPECT_TRUE(absl::IsAborted(store_->UpdateSpec(desired, rv).status()));
}

TEST_F(NodeStoreTest, NoOpUpdateKeepsVersion) {
  MustRegister(DeviceNode("edge-1"));
  Node current = *store_->Get("edge-1");
  Node updated = *store_->UpdateSpec(current, current.resource_version);
  EXPECT_EQ(updated.resource_version, current.resource_version);
}

TEST_F(NodeStoreTest, CreateThenDuplicateCreateFails) {
  Node node;
  node.name = "pre-1";
  ASSERT_TRUE(store_->Create(node).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Create(node).status()));
  EXPECT_EQ(store_->Get("pre-1")->ready, ConditionStatus::kUnknown);
}

TEST_F(NodeStoreTest, DeleteLeavesTombstoneUntilReadmitted) {
  MustRegister(DeviceNode("edge-1"));
  auto deleted = store_->Delete("edge-1", 0, /*tombstone=*/true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->name, "edge-1");
  EXPECT_TRUE(absl::IsNotFound(store_->Get("edge-1").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Register(DeviceNode("edge-1")).status()));

  ASSERT_TRUE(store_->Readmit("edge-1").ok());
  EXPECT_TRUE(store_->Register(DeviceNode("edge-1")).ok());
}

TEST_F(NodeStoreTest, CreateLiftsTombstone) {
  MustRegister(DeviceNode("edge-1"));
  ASSERT_TRUE(store_->Delete("edge-1", 0, true).ok());
  Node node;
  node.name = "edge-1";
  ASSERT_TRUE(store_->Create(node).ok());
  EXPECT_FALSE(store_->IsTombstoned("edge-1"));
  EXPECT_TRUE(store_->Register(DeviceNode("edge-1")).ok());
}

TEST_F(NodeStoreTest, ListIsSortedByName) {
  for (std::string name : {"c", "a", "b"}) MustRegister(DeviceNode(name));
  auto list = store_->List({});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(Names(*list), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(list->continue_token.empty());
  EXPECT_EQ(list->resource_version, store_->resource_version());
}

TEST_F(NodeStoreTest, ListFiltersByLabelSelector) {
  MustRegister(DeviceNode("a", "site-1"));
  MustRegister(DeviceNode("b", "site-2"));
  MustRegister(DeviceNode("c", "site-3"));
  ListOptions options;
  options.label_selector = *LabelSelector::Parse("edge.kole.io/site in (site-1,site-3)");
  EXPECT_EQ(Names(*store_->List(options)), (std::vector<std::string>{"a", "c"}));

  options.label_selector = *LabelSelector::Parse("kubernetes.io/hostname=b");
  EXPECT_EQ(Names(*store_->List(options)), (std::vector<std::string>{"b"}));

  options.label_selector = *LabelSelector::Parse("!tier");
  EXPECT_TRUE(store_->List(options)->nodes.empty());
}

TEST_F(NodeStoreTest, ListFiltersByFieldSelector) {
  for (std::string name : {"a", "b", "c"}) MustRegister(DeviceNode(name));
  Node b = *store_->Get("b");
  b.unschedulable = true;
  ASSERT_TRUE(store_->UpdateSpec(b, 0).ok());

  ListOptions options;
  options.field_selector = *FieldSelector::Parse("metadata.name=b");
  EXPECT_EQ(Names(*store_->List(options)), (std::vector<std::string>{"b"}));
  options.field_selector = *FieldSelector::Parse("spec.unschedulable=false");
  EXPECT_EQ(Names(*store_->List(options)), (std::vector<std::string>{"a", "c"}));
  options.field_selector = *FieldSelector::Parse("metadata.name!=a,spec.unschedulable=false");
  EXPECT_EQ(Names(*store_->List(options)), (std::vector<std::string>{"c"}));
}

TEST_F(NodeStoreTest, UnsupportedFieldIsRejected) {
  ListOptions options;
  options.field_selector = *FieldSelector::Parse("status.phase=Running");
  auto list = store_->List(options);
  EXPECT_TRUE(absl::IsInvalidArgument(list.status()));
  EXPECT_NE(list.status().message().find("field label not supported"), std::string::npos);
}

TEST_F(NodeStoreTest, PaginationSeesOneSnapshotWhileWritesHappen) {
  for (int i = 0; i < 100; ++i) {
    MustRegister(DeviceNode(fmt::format("node-{:03}", i)));
  }
  ListOptions options;
  options.limit = 30;
  ListResult page = *store_->List(options);
  uint64_t snapshot_rv = page.resource_version;
  std::vector<std::string> seen = Names(page);

  // Between pages: delete a node not yet listed, add one, relabel another.
  ASSERT_TRUE(store_->Delete("node-050", 0, false).ok());
  MustRegister(DeviceNode("node-0505"));
  Node relabel = *store_->Get("node-070");
  relabel.labels.push_back({"owner", "late"});
  ASSERT_TRUE(store_->UpdateSpec(relabel, 0).ok());

  std::vector<Node> all = page.nodes;
  while (!page.continue_token.empty()) {
    options.continue_token = page.continue_token;
    page = *store_->List(options);
    EXPECT_EQ(page.resource_version, snapshot_rv);
    all.insert(all.end(), page.nodes.begin(), page.nodes.end());
  }
  ASSERT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(all[i].name, fmt::format("node-{:03}", i));
    EXPECT_LE(all[i].resource_version, snapshot_rv);
  }
  EXPECT_EQ(all[70].labels.size(), DeviceNode("x").labels.size());
}

TEST_F(NodeStoreTest, DeletedAndRecreatedNameListsOnceAtEachVersion) {
  MustRegister(DeviceNode("a"));
  MustRegister(DeviceNode("b"));
  uint64_t before = store_->resource_version();
  ASSERT_TRUE(store_->Delete("a", 0, false).ok());
  MustRegister(DeviceNode("a"));

  ListOptions old_options;
  old_options.resource_version = before;
  EXPECT_EQ(Names(*store_->List(old_options)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Names(*store_->List({})), (std::vector<std::string>{"a", "b"}));
}

TEST_F(NodeStoreTest, ContinueTokenExpiresWhenHistoryIsTrimmed) {
  auto store = OpenWithRetention(60);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->Register(DeviceNode(fmt::format("n{}", i))).ok());
  ListOptions list_options;
  list_options.limit = 3;
  ListResult page = *store->List(list_options);

  ASSERT_TRUE(store->Delete("n9", 0, false).ok());
  clock_.Advance(120);
  ASSERT_TRUE(store->Register(DeviceNode("n10")).ok());
  ASSERT_TRUE(store->Maintain().ok());

  list_options.continue_token = page.continue_token;
  auto next = store->List(list_options);
  EXPECT_TRUE(IsExpired(next.status())) << next.status();
  EXPECT_NE(next.status().message().find("too old"), std::string::npos);
}

TEST_F(NodeStoreTest, MemoryCapShortensHistoryAndIsCounted) {
  StoreOptions options;
  options.clock = &clock_;
  options.background_maintenance = false;
  options.change_log.max_bytes = 100 * 12;  // About a hundred additions.
  auto store = std::move(*NodeStore::Open(options));
  for (int i = 0; i < 300; ++i)
    ASSERT_TRUE(store->Register(DeviceNode(fmt::format("n{}", i))).ok());
  ASSERT_TRUE(store->Maintain().ok());
  StoreStats stats = store->Stats();
  EXPECT_LE(stats.change_log_bytes, options.change_log.max_bytes);
  EXPECT_GE(stats.change_log_capped, 190u);
  EXPECT_TRUE(IsExpired(store->Watch(1).status()));
}

TEST_F(NodeStoreTest, MalformedContinueTokenIsRejected) {
  ListOptions options;
  options.continue_token = "garbage";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->List(options).status()));
}

TEST_F(NodeStoreTest, WatchDeliversEventsInOrder) {
  MustRegister(DeviceNode("a"));
  auto watcher = *store_->Watch(store_->resource_version());
  MustRegister(DeviceNode("b"));
  Node a = *store_->Get("a");
  a.labels.push_back({"owner", "x"});
  ASSERT_TRUE(store_->UpdateSpec(a, 0).ok());
  ASSERT_TRUE(store_->Delete("b", 0, false).ok());

  auto events = *watcher->Next(10, absl::Now());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[0].node.name, "b");
  EXPECT_EQ(events[1].type, EventType::kModified);
  EXPECT_EQ(events[1].node.name, "a");
  EXPECT_EQ(events[2].type, EventType::kDeleted);
  EXPECT_EQ(events[2].node.name, "b");
  EXPECT_LT(events[0].node.resource_version, events[1].node.resource_version);
  EXPECT_LT(events[1].node.resource_version, events[2].node.resource_version);
  EXPECT_EQ(watcher->cursor(), store_->resource_version());
}

TEST_F(NodeStoreTest, WatchEventCarriesStateAtItsVersionEvenAfterLaterChanges) {
  MustRegister(DeviceNode("a"));
  auto watcher = *store_->Watch(0);
  Node a = *store_->Get("a");
  a.labels.push_back({"owner", "first"});
  ASSERT_TRUE(store_->UpdateSpec(a, 0).ok());
  a = *store_->Get("a");
  SetLabel(a, "owner", "second");
  ASSERT_TRUE(store_->UpdateSpec(a, 0).ok());

  auto events = *watcher->Next(10, absl::Now());
  ASSERT_EQ(events.size(), 2u);
  auto owner = [](const Node& node) {
    for (const auto& [k, v] : node.labels) {
      if (k == "owner") return v;
    }
    return std::string();
  };
  EXPECT_EQ(owner(events[0].node), "first");
  EXPECT_EQ(owner(events[1].node), "second");
}

TEST_F(NodeStoreTest, WatchResumesFromAnyRetainedVersion) {
  std::vector<uint64_t> versions;
  for (int i = 0; i < 5; ++i)
    versions.push_back(MustRegister(DeviceNode(fmt::format("n{}", i))).resource_version);
  auto watcher = *store_->Watch(versions[2]);
  auto events = *watcher->Next(10, absl::Now());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].node.name, "n3");
  EXPECT_EQ(events[1].node.name, "n4");
}

TEST_F(NodeStoreTest, WatchWithSelectorTurnsMovesIntoAddedAndDeleted) {
  MustRegister(DeviceNode("a"));
  auto watcher = *store_->Watch(0, *LabelSelector::Parse("owner=x"));
  Node a = *store_->Get("a");
  a.labels.push_back({"owner", "x"});
  ASSERT_TRUE(store_->UpdateSpec(a, 0).ok());
  a = *store_->Get("a");
  SetLabel(a, "owner", "y");
  ASSERT_TRUE(store_->UpdateSpec(a, 0).ok());
  MustRegister(DeviceNode("b"));  // Never matches: not reported.

  auto events = *watcher->Next(10, absl::Now());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[1].type, EventType::kDeleted);
  EXPECT_EQ(watcher->cursor(), store_->resource_version());
}

TEST_F(NodeStoreTest, WatchFromTrimmedVersionIsExpired) {
  auto store = OpenWithRetention(10);
  ASSERT_TRUE(store->Register(DeviceNode("a")).ok());
  uint64_t old = store->resource_version();
  ASSERT_TRUE(store->Register(DeviceNode("b")).ok());
  clock_.Advance(20);
  ASSERT_TRUE(store->Register(DeviceNode("c")).ok());
  ASSERT_TRUE(store->Maintain().ok());

  auto watcher = store->Watch(old);
  EXPECT_TRUE(IsExpired(watcher.status())) << watcher.status();
}

TEST_F(NodeStoreTest, SlowWatcherExpiresWhenHistoryPassesIt) {
  auto store = OpenWithRetention(10);
  ASSERT_TRUE(store->Register(DeviceNode("a")).ok());
  auto watcher = *store->Watch(0);
  ASSERT_TRUE(store->Register(DeviceNode("b")).ok());
  clock_.Advance(20);
  ASSERT_TRUE(store->Register(DeviceNode("c")).ok());
  ASSERT_TRUE(store->Maintain().ok());
  EXPECT_TRUE(IsExpired(watcher->Next(10, absl::Now()).status()));
}

TEST_F(NodeStoreTest, WatchTimesOutWithNoEventsAndStableCursor) {
  auto watcher = *store_->Watch(0);
  uint64_t cursor = watcher->cursor();
  auto events = watcher->Next(10, absl::Now() + absl::Milliseconds(20));
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
  EXPECT_EQ(watcher->cursor(), cursor);
}

TEST_F(NodeStoreTest, WatchWakesOnWriteFromAnotherThread) {
  auto watcher = *store_->Watch(0);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    MustRegister(DeviceNode("late"));
  });
  auto events = watcher->Next(10, absl::Now() + absl::Seconds(10));
  writer.join();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].node.name, "late");
}

TEST_F(NodeStoreTest, CloseEndsWatches) {
  auto watcher = *store_->Watch(0);
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    store_->Close();
  });
  auto events = watcher->Next(10, absl::Now() + absl::Seconds(10));
  closer.join();
  EXPECT_TRUE(absl::IsCancelled(events.status()));
}

TEST_F(NodeStoreTest, DeletedSlotIsReusedOnlyAfterHistoryDropsIt) {
  auto store = OpenWithRetention(10);
  ASSERT_TRUE(store->Register(DeviceNode("a")).ok());
  ASSERT_TRUE(store->Delete("a", 0, false).ok());
  ASSERT_TRUE(store->Register(DeviceNode("b")).ok());
  EXPECT_EQ(store->Stats().record_bytes, 2 * sizeof(NodeRecord));

  clock_.Advance(20);
  ASSERT_TRUE(store->Maintain().ok());
  ASSERT_TRUE(store->Register(DeviceNode("c")).ok());
  EXPECT_EQ(store->Stats().record_bytes, 2 * sizeof(NodeRecord));
  EXPECT_EQ(store->Stats().nodes, 2u);
}

TEST_F(NodeStoreTest, ReadersNeverSeeHalfAppliedChanges) {
  // Every write changes two labels together; a reader must always see them
  // equal.
  MustRegister(DeviceNode("pair"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      Node node = *store_->Get("pair");
      std::string v = std::to_string(i);
      StringPairs labels;
      for (auto& [k, val] : node.labels) {
        if (k != "left" && k != "right") labels.emplace_back(k, val);
      }
      labels.push_back({"left", v});
      labels.push_back({"right", v});
      node.labels = labels;
      ASSERT_TRUE(store_->UpdateSpec(node, 0).ok());
    }
    stop = true;
  });
  int checks = 0;
  while (!stop) {
    auto list = store_->List({});
    ASSERT_TRUE(list.ok());
    std::string left, right;
    for (auto& [k, v] : list->nodes[0].labels) {
      if (k == "left") left = v;
      if (k == "right") right = v;
    }
    EXPECT_EQ(left, right);
    ++checks;
  }
  writer.join();
  EXPECT_GT(checks, 0);
}

TEST_F(NodeStoreTest, WatchersAndPagedListsStayConsistentUnderAConcurrentWriter) {
  for (int i = 0; i < 200; ++i) MustRegister(DeviceNode(fmt::format("n{:03}", i)));
  std::atomic<bool> stop{false};

  // Watchers: versions strictly increase, and replaying the events onto the
  // initial list gives the final state.
  auto watch = [&](std::map<std::string, uint64_t>* seen) {
    auto list = *store_->List({});
    for (const Node& node : list.nodes) (*seen)[node.name] = node.resource_version;
    auto watcher = *store_->Watch(list.resource_version);
    uint64_t last = list.resource_version;
    while (true) {
      bool stopping = stop;
      auto events = watcher->Next(1000, absl::Now() + absl::Milliseconds(5));
      ASSERT_TRUE(events.ok()) << events.status();
      for (const WatchEvent& event : *events) {
        ASSERT_GT(event.node.resource_version, last);
        last = event.node.resource_version;
        if (event.type == EventType::kDeleted) {
          seen->erase(event.node.name);
        } else {
          (*seen)[event.node.name] = event.node.resource_version;
        }
      }
      if (stopping && events->empty() && watcher->cursor() == store_->resource_version()) break;
    }
  };
  // Paged lists: every page of one list carries the same version and no
  // node newer than it, names strictly increase across pages.
  auto page_through = [&] {
    while (!stop) {
      ListOptions options;
      options.limit = 17;
      std::string previous;
      uint64_t version = 0;
      do {
        auto page = store_->List(options);
        ASSERT_TRUE(page.ok()) << page.status();
        if (version == 0) version = page->resource_version;
        ASSERT_EQ(page->resource_version, version);
        for (const Node& node : page->nodes) {
          ASSERT_GT(node.name, previous);
          ASSERT_LE(node.resource_version, version);
          previous = node.name;
        }
        options.continue_token = page->continue_token;
      } while (!options.continue_token.empty());
    }
  };

  std::map<std::string, uint64_t> seen_a, seen_b;
  std::thread watcher_a(watch, &seen_a), watcher_b(watch, &seen_b);
  std::thread lister_a(page_through), lister_b(page_through);
  for (int round = 0; round < 600; ++round) {
    std::string name = fmt::format("n{:03}", round % 250);
    if (round % 7 == 0) {
      store_->Delete(name, 0, false).IgnoreError();
    } else if (store_->Get(name).ok()) {
      Node node = *store_->Get(name);
      SetLabel(node, "round", std::to_string(round));
      ASSERT_TRUE(store_->UpdateSpec(node, 0).ok());
    } else {
      MustRegister(DeviceNode(name));
    }
  }
  stop = true;
  for (std::thread* t : {&watcher_a, &watcher_b, &lister_a, &lister_b}) t->join();

  std::map<std::string, uint64_t> expected;
  ListResult final_list = *store_->List({});
  for (const Node& node : final_list.nodes) expected[node.name] = node.resource_version;
  EXPECT_EQ(seen_a, expected);
  EXPECT_EQ(seen_b, expected);
}

}  // namespace
}  // namespace kole::storage

namespace kole::storage {
namespace {

Node GatewayNode(std::string name, std::string gateway, uint32_t epoch) {
  Node node;
  node.name = std::move(name);
  node.edge.gateway = std::move(gateway);
  node.edge.epoch = epoch;
  return node;
}

TEST(NodeStoreGatewayTest, GatewayCannotTakeOverAnotherIdentitysNode) {
  auto store = std::move(*NodeStore::Open({}));
  ASSERT_TRUE(store->Register(GatewayNode("a", "gw-1", 1)).ok());
  absl::StatusOr<RegisterResult> taken = store->Register(GatewayNode("a", "gw-2", 2));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kPermissionDenied);

  ASSERT_TRUE(store->Register(GatewayNode("b", "", 1)).ok());
  EXPECT_EQ(store->Register(GatewayNode("b", "gw-1", 2)).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The node's own connection may always take it back.
  ASSERT_TRUE(store->Register(GatewayNode("a", "", 3)).ok());
  EXPECT_EQ(store->Get("a")->edge.gateway, "");
}

TEST(NodeStoreGatewayTest, GatewayClaimsANodePreCreatedThroughTheApi) {
  auto store = std::move(*NodeStore::Open({}));
  Node created;
  created.name = "pre";
  created.labels = {{"team", "blue"}};
  ASSERT_TRUE(store->Create(created).ok());
  ASSERT_TRUE(store->Register(GatewayNode("pre", "gw-1", 1)).ok());
  absl::StatusOr<Node> node = store->Get("pre");
  EXPECT_EQ(node->edge.gateway, "gw-1");
  EXPECT_EQ(node->labels, (StringPairs{{"team", "blue"}}));
}

TEST(NodeStoreGatewayTest, HeartbeatThroughTheWrongGatewayIsRefused) {
  auto store = std::move(*NodeStore::Open({}));
  ASSERT_TRUE(store->Register(GatewayNode("a", "gw-1", 1)).ok());
  Heartbeat beats[] = {{.name = "a", .epoch = 1, .sequence = 2, .gateway = "gw-2"},
                       {.name = "a", .epoch = 1, .sequence = 3, .gateway = "gw-1"},
                       {.name = "a", .epoch = 1, .sequence = 4}};
  HeartbeatOutcome outcomes[3];
  ASSERT_TRUE(store->ApplyHeartbeats(beats, outcomes).ok());
  EXPECT_EQ(outcomes[0], HeartbeatOutcome::kWrongGateway);
  EXPECT_EQ(outcomes[1], HeartbeatOutcome::kApplied);
  EXPECT_EQ(outcomes[2], HeartbeatOutcome::kApplied);  // The node's own connection.
}

TEST(NodeStoreGatewayTest, GatewayWillDisconnectsOnlyItsSilentNodes) {
  ManualClock clock;
  auto store = std::move(*NodeStore::Open({.clock = &clock}));
  ASSERT_TRUE(store->Register(GatewayNode("a", "gw-1", 1)).ok());
  ASSERT_TRUE(store->Register(GatewayNode("b", "gw-1", 1)).ok());
  ASSERT_TRUE(store->Register(GatewayNode("c", "gw-2", 1)).ok());
  int64_t will_arrived = store->MonotonicSeconds();
  clock.Advance(2);
  Heartbeat beat[] = {{.name = "b", .epoch = 1, .sequence = 2, .gateway = "gw-1"}};
  HeartbeatOutcome outcome[1];
  ASSERT_TRUE(store->ApplyHeartbeats(beat, outcome).ok());

  absl::StatusOr<size_t> changed = store->MarkGatewayDisconnected("gw-1", will_arrived + 1);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(*changed, 1u);
  EXPECT_FALSE(store->Get("a")->edge.connected);
  EXPECT_TRUE(store->Get("b")->edge.connected);  // Heard from after the will.
  EXPECT_TRUE(store->Get("c")->edge.connected);
  EXPECT_EQ(store->CountConnected(), 2u);
}

TEST(NodeStoreGatewayTest, WillOfAnEarlierEpochChangesNothing) {
  auto store = std::move(*NodeStore::Open({}));
  ASSERT_TRUE(store->Register(GatewayNode("a", "", 4)).ok());
  ASSERT_TRUE(store->MarkDisconnected("a", 3).ok());
  EXPECT_TRUE(store->Get("a")->edge.connected);
  ASSERT_TRUE(store->MarkDisconnected("a", 4).ok());
  EXPECT_FALSE(store->Get("a")->edge.connected);
}

}  // namespace
}  // namespace kole::storage
