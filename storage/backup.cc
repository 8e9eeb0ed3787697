#include "storage/backup.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "common/log.h"
#include "storage/data_dir.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"
#include "storage/snapshot_file.h"
#include "storage/wal_reader.h"

namespace kole::storage {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kCopyChunk = 1 << 20;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// True when `dir` is missing or has no entries.
absl::StatusOr<bool> IsEmptyDir(FileSystem* fs, const std::string& dir) {
  if (!fs->FileExists(dir)) return true;
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  return names->empty();
}

// Logs how far a long copy has come, at most once per interval.
class Progress {
 public:
  Progress(std::string_view what, double interval_seconds)
      : what_(what), interval_(interval_seconds), start_(SteadyClock::now()), last_(start_) {}

  void Add(uint64_t bytes, const std::string& file) {
    bytes_ += bytes;
    auto now = SteadyClock::now();
    if (std::chrono::duration<double>(now - last_).count() < interval_) return;
    last_ = now;
    KOLE_LOG(Info, what_, "file", file, "bytes", bytes_, "seconds", SecondsSince(start_));
  }

  uint64_t bytes() const { return bytes_; }

 private:
  const std::string what_;
  const double interval_;
  const SteadyClock::time_point start_;
  SteadyClock::time_point last_;
  uint64_t bytes_ = 0;
};

// Appends what `source` holds from `offset` to its current end to `out`.
// Returns the bytes appended; NotFound if the source is gone.
absl::StatusOr<uint64_t> AppendFileFrom(FileSystem* fs, const std::string& source, uint64_t offset,
                                        WritableFile* out, Progress* progress) {
  absl::StatusOr<std::unique_ptr<SequentialFile>> in = fs->NewSequentialFile(source);
  if (!in.ok()) return in.status();
  if (absl::Status s = (*in)->Skip(offset); !s.ok()) return s;
  uint64_t copied = 0;
  std::string chunk;
  do {
    if (absl::Status s = (*in)->Read(kCopyChunk, &chunk); !s.ok()) return s;
    if (absl::Status s = out->Append(chunk); !s.ok()) return s;
    copied += chunk.size();
    progress->Add(chunk.size(), source);
  } while (chunk.size() == kCopyChunk);
  return copied;
}

// What a data directory recovers to, read-only.
struct Recovered {
  uint64_t nodes = 0;
  uint64_t tombstones = 0;
  uint64_t node_resource_version = 0;
  uint64_t torn_tail_bytes = 0;
  uint64_t pods = 0;
  uint64_t pod_resource_version = 0;
};

absl::StatusOr<Recovered> RecoverReadOnly(FileSystem* fs, const std::string& dir) {
  StoreOptions store_options;
  store_options.data_dir = dir;
  store_options.file_system = fs;
  store_options.background_maintenance = false;
  store_options.read_only = true;
  absl::StatusOr<std::unique_ptr<NodeStore>> nodes = NodeStore::Open(store_options);
  if (!nodes.ok()) return nodes.status();
  Recovered recovered;
  StoreStats stats = (*nodes)->Stats();
  RecoveryReport report = (*nodes)->recovery();
  recovered.nodes = stats.nodes;
  recovered.tombstones = stats.tombstones;
  recovered.node_resource_version = report.content_resource_version;
  recovered.torn_tail_bytes = report.torn_tail_bytes;

  PodStoreOptions pod_options;
  pod_options.data_dir = dir;
  pod_options.file_system = fs;
  pod_options.read_only = true;
  absl::StatusOr<std::unique_ptr<PodStore>> pods = PodStore::Open(pod_options);
  if (!pods.ok()) return pods.status();
  recovered.pods = (*pods)->size();
  recovered.pod_resource_version = (*pods)->resource_version();
  return recovered;
}

// The copy of one data directory into a backup directory.
class BackupCopier {
 public:
  BackupCopier(FileSystem* fs, std::string source, std::string target, const BackupOptions& options)
      : fs_(fs),
        source_(std::move(source)),
        target_(std::move(target)),
        options_(options),
        progress_("Backup progress", options.progress_interval_seconds) {}

