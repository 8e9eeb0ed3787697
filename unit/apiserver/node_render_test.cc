// NodeRenderer must write exactly what the expanded renderers write for the
// same node: lists go through the renderer, single objects and watch events
// through AppendNodeJson, and a client must not be able to tell them apart.

#include "apiserver-ext/node_render.h"

#include <gtest/gtest.h>

#include <random>

#include "apiserver-ext/node_json.h"
#include "apiserver-ext/table.h"
#include "storage/clock.h"
#include "storage/node_store.h"

namespace kole::apiserver {
namespace {

using storage::ConditionStatus;
using storage::Node;

constexpr int64_t kNow = 1796400000;

class NodeRendererTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    store_ = std::move(*storage::NodeStore::Open(options));
  }

  // A node as a device of the given kind reports it.
  static Node Device(const std::string& name, int kind) {
    Node node;
    node.name = name;
    node.labels = {{"kubernetes.io/arch", kind % 2 ? "arm64" : "amd64"},
                   {"kubernetes.io/hostname", name},
                   {"topology.kubernetes.io/zone", "zone-" + std::to_string(kind % 3)}};
    if (kind % 4 == 0) node.labels.push_back({"node-role.kubernetes.io/gateway", ""});
    storage::NormalizePairs(node.labels);
    node.capacity = {{"cpu", std::to_string(2 + kind % 3)}, {"memory", "4Gi"}, {"pods", "110"}};
    node.allocatable = {{"cpu", "1500m"}, {"memory", "3Gi"}, {"pods", "110"}};
    node.addresses = {{"InternalIP", "10.0." + std::to_string(kind % 200) + ".7"}};
    if (kind % 3 != 0) node.addresses.push_back({"Hostname", name});
    node.node_info = {.machine_id = "0123456789abcdef0123456789abcdef",
                      .system_uuid = "4c4c4544-0042-3010-8056-b4c04f4b4e32",
                      .boot_id = "9f1b8a4e-3c2d-4e5f-8a9b-0c1d2e3f4a5b",
                      .kernel_version = "6.1.0-" + std::to_string(kind % 5),
                      .os_image = "Debian GNU/Linux 12 (bookworm)",
                      .container_runtime_version = "containerd://1.7.2",
                      .kubelet_version = "v1.12." + std::to_string(kind % 3) + "-kole",
                      .operating_system = "linux",
                      .architecture = kind % 2 ? "arm64" : "amd64"};
    node.conditions = {
        {"MemoryPressure", ConditionStatus::kFalse, "KubeletHasSufficientMemory", "ok"},
        {"DiskPressure", kind % 7 == 0 ? ConditionStatus::kTrue : ConditionStatus::kFalse,
         "KubeletHasNoDiskPressure", "disk \"/\" is fine"}};
    node.ready = ConditionStatus::kTrue;
    node.ready_reason = "KubeletReady";
    node.ready_message = "agent is posting ready status";
    node.edge.epoch = 3;
    node.edge.gateway = kind % 5 == 0 ? "" : "gw-" + std::to_string(kind % 4);
    return node;
  }

  void Register(const Node& node) {
    absl::StatusOr<storage::RegisterResult> registered = store_->Register(node);
    ASSERT_TRUE(registered.ok()) << registered.status();
  }

  // Renders every node of the store both ways, in every form a list serves,
  // with one renderer for the whole list (as a response uses it), and
  // expects the same bytes.
  void ExpectSameAsExpanded() {
    NodeRenderer renderer;
    storage::ListResult result;
    size_t seen = 0;
    absl::Status listed = store_->ListEachView(
        {},
        [&](const storage::NodeView& view) {
          ++seen;
          Node node = view.ToNode();
          std::string want, got;
          AppendNodeJson(node, want);
          renderer.AppendJson(view, got);
          EXPECT_EQ(got, want) << node.name;

          want.clear(), got.clear();
          AppendNodeMetadataJson(node, want);
          renderer.AppendMetadataJson(view, got);
          EXPECT_EQ(got, want) << node.name;

          for (IncludeObject include :
               {IncludeObject::kMetadata, IncludeObject::kObject, IncludeObject::kNone}) {
            want.clear(), got.clear();
            AppendNodeTableRow(node, kNow, include, want);
            renderer.AppendTableRow(view, kNow, include, got);
            EXPECT_EQ(got, want) << node.name;
          }
        },
        &result);
    ASSERT_TRUE(listed.ok()) << listed;
    EXPECT_EQ(seen, store_->Stats().nodes);
  }

  storage::ManualClock clock_{kNow - 3600};
  std::unique_ptr<storage::NodeStore> store_;
};

