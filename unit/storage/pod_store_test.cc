// PodStore: standalone pods, their log, history, paging and watches.

#include "storage/pod_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/node_store.h"

namespace kole::storage {
namespace {

class PodStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kole-pod-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<PodStore> Open(int64_t retention = 300) {
    PodStoreOptions options;
    options.data_dir = dir_;
    options.clock = &clock_;
    options.retention_seconds = retention;
    auto store = PodStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static Pod MakePod(std::string ns, std::string name, std::string node = "n1") {
    Pod p;
    p.namespace_ = std::move(ns);
    p.name = std::move(name);
    p.node_name = std::move(node);
    p.spec_json =
        R"({"nodeName":")" + p.node_name + R"(","containers":[{"name":"c","image":"i"}]})";
    return p;
  }

  std::vector<std::string> Names(const PodStore& store, PodListOptions options,
                                 PodListResult* result = nullptr) {
    std::vector<std::string> names;
    PodListResult local;
    absl::Status s = store.ListEach(
        options, [&](const Pod& p) { names.push_back(p.namespace_ + "/" + p.name); },
        result ? result : &local);
    EXPECT_TRUE(s.ok()) << s;
    return names;
  }

  ManualClock clock_;
  std::string dir_;
};

TEST_F(PodStoreTest, ListsInNamespaceThenNameOrder) {
  auto store = Open();
  for (auto [ns, name] : {std::pair{"b", "x"}, {"a", "y"}, {"a", "x"}}) {
    ASSERT_TRUE(store->Create(MakePod(ns, name)).ok());
  }
  EXPECT_EQ(Names(*store, {}), (std::vector<std::string>{"a/x", "a/y", "b/x"}));
  PodListOptions in_a;
  in_a.namespace_ = "a";
  EXPECT_EQ(Names(*store, in_a), (std::vector<std::string>{"a/x", "a/y"}));
}

TEST_F(PodStoreTest, PodsSurviveAReopen) {
  {
    auto store = Open();
    ASSERT_TRUE(store->Create(MakePod("a", "p1")).ok());
    ASSERT_TRUE(store->Create(MakePod("a", "p2")).ok());
    ASSERT_TRUE(store->Delete("a", "p1", 0).ok());
  }
  auto store = Open();
  EXPECT_EQ(Names(*store, {}), (std::vector<std::string>{"a/p2"}));
  // Versions never go backwards, also past a deleted pod's version.
  EXPECT_EQ(store->resource_version(), 3u);
}

TEST_F(PodStoreTest, TornLastRecordIsTruncated) {
  {
    auto store = Open();
    ASSERT_TRUE(store->Create(MakePod("a", "p1")).ok());
  }
  std::string log = dir_ + "/pods/pods.log";
  {
    std::ofstream out(log, std::ios::app | std::ios::binary);
    out.write("\x40\x00\x00\x00\x01\x02", 6);  // A record cut short.
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Names(*store, {}), (std::vector<std::string>{"a/p1"}));
}

TEST_F(PodStoreTest, CorruptionInTheMiddleRefusesToOpen) {
  {
    auto store = Open();
    ASSERT_TRUE(store->Create(MakePod("a", "p1")).ok());
    ASSERT_TRUE(store->Create(MakePod("a", "p2")).ok());
  }
  std::string log = dir_ + "/pods/pods.log";
  std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
  // The first pod record starts after the header and the watermark record;
  // flip a byte inside it.
  f.seekp(8 + 8 + 9 + 20);
  f.put('\x7f');
  f.close();
  PodStoreOptions options;
  options.data_dir = dir_;
  auto store = PodStore::Open(options);
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
}

TEST_F(PodStoreTest, PagesComeFromOneSnapshot) {
  auto store = Open();
  for (const char* n : {"p1", "p2", "p3"}) ASSERT_TRUE(store->Create(MakePod("a", n)).ok());
  PodListOptions page;
  page.limit = 2;
  PodListResult first;
  EXPECT_EQ(Names(*store, page, &first), (std::vector<std::string>{"a/p1", "a/p2"}));
  ASSERT_FALSE(first.continue_token.empty());

  ASSERT_TRUE(store->Delete("a", "p3", 0).ok());
  ASSERT_TRUE(store->Create(MakePod("a", "p4")).ok());
  page.continue_token = first.continue_token;
  PodListResult second;
  EXPECT_EQ(Names(*store, page, &second), (std::vector<std::string>{"a/p3"}));
  EXPECT_EQ(second.resource_version, first.resource_version);
  EXPECT_TRUE(second.continue_token.empty());
}

TEST_F(PodStoreTest, ContinueTokenExpiresWithHistory) {
  auto store = Open(60);
  for (const char* n : {"p1", "p2"}) ASSERT_TRUE(store->Create(MakePod("a", n)).ok());
  PodListOptions page;
  page.limit = 1;
  PodListResult first;
  Names(*store, page, &first);
  // A change after the snapshot, then its history is trimmed.
  ASSERT_TRUE(store->Create(MakePod("a", "p3")).ok());
  clock_.Advance(120);
  ASSERT_TRUE(store->Create(MakePod("a", "p4")).ok());
  page.continue_token = first.continue_token;
  PodListResult ignored;
  absl::Status s = store->ListEach(
      page, [](const Pod&) {}, &ignored);
  EXPECT_TRUE(IsExpired(s)) << s;
}

TEST_F(PodStoreTest, FieldSelectorOnNodeName) {
  auto store = Open();
  ASSERT_TRUE(store->Create(MakePod("a", "p1", "n1")).ok());
  ASSERT_TRUE(store->Create(MakePod("a", "p2", "n2")).ok());
  PodListOptions options;
  options.field_selector = *FieldSelector::Parse("spec.nodeName=n2");
  EXPECT_EQ(Names(*store, options), (std::vector<std::string>{"a/p2"}));
}

TEST_F(PodStoreTest, UpdateWithStaleVersionIsAborted) {
  auto store = Open();
  Pod p = *store->Create(MakePod("a", "p1"));
  Pod changed = p;
  changed.labels = {{"x", "y"}};
  ASSERT_TRUE(store->Update(changed, p.resource_version).ok());
  EXPECT_TRUE(absl::IsAborted(store->Update(changed, p.resource_version).status()));
}

TEST_F(PodStoreTest, StatusUpdateKeepsSpecAndSpecUpdateKeepsStatus) {
  auto store = Open();
  Pod p = *store->Create(MakePod("a", "p1"));
  Pod status = p;
  status.status_json = R"({"phase":"Running"})";
  status.phase = "Running";
  status.spec_json = "{}";
  Pod after = *store->UpdateStatus(status, 0);
  EXPECT_EQ(after.phase, "Running");
  EXPECT_EQ(after.spec_json, p.spec_json);
  Pod spec = after;
  spec.status_json = "{}";
  spec.labels = {{"a", "b"}};
  Pod final_pod = *store->Update(spec, 0);
  EXPECT_EQ(final_pod.status_json, R"({"phase":"Running"})");
}

TEST_F(PodStoreTest, WatchReportsSelectionTransitions) {
  auto store = Open();
  Pod p = *store->Create(MakePod("a", "p1"));
  auto watcher = *store->Watch(0, "a", *LabelSelector::Parse("app=web"), {});
  Pod labelled = p;
  labelled.labels = {{"app", "web"}};
  ASSERT_TRUE(store->Update(labelled, 0).ok());
  Pod unlabelled = labelled;
  unlabelled.labels = {};
  ASSERT_TRUE(store->Update(unlabelled, 0).ok());
  auto events = *watcher->Next(10, absl::Now() + absl::Seconds(1));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[1].type, EventType::kDeleted);
  EXPECT_EQ(watcher->cursor(), store->resource_version());
}

TEST_F(PodStoreTest, WatchFromTooOldVersionIsExpired) {
  auto store = Open(60);
  ASSERT_TRUE(store->Create(MakePod("a", "p1")).ok());
  ASSERT_TRUE(store->Create(MakePod("a", "p2")).ok());
  clock_.Advance(120);
  ASSERT_TRUE(store->Create(MakePod("a", "p3")).ok());
  EXPECT_TRUE(IsExpired(store->Watch(1, "", {}, {}).status()));
}

}  // namespace
}  // namespace kole::storage
