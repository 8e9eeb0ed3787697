#include "storage/wal_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "storage/wal_format.h"

namespace kole::storage {
namespace {

constexpr size_t kReadChunk = 256 << 10;

using wal_internal::GetFixed32;

// True if a complete, checksum-valid record frame starts at data[0].
bool IsValidRecordAt(std::string_view data) {
  if (data.size() < kWalRecordFrameSize) return false;
  uint32_t length = GetFixed32(data.data());
  if (length > kWalMaxPayloadSize || length > data.size() - kWalRecordFrameSize) return false;
  uint8_t type = static_cast<uint8_t>(data[8]);
  if (type == 0) return false;
  return GetFixed32(data.data() + 4) ==
         WalRecordChecksum(type, data.substr(kWalRecordFrameSize, length));
}

}  // namespace

absl::StatusOr<std::vector<WalSegment>> ListWalSegments(FileSystem* fs, const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<WalSegment> segments;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> first = ParseWalSegmentFileName(name)) {
      segments.push_back({JoinPath(dir, name), *first});
    }
  }
  std::sort(segments.begin(), segments.end(), [](const WalSegment& a, const WalSegment& b) {
    return a.first_sequence < b.first_sequence;
  });
  return segments;
}

absl::StatusOr<std::unique_ptr<WalReader>> WalReader::Open(FileSystem* fs, std::string path) {
  absl::StatusOr<uint64_t> size = fs->GetFileSize(path);
  if (!size.ok()) return size.status();
  absl::StatusOr<std::unique_ptr<SequentialFile>> file = fs->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  std::unique_ptr<WalReader> reader(new WalReader(std::move(path), std::move(*file), *size));

  if (absl::Status s = reader->Fill(kWalHeaderSize); !s.ok()) return s;
  std::string why;
  std::optional<uint64_t> first =
      DecodeWalHeader(std::string_view(reader->buffer_).substr(0, kWalHeaderSize), &why);
  if (!first.has_value()) {
    reader->MarkBad(0, std::move(why));
    return reader;
  }
  reader->header_ok_ = true;
  reader->first_sequence_ = *first;
  reader->buffer_pos_ = kWalHeaderSize;
  reader->good_offset_ = kWalHeaderSize;
  return reader;
}

absl::Status WalReader::Fill(size_t n) {
  size_t have = buffer_.size() - buffer_pos_;
  if (have >= n) return absl::OkStatus();

  // Drop consumed bytes so the buffer never holds more than one record plus
  // one chunk.
  buffer_.erase(0, buffer_pos_);
  buffer_offset_ += buffer_pos_;
  buffer_pos_ = 0;

  std::string chunk;
  while (buffer_.size() < n) {
    if (absl::Status s = file_->Read(std::max(n - buffer_.size(), kReadChunk), &chunk); !s.ok()) {
      return s;
    }
    if (chunk.empty()) break;
    buffer_ += chunk;
  }
  return absl::OkStatus();
}

WalReader::Outcome WalReader::MarkBad(uint64_t offset, std::string reason) {
  bad_ = true;
  bad_offset_ = offset;
  bad_reason_ = std::move(reason);
  return Outcome::kBad;
}

absl::StatusOr<WalReader::Outcome> WalReader::Next(Record* record) {
  if (bad_) return Outcome::kBad;
  if (ended_) return Outcome::kEnd;

  const uint64_t offset = good_offset_;
  const uint64_t remaining = file_size_ > offset ? file_size_ - offset : 0;
  if (remaining == 0) {
    ended_ = true;
    return Outcome::kEnd;
  }
  if (remaining < kWalRecordFrameSize) {
    return MarkBad(offset, fmt::format("incomplete record frame ({} of {} bytes)", remaining,
                                       kWalRecordFrameSize));
  }

  // Frame first: the length decides how much more to read.
  if (absl::Status s = Fill(kWalRecordFrameSize); !s.ok()) return s;
  if (buffer_.size() - buffer_pos_ < kWalRecordFrameSize) {
    return MarkBad(offset, "file ended before its reported size");
  }
  const char* frame = buffer_.data() + buffer_pos_;
  const uint32_t length = GetFixed32(frame);
  const uint32_t stored_crc = GetFixed32(frame + 4);
  const uint8_t type = static_cast<uint8_t>(frame[8]);
  if (length > kWalMaxPayloadSize) {
    return MarkBad(offset, fmt::format("record length {} exceeds the limit of {} bytes", length,
                                       kWalMaxPayloadSize));
  }
  if (kWalRecordFrameSize + length > remaining) {
    return MarkBad(offset, fmt::format("record of {} bytes extends past the end of the file "
                                       "({} bytes left)",
                                       length, remaining - kWalRecordFrameSize));
  }

  if (absl::Status s = Fill(kWalRecordFrameSize + length); !s.ok()) return s;
  if (buffer_.size() - buffer_pos_ < kWalRecordFrameSize + length) {
    return MarkBad(offset, "file ended before its reported size");
  }
  std::string_view payload(buffer_.data() + buffer_pos_ + kWalRecordFrameSize, length);
  if (type == 0) return MarkBad(offset, "record type 0 is invalid");
  if (stored_crc != WalRecordChecksum(type, payload)) {
    return MarkBad(offset, "record checksum mismatch");
  }

  record->sequence = first_sequence_ + records_read_;
  record->type = type;
  record->payload = payload;
  record->offset = offset;
  ++records_read_;
  buffer_pos_ += kWalRecordFrameSize + length;
  good_offset_ += kWalRecordFrameSize + length;
  return Outcome::kRecord;
}

