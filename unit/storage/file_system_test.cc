#include "storage/file_system.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "storage/fault_injection_file_system.h"

namespace kole::storage {
namespace {

// A fresh directory under /tmp, removed with everything in it at the end.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    char name[] = "/tmp/kole-fs-test-XXXXXX";
    path_ = mkdtemp(name);
  }
  ~ScopedTempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Join(std::string_view name) const { return JoinPath(path_, name); }

 private:
  std::string path_;
};

absl::Status WriteFile(FileSystem* fs, const std::string& path, std::string_view data,
                       bool sync = true) {
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = (*file)->Append(data); !s.ok()) return s;
  if (sync) return (*file)->Sync();
  return absl::OkStatus();
}

// ---- PosixFileSystem, on a real temporary directory ----

TEST(PosixFileSystem, WrittenFileReadsBack) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string path = dir.Join("a");
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE((*file)->Append("hello ").ok());
  ASSERT_TRUE((*file)->Append("world").ok());
  EXPECT_EQ((*file)->Size(), 11u);
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*file)->Append("x")));

  EXPECT_EQ(*fs->ReadFileToString(path), "hello world");
  EXPECT_EQ(*fs->GetFileSize(path), 11u);
  EXPECT_TRUE(fs->FileExists(path));
}

TEST(PosixFileSystem, NewWritableFileTruncatesAndAppendableFileContinues) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string path = dir.Join("a");
  ASSERT_TRUE(WriteFile(fs, path, "old contents").ok());
  ASSERT_TRUE(WriteFile(fs, path, "new").ok());
  EXPECT_EQ(*fs->ReadFileToString(path), "new");

  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewAppendableFile(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Size(), 3u);
  ASSERT_TRUE((*file)->Append("er").ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(*fs->ReadFileToString(path), "newer");
}

TEST(PosixFileSystem, SequentialReaderReadsInPiecesAndSkips) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  ASSERT_TRUE(WriteFile(fs, dir.Join("a"), "0123456789").ok());
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = fs->NewSequentialFile(dir.Join("a"));
  ASSERT_TRUE(file.ok());
  std::string out;
  ASSERT_TRUE((*file)->Read(3, &out).ok());
  EXPECT_EQ(out, "012");
  ASSERT_TRUE((*file)->Skip(4).ok());
  ASSERT_TRUE((*file)->Read(100, &out).ok());
  EXPECT_EQ(out, "789");
  ASSERT_TRUE((*file)->Read(100, &out).ok());
  EXPECT_EQ(out, "");
}

TEST(PosixFileSystem, MissingFileIsNotFoundNamingThePath) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string path = dir.Join("missing");
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = fs->NewSequentialFile(path);
  ASSERT_TRUE(absl::IsNotFound(file.status()));
  EXPECT_NE(file.status().message().find(path), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(fs->GetFileSize(path).status()));
  EXPECT_TRUE(absl::IsNotFound(fs->RemoveFile(path)));
  EXPECT_FALSE(fs->FileExists(path));
}

TEST(PosixFileSystem, ListDirIsSortedAndSkipsDotEntries) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  for (const char* name : {"c", "a", "b"}) ASSERT_TRUE(WriteFile(fs, dir.Join(name), "").ok());
  ASSERT_TRUE(fs->CreateDirIfMissing(dir.Join("d")).ok());
  EXPECT_EQ(*fs->ListDir(dir.path()), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(absl::IsNotFound(fs->ListDir(dir.Join("nope")).status()));
}

TEST(PosixFileSystem, CreateDirIfMissingCreatesParentsAndIsIdempotent) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string deep = dir.Join("x/y/z");
  ASSERT_TRUE(fs->CreateDirIfMissing(deep).ok());
  ASSERT_TRUE(fs->CreateDirIfMissing(deep).ok());
  EXPECT_TRUE(std::filesystem::is_directory(deep));
  ASSERT_TRUE(WriteFile(fs, dir.Join("file"), "").ok());
  EXPECT_FALSE(fs->CreateDirIfMissing(dir.Join("file")).ok());
}

