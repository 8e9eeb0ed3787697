#pragma once

// WalWriter appends records to the write-ahead log (format in
// storage/wal_format.h) and makes them durable with group commit.
//
// Usage, per API mutation:
//   absl::StatusOr<uint64_t> seq = wal->Append(kNodeUpdate, encoded);
//   if (!seq.ok()) return seq.status();
//   if (absl::Status s = wal->WaitDurable(*seq); !s.ok()) return s;
//   // only now acknowledge the mutation
//
// Group commit: Append() only buffers the record in memory and assigns its
// sequence. The first WaitDurable() caller that finds no flush in progress
// becomes the leader: it takes everything buffered so far, writes it, fsyncs
// once and wakes the others; records appended meanwhile go into the next
// flush. A burst of N concurrent registrations thus costs about one fsync per
// flush rather than one per record.
//
// Errors are sticky. A failed write, fsync or segment creation (ResourceExhausted
// for a full disk) is returned by that call and by every later Append, Sync,
// Rotate and WaitDurable on a record that is not yet durable: the log cannot
// know which bytes reached the disk, so it stops instead of writing past a
// hole. A record is reported durable only after the fsync that covers it (and,
// for a new segment, the directory sync) succeeded. Nothing buffered is
// dropped silently: a record either becomes durable or its waiters get the
// error. After restart, ReplayWal() repairs the partially written tail.
//
// Thread safety: every method may be called from any number of threads.
// Appends are ordered by their sequence numbers. Ownership: the FileSystem
// must outlive the writer. No ReplayWal() on the same directory while the
// writer is open, and only one writer per directory (DataDir's lock ensures
// one process).

#include <absl/base/thread_annotations.h>
#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file_system.h"

namespace kole::storage {

struct WalWriterOptions {
  // A new segment is started before a record would grow the current one past
  // this size (a single larger record gets a segment of its own).
  uint64_t segment_size_limit = 64ull << 20;
  // When this many bytes are buffered, Append() itself flushes and syncs
  // before returning, so memory stays bounded when nobody calls WaitDurable.
  uint64_t max_buffered_bytes = 16ull << 20;
};

class WalWriter {
 public:
  // Starts a new segment wal-<next_sequence>.log in `dir` (header written,
  // synced, directory synced) and returns a writer whose first record gets
  // `next_sequence`, normally ReplayResult::next_sequence. FailedPrecondition
  // if a segment at or after `next_sequence` already holds records (replay
  // first); an existing empty segment with exactly that name is reused.
  // InvalidArgument if next_sequence is 0.
  static absl::StatusOr<std::unique_ptr<WalWriter>> Open(FileSystem* fs, std::string dir,
                                                         uint64_t next_sequence,
                                                         const WalWriterOptions& options = {});

  // Flushes and syncs what is buffered (Close()); an error is logged.
  // REQUIRES: no other call on this writer is running or will start.
  ~WalWriter();

  WalWriter(const WalWriter&) = delete;
  WalWriter& operator=(const WalWriter&) = delete;

  // Buffers one record and returns its sequence; not durable yet. `type` must
  // be 1..255 and the payload at most kWalMaxPayloadSize bytes
  // (InvalidArgument otherwise). Returns the sticky error, if any. May block
  // to flush when max_buffered_bytes is reached; if that flush fails the
  // record is lost with it and the error is returned.
  absl::StatusOr<uint64_t> Append(uint8_t type, std::string_view payload);

  // Returns once record `sequence` is durable, leading or joining a group
  // commit. OK for a sequence already durable, even after a later error.
  // Otherwise returns the sticky error. InvalidArgument for a sequence that
  // was never appended.
  absl::Status WaitDurable(uint64_t sequence);

  // Makes every record appended so far durable (WaitDurable(last_sequence())).
  absl::Status Sync();

  // Syncs and closes the current segment and starts a new one, returning its
  // first sequence: the sequence the next Append gets. The new segment exists
  // durably when this returns. If the current segment holds no record yet it
  // is kept and its first sequence returned, so old segments can be removed
  // whole after a snapshot.
  absl::StatusOr<uint64_t> Rotate();

  // As Rotate(), but returns at once: the new segment is created by the next
  // flush (Sync, WaitDurable, or the buffer filling). For callers that must
  // not wait for the disk while holding their own lock, as the store's
  // snapshot does.
  absl::StatusOr<uint64_t> StartSegment();

  // Removes every segment all of whose records have sequences below
  // `sequence`, oldest first, never the segment currently written to, and
  // syncs the directory. A failure here is returned but not sticky: a segment
  // left behind only costs disk space.
  absl::Status RemoveSegmentsBefore(uint64_t sequence);

  // Syncs everything buffered and closes the segment. Later Append, Sync and
  // Rotate calls return FailedPrecondition. Returns the sticky error if any.
  absl::Status Close();

  // Highest sequence known durable; every record up to it survives a crash.
  uint64_t durable_sequence() const;
  // Highest sequence handed out by Append.
  uint64_t last_sequence() const;
  // The sticky error, or OK.
  absl::Status status() const;

 private:
  // Encoded records waiting for the leader. A chunk that starts a segment
  // makes the leader create wal-<first_sequence>.log before writing its data.
  struct Chunk {
    bool new_segment = false;
    uint64_t first_sequence = 0;
    std::string data;
  };

  WalWriter(FileSystem* fs, std::string dir, const WalWriterOptions& options);

  // Queues the start of a segment whose first record will be `first_sequence`.
  void StartSegmentLocked(uint64_t first_sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs group-commit rounds, as leader or follower, until done() or a sticky
  // error. done() is evaluated with mu_ held.
  absl::Status FlushUntilLocked(absl::FunctionRef<bool()> done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until no leader runs and becomes one (for work that must not
  // overlap a flush), and gives leadership back.
  void AcquireLeadershipLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLeadershipLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckWritableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Leader only (called without mu_): writes chunks, creating segments as
  // they say, and syncs.
  absl::Status WriteChunks(std::vector<Chunk>& chunks);
  absl::Status CreateSegment(uint64_t first_sequence);

  FileSystem* const fs_;
  const std::string dir_;
  const WalWriterOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar leader_done_;  // Signalled whenever a leader gives up leadership.
  bool leader_active_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Chunk> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // The segment the next appended record lands in (possibly not created yet).
  uint64_t tail_first_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tail_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tail_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Segment starts queued and completed; Rotate() waits for its own.
  uint64_t segments_requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t segments_created_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by whoever holds leadership (leader_active_); never touched otherwise.
  std::unique_ptr<WritableFile> file_;
  uint64_t file_first_sequence_ = 0;
  bool file_unsynced_ = false;
};

}  // namespace kole::storage
