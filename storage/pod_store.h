#pragma once

// PodStore keeps the standalone pods (created through the API with
// spec.nodeName) in memory, durable in a small write-ahead log of its own
// under <data_dir>/pods/, and serves them as a PodSource.
//
//   auto pods = PodStore::Open({.data_dir = "/var/lib/kole"});
//   auto created = (*pods)->Create(pod);      // durable when it returns
//   (*pods)->ListEach({.namespace_ = "default"}, visit, &result);
//
// Standalone pods are few (the fleet's pods come from EdgeDaemonSets, see
// pod_source.h), so the store favours simplicity over scale: a sorted map,
// a bounded history of changes for watches and consistent paging, one log
// record per write, synced before the write returns, and a rewrite of the
// log (header, version watermark, one record per pod; written to a
// temporary file, synced, renamed, directory synced) once it grows past a
// threshold. A list reconstructs its snapshot by undoing newer changes,
// which costs O(pods) per page.
//
// Log format: the 8-byte header "KOLEPOD1" (format version 1), then
// records [u32 length][u32 crc32 of payload][payload], little endian. A
// torn last record is truncated on open; a bad record with valid data after
// it is corruption and Open() fails with DataLoss.
//
// Errors: NotFound, AlreadyExists, Aborted (resourceVersion precondition),
// InvalidArgument (bad continue token, unsupported field), OutOfRange with
// IsExpired() (version no longer retained), Unavailable (closed), and the
// file system's errors for a failed log write (which then fails every later
// write: an unlogged change is never made visible).
//
// Thread safety: every method may be called from any thread; one mutex
// guards the state, held across the log sync of a write. Ownership: Open()
// returns the only owner; watchers borrow it and must be destroyed first.

#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "storage/clock.h"
#include "storage/daemon_pods.h"
#include "storage/file_system.h"
#include "storage/pod_source.h"

namespace kole::storage {

struct PodStoreOptions {
  std::string data_dir;  // Empty: memory only.
  FileSystem* file_system = nullptr;
  Clock* clock = nullptr;
  int64_t retention_seconds = 300;  // History kept for watches and paging.
  size_t max_history = 100000;      // ... but no more entries than this.
  uint64_t compact_after_bytes = uint64_t{64} << 20;
  // History of derived pod events kept for watches (80 bytes an event).
  size_t max_derived_history_bytes = size_t{512} << 20;
  // Read the log without changing anything (kole-admin): no directory is
  // created, a torn last record is ignored rather than truncated, the log is
  // not rewritten, and every write fails with FailedPrecondition.
  bool read_only = false;
};

class PodStore final : public PodSource {
 public:
  static absl::StatusOr<std::unique_ptr<PodStore>> Open(PodStoreOptions options);
  ~PodStore() override;

  // Creates a pod; sets its UID, creation time and version.
  absl::StatusOr<Pod> Create(const Pod& pod);
  // Replaces labels, annotations and spec; keeps status. `expected_rv` 0
  // skips the precondition. A write that changes nothing keeps the version.
  absl::StatusOr<Pod> Update(const Pod& desired, uint64_t expected_rv);
  // Replaces status (and phase); keeps everything else.
  absl::StatusOr<Pod> UpdateStatus(const Pod& desired, uint64_t expected_rv);
  // Deletes and returns the last state, stamped with the deletion's version.
  absl::StatusOr<Pod> Delete(std::string_view namespace_, std::string_view name,
                             uint64_t expected_rv);
  void Close();

  // Pods held now.
  size_t size() const;
  // Bytes of a torn last record that Open() cut off (or, read-only, ignored).
  uint64_t torn_tail_bytes() const { return torn_tail_bytes_; }

