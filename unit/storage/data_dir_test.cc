#include "storage/data_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "storage/fault_injection_file_system.h"

namespace kole::storage {
namespace {

class ScopedTempDir {
 public:
  ScopedTempDir() {
    char name[] = "/tmp/kole-data-dir-test-XXXXXX";
    path_ = mkdtemp(name);
  }
  ~ScopedTempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(DataDir, OpenCreatesTheLayoutAndWritesThePid) {
  ScopedTempDir tmp;
  std::string path = tmp.path() + "/state/kole";
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(DefaultFileSystem(), path);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ((*dir)->wal_dir(), path + "/wal");
  EXPECT_EQ((*dir)->snapshot_dir(), path + "/snapshots");
  EXPECT_TRUE(std::filesystem::is_directory(path + "/wal"));
  EXPECT_TRUE(std::filesystem::is_directory(path + "/snapshots"));
  EXPECT_EQ(*DefaultFileSystem()->ReadFileToString(path + "/LOCK"),
            std::to_string(getpid()) + "\n");
}

TEST(DataDir, SecondOpenInTheSameProcessFailsNamingThePid) {
  ScopedTempDir tmp;
  absl::StatusOr<std::unique_ptr<DataDir>> first = DataDir::Open(DefaultFileSystem(), tmp.path());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<DataDir>> second = DataDir::Open(DefaultFileSystem(), tmp.path());
  ASSERT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_EQ(second.status().message(), "data directory " + tmp.path() +
                                           " is in use by another kole-apiserver (pid " +
                                           std::to_string(getpid()) + ")");
}

TEST(DataDir, LockIsReleasedWhenTheDataDirIsDestroyed) {
  ScopedTempDir tmp;
  ASSERT_TRUE(DataDir::Open(DefaultFileSystem(), tmp.path()).ok());
  EXPECT_TRUE(DataDir::Open(DefaultFileSystem(), tmp.path()).ok());
}

TEST(DataDir, OpenFailsWhileAnotherProcessHoldsIt) {
  ScopedTempDir tmp;
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The other kole-apiserver: hold the directory until told to exit.
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(DefaultFileSystem(), tmp.path());
    char byte = dir.ok() ? 'y' : 'n';
    (void)!write(ready[1], &byte, 1);
    (void)!read(done[0], &byte, 1);
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');

  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(DefaultFileSystem(), tmp.path());
  EXPECT_TRUE(absl::IsFailedPrecondition(dir.status())) << dir.status();
  EXPECT_NE(dir.status().message().find("(pid " + std::to_string(child) + ")"), std::string::npos)
      << dir.status();

  ASSERT_EQ(write(done[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(DataDir::Open(DefaultFileSystem(), tmp.path()).ok()) << "the child's exit freed it";
}

TEST(DataDir, SecondOpenOnTheFaultInjectionFileSystemFails) {
  FaultInjectionFileSystem fs;
  absl::StatusOr<std::unique_ptr<DataDir>> first = DataDir::Open(&fs, "/var/lib/kole");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(fs.FileExists("/var/lib/kole/wal"));
  EXPECT_TRUE(fs.FileExists("/var/lib/kole/snapshots"));
  absl::StatusOr<std::unique_ptr<DataDir>> second = DataDir::Open(&fs, "/var/lib/kole");
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("is in use by another kole-apiserver"),
            std::string::npos);
}

TEST(DataDir, CrashReleasesTheLock) {
  FaultInjectionFileSystem fs;
  absl::StatusOr<std::unique_ptr<DataDir>> first = DataDir::Open(&fs, "/data");
  ASSERT_TRUE(first.ok());
  fs.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_TRUE(DataDir::Open(&fs, "/data").ok());
}

}  // namespace
}  // namespace kole::storage
