#pragma once

// The file layer the store does all of its I/O through. Everything durable in
// KOLE (WAL segments, snapshots, the data directory lock) goes through a
// FileSystem so that crash tests can swap in FaultInjectionFileSystem, which
// models what a power cut does to unsynced data, torn writes and a full disk.
// A SIGKILL alone keeps the page cache and cannot catch a missing fsync.
//
// Durability contract (what callers must do, and what PosixFileSystem does):
//   * Appended bytes are durable only after WritableFile::Sync() returns OK.
//   * A file's name (after create, rename or remove) is durable only after
//     SyncDir() of the directory that holds it returns OK.
//   * TruncateFile() makes the new length durable before it returns.
//
// Errors: every failure is an absl::Status whose message reads
// "<operation> <path>: <strerror text>". ENOSPC and EDQUOT (and running out of
// descriptors or memory) map to ResourceExhausted, ENOENT to NotFound, EEXIST
// to AlreadyExists, EACCES/EPERM to PermissionDenied, a held lock, a read-only
// file system or a file where a directory should be to FailedPrecondition,
// EINVAL/ENAMETOOLONG to InvalidArgument; anything else to Internal. EIO is
// Internal on purpose: a failed write or fsync is not retryable, the kernel
// may already have dropped the dirty pages.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kole::storage {

// A file open for writing at its end. Not thread-safe: one owner appends.
// Destroying it closes the file without syncing.
class WritableFile {
 public:
  virtual ~WritableFile() = default;

  // Appends `data` at the end of the file. On failure some prefix of `data`
  // may have been written (a disk fills up mid-write); Size() says how much.
  virtual absl::Status Append(std::string_view data) = 0;

  // Makes every byte appended so far durable (fdatasync). Only an OK return
  // means the bytes survive a power cut.
  virtual absl::Status Sync() = 0;

  // Closes the file. Does not sync. Later calls return FailedPrecondition.
  virtual absl::Status Close() = 0;

  // Current size in bytes: the size at open plus everything appended.
  virtual uint64_t Size() const = 0;
};

// A file read from start to end. Not thread-safe.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;

  // Replaces *out with up to `n` bytes from the current position. Fewer than
  // `n` bytes (possibly none) means the end of the file was reached.
  virtual absl::Status Read(size_t n, std::string* out) = 0;

  // Skips `n` bytes forward. Skipping past the end leaves the position at the
  // end (the next Read returns nothing).
  virtual absl::Status Skip(uint64_t n) = 0;
};

// An exclusive lock on a file, held until this object is destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// Thread safety: every method of every FileSystem may be called concurrently.
// Ownership: returned files and locks belong to the caller and may be used
// after the FileSystem method that made them returns, but not after the
// FileSystem itself is destroyed.
class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates `path`, or truncates it to zero length if it exists.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;

  // Opens `path` for appending at its end, creating it if missing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path) = 0;

  // Opens an existing file for reading from its start. NotFound if missing.
  virtual absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) = 0;

  virtual absl::StatusOr<uint64_t> GetFileSize(const std::string& path) = 0;

  // True if `path` names a file or a directory.
  virtual bool FileExists(const std::string& path) = 0;

  // Names (not paths) of the entries of directory `path`, sorted, without
  // "." and "..". NotFound if the directory does not exist.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;

  // Creates directory `path` and any missing parents (mkdir -p). OK if it
  // already exists as a directory. Does not sync the parents; callers that
  // need the new directory to survive a crash call SyncDir on its parent.
  virtual absl::Status CreateDirIfMissing(const std::string& path) = 0;

  virtual absl::Status RemoveFile(const std::string& path) = 0;

  // Atomically renames `from` to `to`, replacing `to` if it exists.
  virtual absl::Status RenameFile(const std::string& from, const std::string& to) = 0;

  // Sets the length of `path` to `size` (zero-filling when growing) and makes
  // the new length durable before returning.
  virtual absl::Status TruncateFile(const std::string& path, uint64_t size) = 0;

  // Makes creates, renames and removes of entries in directory `path`
  // durable (fsync of the directory).
  virtual absl::Status SyncDir(const std::string& path) = 0;

  // Takes an exclusive, non-blocking lock on `path` (created if missing) and
  // writes the caller's pid followed by a newline into it. The lock is held
  // until the returned object is destroyed, or the process exits. If another
  // holder has it, returns FailedPrecondition naming the path and, if the
  // file is readable, the pid the holder wrote. Locks conflict also within
  // one process: a second LockFile on the same path fails while the first is
  // held.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;

  // Reads the whole of `path`. Built on NewSequentialFile.
  absl::StatusOr<std::string> ReadFileToString(const std::string& path);
};

// The real file system, on top of POSIX calls. Stateless; thread-safe.
class PosixFileSystem final : public FileSystem {
 public:
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
};

// Whether some open file description holds the lock LockFile takes on
// `path`, found out without writing to the file or keeping any lock: a
// shared lock is tried and dropped at once. False when `path` does not
// exist. When held, *holder_pid receives the pid the holder wrote ("" if
// unreadable). The real file system only; for tools that look at a data
// directory a kole-apiserver may be running on.
absl::StatusOr<bool> IsFileLockHeld(const std::string& path, std::string* holder_pid);

// The process-wide PosixFileSystem. Never destroyed.
FileSystem* DefaultFileSystem();

// Joins a directory and a name with exactly one '/' between them.
std::string JoinPath(std::string_view dir, std::string_view name);

// Maps an errno value to a Status with code chosen as described at the top of
// this file; the message reads "<op> <path>: <strerror>".
absl::Status PosixError(std::string_view op, std::string_view path, int error_number);

}  // namespace kole::storage
