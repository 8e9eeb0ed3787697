// ObjectStore: versions, preconditions, durability, history and watches.

#include "storage/object_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/node_store.h"

namespace kole::storage {
namespace {

class ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kole-object-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ObjectStore> Open() {
    auto store = ObjectStore::Open({.data_dir = dir_, .subdir = "eds", .clock = &clock_});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string dir_;
  ManualClock clock_;
};

TEST_F(ObjectStoreTest, WritesAreVersionedAndSurviveRestart) {
  uint64_t rv;
  {
    auto store = Open();
    auto a = store->Create({"ns", "a", 0, R"({"a":1})"});
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->resource_version, 1u);
    EXPECT_TRUE(absl::IsAlreadyExists(store->Create({"ns", "a", 0, "{}"}).status()));
    auto b = store->Create({"ns", "b", 0, R"({"b":1})"});
    ASSERT_TRUE(b.ok());
    EXPECT_TRUE(absl::IsAborted(store->Update({"ns", "a", 0, R"({"a":2})"}, 5).status()));
    auto a2 = store->Update({"ns", "a", 0, R"({"a":2})"}, 1);
    ASSERT_TRUE(a2.ok());
    EXPECT_EQ(a2->resource_version, 3u);
    // The same JSON again keeps the version.
    EXPECT_EQ(store->Update({"ns", "a", 0, R"({"a":2})"}, 0)->resource_version, 3u);
    ASSERT_TRUE(store->Delete("ns", "b", 0).ok());
    rv = store->resource_version();
  }
  auto store = Open();
  EXPECT_EQ(store->resource_version(), rv);
  auto a = store->Get("ns", "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->json, R"({"a":2})");
  EXPECT_TRUE(absl::IsNotFound(store->Get("ns", "b").status()));
  // History before the restart is gone: watching from it is expired.
  EXPECT_TRUE(IsExpired(store->Watch(1, "").status()));
  EXPECT_EQ(store->Create({"ns", "c", 0, "{}"})->resource_version, rv + 1);
}

TEST_F(ObjectStoreTest, CorruptFileRefusesToOpen) {
  { ASSERT_TRUE(Open()->Create({"ns", "a", 0, "{}"}).ok()); }
  std::string path = dir_ + "/eds/objects";
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(20);
  f.put('\xff');
  f.close();
  auto store = ObjectStore::Open({.data_dir = dir_, .subdir = "eds"});
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
}

TEST_F(ObjectStoreTest, ListPagesAndWatchesByNamespace) {
  auto store = Open();
  for (std::string ns : {"a", "b"}) {
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(store->Create({ns, "o" + std::to_string(i), 0, "{}"}).ok());
  }
  bool more = false;
  uint64_t rv = 0;
  auto page = store->List("b", "", 3, &more, &rv);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_TRUE(more);
  auto rest = store->List("b", "b/o2", 3, &more, &rv);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_FALSE(more);
  EXPECT_EQ(rest[0].name, "o3");

  auto w = store->Watch(rv, "a");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(store->Delete("b", "o1", 0).ok());
  ASSERT_TRUE(store->Delete("a", "o1", 0).ok());
  auto events = (*w)->Next(10, absl::Now());
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, EventType::kDeleted);
  EXPECT_EQ((*events)[0].object.name, "o1");
  EXPECT_EQ((*events)[0].object.resource_version, rv + 2);
}

}  // namespace
}  // namespace kole::storage
