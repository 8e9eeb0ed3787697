#pragma once

// An in-memory FileSystem for crash tests that models what a power cut does to
// a real disk, so that a missing fsync or directory sync makes a test fail.
//
// Model:
//   * Every file (inode) has live contents, which reads see (the page cache),
//     and durable contents, which survive a crash. WritableFile::Sync() and
//     TruncateFile() copy live to durable.
//   * Names are kept twice as well: the live directory tree and the durable
//     one. Create, rename and remove change the live tree; SyncDir(dir) copies
//     the live entries of `dir` (and the absence of removed ones) to the
//     durable tree. A rename moves the inode, so synced data follows the file
//     to its new name even if the rename itself is lost.
//   * SimulateCrash() replaces the live tree with the durable one and reverts
//     every file to its durable contents, or, in the tearing modes, keeps a
//     random prefix of the unsynced appended bytes (possibly half a record)
//     followed, optionally, by garbage. Handles and locks opened before the
//     crash belong to the dead process: their calls fail with
//     FailedPrecondition and their locks are released. CutPower() freezes
//     the disk first, for crashes in the middle of concurrent writes.
//   * SetSpaceLimit() caps the total size of all named files. An append that
//     does not fit writes the prefix that does and fails with
//     ResourceExhausted ("No space left on device"), as a real disk does.
//
// Simplifications: directories are durable as soon as they are created; there
// are no hard links; a file removed while open no longer counts against the
// space limit.
//
// Thread safety: all methods, and all methods of the files and locks it hands
// out, may be called concurrently; one mutex guards all state. Ownership:
// files and locks it returns must be destroyed before it is.

#include <absl/base/thread_annotations.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "storage/file_system.h"

namespace kole::storage {

enum class CrashMode {
  // Every byte not covered by a successful Sync() is lost.
  kDropUnsynced,
  // Each file keeps a random prefix (0 to all) of its unsynced appended bytes.
  kTearUnsynced,
  // As kTearUnsynced, then 1 to 64 random bytes follow the kept prefix, as a
  // half-written sector leaves behind.
  kTearUnsyncedWithGarbage,
};

class FaultInjectionFileSystem final : public FileSystem {
 public:
  static constexpr uint64_t kUnlimitedSpace = std::numeric_limits<uint64_t>::max();

  // `seed` drives the tearing modes, so a failing crash test can be replayed.
  explicit FaultInjectionFileSystem(uint64_t seed = 1);
  ~FaultInjectionFileSystem() override;

  FaultInjectionFileSystem(const FaultInjectionFileSystem&) = delete;
  FaultInjectionFileSystem& operator=(const FaultInjectionFileSystem&) = delete;

  // FileSystem:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) override;
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  absl::Status CreateDirIfMissing(const std::string& path) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status RenameFile(const std::string& from, const std::string& to) override;
  absl::Status TruncateFile(const std::string& path, uint64_t size) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  // Freezes the disk as a power cut does: from now on every call, on the
  // file system and on every file and lock handle, fails with Unavailable and
  // changes nothing, until SimulateCrash(). Lets a test cut power while other
  // threads are mid-write and be sure the dead process changes nothing after.
  void CutPower();

  // Reverts every file and name to what a power cut would leave (see above),
  // as of CutPower() if it was called, and powers the disk back on.
  void SimulateCrash(CrashMode mode);

  // Caps the total size of all named files; kUnlimitedSpace removes the cap.
  // Lowering it below the current usage makes every later append fail.
  void SetSpaceLimit(uint64_t bytes);

  // While `status` is not OK, WritableFile::Sync(), SyncDir() and
  // TruncateFile() return it and persist nothing (a failing disk). OK restores
  // normal behaviour.
  void SetSyncFailure(absl::Status status);

  // Makes every WritableFile::Sync() sleep for `delay` before it persists,
  // outside the lock, so that group commit can be observed.
  void SetSyncDelay(absl::Duration delay);

  // XORs the byte at `offset` of `path` with `mask`, in both the live and the
  // durable contents (bit rot on the medium). OutOfRange past the end.
  absl::Status CorruptByte(const std::string& path, uint64_t offset, uint8_t mask = 0xff);

  // Successful WritableFile::Sync() and SyncDir() calls so far.
  uint64_t sync_count() const;
  uint64_t dir_sync_count() const;

  // Total live size of all named files.
  uint64_t bytes_used() const;

 private:
  struct Inode;
  class File;
  class Reader;
  class Lock;

  absl::StatusOr<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                             bool truncate);
  absl::Status CheckParentExists(const std::string& path) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckPowerLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint64_t BytesUsedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Name -> inode, as the running process sees it and as a crash would leave it.
  std::map<std::string, std::shared_ptr<Inode>> live_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Inode>> durable_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirs_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> locked_ ABSL_GUARDED_BY(mu_);
  // Bumped by every crash; handles from an older generation are dead.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool power_off_ ABSL_GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  uint64_t space_limit_ ABSL_GUARDED_BY(mu_) = kUnlimitedSpace;
  absl::Status sync_failure_ ABSL_GUARDED_BY(mu_);
  absl::Duration sync_delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  uint64_t sync_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dir_sync_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kole::storage
