// Durability of NodeStore: restarts, power cuts that drop or tear unsynced
// bytes, corrupt files and a full disk, driven through the fault-injecting
// file layer (a SIGKILL keeps the page cache and would hide a missing fsync).

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "storage/fault_injection_file_system.h"
#include "storage/node_store.h"
#include "storage/snapshot_file.h"
#include "storage/store_persistence.h"
#include "storage/wal_reader.h"
#include "storage/wal_writer.h"

namespace kole::storage {
namespace {

constexpr char kDir[] = "/data";

Node DeviceNode(int i) {
  Node node;
  node.name = fmt::format("edge-{:05}", i);
  node.labels = {{"edge.kole.io/site", fmt::format("site-{}", i % 7)},
                 {"kubernetes.io/hostname", node.name}};
  node.capacity = {{"cpu", "4"}};
  node.addresses = {{"InternalIP", fmt::format("10.0.{}.{}", i / 250, i % 250 + 1)}};
  node.node_info.machine_id = fmt::format("{:032x}", i + 1);
  node.node_info.kernel_version = "6.1.0";
  return node;
}

class RecoveryTest : public ::testing::Test {
 protected:
  StoreOptions Options() {
    StoreOptions options;
    options.data_dir = kDir;
    options.file_system = &fs_;
    options.clock = &clock_;
    options.background_maintenance = false;
    return options;
  }

  std::unique_ptr<NodeStore> OpenStore(StoreOptions options) {
    auto store = NodeStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<NodeStore> OpenStore() { return OpenStore(Options()); }

  // Registers nodes [first, last) and waits for each to be durable, as the
  // bridge does before acknowledging; returns the acknowledged states.
  std::vector<Node> RegisterAcknowledged(NodeStore& store, int first, int last) {
    std::vector<Node> acknowledged;
    for (int i = first; i < last; ++i) {
      auto registered = store.Register(DeviceNode(i));
      EXPECT_TRUE(registered.ok()) << registered.status();
      if (!registered.ok() || !store.WaitDurable(registered->durable_token).ok()) break;
      acknowledged.push_back(*store.Get(DeviceNode(i).name));
    }
    return acknowledged;
  }

  void Crash(std::unique_ptr<NodeStore>& store, CrashMode mode) {
    fs_.CutPower();
    store.reset();
    fs_.SimulateCrash(mode);
  }

  void ExpectPresent(NodeStore& store, const std::vector<Node>& nodes) {
    for (const Node& expected : nodes) {
      auto node = store.Get(expected.name);
      ASSERT_TRUE(node.ok()) << expected.name << ": " << node.status();
      EXPECT_EQ(*node, expected);
    }
  }

  // The store agrees with itself: list, get and stats see the same nodes.
  void ExpectConsistent(NodeStore& store) {
    auto list = store.List({});
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->nodes.size(), store.Stats().nodes);
    for (size_t i = 1; i < list->nodes.size(); ++i) {
      EXPECT_LT(list->nodes[i - 1].name, list->nodes[i].name);
    }
    for (const Node& node : list->nodes) {
      auto got = store.Get(node.name);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(*got, node);
      EXPECT_LE(node.resource_version, store.resource_version());
    }
  }

  FaultInjectionFileSystem fs_{7};
  ManualClock clock_;
};

TEST_F(RecoveryTest, CleanRestartRestoresEveryNode) {
  auto store = OpenStore();
  std::vector<Node> nodes = RegisterAcknowledged(*store, 0, 50);
  uint64_t rv = store->resource_version();
  store.reset();

  store = OpenStore();
  ExpectPresent(*store, nodes);
  EXPECT_EQ(store->Stats().nodes, 50u);
  EXPECT_GT(store->resource_version(), rv);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, AcknowledgedWritesSurviveAPowerCutThatDropsUnsyncedBytes) {
  auto store = OpenStore();
  std::vector<Node> acknowledged = RegisterAcknowledged(*store, 0, 40);
  // More registrations that nobody waited for may or may not survive.
  for (int i = 40; i < 60; ++i) ASSERT_TRUE(store->Register(DeviceNode(i)).ok());
  Crash(store, CrashMode::kDropUnsynced);

  store = OpenStore();
  ExpectPresent(*store, acknowledged);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, ApiWritesAreDurableWhenTheyReturn) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 3);
  Node desired = *store->Get(DeviceNode(1).name);
  desired.labels.push_back({"owner", "team-a"});
  NormalizePairs(desired.labels);
  Node updated = *store->UpdateSpec(desired, 0);
  ASSERT_TRUE(store->Delete(DeviceNode(2).name, 0, /*tombstone=*/true).ok());
  Node created;
  created.name = "pre-registered";
  Node made = *store->Create(created);
  Crash(store, CrashMode::kDropUnsynced);

