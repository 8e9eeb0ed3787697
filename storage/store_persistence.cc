#include "storage/store_persistence.h"

#include <absl/cleanup/cleanup.h>
#include <fmt/format.h>
#include <zlib.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "storage/node_store.h"
#include "storage/snapshot_file.h"
#include "storage/wal_reader.h"

namespace kole::storage {
namespace {

constexpr uint32_t kSnapshotPayloadVersion = 1;

enum class Section : uint8_t {
  kHeader = 1,
  kBlob = 2,
  kTombstone = 3,
  kNode = 4,
  kTrailer = 5,
};

// Snapshot sections are written in batches this large.
constexpr size_t kSnapshotBatch = 4096;

// No section a store writes comes near this; a larger length means damage.
constexpr uint32_t kMaxSnapshotSection = 64 << 20;

// Versions grow by at most a few million a day; anything near the top of the
// range was not written by a healthy store and would wrap the counter.
constexpr uint64_t kMaxPlausibleVersion = uint64_t{1} << 62;

absl::Status ImplausibleVersion(std::string_view where, uint64_t rv) {
  return absl::DataLossError(fmt::format(
      "{} holds resourceVersion {}, beyond any a store writes; the data directory is damaged",
      where, rv));
}

template <typename T>
void Put(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

template <typename T>
bool Get(std::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

void PutSection(std::string& out, Section tag, std::string_view body) {
  Put(out, static_cast<uint8_t>(tag));
  Put(out, static_cast<uint32_t>(body.size()));
  out.append(body);
}

absl::Status Malformed(std::string_view what, uint64_t sequence) {
  return absl::DataLossError(fmt::format(
      "log record {} ({}) is malformed; the log does not match this build", sequence, what));
}

absl::Status ReadOnlyError() {
  return absl::FailedPreconditionError("the store is open read-only; it takes no writes");
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

StorePersistence::StorePersistence(const StoreOptions& options, std::unique_ptr<DataDir> dir)
    : options_(options),
      fs_(options.file_system != nullptr ? options.file_system : DefaultFileSystem()),
      dir_(std::move(dir)) {}

StorePersistence::~StorePersistence() {
  if (wal_ != nullptr) {
    absl::Status closed = wal_->Close();
    if (!closed.ok()) KOLE_LOG(Error, "Closing the write-ahead log failed", "err", closed);
  }
}

absl::StatusOr<std::unique_ptr<StorePersistence>> StorePersistence::OpenAndRecover(
    const StoreOptions& options, NodeStore* store) {
  FileSystem* fs = options.file_system != nullptr ? options.file_system : DefaultFileSystem();
  absl::StatusOr<std::unique_ptr<DataDir>> dir = options.read_only
                                                     ? DataDir::OpenReadOnly(fs, options.data_dir)
                                                     : DataDir::Open(fs, options.data_dir);
  if (!dir.ok()) return dir.status();

  std::unique_ptr<StorePersistence> persistence(new StorePersistence(options, std::move(*dir)));
  absl::Status recovered = persistence->Recover(store);
  if (!recovered.ok()) return recovered;
  return persistence;
}

absl::StatusOr<UidKey> StorePersistence::LoadOrCreateUidKey() {
  // One line: "kole-uid-key-v1 <16 hex> <16 hex> <8 hex crc32 of the key text>".
  constexpr std::string_view kTag = "kole-uid-key-v1 ";
  std::string path = JoinPath(dir_->path(), kDataDirUidKeyName);
  auto checksum = [](std::string_view text) {
    return static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size())));
  };
  if (fs_->FileExists(path)) {
    absl::StatusOr<std::string> text = fs_->ReadFileToString(path);
    if (!text.ok()) return text.status();
    std::string_view line = *text;
    auto damaged = [&] {
      return absl::DataLossError(fmt::format(
          "{} is damaged; it holds the key node UIDs are derived from and cannot be rebuilt: "
          "restore it from the backup of this data directory",
          path));
    };
    // Tag, 16 + 1 + 16 key digits, a space, 8 checksum digits, a newline.
    if (line.size() != kTag.size() + 33 + 1 + 8 + 1 || !line.starts_with(kTag) ||
        line.back() != '\n') {
      return damaged();
    }
    std::string_view key_text = line.substr(kTag.size(), 33);
    uint64_t a = 0, b = 0;
    uint32_t crc = 0;
    auto hex = [](std::string_view digits, auto* out) {
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), *out, 16);
      return error == std::errc() && end == digits.data() + digits.size();
    };
    if (!hex(key_text.substr(0, 16), &a) || key_text[16] != ' ' ||
        !hex(key_text.substr(17, 16), &b) || line[kTag.size() + 33] != ' ' ||
        !hex(line.substr(kTag.size() + 34, 8), &crc) || crc != checksum(key_text)) {
      return damaged();
    }
    return UidKey(a, b);
  }

