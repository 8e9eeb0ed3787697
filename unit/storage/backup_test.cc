// Backup and restore of a data directory (storage/backup.h): online copies of
// a store being written, files pruned under the copy, and the refusals and
// checksums that keep a restore from making things worse.

#include "storage/backup.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "storage/node_store.h"
#include "storage/pod_store.h"
#include "unit/storage/data_dir_test_util.h"
#include "unit/testing/temp_dir.h"

namespace kole::storage {
namespace {

using kole::testing::ScopedTempDir;

// The real file system, with hooks the tests use to act at the worst moment:
// before a file is opened for reading, and before a directory is listed.
class HookedFileSystem final : public FileSystem {
 public:
  std::function<void(const std::string& path)> before_open;
  std::function<void(const std::string& path)> before_list;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    return base_->NewWritableFile(p);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override {
    return base_->NewAppendableFile(p);
  }
  absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& p) override {
    if (before_open) before_open(p);
    return base_->NewSequentialFile(p);
  }
  absl::StatusOr<uint64_t> GetFileSize(const std::string& p) override {
    return base_->GetFileSize(p);
  }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& p) override {
    if (before_list) before_list(p);
    return base_->ListDir(p);
  }
  absl::Status CreateDirIfMissing(const std::string& p) override {
    return base_->CreateDirIfMissing(p);
  }
  absl::Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  absl::Status RenameFile(const std::string& a, const std::string& b) override {
    return base_->RenameFile(a, b);
  }
  absl::Status TruncateFile(const std::string& p, uint64_t size) override {
    return base_->TruncateFile(p, size);
  }
  absl::Status SyncDir(const std::string& p) override { return base_->SyncDir(p); }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& p) override {
    return base_->LockFile(p);
  }

 private:
  FileSystem* const base_ = DefaultFileSystem();
};

// Opens a restored (or backed-up) directory the way a server would.
std::unique_ptr<NodeStore> Reopen(const std::string& dir) {
  auto store = NodeStore::Open(DataDirOptions(dir));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

void CreateNodes(NodeStore* store, const std::string& prefix, int count) {
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(store->Create(SiteNode(fmt::format("{}-{:04}", prefix, i))).ok());
  }
}

