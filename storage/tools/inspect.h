#pragma once

// What a data directory (or a backup of one) holds, found without changing
// it: its files with sizes and what each is, the lock holder if a
// kole-apiserver runs on it, a backup's manifest, and what a restart would
// recover (a read-only open: nodes, tombstones, pods, versions, the snapshot
// used, log records replayed, a torn tail).
//
// On a directory a server is using, the file list is a moment's view and the
// read-only open races with the server's snapshots; a file pruned under it
// makes it retry, a few times.
//
// Thread safety: free functions without shared state.

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/backup_manifest.h"
#include "storage/node_store.h"

namespace kole::admin {

struct InspectedFile {
  std::string path;  // Relative to the directory.
  uint64_t bytes = 0;
  std::string what;  // "snapshot covering log sequence 42", …
};

struct Inspection {
  std::string data_dir;
  bool in_use = false;
  std::string holder_pid;                           // When in use and known.
  std::optional<storage::BackupManifest> manifest;  // Set for a backup.
  std::vector<InspectedFile> files;
  uint64_t total_bytes = 0;

  // The read-only open; when it failed, recover_error says why.
  std::string recover_error;
  uint64_t nodes = 0;
  uint64_t tombstones = 0;
  uint64_t next_resource_version = 0;  // Where a restart resumes.
  storage::RecoveryReport recovery;
  uint64_t pods = 0;
  uint64_t pod_resource_version = 0;
};

// NotFound if `data_dir` does not exist. A directory that does not recover
// is not an error here: recover_error says what recovery would refuse.
absl::StatusOr<Inspection> InspectDataDir(const std::string& data_dir);

// The report kole-admin inspect prints: one fact a line.
std::string FormatInspection(const Inspection& inspection);

}  // namespace kole::admin
