#include "storage/tools/inspect.h"

#include <fmt/format.h>

#include <algorithm>

#include "storage/data_dir.h"
#include "storage/pod_store.h"
#include "storage/snapshot_file.h"
#include "storage/wal_reader.h"

namespace kole::admin {
namespace {

using storage::FileSystem;
using storage::JoinPath;

constexpr int kOpenAttempts = 3;

// Lists `relative` (a directory under `root`) into `out`, depth first.
void ListFiles(FileSystem* fs, const std::string& root, const std::string& relative,
               std::vector<InspectedFile>* out) {
  absl::StatusOr<std::vector<std::string>> names =
      fs->ListDir(relative.empty() ? root : JoinPath(root, relative));
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    std::string path = relative.empty() ? name : JoinPath(relative, name);
    if (fs->ListDir(JoinPath(root, path)).ok()) {
      // certificates/ holds the server's keys, not the store: named, not read.
      if (relative.empty() && name != storage::kDataDirWalName &&
          name != storage::kDataDirSnapshotsName && name != storage::kDataDirPodsName) {
        out->push_back({path + "/", 0, "directory, not part of the store"});
        continue;
      }
      ListFiles(fs, root, path, out);
      continue;
    }
    absl::StatusOr<uint64_t> size = fs->GetFileSize(JoinPath(root, path));
    out->push_back({path, size.ok() ? *size : 0, ""});
  }
}

// What each file is, from its name and place.
void Describe(FileSystem* fs, const std::string& root, std::vector<InspectedFile>* files) {
  std::string snapshots = JoinPath(root, storage::kDataDirSnapshotsName);
  std::string wal = JoinPath(root, storage::kDataDirWalName);
  std::vector<storage::SnapshotInfo> snapshot_list;
  if (auto found = storage::FindSnapshots(fs, snapshots); found.ok()) snapshot_list = *found;
  std::vector<storage::WalSegment> segment_list;
  if (auto found = storage::ListWalSegments(fs, wal); found.ok()) segment_list = *found;

  for (InspectedFile& file : *files) {
    if (!file.what.empty()) continue;
    std::string full = JoinPath(root, file.path);
    for (const storage::SnapshotInfo& snapshot : snapshot_list) {
      if (snapshot.path == full) {
        file.what = fmt::format("snapshot covering log sequence {}", snapshot.covered_sequence);
      }
    }
    for (const storage::WalSegment& segment : segment_list) {
      if (segment.path == full) {
        file.what = fmt::format("log segment from sequence {}", segment.first_sequence);
      }
    }
    if (!file.what.empty()) continue;
    if (file.path == storage::kDataDirUidKeyName) {
      file.what = "key of the node UIDs";
    } else if (file.path == storage::kDataDirLockName) {
      file.what = "lock";
    } else if (file.path == JoinPath(storage::kDataDirPodsName, storage::kPodLogName)) {
      file.what = "standalone pods' log";
    } else if (file.path == storage::kBackupManifestName) {
      file.what = "backup manifest";
    } else if (file.path == storage::kBackupChecksumsName) {
      file.what = "backup checksums (sha256sum -c)";
    } else if (file.path.ends_with(".tmp")) {
      file.what = "being written, or left by an interrupted write";
    } else {
      file.what = "not part of the store";
    }
  }
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  if (bytes < (uint64_t{1} << 30)) return fmt::format("{:.1f} MiB", bytes / 1048576.0);
  return fmt::format("{:.2f} GiB", bytes / 1073741824.0);
}

}  // namespace