  // A key may only be born with the data directory: a directory that holds a
  // log or snapshots without one has lost it, and a new key would silently
  // change every UID.
  for (const std::string& dir : {dir_->wal_dir(), dir_->snapshot_dir()}) {
    if (dir_->read_only() && !fs_->FileExists(dir)) continue;
    absl::StatusOr<std::vector<std::string>> files = fs_->ListDir(dir);
    if (!files.ok()) return files.status();
    if (!files->empty()) {
      return absl::DataLossError(fmt::format(
          "{} is missing but {} holds data; node UIDs derive from that key: restore it from "
          "the backup of this data directory",
          path, dir));
    }
  }

  UidKey key = UidKey::Random();
  // Read-only, an empty directory stays empty; the key then names nothing.
  if (dir_->read_only()) return key;
  std::string key_text = fmt::format("{:016x} {:016x}", key.a(), key.b());
  std::string tmp = path + ".tmp";
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_->NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  absl::Status status =
      (*file)->Append(fmt::format("{}{} {:08x}\n", kTag, key_text, checksum(key_text)));
  if (status.ok()) status = (*file)->Sync();
  if (status.ok()) status = (*file)->Close();
  if (status.ok()) status = fs_->RenameFile(tmp, path);
  if (status.ok()) status = fs_->SyncDir(dir_->path());
  if (!status.ok()) return status;
  return key;
}