  store = OpenStore();
  ExpectPresent(*store, {updated, made});
  EXPECT_TRUE(absl::IsNotFound(store->Get(DeviceNode(2).name).status()));
  EXPECT_TRUE(store->IsTombstoned(DeviceNode(2).name));
}

TEST_F(RecoveryTest, VersionNeverGoesBackAfterLosingUnsyncedChanges) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 5);
  for (int i = 5; i < 30; ++i) ASSERT_TRUE(store->Register(DeviceNode(i)).ok());
  uint64_t seen = store->resource_version();
  Crash(store, CrashMode::kDropUnsynced);

  store = OpenStore();
  EXPECT_GT(store->resource_version(), seen);
  auto registered = store->Register(DeviceNode(99));
  ASSERT_TRUE(registered.ok());
  EXPECT_GT(registered->resource_version, seen);
}

TEST_F(RecoveryTest, TornTailsAreRepairedAtEveryCut) {
  for (uint64_t round = 0; round < 20; ++round) {
    fs_.SetSpaceLimit(FaultInjectionFileSystem::kUnlimitedSpace);
    auto store = OpenStore();
    ASSERT_NE(store, nullptr) << "round " << round;
    int base = static_cast<int>(round) * 10;
    std::vector<Node> acknowledged = RegisterAcknowledged(*store, base, base + 5);
    for (int i = base + 5; i < base + 10; ++i) ASSERT_TRUE(store->Register(DeviceNode(i)).ok());
    Crash(store, round % 2 == 0 ? CrashMode::kTearUnsynced : CrashMode::kTearUnsyncedWithGarbage);

    store = OpenStore();
    ASSERT_NE(store, nullptr) << "round " << round;
    ExpectPresent(*store, acknowledged);
    ExpectConsistent(*store);
  }
}

TEST_F(RecoveryTest, SnapshotPlusLogRecoversEverything) {
  auto store = OpenStore();
  std::vector<Node> before = RegisterAcknowledged(*store, 0, 30);
  ASSERT_TRUE(store->Snapshot().ok());
  ASSERT_TRUE(store->Delete(DeviceNode(3).name, 0, false).ok());
  std::vector<Node> after = RegisterAcknowledged(*store, 30, 45);
  Crash(store, CrashMode::kDropUnsynced);

  store = OpenStore();
  before.erase(before.begin() + 3);
  ExpectPresent(*store, before);
  ExpectPresent(*store, after);
  EXPECT_TRUE(absl::IsNotFound(store->Get(DeviceNode(3).name).status()));
  EXPECT_EQ(store->Stats().nodes, 44u);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, SnapshotTakenWhileWritesContinueIsConsistent) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 200);
  std::thread writer([&] {
    for (int i = 200; i < 400; ++i) ASSERT_TRUE(store->Register(DeviceNode(i)).ok());
  });
  ASSERT_TRUE(store->Snapshot().ok());
  writer.join();
  ASSERT_TRUE(store->Maintain().ok());
  std::vector<Node> all = store->List({})->nodes;
  store.reset();

  store = OpenStore();
  ExpectPresent(*store, all);
  EXPECT_EQ(store->Stats().nodes, 400u);
}

TEST_F(RecoveryTest, SnapshotWithNothingNewSinceTheLastIsANoOp) {
  auto store = OpenStore();
  std::vector<Node> nodes = RegisterAcknowledged(*store, 0, 5);
  ASSERT_TRUE(store->Snapshot().ok());
  ASSERT_TRUE(store->Snapshot().ok());
  store.reset();
  store = OpenStore();
  ExpectPresent(*store, nodes);
}

TEST_F(RecoveryTest, ConcurrentSnapshotsUnderWritesAndATightHistoryCap) {
  StoreOptions options = Options();
  options.change_log.max_bytes = 16 << 10;
  auto store = OpenStore(options);
  RegisterAcknowledged(*store, 0, 100);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 100; !stop; ++i) {
      ASSERT_TRUE(store->Register(DeviceNode(i % 5000)).ok());
      ASSERT_TRUE(store->Maintain().ok());
    }
  });
  std::vector<std::thread> snapshotters;
  for (int t = 0; t < 2; ++t) {
    snapshotters.emplace_back([&] {
      for (int k = 0; k < 10; ++k) ASSERT_TRUE(store->Snapshot().ok());
    });
  }
  for (std::thread& t : snapshotters) t.join();
  stop = true;
  writer.join();
  std::vector<Node> all = store->List({})->nodes;
  store.reset();

  store = OpenStore();
  ExpectPresent(*store, all);
}