  absl::StatusOr<BackupManifest> Run() {
    auto start = SteadyClock::now();
    if (absl::Status s = Prepare(); !s.ok()) return s;

    // The uid-key never changes once written.
    std::string uid_key = JoinPath(source_, kDataDirUidKeyName);
    if (fs_->FileExists(uid_key)) {
      if (absl::Status s = CopyWhole(std::string(kDataDirUidKeyName)); !s.ok()) return s;
    }
    if (absl::Status s = CopyNodeStore(); !s.ok()) return s;
    std::string pod_log = JoinPath(kDataDirPodsName, kPodLogName);
    if (fs_->FileExists(JoinPath(source_, pod_log))) {
      if (absl::Status s = CopyWhole(pod_log); !s.ok()) return s;
    }
    if (absl::Status s = SyncAll(); !s.ok()) return s;

    BackupManifest manifest;
    manifest.created_at = UtcNowRfc3339();
    std::error_code error;
    std::filesystem::path absolute = std::filesystem::absolute(source_, error);
    manifest.source_data_dir = error ? source_ : absolute.lexically_normal().string();
    manifest.source_in_use = in_use_;
    if (absl::Status s = Check(&manifest); !s.ok()) return s;
    if (absl::Status s = Checksum(&manifest); !s.ok()) return s;
    manifest.seconds = SecondsSince(start);
    if (absl::Status s = WriteManifest(manifest); !s.ok()) return s;
    return manifest;
  }

 private:
  struct Copy {
    std::unique_ptr<WritableFile> file;
    uint64_t bytes = 0;
  };

  absl::Status Prepare() {
    if (!fs_->FileExists(source_)) {
      return absl::NotFoundError(fmt::format("data directory {} does not exist", source_));
    }
    bool has_store = false;
    for (std::string_view entry : {kDataDirUidKeyName, kDataDirWalName, kDataDirSnapshotsName}) {
      has_store = has_store || fs_->FileExists(JoinPath(source_, entry));
    }
    if (!has_store) {
      return absl::FailedPreconditionError(
          fmt::format("{} holds no KOLE store (no uid-key, wal/ or snapshots/)", source_));
    }
    absl::StatusOr<bool> empty = IsEmptyDir(fs_, target_);
    if (!empty.ok()) return empty.status();
    if (!*empty) {
      return absl::FailedPreconditionError(
          fmt::format("backup target {} is not empty; back up into a new directory", target_));
    }
    for (std::string_view sub : {kDataDirWalName, kDataDirSnapshotsName, kDataDirPodsName}) {
      if (absl::Status s = fs_->CreateDirIfMissing(JoinPath(target_, sub)); !s.ok()) return s;
    }

    std::string holder;
    absl::StatusOr<bool> held = IsFileLockHeld(JoinPath(source_, kDataDirLockName), &holder);
    in_use_ = held.ok() && *held;
    KOLE_LOG(Info, "Backing up data directory", "dataDir", source_, "to", target_, "inUse", in_use_,
             "serverPid", holder);
    return absl::OkStatus();
  }

  // Copies (or, when called again, tops up) `relative` from the source to
  // its current end. A source smaller than what was copied means it was
  // rewritten under us.
  absl::Status CopyTail(const std::string& relative) {
    std::string source = JoinPath(source_, relative);
    auto it = copies_.find(relative);
    if (it == copies_.end()) {
      absl::StatusOr<std::unique_ptr<WritableFile>> file =
          fs_->NewWritableFile(JoinPath(target_, relative));
      if (!file.ok()) return file.status();
      it = copies_.emplace(relative, Copy{std::move(*file), 0}).first;
    }
    Copy& copy = it->second;
    absl::StatusOr<uint64_t> size = fs_->GetFileSize(source);
    if (!size.ok()) return size.status();
    if (*size < copy.bytes) {
      return absl::NotFoundError(
          fmt::format("{} shrank from {} to {} bytes during the copy (did the server restart?)",
                      source, copy.bytes, *size));
    }
    absl::StatusOr<uint64_t> copied =
        AppendFileFrom(fs_, source, copy.bytes, copy.file.get(), &progress_);
    if (!copied.ok()) return copied.status();
    copy.bytes += *copied;
    return absl::OkStatus();
  }

  absl::Status CopyWhole(const std::string& relative) { return CopyTail(relative); }