TEST(PosixFileSystem, RenameReplacesTheTarget) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  ASSERT_TRUE(WriteFile(fs, dir.Join("from"), "new").ok());
  ASSERT_TRUE(WriteFile(fs, dir.Join("to"), "old").ok());
  ASSERT_TRUE(fs->RenameFile(dir.Join("from"), dir.Join("to")).ok());
  ASSERT_TRUE(fs->SyncDir(dir.path()).ok());
  EXPECT_FALSE(fs->FileExists(dir.Join("from")));
  EXPECT_EQ(*fs->ReadFileToString(dir.Join("to")), "new");
}

TEST(PosixFileSystem, TruncateFileShrinksAndGrows) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  ASSERT_TRUE(WriteFile(fs, dir.Join("a"), "0123456789").ok());
  ASSERT_TRUE(fs->TruncateFile(dir.Join("a"), 4).ok());
  EXPECT_EQ(*fs->ReadFileToString(dir.Join("a")), "0123");
  ASSERT_TRUE(fs->TruncateFile(dir.Join("a"), 6).ok());
  EXPECT_EQ(*fs->ReadFileToString(dir.Join("a")), std::string("0123\0\0", 6));
}

TEST(PosixFileSystem, SecondLockOnTheSameFileFailsNamingPathAndPid) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string path = dir.Join("LOCK");
  absl::StatusOr<std::unique_ptr<FileLock>> first = fs->LockFile(path);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*fs->ReadFileToString(path), std::to_string(getpid()) + "\n");

  absl::StatusOr<std::unique_ptr<FileLock>> second = fs->LockFile(path);
  ASSERT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find(path), std::string::npos);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos)
      << second.status();
}

TEST(PosixFileSystem, LockIsReleasedWhenDestroyed) {
  ScopedTempDir dir;
  FileSystem* fs = DefaultFileSystem();
  std::string path = dir.Join("LOCK");
  { ASSERT_TRUE(fs->LockFile(path).ok()); }
  EXPECT_TRUE(fs->LockFile(path).ok());
}

TEST(PosixFileSystem, ErrnoMapsToStatusCodesWithPathAndText) {
  absl::Status full = PosixError("write", "/data/wal/x.log", ENOSPC);
  EXPECT_TRUE(absl::IsResourceExhausted(full));
  EXPECT_EQ(full.message(), "write /data/wal/x.log: No space left on device");
  EXPECT_TRUE(absl::IsResourceExhausted(PosixError("write", "p", EDQUOT)));
  EXPECT_TRUE(absl::IsNotFound(PosixError("open", "p", ENOENT)));
  EXPECT_TRUE(absl::IsPermissionDenied(PosixError("open", "p", EACCES)));
  EXPECT_TRUE(absl::IsInternal(PosixError("fsync", "p", EIO)));
}

TEST(JoinPath, JoinsWithExactlyOneSlash) {
  EXPECT_EQ(JoinPath("/data", "wal"), "/data/wal");
  EXPECT_EQ(JoinPath("/data/", "wal"), "/data/wal");
  EXPECT_EQ(JoinPath("/data", "/wal"), "/data/wal");
  EXPECT_EQ(JoinPath("/", "wal"), "/wal");
  EXPECT_EQ(JoinPath("", "wal"), "wal");
}

// ---- FaultInjectionFileSystem: the crash model ----

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.CreateDirIfMissing("/d").ok()); }

  // Creates /d/<name> with durable name and `synced` durable bytes, then
  // appends `unsynced` without syncing.
  void MakeFile(const std::string& name, std::string_view synced, std::string_view unsynced) {
    absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewWritableFile("/d/" + name);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Append(synced).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE(fs_.SyncDir("/d").ok());
    ASSERT_TRUE((*file)->Append(unsynced).ok());
  }

  std::string Read(const std::string& path) {
    absl::StatusOr<std::string> contents = fs_.ReadFileToString(path);
    return contents.ok() ? *contents : "<" + contents.status().ToString() + ">";
  }

  FaultInjectionFileSystem fs_{42};
};

TEST_F(FaultInjectionTest, ReadsSeeUnsyncedBytes) {
  MakeFile("a", "synced", "+unsynced");
  EXPECT_EQ(Read("/d/a"), "synced+unsynced");
}

TEST_F(FaultInjectionTest, CrashDropsUnsyncedBytesAndKeepsSyncedOnes) {
  MakeFile("a", "synced", "+unsynced");
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/a"), "synced");
}