TEST_F(RecoveryTest, CorruptNewestSnapshotFallsBackToTheOlderOne) {
  auto store = OpenStore();
  std::vector<Node> first = RegisterAcknowledged(*store, 0, 20);
  ASSERT_TRUE(store->Snapshot().ok());
  std::vector<Node> second = RegisterAcknowledged(*store, 20, 40);
  ASSERT_TRUE(store->Snapshot().ok());
  std::vector<Node> third = RegisterAcknowledged(*store, 40, 50);
  store.reset();

  auto snapshots = ListSnapshots(&fs_, std::string(kDir) + "/snapshots");
  ASSERT_TRUE(snapshots.ok());
  ASSERT_EQ(snapshots->size(), 2u);
  ASSERT_TRUE(fs_.CorruptByte(snapshots->front().path, 40).ok());

  store = OpenStore();
  ExpectPresent(*store, first);
  ExpectPresent(*store, second);
  ExpectPresent(*store, third);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, MidLogCorruptionRefusesToStartUnlessTruncationIsAsked) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 30);
  store.reset();

  auto files = fs_.ListDir(std::string(kDir) + "/wal");
  ASSERT_TRUE(files.ok());
  ASSERT_FALSE(files->empty());
  std::string segment = std::string(kDir) + "/wal/" + files->front();
  ASSERT_TRUE(fs_.CorruptByte(segment, 200).ok());

  auto refused = NodeStore::Open(Options());
  ASSERT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("--wal-truncate-at-corruption"), std::string::npos);

  StoreOptions options = Options();
  options.wal_truncate_at_corruption = true;
  store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  EXPECT_LT(store->Stats().nodes, 30u);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, FullDiskIsReportedAndLosesNothingAcknowledged) {
  auto store = OpenStore();
  std::vector<Node> acknowledged = RegisterAcknowledged(*store, 0, 10);
  fs_.SetSpaceLimit(fs_.bytes_used() + 3000);

  absl::Status failure;
  for (int i = 10; i < 200 && failure.ok(); ++i) {
    auto registered = store->Register(DeviceNode(i));
    if (!registered.ok()) {
      failure = registered.status();
      break;
    }
    absl::Status durable = store->WaitDurable(registered->durable_token);
    if (!durable.ok()) {
      failure = durable;
      break;
    }
    acknowledged.push_back(*store->Get(DeviceNode(i).name));
  }
  ASSERT_TRUE(absl::IsResourceExhausted(failure)) << failure;
  // No version was taken by the failed write: a watcher from the start sees
  // exactly the changes that happened, and no phantom.
  auto watcher = store->Watch(acknowledged.front().resource_version);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto events = (*watcher)->Next(1000, absl::Now());
  ASSERT_TRUE(events.ok());
  for (const WatchEvent& event : *events) {
    EXPECT_LE(event.node.resource_version, store->resource_version());
    EXPECT_TRUE(store->Get(event.node.name).ok()) << event.node.name;
  }
  // The failure is sticky: no later write pretends to succeed.
  EXPECT_FALSE(store->Register(DeviceNode(500)).ok());
  Node created;
  created.name = "after-full";
  EXPECT_FALSE(store->Create(created).ok());
  Crash(store, CrashMode::kDropUnsynced);

  fs_.SetSpaceLimit(FaultInjectionFileSystem::kUnlimitedSpace);
  store = OpenStore();
  ExpectPresent(*store, acknowledged);
  ExpectConsistent(*store);
}

TEST_F(RecoveryTest, SecondProcessCannotOpenTheSameDataDir) {
  auto store = OpenStore();
  auto second = NodeStore::Open(Options());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
}

TEST_F(RecoveryTest, PublishedHeartbeatsSurviveOnceSynced) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 1);
  clock_.Advance(store->options().report_period_seconds + 1);
  Heartbeat beat{DeviceNode(0).name, 1, 42};
  HeartbeatOutcome outcome;
  ASSERT_TRUE(store->ApplyHeartbeats({&beat, 1}, {&outcome, 1}).ok());
  ASSERT_EQ(outcome, HeartbeatOutcome::kPublished);
  ASSERT_TRUE(store->Maintain().ok());
  Crash(store, CrashMode::kDropUnsynced);

  store = OpenStore();
  EXPECT_EQ(store->Get(DeviceNode(0).name)->edge.sequence, 42u);
}