  // Forgets (and removes) what an attempt at the node store copied.
  absl::Status DropNodeStoreCopies() {
    for (auto it = copies_.begin(); it != copies_.end();) {
      if (it->first.starts_with(kDataDirWalName) || it->first.starts_with(kDataDirSnapshotsName)) {
        it->second.file->Close().IgnoreError();
        if (absl::Status s = fs_->RemoveFile(JoinPath(target_, it->first)); !s.ok()) return s;
        it = copies_.erase(it);
      } else {
        ++it;
      }
    }
    return absl::OkStatus();
  }

  absl::Status CopyNodeStore() {
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      absl::Status copied = CopyNodeStoreOnce();
      if (copied.ok()) return copied;
      // A file that vanished was pruned after a newer snapshot: start again
      // from that one. Anything else is a real failure.
      if (!absl::IsNotFound(copied)) return copied;
      KOLE_LOG(Info, "A file was pruned during the copy; starting again from the newest snapshot",
               "attempt", attempt, "reason", std::string(copied.message()));
      if (absl::Status s = DropNodeStoreCopies(); !s.ok()) return s;
    }
    return absl::AbortedError(fmt::format(
        "snapshots and log segments of {} were pruned under the copy {} times in a row; is the "
        "server snapshotting continuously? Try again, or stop it first",
        source_, options_.max_attempts));
  }

  absl::Status CopyNodeStoreOnce() {
    const std::string snapshot_dir = JoinPath(source_, kDataDirSnapshotsName);
    const std::string wal_dir = JoinPath(source_, kDataDirWalName);

    // The newest snapshot that verifies once copied; recovery would fall back
    // the same way past a damaged one.
    snapshot_.clear();
    uint64_t replay_from = 1;
    std::vector<SnapshotInfo> snapshots;
    if (fs_->FileExists(snapshot_dir)) {
      absl::StatusOr<std::vector<SnapshotInfo>> found = FindSnapshots(fs_, snapshot_dir);
      if (!found.ok()) return found.status();
      snapshots = std::move(*found);
    }
    for (const SnapshotInfo& snapshot : snapshots) {
      std::string relative = JoinPath(kDataDirSnapshotsName, BaseName(snapshot.path));
      if (absl::Status s = CopyWhole(relative); !s.ok()) return s;
      absl::Status verified = VerifySnapshot(fs_, JoinPath(target_, relative));
      if (verified.ok()) {
        snapshot_ = relative;
        replay_from = snapshot.covered_sequence + 1;
        break;
      }
      KOLE_LOG(Error, "Snapshot does not verify; backing up an older one", "path", snapshot.path,
               "err", verified);
      copies_[relative].file->Close().IgnoreError();
      copies_.erase(relative);
      if (absl::Status s = fs_->RemoveFile(JoinPath(target_, relative)); !s.ok()) return s;
    }

    // The segments from the one that holds record `replay_from` on.
    if (!fs_->FileExists(wal_dir)) return absl::OkStatus();
    absl::StatusOr<std::vector<WalSegment>> listed = ListWalSegments(fs_, wal_dir);
    if (!listed.ok()) return listed.status();
    std::vector<WalSegment> segments = std::move(*listed);
    size_t first = 0;
    while (first + 1 < segments.size() && segments[first + 1].first_sequence <= replay_from) {
      ++first;
    }
    if (first < segments.size() && segments[first].first_sequence > replay_from) {
      return absl::NotFoundError(
          fmt::format("the log segment holding sequence {} is gone (the oldest left starts at {})",
                      replay_from, segments[first].first_sequence));
    }
    segment_count_ = segments.size() - first;
    for (size_t i = first; i < segments.size(); ++i) {
      if (absl::Status s = CopyTail(JoinPath(kDataDirWalName, BaseName(segments[i].path)));
          !s.ok()) {
        return s;
      }
    }
    if (segments.size() == first) return absl::OkStatus();

    // A segment newer than the last one copied means the writer finished
    // that one: top it up to its final length. Newer segments hold only
    // records from after the backup began; they are left out.
    absl::StatusOr<std::vector<WalSegment>> relisted = ListWalSegments(fs_, wal_dir);
    if (!relisted.ok()) return relisted.status();
    if (!relisted->empty() && relisted->back().first_sequence != segments.back().first_sequence) {
      return CopyTail(JoinPath(kDataDirWalName, BaseName(segments.back().path)));
    }
    return absl::OkStatus();
  }