absl::Status StorePersistence::Recover(NodeStore* store) {
  auto start = std::chrono::steady_clock::now();
  absl::MutexLock lock(&store->mu_);

  absl::StatusOr<UidKey> uid_key = LoadOrCreateUidKey();
  if (!uid_key.ok()) return uid_key.status();
  store->codec_.set_uid_key(*uid_key);

  // The newest snapshot that verifies; a corrupt one falls back to the one
  // before it, with the longer log the pruning rule kept for exactly this.
  // Read-only, a .tmp file may be a snapshot being written: leave it be.
  const bool read_only = dir_->read_only();
  uint64_t replay_from = 1;
  absl::StatusOr<std::vector<SnapshotInfo>> snapshots = std::vector<SnapshotInfo>{};
  if (!read_only) {
    snapshots = ListSnapshots(fs_, dir_->snapshot_dir());
  } else if (fs_->FileExists(dir_->snapshot_dir())) {
    snapshots = FindSnapshots(fs_, dir_->snapshot_dir());
  }
  if (!snapshots.ok()) return snapshots.status();
  std::string loaded_from;
  for (const SnapshotInfo& snapshot : *snapshots) {
    absl::Status verified = VerifySnapshot(fs_, snapshot.path);
    if (!verified.ok()) {
      KOLE_LOG(Error, "Snapshot is corrupt; trying an older one", "path", snapshot.path, "err",
               verified);
      ++recovery_.corrupt_snapshots;
      continue;
    }
    absl::Status loaded = LoadSnapshot(store, snapshot.path, &replay_from);
    if (!loaded.ok()) return loaded;
    loaded_from = snapshot.path;
    recovery_.snapshot_path = snapshot.path;
    recovery_.snapshot_sequence = snapshot.covered_sequence;
    break;
  }
  if (loaded_from.empty() && !snapshots->empty()) {
    KOLE_LOG(Warning, "No snapshot is usable; recovering from the log alone");
  }
  size_t snapshot_nodes = store->records_.size();
  recovery_.snapshot_nodes = snapshot_nodes;
  uint64_t content_rv = store->rv_;

  // Replay the log after the snapshot.
  auto apply = [&](uint64_t sequence, uint8_t type, std::string_view payload) -> absl::Status {
    switch (static_cast<LogRecordType>(type)) {
      case LogRecordType::kBlob: {
        uint32_t id = 0;
        if (!Get(payload, &id)) return Malformed("blob", sequence);
        if (id < store->blobs_.size()) {
          // Logged after the snapshot started but already in it.
          if (store->blobs_.Get(id) != payload) {
            return absl::DataLossError(
                fmt::format("log record {} redefines interned value {} differently", sequence, id));
          }
          return absl::OkStatus();
        }
        return store->blobs_.Define(id, payload);
      }
      case LogRecordType::kPutNode: {
        uint64_t rv = 0;
        NodeRecord record;
        if (!Get(payload, &rv) || !Get(payload, &record)) return Malformed("node", sequence);
        std::string_view name = payload;
        if (rv > kMaxPlausibleVersion) {
          return ImplausibleVersion(fmt::format("log record {}", sequence), rv);
        }
        if (name.empty() || name.size() > ByteArena::kMaxStringBytes ||
            !store->codec_.ReferencesAreValid(record)) {
          return Malformed("node", sequence);
        }
        uint32_t slot = store->FindLocked(name);
        if (slot == NodeStore::kNoSlot) {
          slot = store->AllocateSlotLocked(name);
          record.name = store->records_[slot].name;
          store->records_[slot] = record;
          store->by_name_.insert(slot);
        } else {
          record.name = store->records_[slot].name;
          store->records_[slot] = record;
        }
        store->records_[slot].resource_version = rv;
        store->records_[slot].flags &= ~kDeleted;
        store->rv_ = std::max(store->rv_, rv);
        content_rv = std::max(content_rv, rv);
        return absl::OkStatus();
      }
      case LogRecordType::kDeleteNode: {
        uint64_t rv = 0;
        if (!Get(payload, &rv)) return Malformed("delete", sequence);
        if (rv > kMaxPlausibleVersion) {
          return ImplausibleVersion(fmt::format("log record {}", sequence), rv);
        }
        uint32_t slot = store->FindLocked(payload);
        if (slot != NodeStore::kNoSlot) {
          store->by_name_.erase(slot);
          store->records_[slot].flags |= kDeleted;
        }
        store->rv_ = std::max(store->rv_, rv);
        content_rv = std::max(content_rv, rv);
        return absl::OkStatus();
      }
      case LogRecordType::kTombstone: {
        uint8_t set = 0;
        int64_t time = 0;
        if (!Get(payload, &set) || !Get(payload, &time)) return Malformed("tombstone", sequence);
        if (set) {
          store->tombstones_[std::string(payload)] = time;
        } else {
          store->tombstones_.erase(std::string(payload));
        }
        return absl::OkStatus();
      }
      case LogRecordType::kReserveRv: {
        uint64_t upto = 0;
        if (!Get(payload, &upto)) return Malformed("reservation", sequence);
        if (upto > kMaxPlausibleVersion) {
          return ImplausibleVersion(fmt::format("log record {}", sequence), upto);
        }
        store->rv_reserved_ = std::max(store->rv_reserved_, upto);
        return absl::OkStatus();
      }
    }
    return absl::DataLossError(
        fmt::format("log record {} has unknown type {}; was it written by a newer kole-apiserver?",
                    sequence, type));
  };
  ReplayOptions replay_options;
  replay_options.truncate_at_corruption = options_.wal_truncate_at_corruption;
  replay_options.read_only = read_only;
  absl::StatusOr<ReplayResult> replayed = ReplayResult{};
  if (!read_only || fs_->FileExists(dir_->wal_dir())) {
    replayed = ReplayWal(fs_, dir_->wal_dir(), replay_from, apply, replay_options);
  }
  if (!replayed.ok()) return replayed.status();
  recovery_.log_records_replayed = replayed->records_replayed;
  recovery_.last_log_sequence = replayed->last_sequence;
  recovery_.torn_tail_bytes = replayed->torn_tail_repaired ? replayed->bytes_discarded : 0;
  recovery_.content_resource_version = content_rv;

  // Versions up to the reservation may have been seen by clients before a
  // crash took their log records: never hand them out again.
  store->rv_ = std::max(store->rv_, store->rv_reserved_);
  store->rv_reserved_ = store->rv_;

  if (!read_only) {
    WalWriterOptions wal_options;
    absl::StatusOr<std::unique_ptr<WalWriter>> wal =
        WalWriter::Open(fs_, dir_->wal_dir(), replayed->next_sequence, wal_options);
    if (!wal.ok()) return wal.status();
    wal_ = std::move(*wal);
  }

  KOLE_LOG(Info, read_only ? "Store read (read-only)" : "Store recovered", "dataDir",
           options_.data_dir, "snapshot", loaded_from.empty() ? std::string("none") : loaded_from,
           "snapshotNodes", snapshot_nodes, "logRecords", replayed->records_replayed,
           "resourceVersion", store->rv_, "seconds", SecondsSince(start));
  return absl::OkStatus();
}