TEST(Backup, OfAStoreBeingWrittenRestoresEverythingAcknowledgedBeforeIt) {
  ScopedTempDir tmp;
  StoreOptions options = DataDirOptions(tmp.Sub("data"));
  // Snapshots and pruning every few hundred changes, also during the copy.
  options.background_maintenance = true;
  options.snapshot_after_log_bytes = 64 << 10;
  auto server = NodeStore::Open(options);
  ASSERT_TRUE(server.ok()) << server.status();

  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string name = fmt::format("w-{:06}", i);
      auto created = (*server)->Create(SiteNode(name));
      ASSERT_TRUE(created.ok()) << created.status();
      // A change to an earlier node, so that versions and records churn.
      if (i > 10) {
        Node changed = SiteNode(fmt::format("w-{:06}", i / 2));
        changed.labels.push_back({"gen", std::to_string(i)});
        ASSERT_TRUE((*server)->UpdateSpec(changed, 0).ok());
      }
      std::lock_guard<std::mutex> lock(mu);
      acknowledged.push_back(name);
    }
  });
  auto acknowledged_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  };
  while (acknowledged_count() < 1500) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  std::vector<std::string> before;
  {
    std::lock_guard<std::mutex> lock(mu);
    before = acknowledged;
  }
  auto manifest = BackupDataDir(tmp.Sub("data"), tmp.Sub("backup"));
  size_t after_backup = acknowledged_count();
  stop = true;
  writer.join();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_TRUE(after_backup > before.size()) << "the writer did not run during the backup";
  EXPECT_GE(manifest->nodes, before.size());
  EXPECT_FALSE(manifest->snapshot.empty());

  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("restored"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto store = Reopen(tmp.Sub("restored"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().nodes, manifest->nodes);
  EXPECT_EQ(store->recovery().content_resource_version, manifest->node_resource_version);
  for (const std::string& name : before) {
    auto node = store->Get(name);
    ASSERT_TRUE(node.ok()) << name << " was acknowledged before the backup began";
    // UIDs survive (same uid-key, same creating version).
    EXPECT_EQ(node->uid, (*server)->Get(name)->uid) << name;
  }
}

TEST(Backup, ASegmentPrunedDuringTheCopyMakesItStartAgainFromTheNewerSnapshot) {
  ScopedTempDir tmp;
  auto server = NodeStore::Open(DataDirOptions(tmp.Sub("data")));
  ASSERT_TRUE(server.ok()) << server.status();
  CreateNodes(server->get(), "a", 50);
  ASSERT_TRUE((*server)->Snapshot().ok());
  CreateNodes(server->get(), "b", 50);

  // As the copy opens its first log segment, the server takes two snapshots,
  // which prune the snapshot being copied and the segments after it.
  HookedFileSystem fs;
  std::string pruned;
  fs.before_open = [&](const std::string& path) {
    if (!pruned.empty() || path.find("/data/wal/wal-") == std::string::npos) return;
    pruned = path;
    CreateNodes(server->get(), "c", 50);
    ASSERT_TRUE((*server)->Snapshot().ok());
    CreateNodes(server->get(), "d", 50);
    ASSERT_TRUE((*server)->Snapshot().ok());
    CreateNodes(server->get(), "e", 50);
  };
  auto manifest = BackupDataDir(tmp.Sub("data"), tmp.Sub("backup"), {.file_system = &fs});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_FALSE(pruned.empty()) << "the hook never ran";
  EXPECT_FALSE(std::filesystem::exists(pruned)) << "the segment was not pruned: test is void";

  EXPECT_EQ(manifest->nodes, 250u);
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("restored"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto store = Reopen(tmp.Sub("restored"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().nodes, 250u);
  EXPECT_TRUE(store->Get("e-0049").ok());
}

TEST(Backup, ALastSegmentTheServerFinishesDuringTheCopyIsCopiedToItsEnd) {
  ScopedTempDir tmp;
  auto server = NodeStore::Open(DataDirOptions(tmp.Sub("data")));
  ASSERT_TRUE(server.ok()) << server.status();
  CreateNodes(server->get(), "a", 20);
  ASSERT_TRUE((*server)->Snapshot().ok());
  CreateNodes(server->get(), "b", 5);

  // After the segments were copied and before they are listed again, the
  // server appends to the last one and then starts a new one (a second
  // snapshot, which prunes nothing: two are kept).
  HookedFileSystem fs;
  int wal_lists = 0;
  fs.before_list = [&](const std::string& path) {
    if (!path.ends_with("/data/wal") || ++wal_lists != 2) return;
    ASSERT_TRUE((*server)->Create(SiteNode("late")).ok());
    ASSERT_TRUE((*server)->Snapshot().ok());
    ASSERT_TRUE((*server)->Create(SiteNode("later")).ok());
  };
  auto manifest = BackupDataDir(tmp.Sub("data"), tmp.Sub("backup"), {.file_system = &fs});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(wal_lists, 2) << "the copy started again; the test meant to avoid that";
  EXPECT_EQ(manifest->nodes, 26u) << "holds the finished segment's last record, not the next's";
  EXPECT_EQ(manifest->torn_tail_bytes, 0u);
}

TEST(Backup, RefusesATargetThatIsNotEmpty) {
  ScopedTempDir tmp;
  { ASSERT_TRUE(NodeStore::Open(DataDirOptions(tmp.Sub("data"))).ok()); }
  std::filesystem::create_directories(tmp.Sub("backup"));
  std::ofstream(tmp.Sub("backup/something")) << "x";
  auto manifest = BackupDataDir(tmp.Sub("data"), tmp.Sub("backup"));
  EXPECT_TRUE(absl::IsFailedPrecondition(manifest.status())) << manifest.status();
}

// A closed store of three nodes and one pod, and a backup of it.
void MakeBackup(const ScopedTempDir& tmp) {
  {
    auto server = NodeStore::Open(DataDirOptions(tmp.Sub("data")));
    ASSERT_TRUE(server.ok()) << server.status();
    CreateNodes(server->get(), "n", 2);
    ASSERT_TRUE((*server)->Snapshot().ok());
    CreateNodes(server->get(), "m", 1);
    auto pods = PodStore::Open({.data_dir = tmp.Sub("data")});
    ASSERT_TRUE(pods.ok()) << pods.status();
    Pod pod;
    pod.namespace_ = "default";
    pod.name = "p";
    pod.node_name = "n-0000";
    ASSERT_TRUE((*pods)->Create(pod).ok());
  }
  auto manifest = BackupDataDir(tmp.Sub("data"), tmp.Sub("backup"));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(manifest->nodes, 3u);
  ASSERT_EQ(manifest->pods, 1u);
}

TEST(Restore, RefusesADirectoryARunningServerHoldsLocked) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  auto other = NodeStore::Open(DataDirOptions(tmp.Sub("target")));
  ASSERT_TRUE(other.ok()) << other.status();

  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"), {.force = true});
  EXPECT_TRUE(absl::IsFailedPrecondition(restored.status())) << restored.status();
  EXPECT_NE(restored.status().message().find("stop the kole-apiserver"), std::string::npos)
      << restored.status();
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("target/uid-key.tmp")));
}