  absl::Status SyncAll() {
    for (auto& [relative, copy] : copies_) {
      absl::Status s = copy.file->Sync();
      if (s.ok()) s = copy.file->Close();
      if (!s.ok()) return s;
    }
    for (std::string_view sub : {kDataDirWalName, kDataDirSnapshotsName, kDataDirPodsName}) {
      if (absl::Status s = fs_->SyncDir(JoinPath(target_, sub)); !s.ok()) return s;
    }
    return fs_->SyncDir(target_);
  }

  // Opens the copy read-only: it must recover, and the manifest says to what.
  absl::Status Check(BackupManifest* manifest) {
    absl::StatusOr<Recovered> recovered = RecoverReadOnly(fs_, target_);
    if (!recovered.ok()) {
      return absl::DataLossError(fmt::format("the copy in {} does not recover: {}", target_,
                                             std::string(recovered.status().message())));
    }
    manifest->nodes = recovered->nodes;
    manifest->tombstones = recovered->tombstones;
    manifest->node_resource_version = recovered->node_resource_version;
    manifest->torn_tail_bytes = recovered->torn_tail_bytes;
    manifest->snapshot = snapshot_;
    manifest->log_segments = segment_count_;
    manifest->pods = recovered->pods;
    manifest->pod_resource_version = recovered->pod_resource_version;
    return absl::OkStatus();
  }

  absl::Status Checksum(BackupManifest* manifest) {
    for (const auto& [relative, copy] : copies_) {
      BackupFile file;
      file.path = relative;
      absl::StatusOr<std::string> sha = FileSha256(fs_, JoinPath(target_, relative), &file.bytes);
      if (!sha.ok()) return sha.status();
      file.sha256 = std::move(*sha);
      manifest->files.push_back(std::move(file));
    }
    return absl::OkStatus();
  }

  // SHA256SUMS, then the manifest, each written, synced and renamed into
  // place: the manifest's presence means the backup is complete.
  absl::Status WriteManifest(const BackupManifest& manifest) {
    for (const auto& [name, text] :
         {std::pair{kBackupChecksumsName, EncodeBackupChecksums(manifest)},
          std::pair{kBackupManifestName, EncodeBackupManifest(manifest)}}) {
      std::string path = JoinPath(target_, name);
      absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_->NewWritableFile(path + ".tmp");
      if (!file.ok()) return file.status();
      absl::Status s = (*file)->Append(text);
      if (s.ok()) s = (*file)->Sync();
      if (s.ok()) s = (*file)->Close();
      if (s.ok()) s = fs_->RenameFile(path + ".tmp", path);
      if (s.ok()) s = fs_->SyncDir(target_);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  FileSystem* const fs_;
  const std::string source_;
  const std::string target_;
  const BackupOptions& options_;
  Progress progress_;
  bool in_use_ = false;
  // Ordered by path, which is also the manifest's order.
  std::map<std::string, Copy> copies_;
  std::string snapshot_;
  uint64_t segment_count_ = 0;
};

// Copies one backup file into place through a SHA-256, refusing it when the
// bytes differ from what the manifest lists.
absl::Status CopyChecked(FileSystem* fs, const std::string& from, const std::string& to,
                         const BackupFile& expected, Progress* progress) {
  absl::StatusOr<std::unique_ptr<SequentialFile>> in = fs->NewSequentialFile(from);
  if (!in.ok()) return in.status();
  absl::StatusOr<std::unique_ptr<WritableFile>> out = fs->NewWritableFile(to);
  if (!out.ok()) return out.status();
  Sha256 sha;
  uint64_t bytes = 0;
  std::string chunk;
  do {
    if (absl::Status s = (*in)->Read(kCopyChunk, &chunk); !s.ok()) return s;
    sha.Update(chunk);
    if (absl::Status s = (*out)->Append(chunk); !s.ok()) return s;
    bytes += chunk.size();
    progress->Add(chunk.size(), from);
  } while (chunk.size() == kCopyChunk);
  std::string digest = sha.HexDigest();
  if (bytes != expected.bytes || digest != expected.sha256) {
    return absl::DataLossError(
        fmt::format("backup file {} changed while it was restored ({} bytes, SHA-256 {}; the "
                    "manifest lists {} bytes, {})",
                    from, bytes, digest, expected.bytes, expected.sha256));
  }
  absl::Status s = (*out)->Sync();
  if (s.ok()) s = (*out)->Close();
  return s;
}

// Store entries of `data_dir` that hold something: everything but the lock
// and the server's certificates, and directories only when not empty.
absl::StatusOr<std::vector<std::string>> OccupiedEntries(FileSystem* fs,
                                                         const std::string& data_dir) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(data_dir);
  if (!names.ok()) return names.status();
  std::vector<std::string> occupied;
  for (const std::string& name : *names) {
    if (name == kDataDirLockName || name == "certificates" || name.starts_with("pre-restore-")) {
      continue;
    }
    bool is_dir = fs->ListDir(JoinPath(data_dir, name)).ok();
    if (is_dir) {
      absl::StatusOr<bool> empty = IsEmptyDir(fs, JoinPath(data_dir, name));
      if (!empty.ok()) return empty.status();
      if (*empty) continue;
    }
    occupied.push_back(name);
  }
  return occupied;
}

// Moves `entries` of `data_dir` into a new pre-restore-<time> directory
// inside it (inside, so that a data directory that is a mount point keeps
// the rename on one file system). Returns its path.
absl::StatusOr<std::string> MoveAside(FileSystem* fs, const std::string& data_dir,
                                      const std::vector<std::string>& entries) {
  std::string stamp = UtcNowRfc3339();
  std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });
  std::string aside = JoinPath(data_dir, "pre-restore-" + stamp);
  for (int n = 2; fs->FileExists(aside); ++n) {
    aside = JoinPath(data_dir, fmt::format("pre-restore-{}-{}", stamp, n));
  }
  if (absl::Status s = fs->CreateDirIfMissing(aside); !s.ok()) return s;
  for (const std::string& name : entries) {
    if (absl::Status s = fs->RenameFile(JoinPath(data_dir, name), JoinPath(aside, name)); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = fs->SyncDir(aside); !s.ok()) return s;
  if (absl::Status s = fs->SyncDir(data_dir); !s.ok()) return s;
  KOLE_LOG(Warning, "Moved the data directory's old store aside", "to", aside, "entries",
           fmt::format("{}", fmt::join(entries, ",")));
  return aside;
}

}  // namespace

