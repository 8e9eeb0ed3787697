#pragma once

// Reading and recovering the write-ahead log (format in storage/wal_format.h).
//
// ReplayWal() is what the store calls at start-up: it walks every segment in
// order, hands each record at or after `from_sequence` to a callback, repairs
// a torn tail in place and refuses, with absl::DataLossError, to start on a
// log that is corrupt anywhere else. WalReader reads the records of a single
// segment and is the building block ReplayWal uses (and a dump tool could).
//
// What counts as what:
//   * Torn tail: the newest segment ends in an incomplete or checksum-failing
//     record and no valid record starts anywhere after it. This is what a
//     crash during a write leaves, the lost records were never acknowledged,
//     so the segment is truncated to its last good record and one warning is
//     logged with the path, the offset and the bytes dropped. A newest segment
//     whose header itself is torn (a crash just after it was created) holds
//     no acknowledged record either and is removed.
//   * Corruption: a bad record followed by a valid one, any damage in a
//     segment that is not the newest, a bad segment header, a header whose
//     first sequence disagrees with the file name, or a sequence gap between
//     segments that reaches into the range being replayed. ReplayWal returns
//     DataLoss naming the file and offset and how to proceed: restart with
//     --wal-truncate-at-corruption, which sets
//     ReplayOptions::truncate_at_corruption, to cut the log there, remove
//     every later segment and continue (logged as an error that lists what
//     was discarded).
//
// Thread safety: none of this may run concurrently with a WalWriter on the
// same directory; recovery happens before the writer is opened.

#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file_system.h"

namespace kole::storage {

// One segment file found in a WAL directory.
struct WalSegment {
  std::string path;
  uint64_t first_sequence = 0;  // From the file name.
};

// The segments in `dir`, oldest first. Files that are not named like
// segments are ignored.
absl::StatusOr<std::vector<WalSegment>> ListWalSegments(FileSystem* fs, const std::string& dir);

// Reads the records of one segment, front to back, without buffering more
// than the largest record plus one read chunk. Not thread-safe. Ownership: the
// FileSystem must outlive the reader.
class WalReader {
 public:
  enum class Outcome {
    kRecord,  // *record holds the next record.
    kEnd,     // The segment ends cleanly after the last record.
    kBad,     // The bytes at bad_offset() are not a valid header or record.
  };

  struct Record {
    uint64_t sequence = 0;
    uint8_t type = 0;
    std::string_view payload;  // Valid until the next call on the reader.
    uint64_t offset = 0;       // File offset of the record's frame.
  };

  // Opens `path` and reads its header. A bad header is not an error here: the
  // first Next() then returns kBad at offset 0. Errors are I/O failures only.
  static absl::StatusOr<std::unique_ptr<WalReader>> Open(FileSystem* fs, std::string path);

  // Reads the next record. After kBad or kEnd every later call returns the
  // same outcome.
  absl::StatusOr<Outcome> Next(Record* record);

  // After kBad: true if a valid record starts anywhere after the bad bytes,
  // which tells corruption in the middle from a torn tail. Reads the rest of
  // the file into memory.
  absl::StatusOr<bool> ValidRecordFollows();

  bool header_ok() const { return header_ok_; }
  // From the header; meaningful only if header_ok().
  uint64_t first_sequence() const { return first_sequence_; }
  uint64_t records_read() const { return records_read_; }
  // End of the last good record (the header counts as good), which is where
  // a torn segment is truncated to.
  uint64_t good_offset() const { return good_offset_; }
  // Where the bad bytes start (0 for a bad header) and what is wrong.
  uint64_t bad_offset() const { return bad_offset_; }
  const std::string& bad_reason() const { return bad_reason_; }
  uint64_t file_size() const { return file_size_; }
  const std::string& path() const { return path_; }

 private:
  WalReader(std::string path, std::unique_ptr<SequentialFile> file, uint64_t file_size)
      : path_(std::move(path)), file_(std::move(file)), file_size_(file_size) {}

  // Ensures buffer_ holds at least `n` unread bytes, or all that remain.
  absl::Status Fill(size_t n);
  Outcome MarkBad(uint64_t offset, std::string reason);

  const std::string path_;
  const std::unique_ptr<SequentialFile> file_;
  const uint64_t file_size_;
  std::string buffer_;  // Unread bytes start at buffer_[buffer_pos_].
  size_t buffer_pos_ = 0;
  uint64_t buffer_offset_ = 0;  // File offset of buffer_[0].
  bool header_ok_ = false;
  uint64_t first_sequence_ = 0;
  uint64_t records_read_ = 0;
  uint64_t good_offset_ = 0;
  bool ended_ = false;
  bool bad_ = false;
  uint64_t bad_offset_ = 0;
  std::string bad_reason_;
};

struct ReplayOptions {
  // Set by --wal-truncate-at-corruption: instead of refusing, cut the log at
  // the first corruption and remove all later segments. Records from there on
  // are lost; only for an operator who has decided that losing them beats
  // not starting.
  bool truncate_at_corruption = false;
  // Change nothing on disk: a torn tail ends the replay where recovery would
  // cut it (it is counted in bytes_discarded, torn_tail_repaired is set) but
  // the file is left as it is, and corruption is always refused
  // (truncate_at_corruption is ignored). For reading a backup or a stopped
  // server's directory without touching it.
  bool read_only = false;
};

struct ReplayResult {
  // Sequence of the last record in the log (replayed or skipped), or one less
  // than the newest segment's first sequence if it has no records; 0 if the
  // directory has no segments.
  uint64_t last_sequence = 0;
  // Where the writer continues: max(last_sequence + 1, from_sequence, 1).
  uint64_t next_sequence = 1;
  // Records passed to the callback.
  uint64_t records_replayed = 0;
  // Bytes cut off by torn-tail repair or by truncate_at_corruption.
  uint64_t bytes_discarded = 0;
  bool torn_tail_repaired = false;
  bool corruption_discarded = false;
};

// Called for each record in order. A non-OK return stops the replay and is
// returned as is.
using WalReplayCallback =
    absl::FunctionRef<absl::Status(uint64_t sequence, uint8_t type, std::string_view payload)>;

// Replays the log in `dir` from `from_sequence` (earlier records are read and
// checked but not passed on), repairing a torn tail as described at the top.
// Returns DataLoss on corruption (unless options.truncate_at_corruption), or
// when records at or after `from_sequence` are missing from the start of the
// log (the oldest segment begins later: an older snapshot would be needed).
// On any error the callback may already have seen a prefix of the log; the
// caller must discard what it built from it.
absl::StatusOr<ReplayResult> ReplayWal(FileSystem* fs, const std::string& dir,
                                       uint64_t from_sequence, WalReplayCallback callback,
                                       const ReplayOptions& options = {});

}  // namespace kole::storage