TEST_F(FaultInjectionTest, NewFileWithoutDirSyncVanishesInCrash) {
  ASSERT_TRUE(WriteFile(&fs_, "/d/new", "data", /*sync=*/true).ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.FileExists("/d/new"));
}

TEST_F(FaultInjectionTest, SyncedFileWithDirSyncSurvivesCrash) {
  ASSERT_TRUE(WriteFile(&fs_, "/d/new", "data", /*sync=*/true).ok());
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/new"), "data");
}

TEST_F(FaultInjectionTest, RemoveWithoutDirSyncIsUndoneByCrash) {
  MakeFile("a", "kept", "");
  ASSERT_TRUE(fs_.RemoveFile("/d/a").ok());
  EXPECT_FALSE(fs_.FileExists("/d/a"));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/a"), "kept");
}

TEST_F(FaultInjectionTest, RenameWithoutDirSyncIsUndoneByCrash) {
  MakeFile("a.tmp", "payload", "");
  ASSERT_TRUE(fs_.RenameFile("/d/a.tmp", "/d/a").ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.FileExists("/d/a"));
  EXPECT_EQ(Read("/d/a.tmp"), "payload");
}

TEST_F(FaultInjectionTest, RenameWithDirSyncSurvivesCrash) {
  MakeFile("a.tmp", "payload", "");
  ASSERT_TRUE(fs_.RenameFile("/d/a.tmp", "/d/a").ok());
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.FileExists("/d/a.tmp"));
  EXPECT_EQ(Read("/d/a"), "payload");
}

TEST_F(FaultInjectionTest, TearKeepsARandomPrefixOfTheUnsyncedBytes) {
  const std::string unsynced = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::set<size_t> lengths;
  for (int i = 0; i < 20; ++i) {
    std::string name = "f" + std::to_string(i);
    MakeFile(name, "S", unsynced);
    fs_.SimulateCrash(CrashMode::kTearUnsynced);
    std::string after = Read("/d/" + name);
    ASSERT_GE(after.size(), 1u);
    EXPECT_EQ(after, ("S" + unsynced).substr(0, after.size())) << "not a prefix";
    lengths.insert(after.size());
  }
  EXPECT_GT(lengths.size(), 3u) << "the kept prefix should vary";
}

TEST_F(FaultInjectionTest, TearWithGarbageAppendsBytesAfterTheKeptPrefix) {
  MakeFile("a", "S", std::string(100, 'u'));
  fs_.SimulateCrash(CrashMode::kTearUnsyncedWithGarbage);
  std::string after = Read("/d/a");
  ASSERT_GE(after.size(), 2u);
  EXPECT_EQ(after[0], 'S');
  size_t kept = after.find_first_not_of('u', 1);
  EXPECT_NE(kept, std::string::npos) << "no garbage after the kept prefix";
}

TEST_F(FaultInjectionTest, TearingIsReproducibleFromTheSeed) {
  auto run = [](uint64_t seed) {
    FaultInjectionFileSystem fs(seed);
    EXPECT_TRUE(fs.CreateDirIfMissing("/d").ok());
    auto file = fs.NewWritableFile("/d/a");
    EXPECT_TRUE(fs.SyncDir("/d").ok());
    EXPECT_TRUE((*file)->Append(std::string(1000, 'x')).ok());
    fs.SimulateCrash(CrashMode::kTearUnsynced);
    return *fs.GetFileSize("/d/a");
  };
  EXPECT_EQ(run(7), run(7));
}

TEST_F(FaultInjectionTest, SpaceLimitWritesThePrefixThatFitsThenFails) {
  fs_.SetSpaceLimit(10);
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewWritableFile("/d/a");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append("123456").ok());
  absl::Status full = (*file)->Append("789abc");
  ASSERT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_NE(full.message().find("No space left on device"), std::string::npos);
  EXPECT_NE(full.message().find("/d/a"), std::string::npos);
  EXPECT_EQ(Read("/d/a"), "123456789a");
  EXPECT_EQ((*file)->Size(), 10u);

  // Removing a file frees its space.
  ASSERT_TRUE(fs_.RemoveFile("/d/a").ok());
  EXPECT_EQ(fs_.bytes_used(), 0u);
}

