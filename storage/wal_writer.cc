#include "storage/wal_writer.h"

#include <fmt/format.h>

#include <utility>

#include "common/log.h"
#include "storage/wal_format.h"
#include "storage/wal_reader.h"

namespace kole::storage {

WalWriter::WalWriter(FileSystem* fs, std::string dir, const WalWriterOptions& options)
    : fs_(fs), dir_(std::move(dir)), options_(options) {}

absl::StatusOr<std::unique_ptr<WalWriter>> WalWriter::Open(FileSystem* fs, std::string dir,
                                                           uint64_t next_sequence,
                                                           const WalWriterOptions& options) {
  if (next_sequence == 0) {
    return absl::InvalidArgumentError("WAL sequences start at 1; next_sequence 0 is invalid");
  }

  // Writing behind existing records would fork the log; only an empty segment
  // with our own name (a writer that was opened and never appended) is reused.
  absl::StatusOr<std::vector<WalSegment>> segments = ListWalSegments(fs, dir);
  if (!segments.ok()) return segments.status();
  for (size_t i = 0; i < segments->size(); ++i) {
    const WalSegment& segment = (*segments)[i];
    if (segment.first_sequence < next_sequence) continue;
    absl::StatusOr<uint64_t> size = fs->GetFileSize(segment.path);
    if (!size.ok()) return size.status();
    bool reusable = i + 1 == segments->size() && segment.first_sequence == next_sequence &&
                    *size <= kWalHeaderSize;
    if (!reusable) {
      return absl::FailedPreconditionError(fmt::format(
          "WAL segment {} already holds records at or after sequence {}; replay the log and "
          "open the writer at the sequence replay returns",
          segment.path, next_sequence));
    }
  }

  std::unique_ptr<WalWriter> writer(new WalWriter(fs, std::move(dir), options));
  if (absl::Status s = writer->CreateSegment(next_sequence); !s.ok()) return s;
  if (absl::Status s = writer->file_->Sync(); !s.ok()) return s;
  writer->file_unsynced_ = false;
  if (absl::Status s = fs->SyncDir(writer->dir_); !s.ok()) return s;

  absl::MutexLock lock(&writer->mu_);
  writer->last_sequence_ = next_sequence - 1;
  writer->durable_sequence_ = next_sequence - 1;
  writer->tail_first_sequence_ = next_sequence;
  writer->tail_bytes_ = kWalHeaderSize;
  return writer;
}

WalWriter::~WalWriter() {
  bool closed;
  {
    absl::MutexLock lock(&mu_);
    closed = closed_;
  }
  if (closed) return;
  if (absl::Status s = Close(); !s.ok()) {
    KOLE_LOG(Error, "Closing the WAL writer failed", "dir", dir_, "err", s);
  }
}

void WalWriter::StartSegmentLocked(uint64_t first_sequence) {
  Chunk chunk;
  chunk.new_segment = true;
  chunk.first_sequence = first_sequence;
  pending_.push_back(std::move(chunk));
  tail_first_sequence_ = first_sequence;
  tail_records_ = 0;
  tail_bytes_ = kWalHeaderSize;
  ++segments_requested_;
}

absl::Status WalWriter::CheckWritableLocked() const {
  if (!error_.ok()) return error_;
  if (closed_) {
    return absl::FailedPreconditionError(fmt::format("WAL writer for {} is closed", dir_));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WalWriter::Append(uint8_t type, std::string_view payload) {
  if (type == 0) return absl::InvalidArgumentError("WAL record type 0 is reserved");
  if (payload.size() > kWalMaxPayloadSize) {
    return absl::InvalidArgumentError(fmt::format("WAL record of {} bytes exceeds the limit of {}",
                                                  payload.size(), kWalMaxPayloadSize));
  }

  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckWritableLocked(); !s.ok()) return s;

  const uint64_t size = kWalRecordFrameSize + payload.size();
  if (tail_records_ > 0 && tail_bytes_ + size > options_.segment_size_limit) {
    StartSegmentLocked(last_sequence_ + 1);
  }
  if (pending_.empty()) pending_.emplace_back();
  EncodeWalRecord(type, payload, &pending_.back().data);
  const uint64_t sequence = ++last_sequence_;
  ++tail_records_;
  tail_bytes_ += size;
  pending_bytes_ += size;

  if (pending_bytes_ >= options_.max_buffered_bytes) {
    absl::Status s = FlushUntilLocked([&] { return durable_sequence_ >= sequence; });
    if (!s.ok()) return s;
  }
  return sequence;
}

absl::Status WalWriter::WaitDurable(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  if (sequence > last_sequence_) {
    return absl::InvalidArgumentError(
        fmt::format("WAL sequence {} was never appended (last is {})", sequence, last_sequence_));
  }
  return FlushUntilLocked([&] { return durable_sequence_ >= sequence; });
}

absl::Status WalWriter::Sync() {
  absl::MutexLock lock(&mu_);
  if (closed_) return CheckWritableLocked();
  const uint64_t target = last_sequence_;
  const uint64_t segments = segments_requested_;
  return FlushUntilLocked(
      [&] { return durable_sequence_ >= target && segments_created_ >= segments; });
}

absl::StatusOr<uint64_t> WalWriter::StartSegment() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckWritableLocked(); !s.ok()) return s;
  if (tail_records_ > 0) StartSegmentLocked(last_sequence_ + 1);
  return tail_first_sequence_;
}