absl::Status StorePersistence::LoadSnapshot(NodeStore* store, const std::string& path,
                                            uint64_t* replay_from) {
  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader = SnapshotReader::Open(fs_, path);
  if (!reader.ok()) return reader.status();

  std::string buffer;
  auto read_exact = [&](size_t n) -> absl::Status {
    absl::Status status = (*reader)->Read(n, &buffer);
    if (!status.ok()) return status;
    if (buffer.size() != n) {
      return absl::DataLossError(fmt::format("snapshot {} ends early", path));
    }
    return absl::OkStatus();
  };

  uint64_t blobs = 0, tombstones = 0, nodes = 0;
  bool saw_header = false;
  while (true) {
    absl::Status status = read_exact(5);
    if (!status.ok()) return status;
    std::string_view frame = buffer;
    uint8_t tag = 0;
    uint32_t length = 0;
    Get(frame, &tag);
    Get(frame, &length);
    if (length > kMaxSnapshotSection) {
      return absl::DataLossError(
          fmt::format("snapshot {} has a section of {} bytes; it is damaged", path, length));
    }
    status = read_exact(length);
    if (!status.ok()) return status;
    std::string_view body = buffer;

    switch (static_cast<Section>(tag)) {
      case Section::kHeader: {
        uint32_t version = 0;
        uint64_t rv = 0, reserved = 0, wal_from = 0;
        if (!Get(body, &version) || !Get(body, &rv) || !Get(body, &reserved) ||
            !Get(body, &wal_from)) {
          return absl::DataLossError(fmt::format("snapshot {} has a short header", path));
        }
        if (version != kSnapshotPayloadVersion) {
          return absl::FailedPreconditionError(
              fmt::format("snapshot {} has payload format {}; this build reads format {}", path,
                          version, kSnapshotPayloadVersion));
        }
        if (rv > kMaxPlausibleVersion || reserved > kMaxPlausibleVersion) {
          return ImplausibleVersion(fmt::format("snapshot {}", path), std::max(rv, reserved));
        }
        store->rv_ = rv;
        store->rv_reserved_ = reserved;
        *replay_from = wal_from;
        saw_header = true;
        break;
      }
      case Section::kBlob: {
        uint32_t id = 0;
        if (!Get(body, &id)) return absl::DataLossError("snapshot blob section is short");
        absl::Status defined = store->blobs_.Define(id, body);
        if (!defined.ok()) return defined;
        ++blobs;
        break;
      }
      case Section::kTombstone: {
        int64_t time = 0;
        if (!Get(body, &time)) return absl::DataLossError("snapshot tombstone section is short");
        store->tombstones_[std::string(body)] = time;
        ++tombstones;
        break;
      }
      case Section::kNode: {
        NodeRecord record;
        if (!Get(body, &record)) return absl::DataLossError("snapshot node section is short");
        if (body.empty() || body.size() > ByteArena::kMaxStringBytes ||
            record.resource_version > kMaxPlausibleVersion ||
            !store->codec_.ReferencesAreValid(record)) {
          return absl::DataLossError(
              fmt::format("snapshot {} holds a node record that refers to missing values", path));
        }
        uint32_t slot = store->AllocateSlotLocked(body);
        record.name = store->records_[slot].name;
        store->records_[slot] = record;
        store->by_name_.insert(slot);
        ++nodes;
        break;
      }
      case Section::kTrailer: {
        uint64_t want_blobs = 0, want_tombstones = 0, want_nodes = 0;
        if (!saw_header || !Get(body, &want_blobs) || !Get(body, &want_tombstones) ||
            !Get(body, &want_nodes) || want_blobs != blobs || want_tombstones != tombstones ||
            want_nodes != nodes) {
          return absl::DataLossError(
              fmt::format("snapshot {} does not hold what its trailer counts", path));
        }
        return absl::OkStatus();
      }
      default:
        return absl::DataLossError(fmt::format("snapshot {} has unknown section {}", path, tag));
    }
  }
}