TEST_F(NodeRendererTest, ViewExpandsToWhatGetReturns) {
  Register(Device("edge-a", 1));
  ASSERT_TRUE(store_->Create(Device("edge-b", 2)).ok());
  storage::ListResult result;
  ASSERT_TRUE(store_
                  ->ListEachView(
                      {},
                      [&](const storage::NodeView& view) {
                        absl::StatusOr<Node> got = store_->Get(view.name());
                        ASSERT_TRUE(got.ok());
                        EXPECT_EQ(view.ToNode(), *got);
                      },
                      &result)
                  .ok());
}

TEST_F(NodeRendererTest, RegisteredFleetRendersAsExpanded) {
  // Many nodes share each node-info, resources, conditions and gateway
  // value, so most renders come from the caches.
  for (int i = 0; i < 300; ++i) Register(Device("edge-" + std::to_string(i), i));
  ExpectSameAsExpanded();
}

TEST_F(NodeRendererTest, PreRegisteredNodeWithoutStatusRendersAsExpanded) {
  // Created through the API and never heard from: no times, no addresses,
  // no node info (<unknown> cells), null heartbeat times.
  Node node;
  node.name = "waiting";
  node.labels = {{"site", "ams"}};
  ASSERT_TRUE(store_->Create(node).ok());
  ExpectSameAsExpanded();
}

TEST_F(NodeRendererTest, UnusualNodesRenderAsExpanded) {
  // Every value that leaves the compact fast paths: ids in unusual forms,
  // addresses other than [InternalIP, Hostname], a hostname label that is
  // not the name, roles from both label forms, text that needs escaping.
  Node odd = Device("odd", 1);
  odd.node_info.machine_id = "ABCDEF0123456789ABCDEF0123456789";
  odd.node_info.system_uuid = "4C4C4544-0042-3010-8056-B4C04F4B4E32";
  odd.node_info.boot_id = "not-a-uuid";
  odd.addresses = {{"ExternalIP", "203.0.113.9"},
                   {"InternalIP", "fd00::7"},
                   {"InternalIP", "10.1.2.3"},
                   {"Hostname", "odd.example"}};
  odd.labels = {{"kubernetes.io/hostname", "odd.example"},
                {"kubernetes.io/role", "edge"},
                {"node-role.kubernetes.io/worker", ""},
                {"zzz", "last"}};
  odd.node_info.os_image = "Tab\there \"quoted\" \xE2\x9C\x93";
  odd.conditions.push_back({"Custom", ConditionStatus::kUnknown, "", "line\nbreak"});
  odd.ready = ConditionStatus::kFalse;
  odd.ready_message = "back\\slash";
  Register(odd);

  Node bare = Device("bare", 2);
  bare.addresses.clear();
  bare.capacity.clear();
  bare.conditions.clear();
  bare.node_info = {};
  bare.labels.clear();
  Register(bare);

  // The user-owned parts: annotations, taints with and without a value,
  // unschedulable.
  absl::StatusOr<Node> current = store_->Get("odd");
  ASSERT_TRUE(current.ok());
  Node spec = *current;
  spec.annotations = {{"kole.io/note", "\"quoted\""}, {"owner", "team-a"}};
  spec.taints = {{"dedicated", "edge", "NoSchedule"}, {"flaky", "", "PreferNoSchedule"}};
  spec.unschedulable = true;
  ASSERT_TRUE(store_->UpdateSpec(spec, 0).ok());

  absl::StatusOr<Node> bare_now = store_->Get("bare");
  ASSERT_TRUE(bare_now.ok());
  Node cordoned = *bare_now;
  cordoned.unschedulable = true;
  ASSERT_TRUE(store_->UpdateSpec(cordoned, 0).ok());

  ExpectSameAsExpanded();
}

TEST_F(NodeRendererTest, RandomFleetRendersAsExpanded) {
  // Random combinations of the forms above, so that cached fragments are
  // reused across nodes that differ in everything else.
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    Node node = Device("rand-" + std::to_string(i), static_cast<int>(rng() % 11));
    if (rng() % 3 == 0) node.node_info.boot_id = "boot-" + std::to_string(rng() % 5);
    if (rng() % 4 == 0) node.addresses.insert(node.addresses.begin(), {"ExternalIP", "192.0.2.1"});
    if (rng() % 5 == 0) node.conditions.clear();
    if (rng() % 6 == 0) node.ready = ConditionStatus::kUnknown;
    if (rng() % 2 == 0) node.labels.push_back({"tier", "t" + std::to_string(rng() % 3)});
    storage::NormalizePairs(node.labels);
    Register(node);
  }
  ExpectSameAsExpanded();
}

}  // namespace
}  // namespace kole::apiserver