TEST(Restore, RefusesADirectoryHoldingAStoreWithoutForce) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  {
    auto old = NodeStore::Open(DataDirOptions(tmp.Sub("target")));
    ASSERT_TRUE(old.ok()) << old.status();
    ASSERT_TRUE((*old)->Create(SiteNode("old")).ok());
  }
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"));
  EXPECT_TRUE(absl::IsFailedPrecondition(restored.status())) << restored.status();
  auto store = Reopen(tmp.Sub("target"));
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Get("old").ok()) << "a refused restore changed the directory";
}

TEST(Restore, WithForceMovesTheOldStoreAsideInsteadOfDeletingIt) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  {
    auto old = NodeStore::Open(DataDirOptions(tmp.Sub("target")));
    ASSERT_TRUE(old.ok()) << old.status();
    ASSERT_TRUE((*old)->Create(SiteNode("old")).ok());
  }
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"), {.force = true});
  ASSERT_TRUE(restored.ok()) << restored.status();
  ASSERT_FALSE(restored->moved_aside.empty());

  auto store = Reopen(tmp.Sub("target"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().nodes, 3u);
  EXPECT_TRUE(absl::IsNotFound(store->Get("old").status()));
  auto aside = Reopen(restored->moved_aside);
  ASSERT_NE(aside, nullptr);
  EXPECT_TRUE(aside->Get("old").ok());
}

TEST(Restore, OfACorruptedBackupFileFailsItsChecksumAndLeavesTheTargetAlone) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  auto manifest = VerifyBackup(DefaultFileSystem(), tmp.Sub("backup"));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_FALSE(manifest->snapshot.empty());
  std::string snapshot = tmp.Sub("backup/" + manifest->snapshot);
  {
    std::fstream file(snapshot, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(30);
    file.put('\x5a');
  }

  auto verified = VerifyBackup(DefaultFileSystem(), tmp.Sub("backup"));
  EXPECT_TRUE(absl::IsDataLoss(verified.status())) << verified.status();
  EXPECT_NE(verified.status().message().find(snapshot + " is corrupt"), std::string::npos)
      << verified.status();
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"));
  EXPECT_TRUE(absl::IsDataLoss(restored.status())) << restored.status();
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("target")));
}

TEST(Restore, RefusesABackupWithoutAManifest) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  std::filesystem::remove(tmp.Sub("backup/MANIFEST.json"));
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"));
  EXPECT_TRUE(absl::IsFailedPrecondition(restored.status())) << restored.status();
}

TEST(Restore, BringsBackNodesWithTheirVersionsAndUidsAndThePods) {
  ScopedTempDir tmp;
  MakeBackup(tmp);
  auto restored = RestoreDataDir(tmp.Sub("backup"), tmp.Sub("target"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(restored->moved_aside.empty());

  auto original = NodeStore::Open({.data_dir = tmp.Sub("data"), .read_only = true});
  ASSERT_TRUE(original.ok()) << original.status();
  auto store = Reopen(tmp.Sub("target"));
  ASSERT_NE(store, nullptr);
  for (const char* name : {"n-0000", "n-0001", "m-0000"}) {
    auto want = (*original)->Get(name);
    auto got = store->Get(name);
    ASSERT_TRUE(want.ok() && got.ok()) << name;
    EXPECT_EQ(got->uid, want->uid) << name;
    EXPECT_EQ(got->resource_version, want->resource_version) << name;
  }
  auto pods = PodStore::Open({.data_dir = tmp.Sub("target")});
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_TRUE((*pods)->Get("default", "p").ok());
}

}  // namespace
}  // namespace kole::storage
