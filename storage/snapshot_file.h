#pragma once

// Snapshot files: the store's whole state as of one WAL sequence, written
// atomically and compressed, so that recovery is "newest valid snapshot +
// replay of the WAL after the sequence it covers".
//
// A snapshot is named snapshot-<covered sequence, 20 digits>.snap and is laid
// out as (little-endian):
//
//   header (24 bytes):
//     magic             8 bytes  "KOLESNAP"
//     format version    u32      kSnapshotFormatVersion
//     covered sequence  u64      every WAL record up to it is in the snapshot
//     header crc        u32      crc32 of the 20 bytes above
//   payload: one zstd frame holding the caller's bytes
//   trailer (20 bytes):
//     uncompressed len  u64
//     payload crc       u32      crc32 of the uncompressed payload
//     magic             8 bytes  "KOLESEND"
//
// The payload is opaque here; the store defines what it means.
//
// Atomicity: SnapshotWriter writes snapshot-<seq>.snap.tmp, syncs it, renames
// it into place and syncs the directory, so a crash leaves either no snapshot
// or a complete one under the final name. A leftover .tmp is never listed as
// a snapshot and is removed by the next ListSnapshots().
//
// Thread safety: a writer or reader is used by one thread at a time. Different
// snapshots may be written and read concurrently, but ListSnapshots() and
// PruneSnapshots() must not run while a SnapshotWriter is writing in the same
// directory (they would remove its .tmp). Ownership: the FileSystem must
// outlive writers and readers.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file_system.h"

namespace kole::storage {

inline constexpr uint32_t kSnapshotFormatVersion = 1;

struct SnapshotWriterOptions {
  // zstd level; 3 is zstd's default balance of speed and size.
  int compression_level = 3;
};

// Streams one snapshot to disk. Memory use is bounded by zstd's window, not by
// the payload size.
class SnapshotWriter {
 public:
  // Creates snapshot-<covered_sequence>.snap.tmp in `dir`. AlreadyExists if a
  // finished snapshot with that sequence exists (nothing changed since).
  static absl::StatusOr<std::unique_ptr<SnapshotWriter>> Create(
      FileSystem* fs, const std::string& dir, uint64_t covered_sequence,
      const SnapshotWriterOptions& options = {});

  // Abandons an unfinished snapshot: its .tmp file is removed.
  ~SnapshotWriter();

  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Compresses `data` into the file. Errors (ResourceExhausted for a full
  // disk) are sticky; the snapshot then cannot be finished.
  absl::Status Append(std::string_view data);

  // Ends the stream, writes the trailer, syncs, renames into place and syncs
  // the directory. Only an OK return means the snapshot is durable. Later
  // calls return FailedPrecondition.
  absl::Status Finish();

  // The final path (valid before Finish too).
  const std::string& path() const { return final_path_; }
  uint64_t covered_sequence() const { return covered_sequence_; }
  uint64_t bytes_in() const { return bytes_in_; }

 private:
  class Compressor;
  SnapshotWriter(FileSystem* fs, std::string dir, uint64_t covered_sequence);

  absl::Status Compress(std::string_view data, bool end);

  FileSystem* const fs_;
  const std::string dir_;
  const uint64_t covered_sequence_;
  const std::string final_path_;
  const std::string tmp_path_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<Compressor> compressor_;
  std::string out_buffer_;
  uint64_t bytes_in_ = 0;
  uint32_t crc_ = 0;
  absl::Status error_;
  bool finished_ = false;
};

// Streams the payload of one snapshot back.
class SnapshotReader {
 public:
  // Opens `path` and checks the header and the trailer's presence (a
  // truncated or torn file is DataLoss here already). The payload checksum is
  // checked only as the end of the payload is read.
  static absl::StatusOr<std::unique_ptr<SnapshotReader>> Open(FileSystem* fs,
                                                              const std::string& path);
  ~SnapshotReader();

  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  // Replaces *out with up to `n` payload bytes. Fewer than `n` means the end
  // of the payload, and the call that reaches the end also verifies it: a
  // length or checksum mismatch, or a damaged compressed stream, is DataLoss.
  // So a caller that reads until a short read never misses corruption.
  absl::Status Read(size_t n, std::string* out);

  // Reads (and discards) whatever is left and verifies the trailer. DataLoss
  // on mismatch.
  absl::Status Verify();

  // Reads the rest of the payload into memory and verifies it.
  absl::StatusOr<std::string> ReadAll();

  uint64_t covered_sequence() const { return covered_sequence_; }
  const std::string& path() const { return path_; }

 private:
  class Decompressor;
  SnapshotReader(std::string path, std::unique_ptr<SequentialFile> file, uint64_t compressed,
                 uint64_t covered_sequence);

  absl::Status CheckTrailer();

  const std::string path_;
  const std::unique_ptr<SequentialFile> file_;
  uint64_t compressed_left_;
  const uint64_t covered_sequence_;
  std::unique_ptr<Decompressor> decompressor_;
  std::string in_buffer_;
  size_t in_pos_ = 0;
  bool frame_done_ = false;  // zstd reported the end of the frame.
  absl::Status error_;       // Sticky: once corrupt, every Read fails.
  bool verified_ = false;
  uint64_t bytes_out_ = 0;
  uint32_t crc_ = 0;
  uint64_t expected_length_ = 0;
  uint32_t expected_crc_ = 0;
};

// Opens `path` and reads it through to check every checksum. OK only for a
// complete, intact snapshot; DataLoss otherwise.
absl::Status VerifySnapshot(FileSystem* fs, const std::string& path);

struct SnapshotInfo {
  std::string path;
  uint64_t covered_sequence = 0;
};

// Finished snapshots in `dir`, newest (highest covered sequence) first.
// Removes leftover .tmp files of interrupted writes as it goes.
absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(FileSystem* fs, const std::string& dir);

// The same list, but nothing is removed: for readers of a directory that a
// running kole-apiserver may be writing into (backups, inspection), where a
// .tmp file is a snapshot being written.
absl::StatusOr<std::vector<SnapshotInfo>> FindSnapshots(FileSystem* fs, const std::string& dir);

// Removes all but the newest `keep` snapshots (keep >= 1, InvalidArgument
// otherwise) and syncs the directory. Returns the covered sequence of the
// oldest snapshot kept, or 0 if there is none: WAL records after it must stay,
// so the caller follows with WalWriter::RemoveSegmentsBefore(returned + 1).
// Snapshots are not verified here; keeping two lets recovery fall back to the
// older one if the newest turns out corrupt.
absl::StatusOr<uint64_t> PruneSnapshots(FileSystem* fs, const std::string& dir, size_t keep = 2);

// "snapshot-00000000000000000042.snap" for covered sequence 42.
std::string SnapshotFileName(uint64_t covered_sequence);

}  // namespace kole::storage