absl::StatusOr<bool> WalReader::ValidRecordFollows() {
  if (!bad_) return false;
  // The unread part of the buffer starts at the bad bytes; pull in the rest.
  uint64_t rest = file_size_ - bad_offset_;
  if (absl::Status s = Fill(rest); !s.ok()) return s;
  std::string_view tail = std::string_view(buffer_).substr(buffer_pos_);
  for (size_t pos = 1; pos + kWalRecordFrameSize <= tail.size(); ++pos) {
    if (IsValidRecordAt(tail.substr(pos))) return true;
  }
  return false;
}

namespace {

// Replays one directory; holds the state ReplayWal threads through segments.
class Replayer {
 public:
  Replayer(FileSystem* fs, const std::string& dir, uint64_t from_sequence,
           WalReplayCallback callback, const ReplayOptions& options)
      : fs_(fs), dir_(dir), from_(from_sequence), callback_(callback), options_(options) {}

  absl::StatusOr<ReplayResult> Run() {
    absl::StatusOr<std::vector<WalSegment>> segments = ListWalSegments(fs_, dir_);
    if (!segments.ok()) return segments.status();
    segments_ = std::move(*segments);

    for (size_t i = 0; i < segments_.size() && !stopped_; ++i) {
      if (absl::Status s = ReplaySegment(i); !s.ok()) return s;
    }

    if (have_expected_) result_.last_sequence = expected_ > 0 ? expected_ - 1 : 0;
    result_.next_sequence = std::max<uint64_t>({expected_, from_, 1});
    KOLE_LOG(Info, "Replayed WAL", "dir", dir_, "segments", segments_.size(), "records",
             result_.records_replayed, "lastSequence", result_.last_sequence, "nextSequence",
             result_.next_sequence);
    return result_;
  }

 private:
  absl::Status ReplaySegment(size_t index) {
    const WalSegment& segment = segments_[index];
    const bool newest = index + 1 == segments_.size();

    // Segments must continue each other. A gap is harmless only if every
    // missing sequence is older than what we replay (the snapshot has them).
    if (!have_expected_ && segment.first_sequence > std::max<uint64_t>(from_, 1)) {
      return absl::DataLossError(fmt::format(
          "WAL in {} starts at sequence {} (segment {}) but recovery needs records from sequence "
          "{}: they were removed or lost. Recover from a snapshot that covers sequence {}",
          dir_, segment.first_sequence, segment.path, from_, segment.first_sequence - 1));
    }
    if (have_expected_ && segment.first_sequence != expected_) {
      bool harmless_gap = segment.first_sequence > expected_ && segment.first_sequence <= from_;
      if (!harmless_gap) {
        return Corruption(index, 0,
                          fmt::format("sequence gap: the previous segment ends at sequence {}, "
                                      "this one starts at {}",
                                      expected_ - 1, segment.first_sequence),
                          expected_);
      }
    }

    absl::StatusOr<std::unique_ptr<WalReader>> opened = WalReader::Open(fs_, segment.path);
    if (!opened.ok()) return opened.status();
    WalReader& reader = **opened;
    if (reader.header_ok() && reader.first_sequence() != segment.first_sequence) {
      return Corruption(index, 0,
                        fmt::format("segment header says first sequence {}, the file name {}",
                                    reader.first_sequence(), segment.first_sequence),
                        segment.first_sequence);
    }

    WalReader::Record record;
    absl::StatusOr<WalReader::Outcome> outcome;
    while ((outcome = reader.Next(&record)).ok() && *outcome == WalReader::Outcome::kRecord) {
      if (record.sequence < from_) continue;
      if (absl::Status s = callback_(record.sequence, record.type, record.payload); !s.ok()) {
        return s;
      }
      ++result_.records_replayed;
    }
    if (!outcome.ok()) return outcome.status();

    const uint64_t next = segment.first_sequence + reader.records_read();
    if (*outcome == WalReader::Outcome::kBad) {
      bool follows = true;
      if (newest) {
        absl::StatusOr<bool> found = reader.ValidRecordFollows();
        if (!found.ok()) return found.status();
        follows = *found;
      }
      if (follows) {
        return Corruption(index, reader.bad_offset(), reader.bad_reason(), next);
      }
      if (absl::Status s = RepairTornTail(reader); !s.ok()) return s;
      // A removed segment with a torn header still tells where the log stood.
    }
    expected_ = next;
    have_expected_ = true;
    return absl::OkStatus();
  }