TEST_F(RecoveryTest, RestartRestartsGraceClocks) {
  auto store = OpenStore();
  RegisterAcknowledged(*store, 0, 5);
  store.reset();
  clock_.Advance(3600);

  store = OpenStore();
  EXPECT_EQ(store->CountExpired(40), 0u);
  clock_.Advance(41);
  EXPECT_EQ(store->CountExpired(40), 5u);
}

// Writes one log record by hand after the ones a fresh store wrote, as a
// damaged data directory might hold it.
void WriteLogRecord(FaultInjectionFileSystem& fs, const StoreOptions& options, LogRecordType type,
                    std::string payload) {
  ASSERT_TRUE(NodeStore::Open(options).ok());  // Creates the directory and its key.
  std::string wal_dir = std::string(kDir) + "/wal";
  auto replayed = ReplayWal(&fs, wal_dir, 1,
                            [](uint64_t, uint8_t, std::string_view) { return absl::OkStatus(); });
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  auto wal = WalWriter::Open(&fs, wal_dir, replayed->next_sequence);
  ASSERT_TRUE(wal.ok()) << wal.status();
  ASSERT_TRUE((*wal)->Append(static_cast<uint8_t>(type), payload).ok());
  ASSERT_TRUE((*wal)->Sync().ok());
  ASSERT_TRUE((*wal)->Close().ok());
}

TEST_F(RecoveryTest, RecordReferringToMissingValuesRefusesToStart) {
  NodeRecord record;
  std::memset(&record, 0, sizeof(record));
  record.labels = 999;  // No such interned value.
  std::string payload(8, '\0');
  payload[0] = 1;
  payload.append(reinterpret_cast<const char*>(&record), sizeof(record));
  payload.append("edge-1");
  WriteLogRecord(fs_, Options(), LogRecordType::kPutNode, payload);

  auto store = NodeStore::Open(Options());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_NE(store.status().message().find("malformed"), std::string::npos) << store.status();
}

TEST_F(RecoveryTest, DamagedOrMissingUidKeyRefusesToStart) {
  auto store = OpenStore();
  std::vector<Node> nodes = RegisterAcknowledged(*store, 0, 3);
  store.reset();
  std::string key = std::string(kDir) + "/uid-key";
  std::string original = *fs_.ReadFileToString(key);

  // One flipped bit in a key digit.
  ASSERT_TRUE(fs_.CorruptByte(key, 20, 0x01).ok());
  auto damaged = NodeStore::Open(Options());
  EXPECT_TRUE(absl::IsDataLoss(damaged.status())) << damaged.status();

  // Gone, while the log still holds nodes whose UIDs derive from it.
  ASSERT_TRUE(fs_.RemoveFile(key).ok());
  auto missing = NodeStore::Open(Options());
  EXPECT_TRUE(absl::IsDataLoss(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("restore it"), std::string::npos);

  // Restored from a backup: the same UIDs again.
  auto file = fs_.NewWritableFile(key);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(original).ok());
  ASSERT_TRUE((*file)->Close().ok());
  store = OpenStore();
  ExpectPresent(*store, nodes);
}

TEST_F(RecoveryTest, ImplausibleVersionReservationRefusesToStart) {
  uint64_t upto = UINT64_MAX - 5;
  WriteLogRecord(fs_, Options(), LogRecordType::kReserveRv,
                 std::string(reinterpret_cast<const char*>(&upto), sizeof(upto)));

  auto store = NodeStore::Open(Options());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_NE(store.status().message().find("beyond any a store writes"), std::string::npos)
      << store.status();
}

TEST(RecoveryOnDisk, RealFilesRoundTripAndLockTheDirectory) {
  std::string dir = std::filesystem::temp_directory_path() /
                    fmt::format("kole-recovery-{}-{}", getpid(),
                                ::testing::UnitTest::GetInstance()->random_seed());
  std::filesystem::remove_all(dir);
  StoreOptions options;
  options.data_dir = dir;
  options.background_maintenance = false;
  {
    auto store = std::move(*NodeStore::Open(options));
    for (int i = 0; i < 20; ++i) {
      auto registered = store->Register(DeviceNode(i));
      ASSERT_TRUE(registered.ok());
      ASSERT_TRUE(store->WaitDurable(registered->durable_token).ok());
    }
    ASSERT_TRUE(store->Snapshot().ok());
    ASSERT_TRUE(store->Register(DeviceNode(20)).ok());
    auto second = NodeStore::Open(options);
    EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  }
  auto store = NodeStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Stats().nodes, 21u);
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kole::storage
