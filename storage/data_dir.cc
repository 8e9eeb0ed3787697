#include "storage/data_dir.h"

#include <fmt/format.h>

#include <utility>

#include "common/log.h"

namespace kole::storage {
namespace {

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/', path.find_last_not_of('/'));
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The pid the holder wrote into the lock file, or "" if it cannot be read.
std::string LockHolderPid(FileSystem* fs, const std::string& lock_path) {
  absl::StatusOr<std::string> contents = fs->ReadFileToString(lock_path);
  if (!contents.ok()) return "";
  std::string pid = contents->substr(0, contents->find('\n'));
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return "";
  return pid;
}

}  // namespace

DataDir::DataDir(FileSystem* fs, std::string path, std::unique_ptr<FileLock> lock)
    : fs_(fs),
      path_(std::move(path)),
      wal_dir_(JoinPath(path_, kDataDirWalName)),
      snapshot_dir_(JoinPath(path_, kDataDirSnapshotsName)),
      lock_(std::move(lock)) {}

DataDir::~DataDir() = default;

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::Open(FileSystem* fs, std::string path) {
  if (absl::Status s = fs->CreateDirIfMissing(path); !s.ok()) return s;

  // Lock before touching anything inside: the holder may be writing there.
  std::string lock_path = JoinPath(path, kDataDirLockName);
  absl::StatusOr<std::unique_ptr<FileLock>> lock = fs->LockFile(lock_path);
  if (!lock.ok()) {
    if (!absl::IsFailedPrecondition(lock.status())) return lock.status();
    std::string pid = LockHolderPid(fs, lock_path);
    return absl::FailedPreconditionError(
        pid.empty()
            ? fmt::format("data directory {} is in use by another kole-apiserver (lock file {} "
                          "is held)",
                          path, lock_path)
            : fmt::format("data directory {} is in use by another kole-apiserver (pid {})", path,
                          pid));
  }

  std::unique_ptr<DataDir> dir(new DataDir(fs, std::move(path), std::move(*lock)));
  for (const std::string& sub : {dir->wal_dir_, dir->snapshot_dir_}) {
    if (absl::Status s = fs->CreateDirIfMissing(sub); !s.ok()) return s;
  }
  // New directory entries survive a crash only once their parents are synced.
  if (absl::Status s = fs->SyncDir(dir->path_); !s.ok()) return s;
  if (absl::Status s = fs->SyncDir(ParentDir(dir->path_)); !s.ok()) return s;
  KOLE_LOG(Info, "Opened data directory", "path", dir->path_);
  return dir;
}

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::OpenReadOnly(FileSystem* fs, std::string path) {
  if (!fs->FileExists(path)) {
    return absl::NotFoundError(fmt::format("data directory {} does not exist", path));
  }
  return std::unique_ptr<DataDir>(new DataDir(fs, std::move(path), nullptr));
}

}  // namespace kole::storage
