#pragma once

// BackupManifest describes one backup of a data directory (storage/backup.h):
// which files it holds, with their sizes and SHA-256 checksums, and what the
// store in it recovers to. It is written last, as MANIFEST.json at the top of
// the backup, so a backup directory without one is unfinished and restore
// refuses it. Beside it, SHA256SUMS lists the same checksums in the format of
// sha256sum(1), so a copy can be checked with standard tools
// (`cd BACKUP && sha256sum -c SHA256SUMS`).
//
// MANIFEST.json, format 1 (every field is written; readers ignore unknown
// ones, so later formats may add fields without a new version):
//
//   {"kind": "KoleBackup", "formatVersion": 1,
//    "createdAt": "2026-12-04T13:31:05Z", "sourceDataDir": "/var/lib/kole",
//    "sourceInUse": true, "seconds": 1.8,
//    "nodes": {"count": 1000, "resourceVersion": 1042, "tombstones": 0,
//              "snapshot": "snapshots/snapshot-….snap", "logSegments": 2,
//              "tornTailBytes": 0},
//    "pods": {"count": 3, "resourceVersion": 7},
//    "totalBytes": 123456,
//    "files": [{"path": "uid-key", "bytes": 59, "sha256": "…"}, …]}
//
// nodes.resourceVersion is the newest node change the backup holds: every
// node change with a version up to it is in the backup. pods.resourceVersion
// is the same for standalone pods, whose versions are counted apart.
//
// Thread safety: plain values and free functions without shared state.

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file_system.h"

namespace kole::storage {

inline constexpr std::string_view kBackupManifestName = "MANIFEST.json";
inline constexpr std::string_view kBackupChecksumsName = "SHA256SUMS";
inline constexpr int kBackupFormatVersion = 1;

struct BackupFile {
  std::string path;  // Relative to the backup directory, '/'-separated.
  uint64_t bytes = 0;
  std::string sha256;  // 64 lower-case hex digits.
};

struct BackupManifest {
  std::string created_at;  // RFC 3339, UTC, seconds.
  std::string source_data_dir;
  bool source_in_use = false;  // A kole-apiserver held the directory's lock.
  double seconds = 0;          // How long the backup took.

  uint64_t nodes = 0;
  uint64_t node_resource_version = 0;
  uint64_t tombstones = 0;
  std::string snapshot;  // Relative path; empty when the backup has none.
  uint64_t log_segments = 0;
  uint64_t torn_tail_bytes = 0;  // Of a record being written during the copy.

  uint64_t pods = 0;
  uint64_t pod_resource_version = 0;

  std::vector<BackupFile> files;

  uint64_t total_bytes() const;
};

std::string EncodeBackupManifest(const BackupManifest& manifest);

// InvalidArgument naming what is wrong for a document that is not a manifest
// of a known format, or whose file paths leave the backup directory.
absl::StatusOr<BackupManifest> DecodeBackupManifest(std::string_view json);

// The SHA256SUMS text for the manifest's files.
std::string EncodeBackupChecksums(const BackupManifest& manifest);

// SHA-256 of `data`, as 64 lower-case hex digits.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Ends the digest; the object must not be used afterwards.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// Streams `path` through SHA-256. Sets *bytes to its length.
absl::StatusOr<std::string> FileSha256(FileSystem* fs, const std::string& path, uint64_t* bytes);

// "2026-12-04T13:31:05Z" for the current time.
std::string UtcNowRfc3339();

}  // namespace kole::storage
