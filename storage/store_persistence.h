#pragma once

// StorePersistence makes a NodeStore durable: it owns the locked data
// directory, the write-ahead log and the snapshots, and knows how store
// changes are encoded in them (the payload formats below). NodeStore calls
// it under its writer lock to log each change, and outside the lock to wait
// for the disk.
//
// Log record types and payloads (little-endian, after the WAL's own framing,
// which adds length, checksum and sequence; see wal_format.h):
//   kBlob       u32 id, bytes                  a new interned value
//   kPutNode    u64 rv, NodeRecord (120 bytes), name
//                                              a node's new state
//   kDeleteNode u64 rv, name                   a node deleted
//   kTombstone  u8 set, i64 time, name         a tombstone set or lifted
//   kReserveRv  u64 upto                       versions up to here may be in use
//
// Snapshot payload (inside the snapshot file's compressed stream): a
// sequence of sections, each u8 tag, u32 length, bytes: one header (format
// version, covered rv, reserved rv, WAL sequence where replay starts), then
// blobs, tombstones and nodes in any number, then a trailer with the counts,
// which the reader checks.
//
// Thread safety: Log*() calls come from NodeStore under its writer lock and
// are serialised by it; WaitDurable() and Sync() may be called from any
// thread concurrently with them.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/data_dir.h"
#include "storage/file_system.h"
#include "storage/node_record.h"
#include "storage/node_store.h"
#include "storage/wal_writer.h"

namespace kole::storage {

enum class LogRecordType : uint8_t {
  kBlob = 1,
  kPutNode = 2,
  kDeleteNode = 3,
  kTombstone = 4,
  kReserveRv = 5,
};

class StorePersistence {
 public:
  // Locks the data directory and loads the newest valid snapshot and the log
  // after it into `store`, whose indexes the caller then rebuilds. Older
  // snapshots are tried when the newest is corrupt. With
  // options.read_only, takes no lock, changes nothing on disk and opens no
  // log writer: every Log*() call then fails with FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<StorePersistence>> OpenAndRecover(
      const StoreOptions& options, NodeStore* store);

  ~StorePersistence();

  // Each returns the log token of its record (for WaitDurable).
  absl::StatusOr<uint64_t> LogBlob(uint32_t id, std::string_view blob);
  absl::StatusOr<uint64_t> LogPut(uint64_t rv, std::string_view name, const NodeRecord& record);
  absl::StatusOr<uint64_t> LogDelete(uint64_t rv, std::string_view name);
  absl::StatusOr<uint64_t> LogTombstone(std::string_view name, bool set, int64_t time);
  absl::StatusOr<uint64_t> LogReserve(uint64_t upto);

  // Returns once every record up to `token` is on disk. Concurrent callers
  // share one fsync (group commit).
  absl::Status WaitDurable(uint64_t token);
  // Makes everything logged so far durable.
  absl::Status Sync();
  // The sticky log error, if any: once the disk failed, every write fails.
  // FailedPrecondition for a read-only store.
  absl::Status health() const;
  const RecoveryReport& recovery() const { return recovery_; }

  uint64_t last_token() const;
  uint64_t durable_token() const;
  bool SnapshotDue() const;

  // Writes a snapshot of `store` consistent at its current version and
  // prunes snapshots and log segments it makes unnecessary. Takes the store's
  // lock briefly per batch; writers go on meanwhile.
  absl::Status WriteSnapshot(NodeStore* store);

 private:
  StorePersistence(const StoreOptions& options, std::unique_ptr<DataDir> dir);
  absl::Status Recover(NodeStore* store);
  absl::StatusOr<UidKey> LoadOrCreateUidKey();
  absl::Status LoadSnapshot(NodeStore* store, const std::string& path, uint64_t* replay_from);
  absl::StatusOr<uint64_t> Append(LogRecordType type, std::string_view payload);

  const StoreOptions& options_;
  FileSystem* fs_;
  std::unique_ptr<DataDir> dir_;
  std::unique_ptr<WalWriter> wal_;         // Null when read-only.
  uint64_t log_bytes_since_snapshot_ = 0;  // Under NodeStore's writer lock.
  RecoveryReport recovery_;                // Set by Recover(), then immutable.
};

}  // namespace kole::storage