absl::StatusOr<BackupManifest> BackupDataDir(const std::string& data_dir, const std::string& to,
                                             const BackupOptions& options) {
  FileSystem* fs = options.file_system != nullptr ? options.file_system : DefaultFileSystem();
  absl::StatusOr<BackupManifest> manifest = BackupCopier(fs, data_dir, to, options).Run();
  if (!manifest.ok()) {
    KOLE_LOG(Error,
             "Backup failed; what it left in the target has no manifest, so restore "
             "refuses it",
             "to", to, "err", manifest.status());
  }
  return manifest;
}

absl::StatusOr<BackupManifest> VerifyBackup(FileSystem* fs, const std::string& backup) {
  std::string manifest_path = JoinPath(backup, kBackupManifestName);
  if (!fs->FileExists(manifest_path)) {
    return absl::FailedPreconditionError(fmt::format(
        "{} has no {}: it is not a complete kole-admin backup (an interrupted backup leaves "
        "none)",
        backup, kBackupManifestName));
  }
  absl::StatusOr<std::string> text = fs->ReadFileToString(manifest_path);
  if (!text.ok()) return text.status();
  absl::StatusOr<BackupManifest> manifest = DecodeBackupManifest(*text);
  if (!manifest.ok()) {
    return absl::Status(
        manifest.status().code(),
        fmt::format("{}: {}", manifest_path, std::string(manifest.status().message())));
  }
  for (const BackupFile& file : manifest->files) {
    std::string path = JoinPath(backup, file.path);
    if (!fs->FileExists(path)) {
      return absl::DataLossError(
          fmt::format("backup file {} is missing; the backup is incomplete", path));
    }
    uint64_t bytes = 0;
    absl::StatusOr<std::string> sha = FileSha256(fs, path, &bytes);
    if (!sha.ok()) return sha.status();
    if (bytes != file.bytes || *sha != file.sha256) {
      return absl::DataLossError(fmt::format(
          "backup file {} is corrupt: it has {} bytes and SHA-256 {}, the manifest lists {} "
          "bytes and {}; restore from another backup",
          path, bytes, *sha, file.bytes, file.sha256));
    }
  }
  return manifest;
}