  // The newest segment ends in a write the crash interrupted. Nothing after
  // the last good record was acknowledged, so cutting it off loses nothing.
  absl::Status RepairTornTail(const WalReader& reader) {
    uint64_t dropped = reader.file_size() - reader.good_offset();
    result_.torn_tail_repaired = true;
    result_.bytes_discarded += dropped;
    if (options_.read_only) {
      KOLE_VLOG(1, "WAL ends in a torn record; reading up to it", "path", reader.path(), "offset",
                reader.good_offset(), "bytesIgnored", dropped, "reason", reader.bad_reason());
      return absl::OkStatus();
    }
    if (!reader.header_ok()) {
      KOLE_LOG(Warning, "Removed WAL segment with a torn header", "path", reader.path(), "bytes",
               reader.file_size(), "reason", reader.bad_reason());
      if (absl::Status s = fs_->RemoveFile(reader.path()); !s.ok()) return s;
      return fs_->SyncDir(dir_);
    }
    KOLE_LOG(Warning, "Truncated torn WAL tail", "path", reader.path(), "offset",
             reader.good_offset(), "bytesDropped", dropped, "reason", reader.bad_reason());
    return fs_->TruncateFile(reader.path(), reader.good_offset());
  }

  // Refuses with DataLoss, or, when the operator asked for it, cuts the log
  // at `offset` of segment `index` and removes every later segment.
  absl::Status Corruption(size_t index, uint64_t offset, const std::string& reason,
                          uint64_t first_lost) {
    const WalSegment& segment = segments_[index];
    if (!options_.truncate_at_corruption || options_.read_only) {
      return absl::DataLossError(fmt::format(
          "WAL segment {} is corrupt at offset {}: {}. Valid log data follows, so this is not a "
          "torn write at the end of the log; refusing to start. The log was not modified. To "
          "discard the log from this point (every record from sequence {} on is lost) restart "
          "with --wal-truncate-at-corruption",
          segment.path, offset, reason, first_lost));
    }

    uint64_t discarded = 0;
    std::vector<std::string> removed;
    absl::StatusOr<uint64_t> size = fs_->GetFileSize(segment.path);
    if (!size.ok()) return size.status();
    if (offset < kWalHeaderSize) {
      // Without a trustworthy header the segment cannot be kept at all.
      discarded += *size;
      if (absl::Status s = fs_->RemoveFile(segment.path); !s.ok()) return s;
      removed.push_back(segment.path);
    } else {
      discarded += *size - offset;
      if (absl::Status s = fs_->TruncateFile(segment.path, offset); !s.ok()) return s;
      expected_ = first_lost;
      have_expected_ = true;
    }
    for (size_t i = index + 1; i < segments_.size(); ++i) {
      absl::StatusOr<uint64_t> later = fs_->GetFileSize(segments_[i].path);
      if (later.ok()) discarded += *later;
      if (absl::Status s = fs_->RemoveFile(segments_[i].path); !s.ok()) return s;
      removed.push_back(segments_[i].path);
    }
    if (absl::Status s = fs_->SyncDir(dir_); !s.ok()) return s;

    KOLE_LOG(Error, "Discarded WAL from a corruption on operator request", "path", segment.path,
             "offset", offset, "reason", reason, "firstLostSequence", first_lost, "bytesDiscarded",
             discarded, "removedSegments", fmt::format("{}", fmt::join(removed, ",")));
    result_.corruption_discarded = true;
    result_.bytes_discarded += discarded;
    stopped_ = true;
    return absl::OkStatus();
  }

  FileSystem* const fs_;
  const std::string& dir_;
  const uint64_t from_;
  WalReplayCallback callback_;
  const ReplayOptions& options_;
  std::vector<WalSegment> segments_;
  ReplayResult result_;
  uint64_t expected_ = 0;  // Sequence the next segment must start with.
  bool have_expected_ = false;
  bool stopped_ = false;
};

}  // namespace

absl::StatusOr<ReplayResult> ReplayWal(FileSystem* fs, const std::string& dir,
                                       uint64_t from_sequence, WalReplayCallback callback,
                                       const ReplayOptions& options) {
  return Replayer(fs, dir, from_sequence, callback, options).Run();
}

}  // namespace kole::storage
