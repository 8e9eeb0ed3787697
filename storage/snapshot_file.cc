#include "storage/snapshot_file.h"

#include <fmt/format.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "common/log.h"

namespace kole::storage {
namespace {

constexpr std::string_view kHeaderMagic = "KOLESNAP";
constexpr std::string_view kTrailerMagic = "KOLESEND";
constexpr size_t kHeaderSize = 24;
constexpr size_t kTrailerSize = 20;
constexpr std::string_view kPrefix = "snapshot-";
constexpr std::string_view kSuffix = ".snap";
constexpr std::string_view kTmpSuffix = ".snap.tmp";

void PutFixed32(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

void PutFixed64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

uint32_t GetFixed32(const char* data) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}

uint64_t GetFixed64(const char* data) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(data[i]);
  return value;
}

uint32_t Crc32(uint32_t crc, std::string_view data) {
  // zlib takes a uInt length; feed huge inputs in pieces.
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), 1u << 30);
    crc = static_cast<uint32_t>(
        ::crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(n)));
    data.remove_prefix(n);
  }
  return crc;
}

std::optional<uint64_t> ParseSnapshotFileName(std::string_view name) {
  if (name.size() != kPrefix.size() + 20 + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : name.substr(kPrefix.size(), 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

absl::Status Corrupt(std::string_view path, std::string_view why) {
  return absl::DataLossError(fmt::format("snapshot {} is corrupt: {}", path, why));
}

}  // namespace

std::string SnapshotFileName(uint64_t covered_sequence) {
  return fmt::format("{}{:020}{}", kPrefix, covered_sequence, kSuffix);
}

// Owns a zstd compression context.
class SnapshotWriter::Compressor {
 public:
  Compressor() : cctx_(ZSTD_createCCtx()) {}
  ~Compressor() { ZSTD_freeCCtx(cctx_); }
  ZSTD_CCtx* get() { return cctx_; }

 private:
  ZSTD_CCtx* const cctx_;
};

SnapshotWriter::SnapshotWriter(FileSystem* fs, std::string dir, uint64_t covered_sequence)
    : fs_(fs),
      dir_(std::move(dir)),
      covered_sequence_(covered_sequence),
      final_path_(JoinPath(dir_, SnapshotFileName(covered_sequence))),
      tmp_path_(final_path_ + ".tmp") {}

absl::StatusOr<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Create(
    FileSystem* fs, const std::string& dir, uint64_t covered_sequence,
    const SnapshotWriterOptions& options) {
  std::unique_ptr<SnapshotWriter> writer(new SnapshotWriter(fs, dir, covered_sequence));
  if (fs->FileExists(writer->final_path_)) {
    writer->finished_ = true;  // Nothing of ours to clean up.
    return absl::AlreadyExistsError(fmt::format("snapshot {} already exists", writer->final_path_));
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(writer->tmp_path_);
  if (!file.ok()) {
    writer->finished_ = true;
    return file.status();
  }
  writer->file_ = std::move(*file);

  writer->compressor_ = std::make_unique<Compressor>();
  ZSTD_CCtx* cctx = writer->compressor_->get();
  if (cctx == nullptr) return absl::ResourceExhaustedError("cannot allocate a zstd context");
  size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.compression_level);
  if (ZSTD_isError(rc)) {
    return absl::InvalidArgumentError(fmt::format(
        "zstd compression level {}: {}", options.compression_level, ZSTD_getErrorName(rc)));
  }
  writer->out_buffer_.resize(ZSTD_CStreamOutSize());

  std::string header(kHeaderMagic);
  PutFixed32(&header, kSnapshotFormatVersion);
  PutFixed64(&header, covered_sequence);
  PutFixed32(&header, Crc32(0, header));
  if (absl::Status s = writer->file_->Append(header); !s.ok()) return s;
  return writer;
}

SnapshotWriter::~SnapshotWriter() {
  if (finished_) return;
  file_.reset();
  if (absl::Status s = fs_->RemoveFile(tmp_path_); !s.ok() && !absl::IsNotFound(s)) {
    KOLE_LOG(Warning, "Could not remove abandoned snapshot", "path", tmp_path_, "err", s);
  }
}

absl::Status SnapshotWriter::Compress(std::string_view data, bool end) {
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  while (true) {
    ZSTD_outBuffer out{out_buffer_.data(), out_buffer_.size(), 0};
    size_t left =
        ZSTD_compressStream2(compressor_->get(), &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
    if (ZSTD_isError(left)) {
      return absl::InternalError(
          fmt::format("compress snapshot {}: {}", tmp_path_, ZSTD_getErrorName(left)));
    }
    if (out.pos > 0) {
      if (absl::Status s = file_->Append(std::string_view(out_buffer_.data(), out.pos)); !s.ok()) {
        return s;
      }
    }
    // ZSTD_e_continue is done once all input is consumed; ZSTD_e_end once
    // zstd has nothing left to flush.
    if (end ? left == 0 : in.pos == in.size) return absl::OkStatus();
  }
}

absl::Status SnapshotWriter::Append(std::string_view data) {
  if (finished_) return absl::FailedPreconditionError("snapshot is already finished");
  if (!error_.ok()) return error_;
  crc_ = Crc32(crc_, data);
  bytes_in_ += data.size();
  error_ = Compress(data, /*end=*/false);
  return error_;
}

absl::Status SnapshotWriter::Finish() {
  if (finished_) return absl::FailedPreconditionError("snapshot is already finished");
  if (!error_.ok()) return error_;

  // Each step must succeed before the next: the rename publishes the file, so
  // the data must be durable first, and the directory sync makes the rename
  // itself survive a crash.
  error_ = Compress({}, /*end=*/true);
  if (error_.ok()) {
    std::string trailer;
    PutFixed64(&trailer, bytes_in_);
    PutFixed32(&trailer, crc_);
    trailer.append(kTrailerMagic);
    error_ = file_->Append(trailer);
  }
  if (error_.ok()) error_ = file_->Sync();
  if (error_.ok()) error_ = file_->Close();
  if (error_.ok()) error_ = fs_->RenameFile(tmp_path_, final_path_);
  if (!error_.ok()) return error_;

  finished_ = true;
  if (absl::Status s = fs_->SyncDir(dir_); !s.ok()) {
    error_ = s;
    return s;
  }
  KOLE_VLOG(2, "Snapshot written", "path", final_path_, "coveredSequence", covered_sequence_,
            "bytes", bytes_in_);
  return absl::OkStatus();
}

// Owns a zstd decompression context.
class SnapshotReader::Decompressor {
 public:
  Decompressor() : dctx_(ZSTD_createDCtx()) {}
  ~Decompressor() { ZSTD_freeDCtx(dctx_); }
  ZSTD_DCtx* get() { return dctx_; }

 private:
  ZSTD_DCtx* const dctx_;
};

SnapshotReader::SnapshotReader(std::string path, std::unique_ptr<SequentialFile> file,
                               uint64_t compressed, uint64_t covered_sequence)
    : path_(std::move(path)),
      file_(std::move(file)),
      compressed_left_(compressed),
      covered_sequence_(covered_sequence),
      decompressor_(std::make_unique<Decompressor>()) {}

SnapshotReader::~SnapshotReader() = default;

absl::StatusOr<std::unique_ptr<SnapshotReader>> SnapshotReader::Open(FileSystem* fs,
                                                                     const std::string& path) {
  absl::StatusOr<uint64_t> size = fs->GetFileSize(path);
  if (!size.ok()) return size.status();
  if (*size < kHeaderSize + kTrailerSize) {
    return Corrupt(path, fmt::format("{} bytes is too short (torn or truncated write)", *size));
  }

  // The trailer first: a torn write is caught before any decompression.
  absl::StatusOr<std::unique_ptr<SequentialFile>> tail = fs->NewSequentialFile(path);
  if (!tail.ok()) return tail.status();
  std::string trailer;
  if (absl::Status s = (*tail)->Skip(*size - kTrailerSize); !s.ok()) return s;
  if (absl::Status s = (*tail)->Read(kTrailerSize, &trailer); !s.ok()) return s;
  if (trailer.size() != kTrailerSize || trailer.substr(12) != kTrailerMagic) {
    return Corrupt(path, "the trailer is missing (torn or truncated write)");
  }

  absl::StatusOr<std::unique_ptr<SequentialFile>> file = fs->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  std::string header;
  if (absl::Status s = (*file)->Read(kHeaderSize, &header); !s.ok()) return s;
  if (header.size() != kHeaderSize || !header.starts_with(kHeaderMagic)) {
    return Corrupt(path, "bad magic number in the header");
  }
  if (GetFixed32(header.data() + 20) != Crc32(0, std::string_view(header).substr(0, 20))) {
    return Corrupt(path, "header checksum mismatch");
  }
  uint32_t version = GetFixed32(header.data() + 8);
  if (version != kSnapshotFormatVersion) {
    return Corrupt(path, fmt::format("format version {} is not supported (expected {})", version,
                                     kSnapshotFormatVersion));
  }
  uint64_t covered = GetFixed64(header.data() + 12);
  std::string_view name(path);
  name.remove_prefix(name.rfind('/') == std::string_view::npos ? 0 : name.rfind('/') + 1);
  if (std::optional<uint64_t> named = ParseSnapshotFileName(name); named && *named != covered) {
    return Corrupt(path,
                   fmt::format("header covers sequence {}, the file name {}", covered, *named));
  }

  std::unique_ptr<SnapshotReader> reader(
      new SnapshotReader(path, std::move(*file), *size - kHeaderSize - kTrailerSize, covered));
  if (reader->decompressor_->get() == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a zstd context");
  }
  reader->expected_length_ = GetFixed64(trailer.data());
  reader->expected_crc_ = GetFixed32(trailer.data() + 8);
  return reader;
}

absl::Status SnapshotReader::Read(size_t n, std::string* out) {
  out->clear();
  if (!error_.ok()) return error_;
  if (verified_) return absl::OkStatus();

  out->resize(n);
  ZSTD_outBuffer dst{out->data(), n, 0};
  while (dst.pos < dst.size && !frame_done_) {
    if (in_pos_ == in_buffer_.size() && compressed_left_ > 0) {
      size_t want = std::min<uint64_t>(compressed_left_, ZSTD_DStreamInSize());
      if (absl::Status s = file_->Read(want, &in_buffer_); !s.ok()) return error_ = s;
      if (in_buffer_.empty()) return error_ = Corrupt(path_, "file ended early");
      compressed_left_ -= in_buffer_.size();
      in_pos_ = 0;
    }
    ZSTD_inBuffer src{in_buffer_.data(), in_buffer_.size(), in_pos_};
    const size_t out_before = dst.pos;
    size_t rc = ZSTD_decompressStream(decompressor_->get(), &dst, &src);
    if (ZSTD_isError(rc)) {
      return error_ = Corrupt(path_, fmt::format("compressed payload: {}", ZSTD_getErrorName(rc)));
    }
    // With input exhausted zstd may still flush buffered output; once it
    // makes no progress the stream has ended (CheckTrailer tells if too early).
    const bool progress = src.pos != in_pos_ || dst.pos != out_before;
    in_pos_ = src.pos;
    if (rc == 0) frame_done_ = true;
    if (!progress) break;
  }
  out->resize(dst.pos);
  crc_ = Crc32(crc_, *out);
  bytes_out_ += out->size();

  // A short read is the end of the payload: check it all before saying so.
  if (out->size() < n) {
    if (absl::Status s = CheckTrailer(); !s.ok()) {
      out->clear();
      return error_ = s;
    }
    verified_ = true;
  }
  return absl::OkStatus();
}

absl::Status SnapshotReader::CheckTrailer() {
  if (!frame_done_) return Corrupt(path_, "the compressed payload is truncated");
  if (in_pos_ != in_buffer_.size() || compressed_left_ != 0) {
    return Corrupt(path_, "unexpected bytes after the compressed payload");
  }
  if (bytes_out_ != expected_length_) {
    return Corrupt(path_, fmt::format("payload is {} bytes, the trailer says {}", bytes_out_,
                                      expected_length_));
  }
  if (crc_ != expected_crc_) return Corrupt(path_, "payload checksum mismatch");
  return absl::OkStatus();
}

absl::Status SnapshotReader::Verify() {
  std::string chunk;
  constexpr size_t kChunk = 1 << 20;
  do {
    if (absl::Status s = Read(kChunk, &chunk); !s.ok()) return s;
  } while (chunk.size() == kChunk);
  return absl::OkStatus();
}

absl::StatusOr<std::string> SnapshotReader::ReadAll() {
  std::string all;
  std::string chunk;
  constexpr size_t kChunk = 1 << 20;
  do {
    if (absl::Status s = Read(kChunk, &chunk); !s.ok()) return s;
    all += chunk;
  } while (chunk.size() == kChunk);
  return all;
}

absl::Status VerifySnapshot(FileSystem* fs, const std::string& path) {
  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader = SnapshotReader::Open(fs, path);
  if (!reader.ok()) return reader.status();
  return (*reader)->Verify();
}

absl::StatusOr<std::vector<SnapshotInfo>> FindSnapshots(FileSystem* fs, const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<SnapshotInfo> snapshots;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> covered = ParseSnapshotFileName(name)) {
      snapshots.push_back({JoinPath(dir, name), *covered});
    }
  }
  std::sort(snapshots.begin(), snapshots.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return a.covered_sequence > b.covered_sequence;
  });
  return snapshots;
}

absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(FileSystem* fs, const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (name.starts_with(kPrefix) && name.ends_with(kTmpSuffix)) {
      // An interrupted write; it was never renamed, so nothing refers to it.
      std::string path = JoinPath(dir, name);
      KOLE_LOG(Info, "Removing unfinished snapshot", "path", path);
      if (absl::Status s = fs->RemoveFile(path); !s.ok()) return s;
    }
  }
  return FindSnapshots(fs, dir);
}

absl::StatusOr<uint64_t> PruneSnapshots(FileSystem* fs, const std::string& dir, size_t keep) {
  if (keep == 0) return absl::InvalidArgumentError("PruneSnapshots must keep at least one");
  absl::StatusOr<std::vector<SnapshotInfo>> snapshots = ListSnapshots(fs, dir);
  if (!snapshots.ok()) return snapshots.status();
  if (snapshots->empty()) return 0;

  for (size_t i = keep; i < snapshots->size(); ++i) {
    if (absl::Status s = fs->RemoveFile((*snapshots)[i].path); !s.ok()) return s;
    KOLE_VLOG(2, "Removed old snapshot", "path", (*snapshots)[i].path);
  }
  if (snapshots->size() > keep) {
    if (absl::Status s = fs->SyncDir(dir); !s.ok()) return s;
  }
  return (*snapshots)[std::min(keep, snapshots->size()) - 1].covered_sequence;
}

}  // namespace kole::storage