TEST_F(FaultInjectionTest, SyncFailurePersistsNothing) {
  MakeFile("a", "S", "unsynced");
  fs_.SetSyncFailure(absl::InternalError("fdatasync: Input/output error"));
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewAppendableFile("/d/a");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(absl::IsInternal((*file)->Sync()));
  EXPECT_TRUE(absl::IsInternal(fs_.SyncDir("/d")));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/a"), "S");
}

TEST_F(FaultInjectionTest, CountsSyncsAndDirSyncs) {
  uint64_t syncs = fs_.sync_count();
  uint64_t dir_syncs = fs_.dir_sync_count();
  MakeFile("a", "x", "");
  EXPECT_EQ(fs_.sync_count(), syncs + 1);
  EXPECT_EQ(fs_.dir_sync_count(), dir_syncs + 1);
}

TEST_F(FaultInjectionTest, CorruptByteChangesLiveAndDurableContents) {
  MakeFile("a", "abc", "");
  ASSERT_TRUE(fs_.CorruptByte("/d/a", 1, 0x01).ok());
  EXPECT_EQ(Read("/d/a"), "acc");
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/a"), "acc");
  EXPECT_TRUE(absl::IsOutOfRange(fs_.CorruptByte("/d/a", 3)));
}

TEST_F(FaultInjectionTest, SecondLockFailsWhileTheFirstIsHeld) {
  absl::StatusOr<std::unique_ptr<FileLock>> first = fs_.LockFile("/d/LOCK");
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<FileLock>> second = fs_.LockFile("/d/LOCK");
  ASSERT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos);
  first->reset();
  EXPECT_TRUE(fs_.LockFile("/d/LOCK").ok());
}

TEST_F(FaultInjectionTest, CrashReleasesLocksAndKillsOpenHandles) {
  absl::StatusOr<std::unique_ptr<FileLock>> lock = fs_.LockFile("/d/LOCK");
  ASSERT_TRUE(lock.ok());
  MakeFile("a", "x", "");
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewAppendableFile("/d/a");
  ASSERT_TRUE(file.ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);

  EXPECT_TRUE(absl::IsFailedPrecondition((*file)->Append("y")));
  absl::StatusOr<std::unique_ptr<FileLock>> relock = fs_.LockFile("/d/LOCK");
  ASSERT_TRUE(relock.ok()) << relock.status();
  lock->reset();  // The dead process's lock must not release the new one.
  EXPECT_FALSE(fs_.LockFile("/d/LOCK").ok());
}

TEST_F(FaultInjectionTest, PowerCutFreezesTheDiskUntilTheCrash) {
  MakeFile("a", "synced", "");
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewAppendableFile("/d/a");
  ASSERT_TRUE(file.ok());
  fs_.CutPower();
  EXPECT_TRUE(absl::IsUnavailable((*file)->Append("late")));
  EXPECT_TRUE(absl::IsUnavailable((*file)->Sync()));
  EXPECT_TRUE(absl::IsUnavailable(fs_.RemoveFile("/d/a")));
  EXPECT_TRUE(absl::IsUnavailable(fs_.NewWritableFile("/d/b").status()));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(Read("/d/a"), "synced");
  EXPECT_TRUE(WriteFile(&fs_, "/d/b", "ok").ok()) << "power is back after the crash";
}

TEST_F(FaultInjectionTest, CreateInAMissingDirectoryFails) {
  EXPECT_TRUE(absl::IsNotFound(fs_.NewWritableFile("/nope/a").status()));
  EXPECT_TRUE(absl::IsNotFound(fs_.ListDir("/nope").status()));
}

TEST_F(FaultInjectionTest, ListDirShowsFilesAndSubdirectories) {
  ASSERT_TRUE(WriteFile(&fs_, "/d/b", "").ok());
  ASSERT_TRUE(WriteFile(&fs_, "/d/a", "").ok());
  ASSERT_TRUE(fs_.CreateDirIfMissing("/d/sub/deeper").ok());
  EXPECT_EQ(*fs_.ListDir("/d"), (std::vector<std::string>{"a", "b", "sub"}));
  EXPECT_EQ(*fs_.ListDir("/d/sub"), (std::vector<std::string>{"deeper"}));
}

}  // namespace
}  // namespace kole::storage