absl::StatusOr<RestoreResult> RestoreDataDir(const std::string& backup, const std::string& data_dir,
                                             const RestoreOptions& options) {
  FileSystem* fs = options.file_system != nullptr ? options.file_system : DefaultFileSystem();
  auto start = SteadyClock::now();

  // Everything is checked before the target is touched.
  absl::StatusOr<BackupManifest> manifest = VerifyBackup(fs, backup);
  if (!manifest.ok()) return manifest.status();
  KOLE_LOG(Info, "Backup verified", "from", backup, "files", manifest->files.size(), "bytes",
           manifest->total_bytes(), "nodes", manifest->nodes, "pods", manifest->pods);

  // The lock keeps a kole-apiserver off the directory until the restore is
  // complete, and refuses a directory one is using.
  if (absl::Status s = fs->CreateDirIfMissing(data_dir); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<FileLock>> lock =
      fs->LockFile(JoinPath(data_dir, kDataDirLockName));
  if (!lock.ok()) {
    return absl::Status(lock.status().code(),
                        fmt::format("cannot restore into {}: {}; stop the kole-apiserver using it "
                                    "first",
                                    data_dir, std::string(lock.status().message())));
  }

  RestoreResult result;
  absl::StatusOr<std::vector<std::string>> occupied = OccupiedEntries(fs, data_dir);
  if (!occupied.ok()) return occupied.status();
  if (!occupied->empty()) {
    if (!options.force) {
      return absl::FailedPreconditionError(fmt::format(
          "data directory {} is not empty (it holds {}); restoring over it needs --force, which "
          "moves what it holds aside into {}/pre-restore-<time>/",
          data_dir, fmt::join(*occupied, ", "), data_dir));
    }
    absl::StatusOr<std::string> aside = MoveAside(fs, data_dir, *occupied);
    if (!aside.ok()) return aside.status();
    result.moved_aside = std::move(*aside);
  }

  // Every file but the uid-key, then the uid-key by rename: the commit point.
  Progress progress("Restore progress", 2);
  std::optional<BackupFile> uid_key;
  std::vector<std::string> dirs;
  for (const BackupFile& file : manifest->files) {
    if (file.path == kDataDirUidKeyName) {
      uid_key = file;
      continue;
    }
    std::string to = JoinPath(data_dir, file.path);
    std::string dir = ParentDir(to);
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      if (absl::Status s = fs->CreateDirIfMissing(dir); !s.ok()) return s;
      dirs.push_back(dir);
    }
    absl::Status copied = CopyChecked(fs, JoinPath(backup, file.path), to, file, &progress);
    if (!copied.ok()) return copied;
  }
  for (const std::string& dir : dirs) {
    if (absl::Status s = fs->SyncDir(dir); !s.ok()) return s;
  }
  if (uid_key.has_value()) {
    std::string to = JoinPath(data_dir, kDataDirUidKeyName);
    absl::Status s =
        CopyChecked(fs, JoinPath(backup, uid_key->path), to + ".tmp", *uid_key, &progress);
    if (s.ok()) s = fs->RenameFile(to + ".tmp", to);
    if (!s.ok()) return s;
  }
  if (absl::Status s = fs->SyncDir(data_dir); !s.ok()) return s;

  // The restored directory must recover to what the backup recovered to.
  absl::StatusOr<Recovered> recovered = RecoverReadOnly(fs, data_dir);
  if (!recovered.ok()) return recovered.status();
  if (recovered->nodes != manifest->nodes ||
      recovered->node_resource_version != manifest->node_resource_version ||
      recovered->pods != manifest->pods) {
    return absl::InternalError(fmt::format(
        "{} recovers to {} nodes at resourceVersion {} and {} pods; the backup's manifest lists "
        "{} nodes at {} and {} pods",
        data_dir, recovered->nodes, recovered->node_resource_version, recovered->pods,
        manifest->nodes, manifest->node_resource_version, manifest->pods));
  }

  KOLE_LOG(Info, "Restore complete", "dataDir", data_dir, "nodes", recovered->nodes, "pods",
           recovered->pods, "bytes", progress.bytes(), "seconds", SecondsSince(start));
  result.manifest = std::move(*manifest);
  return result;
}

}  // namespace kole::storage