absl::StatusOr<Inspection> InspectDataDir(const std::string& data_dir) {
  FileSystem* fs = storage::DefaultFileSystem();
  if (!fs->FileExists(data_dir)) {
    return absl::NotFoundError(fmt::format("{} does not exist", data_dir));
  }
  Inspection in;
  in.data_dir = data_dir;
  absl::StatusOr<bool> held =
      storage::IsFileLockHeld(JoinPath(data_dir, storage::kDataDirLockName), &in.holder_pid);
  if (!held.ok()) return held.status();
  in.in_use = *held;

  std::string manifest_path = JoinPath(data_dir, storage::kBackupManifestName);
  if (fs->FileExists(manifest_path)) {
    absl::StatusOr<std::string> text = fs->ReadFileToString(manifest_path);
    if (!text.ok()) return text.status();
    absl::StatusOr<storage::BackupManifest> manifest = storage::DecodeBackupManifest(*text);
    if (manifest.ok()) in.manifest = std::move(*manifest);
  }

  ListFiles(fs, data_dir, "", &in.files);
  Describe(fs, data_dir, &in.files);
  for (const InspectedFile& file : in.files) in.total_bytes += file.bytes;

  absl::Status opened;
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    storage::StoreOptions options;
    options.data_dir = data_dir;
    options.background_maintenance = false;
    options.read_only = true;
    absl::StatusOr<std::unique_ptr<storage::NodeStore>> store = storage::NodeStore::Open(options);
    opened = store.status();
    if (store.ok()) {
      storage::StoreStats stats = (*store)->Stats();
      in.nodes = stats.nodes;
      in.tombstones = stats.tombstones;
      in.next_resource_version = (*store)->resource_version() + 1;
      in.recovery = (*store)->recovery();
      break;
    }
    // Only a live directory can lose a file under the reader.
    if (!in.in_use || !absl::IsNotFound(opened)) break;
  }
  if (!opened.ok()) in.recover_error = std::string(opened.message());

  storage::PodStoreOptions pod_options;
  pod_options.data_dir = data_dir;
  pod_options.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::PodStore>> pods = storage::PodStore::Open(pod_options);
  if (pods.ok()) {
    in.pods = (*pods)->size();
    in.pod_resource_version = (*pods)->resource_version();
  } else if (in.recover_error.empty()) {
    in.recover_error = std::string(pods.status().message());
  }
  return in;
}

std::string FormatInspection(const Inspection& in) {
  std::string out = fmt::format("data directory  {}\n", in.data_dir);
  if (in.in_use) {
    out += fmt::format(
        "in use          by a running kole-apiserver{}; what follows is a moment's view\n",
        in.holder_pid.empty() ? "" : fmt::format(" (pid {})", in.holder_pid));
  }
  if (in.manifest.has_value()) {
    const storage::BackupManifest& m = *in.manifest;
    out += fmt::format(
        "backup          of {} taken {} in {:.1f} s{}: {} nodes up to resourceVersion {}, {} "
        "pods\n",
        m.source_data_dir, m.created_at, m.seconds, m.source_in_use ? " while it ran" : "", m.nodes,
        m.node_resource_version, m.pods);
  }
  size_t width = 0;
  for (const InspectedFile& file : in.files) width = std::max(width, file.path.size());
  out += "files\n";
  for (const InspectedFile& file : in.files) {
    out +=
        fmt::format("  {:<{}}  {:>10}  {}\n", file.path, width, HumanBytes(file.bytes), file.what);
  }
  out += fmt::format("total           {} ({} bytes)\n", HumanBytes(in.total_bytes), in.total_bytes);
  if (!in.recover_error.empty()) {
    out += fmt::format("recovery        FAILS: {}\n", in.recover_error);
    return out;
  }
  const storage::RecoveryReport& r = in.recovery;
  out += fmt::format("nodes           {} ({} tombstones), resourceVersion {}\n", in.nodes,
                     in.tombstones, r.content_resource_version);
  out += fmt::format("pods            {}, resourceVersion {}\n", in.pods, in.pod_resource_version);
  out +=
      fmt::format("recovery        {}; {} log records replayed, up to sequence {}\n",
                  r.snapshot_path.empty() ? std::string("from the log alone")
                                          : fmt::format("snapshot of {} nodes covering sequence {}",
                                                        r.snapshot_nodes, r.snapshot_sequence),
                  r.log_records_replayed, r.last_log_sequence);
  if (r.corrupt_snapshots > 0) {
    out += fmt::format("corrupt         {} newer snapshot(s) do not verify and would be skipped\n",
                       r.corrupt_snapshots);
  }
  if (r.torn_tail_bytes > 0) {
    out += fmt::format("torn tail       {} bytes of an unfinished record; a restart cuts them\n",
                       r.torn_tail_bytes);
  }
  out += fmt::format("next version    a restart resumes at resourceVersion {}\n",
                     in.next_resource_version);
  return out;
}

}  // namespace kole::admin