  // PodSource.
  uint64_t resource_version() const override;
  absl::StatusOr<Pod> Get(std::string_view namespace_, std::string_view name) const override;
  absl::Status ListEach(const PodListOptions& options, absl::FunctionRef<void(const Pod&)> visit,
                        PodListResult* result) const override;
  absl::StatusOr<std::unique_ptr<PodWatcher>> Watch(uint64_t from_rv, std::string namespace_,
                                                    LabelSelector labels,
                                                    FieldSelector fields) const override;

  // --- Pods of EdgeDaemonSets (daemon_pods.h), under the same lock ---

  void SetWorkload(const WorkloadSpec& spec, const std::vector<DaemonNodeFacts>& selected);
  void RemoveWorkload(std::string_view namespace_, std::string_view name);
  WorkloadStatus GetWorkloadStatus(std::string_view namespace_, std::string_view name) const;
  void SuspendNamespace(std::string_view namespace_);
  void ResumeNamespace(std::string_view namespace_);
  void SetNodes(const std::vector<DaemonNodeFacts>& nodes);
  void RemoveNodes(const std::vector<std::string>& names);
  // Heartbeats' pod revisions, (node, revision) pairs. Returns how many
  // nodes run something else and were queued to get their set again.
  size_t ApplyPodRevisions(std::span<const std::pair<std::string_view, std::string_view>> revisions,
                           int64_t resend_after_s);
  void ApplyPodReports(std::string_view node, const std::vector<DaemonPodReport>& reports);
  // Advances rolling updates and trims the derived history.
  size_t Rollout();
  std::vector<NodePodSet> TakeDirtyNodes(size_t max);
  void MarkAllNodesDirty();
  void MarkNodesDirty(const std::vector<std::string>& nodes);
  std::vector<WorkloadTemplateInfo> WorkloadTemplates() const;
  std::optional<NodePodSet> DesiredPodSet(std::string_view node) const;
  struct DerivedStats {
    size_t pods = 0;
    size_t nodes = 0;
    size_t dirty_nodes = 0;
    size_t history_events = 0;
    size_t history_bytes = 0;
    size_t memory_bytes = 0;  // Cells, node index and history.
  };
  DerivedStats derived_stats() const;
  // Whether `namespace_/name` is a pod of an EdgeDaemonSet.
  bool IsDerived(std::string_view namespace_, std::string_view name) const;

 private:
  friend class PodStoreWatcher;
  using Key = std::pair<std::string, std::string>;  // (namespace, name)
  struct Change {
    uint64_t rv;
    EventType type;
    Key key;
    std::optional<Pod> before;
    std::optional<Pod> after;
    int64_t time;
  };

  explicit PodStore(PodStoreOptions options);
  absl::Status Recover();
  absl::StatusOr<Pod> Commit(const Key& key, std::optional<Pod> after, EventType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LogLocked(char op, const Pod& pod) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CoversLocked(uint64_t rv) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status ListDerived(const PodListOptions& options, std::string position, size_t limit,
                           absl::FunctionRef<void(const Pod&)> visit, PodListResult* result) const;
  uint64_t FloorLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Writes what devices said about standalone pods into those pods.
  void RecordStandaloneChangesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t NextDerivedVersion();
  absl::StatusOr<Pod> WriteLocked(const Pod& desired, uint64_t expected_rv, bool status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PodStoreOptions options_;
  std::string log_path_;
  mutable absl::Mutex mu_;
  std::map<Key, Pod> pods_ ABSL_GUARDED_BY(mu_);
  std::deque<Change> history_ ABSL_GUARDED_BY(mu_);
  uint64_t rv_ ABSL_GUARDED_BY(mu_) = 0;
  // Versions up to here are reserved in the log (derived events use them
  // without a record each).
  uint64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  static constexpr uint64_t kDerivedVersionReservation = 1 << 20;
  // Changes up to this version are no longer in either history.
  uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<DaemonPods> daemon_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_failure_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<WritableFile> log_ ABSL_GUARDED_BY(mu_);
  uint64_t torn_tail_bytes_ = 0;  // Set by Recover(), then immutable.
};

}  // namespace kole::storage