absl::StatusOr<uint64_t> StorePersistence::Append(LogRecordType type, std::string_view payload) {
  if (wal_ == nullptr) return ReadOnlyError();
  absl::StatusOr<uint64_t> sequence = wal_->Append(static_cast<uint8_t>(type), payload);
  if (sequence.ok()) log_bytes_since_snapshot_ += payload.size() + 16;
  return sequence;
}

absl::StatusOr<uint64_t> StorePersistence::LogBlob(uint32_t id, std::string_view blob) {
  std::string payload;
  Put(payload, id);
  payload.append(blob);
  return Append(LogRecordType::kBlob, payload);
}

absl::StatusOr<uint64_t> StorePersistence::LogPut(uint64_t rv, std::string_view name,
                                                  const NodeRecord& record) {
  std::string payload;
  payload.reserve(8 + sizeof(NodeRecord) + name.size());
  Put(payload, rv);
  NodeRecord stored = record;
  // Live fields and the arena offset mean nothing after a restart.
  stored.name = 0;
  stored.live_sequence = 0;
  stored.last_seen_s = 0;
  Put(payload, stored);
  payload.append(name);
  return Append(LogRecordType::kPutNode, payload);
}

absl::StatusOr<uint64_t> StorePersistence::LogDelete(uint64_t rv, std::string_view name) {
  std::string payload;
  Put(payload, rv);
  payload.append(name);
  return Append(LogRecordType::kDeleteNode, payload);
}

absl::StatusOr<uint64_t> StorePersistence::LogTombstone(std::string_view name, bool set,
                                                        int64_t time) {
  std::string payload;
  Put(payload, static_cast<uint8_t>(set ? 1 : 0));
  Put(payload, time);
  payload.append(name);
  return Append(LogRecordType::kTombstone, payload);
}

absl::StatusOr<uint64_t> StorePersistence::LogReserve(uint64_t upto) {
  std::string payload;
  Put(payload, upto);
  return Append(LogRecordType::kReserveRv, payload);
}

absl::Status StorePersistence::WaitDurable(uint64_t token) {
  if (token == 0 || wal_ == nullptr) return absl::OkStatus();
  return wal_->WaitDurable(token);
}

// A read-only store has nothing to sync.
absl::Status StorePersistence::Sync() { return wal_ != nullptr ? wal_->Sync() : absl::OkStatus(); }

absl::Status StorePersistence::health() const {
  return wal_ != nullptr ? wal_->status() : ReadOnlyError();
}

uint64_t StorePersistence::last_token() const {
  return wal_ != nullptr ? wal_->last_sequence() : 0;
}

uint64_t StorePersistence::durable_token() const {
  return wal_ != nullptr ? wal_->durable_sequence() : 0;
}

bool StorePersistence::SnapshotDue() const {
  return wal_ != nullptr && log_bytes_since_snapshot_ >= options_.snapshot_after_log_bytes;
}

