#pragma once

// Backup and restore of a data directory (data_dir.h), online or offline.
//
//   auto manifest = BackupDataDir("/var/lib/kole", "/backups/kole-2026-12-04", {});
//   auto restored = RestoreDataDir("/backups/kole-2026-12-04", "/var/lib/kole", {});
//
// What a backup holds: the uid-key, the newest complete snapshot of the node
// store and every log segment after it, and the standalone pods' log
// (pods/pods.log), plus MANIFEST.json and SHA256SUMS (backup_manifest.h).
// Not the LOCK file and nothing else in the directory (a default
// --cert-dir, <data-dir>/certificates, holds private keys and is left out).
//
// Consistency while a kole-apiserver writes (it holds the lock; a backup
// never takes it):
//   * Snapshots appear by rename, complete. The newest one is copied, then
//     the segments from the one holding the record after it. Every record
//     acknowledged before the backup began is in that snapshot or in those
//     segments, since acknowledged means synced into them.
//   * Segments are appended to, and the writer finishes and syncs a segment
//     before it creates the next. So once a later segment exists, an earlier
//     one is complete. The segments are listed again after the copy; if a
//     newer one has appeared, the last segment copied is topped up to its
//     final length, and newer segments are left out (they hold only records
//     from after the backup began). The last segment copied may end in part
//     of a record being written: the torn tail that recovery cuts off after a
//     crash, which it accepts in exactly the same way.
//   * Snapshots prune old snapshots and segments. A file that vanishes before
//     it is opened means a newer snapshot exists: the copy starts again from
//     it (BackupOptions::max_attempts). A file already opened is read to its
//     end regardless (POSIX keeps an unlinked file's data for open readers).
//   * The pods' log is one file, appended to and now and then rewritten by
//     rename; a copy is a prefix of one version of it, which is a state the
//     pod store passed through.
//   The node store and the pod store are copied one after the other, so the
//   backup holds each as of a moment after the backup began, not one shared
//   instant; their versions are counted apart anyway.
//
// Before reporting success the copy is synced and opened read-only in memory
// (StoreOptions::read_only): it must recover, and the manifest records what
// it recovered to.
//
// Errors: FailedPrecondition for a target that is not empty, a locked or
// non-empty restore target (without force), or a backup without a manifest;
// DataLoss for a backup file whose checksum or size does not match, naming
// the file; NotFound for a missing source; Aborted when files kept vanishing
// for every attempt; the file system's errors otherwise.
//
// Thread safety: the functions may run concurrently with a kole-apiserver on
// the source directory, not with another restore into the same target.

#include <absl/status/statusor.h>

#include <string>

#include "storage/backup_manifest.h"
#include "storage/file_system.h"

namespace kole::storage {

struct BackupOptions {
  FileSystem* file_system = nullptr;  // Default: the real one.
  // Starts from a newer snapshot at most this many times when files are
  // pruned under the copy.
  int max_attempts = 5;
  // Seconds between progress log lines.
  double progress_interval_seconds = 2;
};

// Copies `data_dir` into `to`, which must not exist or be empty, and returns
// the manifest written there.
absl::StatusOr<BackupManifest> BackupDataDir(const std::string& data_dir, const std::string& to,
                                             const BackupOptions& options = {});

// Reads `backup`'s manifest and checks every file it lists: present, of the
// listed size and SHA-256. DataLoss names the first file that is not.
absl::StatusOr<BackupManifest> VerifyBackup(FileSystem* fs, const std::string& backup);

struct RestoreOptions {
  FileSystem* file_system = nullptr;  // Default: the real one.
  // Restore over a data directory that holds a store: its store files
  // (uid-key, wal/, snapshots/, pods/) are moved, not deleted, into
  // <data_dir>/pre-restore-<UTC time>/.
  bool force = false;
};

struct RestoreResult {
  BackupManifest manifest;
  std::string moved_aside;  // Where the old store went; empty if none.
};

// Checks `backup` (VerifyBackup), then, holding `data_dir`'s lock (so it
// refuses while a kole-apiserver runs there and keeps one from starting
// meanwhile), copies its files in, checking each checksum again as it is
// copied. The uid-key is put in place last: until it is, a kole-apiserver
// refuses the directory, so an interrupted restore is never mistaken for a
// complete store. Finally the restored directory is opened read-only and
// must hold what the manifest says. Entries of `data_dir` that are not
// store files (certificates/, LOCK) are left alone.
absl::StatusOr<RestoreResult> RestoreDataDir(const std::string& backup, const std::string& data_dir,
                                             const RestoreOptions& options = {});

}  // namespace kole::storage
