// The read-only open of a data directory (StoreOptions::read_only,
// PodStoreOptions::read_only) that kole-admin's export, inspect and backup
// check are built on: it recovers what a restart would, and changes nothing.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "storage/data_dir.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"
#include "unit/storage/data_dir_test_util.h"
#include "unit/testing/temp_dir.h"

namespace kole::storage {
namespace {

using kole::testing::ScopedTempDir;

// Every file under `dir` with its contents.
std::map<std::string, std::string> Contents(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    std::string key = std::filesystem::relative(entry.path(), dir).string();
    if (entry.is_directory()) {
      files[key + "/"] = "";
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream data;
    data << in.rdbuf();
    files[key] = data.str();
  }
  return files;
}

// The newest log segment of `dir`.
std::string NewestSegment(const std::string& dir) {
  std::string newest;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/wal")) {
    newest = std::max(newest, entry.path().string());
  }
  return newest;
}

// A store of three nodes, one of them created after a snapshot, closed.
void WriteStore(const std::string& dir) {
  auto store = NodeStore::Open(DataDirOptions(dir, false));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Create(SiteNode("a")).ok());
  ASSERT_TRUE((*store)->Create(SiteNode("b")).ok());
  ASSERT_TRUE((*store)->Snapshot().ok());
  ASSERT_TRUE((*store)->Create(SiteNode("c")).ok());
}

TEST(NodeStoreReadOnly, RecoversWhatARestartWouldWithoutChangingAFile) {
  ScopedTempDir tmp;
  WriteStore(tmp.path());
  auto before = Contents(tmp.path());

  auto store = NodeStore::Open(DataDirOptions(tmp.path(), true));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Stats().nodes, 3u);
  ASSERT_TRUE((*store)->Get("c").ok());
  RecoveryReport report = (*store)->recovery();
  EXPECT_FALSE(report.snapshot_path.empty());
  EXPECT_EQ(report.snapshot_nodes, 2u);
  EXPECT_GE(report.log_records_replayed, 1u);
  EXPECT_EQ(report.content_resource_version, (*store)->Get("c")->resource_version);
  store->reset();

  EXPECT_EQ(Contents(tmp.path()), before);
}

TEST(NodeStoreReadOnly, RefusesEveryWrite) {
  ScopedTempDir tmp;
  WriteStore(tmp.path());
  auto store = NodeStore::Open(DataDirOptions(tmp.path(), true));
  ASSERT_TRUE(store.ok()) << store.status();

  EXPECT_TRUE(absl::IsFailedPrecondition((*store)->Create(SiteNode("d")).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition((*store)->Register(SiteNode("e")).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition((*store)->Delete("a", 0, false).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition((*store)->Snapshot()));
  EXPECT_EQ((*store)->Stats().nodes, 3u);
}

TEST(NodeStoreReadOnly, OpensWhileAServerHoldsTheLock) {
  ScopedTempDir tmp;
  auto server = NodeStore::Open(DataDirOptions(tmp.path(), false));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Create(SiteNode("a")).ok());

  auto reader = NodeStore::Open(DataDirOptions(tmp.path(), true));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE((*reader)->Get("a").ok());
  // The server's writes go on.
  EXPECT_TRUE((*server)->Create(SiteNode("b")).ok());
}

TEST(NodeStoreReadOnly, LeavesATornTailInPlaceAndReadsUpToIt) {
  ScopedTempDir tmp;
  WriteStore(tmp.path());
  std::string segment = NewestSegment(tmp.path());
  auto size = std::filesystem::file_size(segment);
  std::filesystem::resize_file(segment, size - 3);  // Cuts into the last record ("c").
  auto before = Contents(tmp.path());

  auto store = NodeStore::Open(DataDirOptions(tmp.path(), true));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->Get("b").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->Get("c").status()));
  uint64_t torn = (*store)->recovery().torn_tail_bytes;
  EXPECT_GT(torn, 0u);
  store->reset();
  EXPECT_EQ(Contents(tmp.path()), before);

  // A real restart cuts the same record and finds the same nodes.
  auto restarted = NodeStore::Open(DataDirOptions(tmp.path(), false));
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ((*restarted)->Stats().nodes, 2u);
  EXPECT_EQ((*restarted)->recovery().torn_tail_bytes, torn);
  EXPECT_EQ(std::filesystem::file_size(segment), size - 3 - torn);
}

TEST(NodeStoreReadOnly, AnEmptyDirectoryStaysEmpty) {
  ScopedTempDir tmp;
  auto store = NodeStore::Open(DataDirOptions(tmp.path(), true));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Stats().nodes, 0u);
  store->reset();
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(NodeStoreReadOnly, AMissingDirectoryIsNotFound) {
  ScopedTempDir tmp;
  auto store = NodeStore::Open(DataDirOptions(tmp.Sub("absent"), true));
  EXPECT_TRUE(absl::IsNotFound(store.status())) << store.status();
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("absent")));
}

TEST(PodStoreReadOnly, ReadsUpToATornRecordWithoutTruncatingAndRefusesWrites) {
  ScopedTempDir tmp;
  {
    auto pods = PodStore::Open({.data_dir = tmp.path()});
    ASSERT_TRUE(pods.ok()) << pods.status();
    for (const char* name : {"p1", "p2"}) {
      Pod pod;
      pod.namespace_ = "default";
      pod.name = name;
      pod.node_name = "a";
      ASSERT_TRUE((*pods)->Create(pod).ok());
    }
  }
  std::string log = tmp.Sub("pods/pods.log");
  std::filesystem::resize_file(log, std::filesystem::file_size(log) - 5);
  auto before = Contents(tmp.path());

  auto pods = PodStore::Open({.data_dir = tmp.path(), .read_only = true});
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_EQ((*pods)->size(), 1u);
  EXPECT_GT((*pods)->torn_tail_bytes(), 0u);
  Pod pod;
  pod.namespace_ = "default";
  pod.name = "p3";
  EXPECT_TRUE(absl::IsFailedPrecondition((*pods)->Create(pod).status()));
  pods->reset();
  EXPECT_EQ(Contents(tmp.path()), before);
}

}  // namespace
}  // namespace kole::storage