absl::Status StorePersistence::WriteSnapshot(NodeStore* store) {
  auto start = std::chrono::steady_clock::now();

  // Fix the snapshot's version and start a new log segment at the same
  // instant, so the snapshot plus the segments after it hold everything.
  uint64_t snapshot_rv = 0, reserved = 0, wal_from = 0;
  uint32_t blob_count = 0;
  std::vector<std::pair<std::string, int64_t>> tombstones;
  {
    absl::MutexLock lock(&store->mu_);
    absl::Status writable = store->CheckWritableLocked();
    if (!writable.ok()) return writable;
    // Only marks where the new segment starts: fsyncs here would stall every
    // writer behind the store's lock.
    absl::StatusOr<uint64_t> rotated = wal_->StartSegment();
    if (!rotated.ok()) return rotated.status();
    wal_from = *rotated;
    snapshot_rv = store->rv_;
    reserved = store->rv_reserved_;
    blob_count = store->blobs_.size();
    tombstones.assign(store->tombstones_.begin(), store->tombstones_.end());
    // Keep the history the snapshot needs to see every node at snapshot_rv.
    store->snapshot_pin_rv_ = snapshot_rv;
    log_bytes_since_snapshot_ = 0;
  }
  absl::Cleanup unpin = [store] {
    absl::MutexLock lock(&store->mu_);
    store->snapshot_pin_rv_ = UINT64_MAX;
  };

  // Nothing logged since the newest snapshot: it already holds this state.
  absl::StatusOr<std::vector<SnapshotInfo>> existing = ListSnapshots(fs_, dir_->snapshot_dir());
  if (!existing.ok()) return existing.status();
  if (!existing->empty() && existing->front().covered_sequence == wal_from - 1) {
    return absl::OkStatus();
  }
  absl::Status synced = wal_->Sync();
  if (!synced.ok()) return synced;

  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer =
      SnapshotWriter::Create(fs_, dir_->snapshot_dir(), wal_from - 1);
  if (!writer.ok()) return writer.status();

  std::string out;
  std::string body;
  Put(body, kSnapshotPayloadVersion);
  Put(body, snapshot_rv);
  Put(body, reserved);
  Put(body, wal_from);
  PutSection(out, Section::kHeader, body);

  // Blobs and names are append-only: what existed at the snapshot's instant
  // can be read without the lock.
  for (uint32_t id = 1; id < blob_count; ++id) {
    body.clear();
    Put(body, id);
    body.append(store->blobs_.Get(id));
    PutSection(out, Section::kBlob, body);
    if (out.size() >= (1 << 20)) {
      absl::Status appended = (*writer)->Append(out);
      if (!appended.ok()) return appended;
      out.clear();
    }
  }
  for (const auto& [name, time] : tombstones) {
    body.clear();
    Put(body, time);
    body.append(name);
    PutSection(out, Section::kTombstone, body);
  }

  // Nodes as they were at snapshot_rv, a batch per lock hold, in name
  // order so that restoring builds the name index by appending.
  uint64_t nodes = 0;
  std::vector<std::pair<NodeRecord, std::string_view>> batch;
  NodeStore::NameKey resume{"", 0};
  std::string resume_name;
  bool started = false;
  for (bool more = true; more;) {
    batch.clear();
    {
      absl::ReaderMutexLock lock(&store->mu_);
      auto it = started ? store->ordered_.upper_bound(resume) : store->ordered_.begin();
      for (size_t n = 0; it != store->ordered_.end() && n < kSnapshotBatch; ++it, ++n) {
        const NodeRecord& current = store->records_[*it];
        std::string_view name = store->names_.Get(current.name);
        resume = {name, *it};
        started = true;
        std::optional<NodeRecord> state = store->change_log_.StateAt(current, snapshot_rv);
        if (state.has_value()) batch.emplace_back(*state, name);
      }
      more = it != store->ordered_.end();
      // The names live in the append-only arena; only the key is copied.
      resume_name.assign(resume.name);
      resume.name = resume_name;
    }
    for (auto& [record, name] : batch) {
      body.clear();
      record.name = 0;
      record.live_sequence = 0;
      record.last_seen_s = 0;
      Put(body, record);
      body.append(name);
      PutSection(out, Section::kNode, body);
      ++nodes;
    }
    absl::Status appended = (*writer)->Append(out);
    if (!appended.ok()) return appended;
    out.clear();
  }

  body.clear();
  Put(body, static_cast<uint64_t>(blob_count - 1));
  Put(body, static_cast<uint64_t>(tombstones.size()));
  Put(body, nodes);
  PutSection(out, Section::kTrailer, body);
  absl::Status finished = (*writer)->Append(out);
  if (finished.ok()) finished = (*writer)->Finish();
  if (!finished.ok()) return finished;

  // Old snapshots go, and the log back to the oldest one kept stays.
  absl::StatusOr<uint64_t> oldest_covered =
      PruneSnapshots(fs_, dir_->snapshot_dir(), options_.snapshots_to_keep);
  if (!oldest_covered.ok()) return oldest_covered.status();
  absl::Status removed = wal_->RemoveSegmentsBefore(*oldest_covered + 1);
  if (!removed.ok()) return removed;

  KOLE_VLOG(2, "Snapshot written", "nodes", nodes, "resourceVersion", snapshot_rv, "seconds",
            SecondsSince(start));
  return absl::OkStatus();
}

}  // namespace kole::storage