absl::StatusOr<uint64_t> WalWriter::Rotate() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckWritableLocked(); !s.ok()) return s;
  // An empty current segment already starts where a new one would.
  if (tail_records_ > 0) StartSegmentLocked(last_sequence_ + 1);
  const uint64_t first = tail_first_sequence_;
  const uint64_t target = last_sequence_;
  const uint64_t segments = segments_requested_;
  absl::Status s = FlushUntilLocked(
      [&] { return durable_sequence_ >= target && segments_created_ >= segments; });
  if (!s.ok()) return s;
  return first;
}

absl::Status WalWriter::FlushUntilLocked(absl::FunctionRef<bool()> done) {
  while (true) {
    if (done()) return absl::OkStatus();
    if (!error_.ok()) return error_;
    if (leader_active_) {
      leader_done_.Wait(&mu_);
      continue;
    }

    // Lead one round: take everything buffered, write and sync it unlocked so
    // that appends continue into the next round meanwhile.
    leader_active_ = true;
    std::vector<Chunk> chunks;
    chunks.swap(pending_);
    pending_bytes_ = 0;
    const uint64_t target = last_sequence_;
    const uint64_t segments = segments_requested_;
    mu_.Unlock();
    absl::Status status = WriteChunks(chunks);
    mu_.Lock();

    if (status.ok()) {
      durable_sequence_ = target;
      segments_created_ = segments;
    } else {
      KOLE_LOG(Error, "WAL write failed; the log accepts no more records", "dir", dir_,
               "durableSequence", durable_sequence_, "lostFromSequence", durable_sequence_ + 1,
               "err", status);
      error_ = status;
    }
    ReleaseLeadershipLocked();
  }
}

void WalWriter::AcquireLeadershipLocked() {
  while (leader_active_) leader_done_.Wait(&mu_);
  leader_active_ = true;
}

void WalWriter::ReleaseLeadershipLocked() {
  leader_active_ = false;
  leader_done_.SignalAll();
}

absl::Status WalWriter::CreateSegment(uint64_t first_sequence) {
  std::string path = JoinPath(dir_, WalSegmentFileName(first_sequence));
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_->NewWritableFile(path);
  if (!file.ok()) return file.status();
  file_ = std::move(*file);
  file_first_sequence_ = first_sequence;
  std::string header;
  EncodeWalHeader(first_sequence, &header);
  file_unsynced_ = true;
  KOLE_VLOG(2, "Started WAL segment", "path", path, "firstSequence", first_sequence);
  return file_->Append(header);
}

absl::Status WalWriter::WriteChunks(std::vector<Chunk>& chunks) {
  bool created = false;
  for (Chunk& chunk : chunks) {
    if (chunk.new_segment) {
      // The old segment must be complete on disk before the next one exists,
      // so that only the newest segment can ever have a torn tail.
      if (file_unsynced_) {
        if (absl::Status s = file_->Sync(); !s.ok()) return s;
        file_unsynced_ = false;
      }
      if (absl::Status s = file_->Close(); !s.ok()) return s;
      if (absl::Status s = CreateSegment(chunk.first_sequence); !s.ok()) return s;
      created = true;
    }
    if (!chunk.data.empty()) {
      file_unsynced_ = true;
      if (absl::Status s = file_->Append(chunk.data); !s.ok()) return s;
    }
  }

  if (file_unsynced_) {
    if (absl::Status s = file_->Sync(); !s.ok()) return s;
    file_unsynced_ = false;
  }
  // A record in a new segment is durable only once the segment's name is.
  if (created) return fs_->SyncDir(dir_);
  return absl::OkStatus();
}

absl::Status WalWriter::RemoveSegmentsBefore(uint64_t sequence) {
  uint64_t current;
  {
    absl::MutexLock lock(&mu_);
    AcquireLeadershipLocked();
    current = file_first_sequence_;
  }

  // Segment i holds [first_i, first_{i+1}); it goes if first_{i+1} <= sequence.
  absl::Status status;
  size_t removed = 0;
  absl::StatusOr<std::vector<WalSegment>> segments = ListWalSegments(fs_, dir_);
  if (!segments.ok()) status = segments.status();
  for (size_t i = 0; status.ok() && i + 1 < segments->size(); ++i) {
    const WalSegment& segment = (*segments)[i];
    uint64_t next_first = (*segments)[i + 1].first_sequence;
    if (segment.first_sequence >= current || next_first > sequence) break;
    status = fs_->RemoveFile(segment.path);
    if (status.ok()) ++removed;
  }
  if (removed > 0) {
    absl::Status synced = fs_->SyncDir(dir_);
    if (status.ok()) status = synced;
    KOLE_VLOG(2, "Removed WAL segments", "dir", dir_, "segments", removed, "beforeSequence",
              sequence);
  }

  absl::MutexLock lock(&mu_);
  ReleaseLeadershipLocked();
  return status;
}

absl::Status WalWriter::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return error_;
  const uint64_t target = last_sequence_;
  const uint64_t segments = segments_requested_;
  absl::Status status = FlushUntilLocked(
      [&] { return durable_sequence_ >= target && segments_created_ >= segments; });

  AcquireLeadershipLocked();
  closed_ = true;
  if (file_ != nullptr) {
    absl::Status closed = file_->Close();
    if (status.ok() && error_.ok()) status = closed;
    file_.reset();
  }
  ReleaseLeadershipLocked();
  return status;
}

uint64_t WalWriter::durable_sequence() const {
  absl::MutexLock lock(&mu_);
  return durable_sequence_;
}

uint64_t WalWriter::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return last_sequence_;
}

absl::Status WalWriter::status() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

}  // namespace kole::storage
