#pragma once

// DataDir is the on-disk home of one kole-apiserver's state:
//
//   <path>/LOCK         exclusive lock, holds the owner's pid
//   <path>/wal/         write-ahead log segments (WalWriter, ReplayWal)
//   <path>/snapshots/   snapshot files (SnapshotWriter, ListSnapshots)
//   <path>/uid-key      the key node UIDs derive from (StorePersistence)
//   <path>/pods/        the standalone pods' log (PodStore)
//
// Opening it takes the lock, and the lock is held for the DataDir's lifetime,
// so a second kole-apiserver pointed at the same directory (a mistaken second
// replica, a restart that overlaps the old process) fails at start-up instead
// of interleaving writes into one log.
//
// Thread safety: immutable after Open; all accessors may be called
// concurrently. Ownership: the FileSystem must outlive the DataDir.

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <string_view>

#include "storage/file_system.h"

namespace kole::storage {

// Names inside a data directory, shared by the store and the tools that read
// one (backup.h).
inline constexpr std::string_view kDataDirLockName = "LOCK";
inline constexpr std::string_view kDataDirUidKeyName = "uid-key";
inline constexpr std::string_view kDataDirWalName = "wal";
inline constexpr std::string_view kDataDirSnapshotsName = "snapshots";
inline constexpr std::string_view kDataDirPodsName = "pods";
inline constexpr std::string_view kPodLogName = "pods.log";  // Inside pods/.
inline constexpr std::string_view kDataDirWorkloadsName = "edgedaemonsets";

class DataDir {
 public:
  // Creates `path`, wal/ and snapshots/ if missing (durably: the directories
  // and their parents are synced) and takes the lock. FailedPrecondition
  // "data directory <path> is in use by another kole-apiserver (pid N)" if
  // another process, or another DataDir in this one, holds it.
  static absl::StatusOr<std::unique_ptr<DataDir>> Open(FileSystem* fs, std::string path);

  // Opens `path` for reading only: takes no lock and creates nothing, so it
  // serves a backup, a stopped server's directory, or (with care: files may
  // be pruned underneath) a running one. NotFound if `path` does not exist.
  static absl::StatusOr<std::unique_ptr<DataDir>> OpenReadOnly(FileSystem* fs, std::string path);

  // Releases the lock.
  ~DataDir();

  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  FileSystem* fs() const { return fs_; }
  const std::string& path() const { return path_; }
  const std::string& wal_dir() const { return wal_dir_; }
  const std::string& snapshot_dir() const { return snapshot_dir_; }
  // True for OpenReadOnly: no lock is held and nothing may be written.
  bool read_only() const { return lock_ == nullptr; }

 private:
  DataDir(FileSystem* fs, std::string path, std::unique_ptr<FileLock> lock);

  FileSystem* const fs_;
  const std::string path_;
  const std::string wal_dir_;
  const std::string snapshot_dir_;
  const std::unique_ptr<FileLock> lock_;
};

}  // namespace kole::storage
