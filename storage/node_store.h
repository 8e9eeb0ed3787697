#pragma once

// NodeStore holds every edge node of the fleet in one process: one compact
// record per node (node_record.h), an index by name, name order for lists,
// the change log that feeds watches and paginated lists, and, when given a
// data directory, the write-ahead log and snapshots that make it durable.
//
//   auto store = NodeStore::Open({.data_dir = "/var/lib/kole"});
//   if (!store.ok()) return store.status();
//   auto registered = (*store)->Register(node);
//   (*store)->WaitDurable(registered->durable_token);   // before acknowledging
//   auto page = (*store)->List({.limit = 500});
//
// Thread safety: every method may be called from any thread. Writers
// serialise on one lock; readers share it and copy what they need in short
// batches, so a list of the whole fleet never holds writers off for long.
// Readers never see a half-applied change.
//
// Ownership: Open() returns the only owner. Watchers borrow the store and
// must be destroyed before it; Close() ends their waits first.
//
// Invariants: resource_version() never decreases, also across a crash (the
// log reserves version ranges ahead of use); the same resourceVersion always
// names the same content; every visible change gets exactly one version and
// one change-log entry.
//
// Errors, by code, so the API can map them once (STYLE.md):
//   NotFound            the node does not exist
//   AlreadyExists       create of an existing node
//   Aborted             resourceVersion precondition failed (409 Conflict)
//   InvalidArgument     bad selector, bad name, change to a device-owned label
//   FailedPrecondition  the name is tombstoned, or a stale epoch
//   PermissionDenied    a gateway registering a node that is not its own
//   OutOfRange          the version asked for is no longer retained: an
//                       expired continue token or a watch from too old a
//                       version (410 Gone; see IsExpired())
//   ResourceExhausted   the disk is full; the store refuses further writes
//                       (any log failure is sticky and returned by every
//                       later write, with its own code)
//   Unavailable         the store is closed

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "storage/arena.h"
#include "storage/blob_pool.h"
#include "storage/change_log.h"
#include "storage/clock.h"
#include "storage/field_selector.h"
#include "storage/label_selector.h"
#include "storage/node.h"
#include "storage/node_record.h"
#include "storage/node_view.h"

namespace kole::storage {

class FileSystem;
class StorePersistence;

struct StoreOptions {
  // Where the write-ahead log and snapshots live. Empty: memory only (tests,
  // benchmarks of the in-memory layout).
  std::string data_dir;
  FileSystem* file_system = nullptr;  // Default: the real one.
  Clock* clock = nullptr;             // Default: the system clock.

  // How often a heartbeat that changes nothing else refreshes the published
  // status.edge.sequence, lastReportTime and lastHeartbeatTime (a new
  // resourceVersion). kubelet's default node status report frequency is 5m;
  // at 1M nodes that is ~3,300 changes/s. Each node's period is shortened by
  // a fixed per-node amount of up to a quarter so that a registration burst
  // does not come back as a refresh burst.
  int64_t report_period_seconds = 300;

  ChangeLogOptions change_log;

  // Take a snapshot once this many bytes of log were written since the last.
  uint64_t snapshot_after_log_bytes = uint64_t{256} << 20;
  int snapshots_to_keep = 2;
  // On mid-log corruption, discard from the corruption on instead of refusing
  // to start (--wal-truncate-at-corruption).
  bool wal_truncate_at_corruption = false;
  // Start a thread that syncs asynchronous log records, trims the change log
  // and takes snapshots when due. Tests drive Maintain() themselves.
  bool background_maintenance = true;
  // Open data_dir for reading only (kole-admin's export and inspect, and the
  // check of a fresh backup): no lock is taken, nothing is created, repaired
  // or removed (a torn log tail is read up to and left in place), there is no
  // background thread, and every write fails with FailedPrecondition. The
  // store holds exactly what a restart on that directory would recover.
  bool read_only = false;
};

// What recovery found in the data directory (NodeStore::recovery()).
struct RecoveryReport {
  std::string snapshot_path;       // Empty when no snapshot was loaded.
  uint64_t snapshot_sequence = 0;  // The last log sequence the snapshot covers.
  uint64_t snapshot_nodes = 0;
  int corrupt_snapshots = 0;  // Newer snapshots skipped because they did not verify.
  uint64_t log_records_replayed = 0;
  uint64_t last_log_sequence = 0;
  // Bytes of an incomplete last record: cut off by recovery, or, read-only,
  // left in place and ignored.
  uint64_t torn_tail_bytes = 0;
  // The newest resourceVersion of any change recovered: every change with a
  // version up to it is in the store. resource_version() may be higher, as
  // recovery resumes after the reserved range.
  uint64_t content_resource_version = 0;
};

// What a device's registration did.
struct RegisterResult {
  bool created = false;
  uint32_t epoch = 0;
  uint64_t resource_version = 0;
  // Pass to WaitDurable() before acknowledging the registration.
  uint64_t durable_token = 0;
};

struct Heartbeat {
  std::string_view name;
  uint32_t epoch = 0;
  uint32_t sequence = 0;
  // The gateway the heartbeat came through; empty when the node sent it on
  // its own connection. A gateway may speak only for nodes registered through it.
  std::string_view gateway;
};

enum class HeartbeatOutcome : uint8_t {
  kApplied,       // Liveness refreshed in place; nothing visible changed.
  kPublished,     // Applied and a visible field changed (new resourceVersion).
  kDuplicate,     // Sequence not newer than the last one applied.
  kStaleEpoch,    // From an earlier epoch than the node's.
  kUnknownEpoch,  // From a later epoch: the device restarted unregistered.
  kUnknownNode,   // No such node (or a deleted one).
  kWrongGateway,  // Sent by a gateway the node is not registered through.
};

struct ListOptions {
  LabelSelector label_selector;
  // Supported fields: metadata.name, spec.unschedulable.
  FieldSelector field_selector;
  // At most this many nodes; 0 means all.
  size_t limit = 0;
  // A token from a previous page; the page continues that list's snapshot.
  std::string continue_token;
  // 0: the newest state. Otherwise the state at exactly this version, which
  // must still be retained (OutOfRange otherwise).
  uint64_t resource_version = 0;
};

struct ListResult {
  std::vector<Node> nodes;
  uint64_t resource_version = 0;  // The snapshot's version, for every page.
  std::string continue_token;     // Empty on the last page.
};

struct WatchEvent {
  EventType type;
  Node node;  // For kDeleted: the last state.
};

struct StoreStats {
  size_t nodes = 0;
  size_t tombstones = 0;
  uint64_t resource_version = 0;
  size_t change_log_entries = 0;
  size_t change_log_bytes = 0;
  // Entries dropped by the memory cap before the retention period passed.
  uint64_t change_log_capped = 0;
  size_t blobs = 0;
  size_t blob_bytes = 0;
  size_t name_bytes = 0;
  size_t record_bytes = 0;
  uint64_t wal_durable_sequence = 0;
};

class NodeWatcher;

class NodeStore {
 public:
  // Opens the store, recovering from the data directory when one is given:
  // newest valid snapshot, then the log after it. Fails with DataLoss on
  // mid-log corruption (see StoreOptions::wal_truncate_at_corruption), with
  // FailedPrecondition when another process holds the directory.
  static absl::StatusOr<std::unique_ptr<NodeStore>> Open(StoreOptions options);

  ~NodeStore();
  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;

  // --- Writes from devices (the bridge) ---

  // Registers a node, or re-registers it. A new node takes everything from
  // `reported`; an existing one keeps its UID, creation time, user-owned
  // labels, annotations, taints and unschedulable, and takes the device-owned
  // fields. `reported.edge.epoch` 0 asks the cloud to assign the next epoch.
  // Group-committed: returns once applied; call WaitDurable() before
  // acknowledging. A re-registration that changes nothing gets no new version.
  //
  // `reported.edge.gateway` names the gateway the registration came through
  // (empty: the node's own connection). A gateway cannot take over a node that
  // is registered directly or through another gateway (PermissionDenied);
  // the node's own connection always may, which detaches it from its gateway.
  absl::StatusOr<RegisterResult> Register(const Node& reported);

  // Applies a batch of heartbeats under one lock acquisition. `outcomes`
  // receives one entry per heartbeat. Publishing changes are logged without
  // waiting for the disk (they are refreshes, not acknowledged writes).
  absl::Status ApplyHeartbeats(std::span<const Heartbeat> heartbeats,
                               std::span<HeartbeatOutcome> outcomes);

  // Ready=Unknown at once and connected=false (a last-will message). With a
  // non-zero `epoch`, only if the node is still in that epoch: a late will of
  // a connection the device has since replaced changes nothing. A node heard
  // from at or after `heard_since` (MonotonicSeconds()) is back already and
  // is left alone.
  absl::Status MarkDisconnected(std::string_view name, uint32_t epoch = 0,
                                int64_t heard_since = INT64_MAX);

  // MarkDisconnected for every connected node registered through `gateway`
  // (the gateway's last will). Returns how many changed.
  absl::StatusOr<size_t> MarkGatewayDisconnected(std::string_view gateway,
                                                 int64_t heard_since = INT64_MAX);

  // The store clock's monotonic seconds, the time base of liveness.
  int64_t MonotonicSeconds() const;

  // Nodes whose device connection is up (status.edge.connected).
  size_t CountConnected() const;

  // Nodes whose last heartbeat is older than `grace_seconds` of monotonic
  // time and that are not already Ready=Unknown.
  size_t CountExpired(int64_t grace_seconds) const;
  // Marks at most `limit` such nodes Ready=Unknown; returns how many.
  absl::StatusOr<size_t> ExpireHeartbeats(int64_t grace_seconds, size_t limit);
  // Restarts every node's grace clock now (after a cloud-side outage).
  void ResetLivenessClocks();

  // --- Writes from the API; each returns after its log record is on disk ---

  // Pre-registers a node (it appears before its device registers) and lifts
  // a tombstone of the same name. AlreadyExists if it exists.
  absl::StatusOr<Node> Create(const Node& node);

  // Writes the user-owned fields of `desired`: labels other than
  // device-owned ones, annotations, taints, unschedulable. Everything else is
  // ignored. `expected_rv` 0 skips the precondition. A write that changes
  // nothing returns the node unchanged, without a new version.
  absl::StatusOr<Node> UpdateSpec(const Node& desired, uint64_t expected_rv);

  // The status subresource: capacity, allocatable, addresses, nodeInfo,
  // device conditions and the Ready condition. status.edge stays the cloud's.
  absl::StatusOr<Node> UpdateStatus(const Node& desired, uint64_t expected_rv);

  // Deletes a node and returns its last state. With `tombstone`, the name
  // cannot re-register until Create() or Readmit() lifts it.
  absl::StatusOr<Node> Delete(std::string_view name, uint64_t expected_rv, bool tombstone);
  absl::Status Readmit(std::string_view name);
  bool IsTombstoned(std::string_view name) const;

  // --- Reads ---

  absl::StatusOr<Node> Get(std::string_view name) const;
  absl::StatusOr<ListResult> List(const ListOptions& options) const;
  // The same list, streamed: `visit` is called for each node in name order,
  // outside the store's lock, so a list of the whole fleet needs memory for
  // one batch, not for the fleet. `result` receives the version and the
  // continue token; its `nodes` are left alone.
  absl::Status ListEach(const ListOptions& options, absl::FunctionRef<void(const Node&)> visit,
                        ListResult* result) const;
  // The same list again, each node as a view of its compact form
  // (node_view.h), for renderers of large lists: nothing is expanded.
  absl::Status ListEachView(const ListOptions& options,
                            absl::FunctionRef<void(const NodeView&)> visit,
                            ListResult* result) const;

  // Watches changes after version `from_rv`: 0 means from now. OutOfRange
  // when `from_rv` is older than the change log holds.
  absl::StatusOr<std::unique_ptr<NodeWatcher>> Watch(uint64_t from_rv,
                                                     LabelSelector label_selector = {},
                                                     FieldSelector field_selector = {}) const;

  uint64_t resource_version() const;
  StoreStats Stats() const;

  // --- Durability and upkeep ---

  // Returns once the log holds everything up to `token` on disk.
  absl::Status WaitDurable(uint64_t token);
  // Syncs the log, trims the change log and takes a snapshot when due. The
  // background thread calls it; tests and benchmarks may too.
  absl::Status Maintain();
  // Writes a snapshot now and prunes old snapshots and log segments.
  absl::Status Snapshot();
  // Ends watches and the background thread; later writes fail Unavailable.
  void Close();

  // The options the store runs with.
  const StoreOptions& options() const { return options_; }
  // What Open() recovered; all zero without a data directory.
  RecoveryReport recovery() const;

 private:
  friend class NodeWatcher;
  friend class StorePersistence;

  // Name order of slots, ties broken by slot (a retired slot and a live one
  // may share a name while the change log still needs the retired one).
  struct NameKey {
    std::string_view name;
    uint32_t slot;
  };
  struct SlotOrder {
    using is_transparent = void;
    const NodeStore* store;
    bool operator()(uint32_t a, uint32_t b) const { return Less(Key(a), Key(b)); }
    bool operator()(uint32_t a, const NameKey& b) const { return Less(Key(a), b); }
    bool operator()(const NameKey& a, uint32_t b) const { return Less(a, Key(b)); }
    NameKey Key(uint32_t slot) const;
    static bool Less(const NameKey& a, const NameKey& b) {
      int c = a.name.compare(b.name);
      return c < 0 || (c == 0 && a.slot < b.slot);
    }
  };
  struct SlotHash {
    using is_transparent = void;
    const NodeStore* store;
    size_t operator()(uint32_t slot) const;
    size_t operator()(std::string_view name) const;
  };
  struct SlotEq {
    using is_transparent = void;
    const NodeStore* store;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const;
    bool operator()(std::string_view a, uint32_t b) const { return (*this)(b, a); }
  };

  explicit NodeStore(StoreOptions options);

  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // Applies `record` as the new state of `slot` (or of a new slot when
  // `slot` is kNoSlot): assigns the next version, logs it and records the
  // change. Returns the log token. REQUIRES: mu_ held for writing.
  absl::StatusOr<uint64_t> CommitLocked(uint32_t slot, std::string_view name, NodeRecord record,
                                        const std::vector<uint32_t>& new_blobs, EventType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> ReserveVersionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FailWritesLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckWritableLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint32_t FindLocked(std::string_view name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint32_t AllocateSlotLocked(std::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeSlotLocked(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked(NodeRecord& record, int64_t now_s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MarkDisconnectedLocked(uint32_t slot, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The report period of the node in `slot`: between 3/4 of the configured
  // one and all of it.
  int64_t ReportPeriod(uint32_t slot) const;
  absl::StatusOr<Node> UpdateAndWait(const Node& desired, uint64_t expected_rv, bool status);
  absl::StatusOr<Node> UpdateLocked(const Node& desired, uint64_t expected_rv, bool status,
                                    uint64_t* token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Label-set id -> whether the selector matches it.
  using LabelMatchCache = absl::flat_hash_map<uint32_t, bool>;
  bool MatchesLocked(const NodeRecord& record, const LabelSelector& labels,
                     const FieldSelector& fields, LabelMatchCache* cache) const;
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaintenanceLoop();

  // Rebuilds indexes after recovery. REQUIRES: mu_ held for writing.
  void RebuildIndexesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StoreOptions options_;
  Clock* clock_;

  mutable absl::Mutex mu_;
  ChunkedArray<NodeRecord> records_;                     // Appends and in-place writes need mu_.
  ByteArena names_;                                      // Appends need mu_; reads need none.
  BlobPool blobs_;                                       // Interning needs mu_; reads need none.
  NodeCodec codec_{&blobs_, &names_, UidKey::Random()};  // Key set by recovery.
  absl::flat_hash_set<uint32_t, SlotHash, SlotEq> by_name_ ABSL_GUARDED_BY(mu_);
  absl::btree_set<uint32_t, SlotOrder> ordered_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> tombstones_ ABSL_GUARDED_BY(mu_);
  ChangeLog change_log_ ABSL_GUARDED_BY(mu_);
  uint64_t rv_ ABSL_GUARDED_BY(mu_) = 0;           // Last version handed out.
  uint64_t rv_reserved_ ABSL_GUARDED_BY(mu_) = 0;  // Versions up to here are logged as used.
  size_t live_nodes_ ABSL_GUARDED_BY(mu_) = 0;
  // A snapshot in progress needs the change log back to this version.
  uint64_t snapshot_pin_rv_ ABSL_GUARDED_BY(mu_) = UINT64_MAX;
  uint64_t change_log_capped_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the first write that could not be logged; every later write fails.
  absl::Status write_failure_ ABSL_GUARDED_BY(mu_);
  absl::Mutex snapshot_mu_;  // Held for the whole of a snapshot.

  std::unique_ptr<StorePersistence> persistence_;  // Null without a data dir.

  absl::Mutex maintenance_mu_;
  bool stop_maintenance_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  std::thread maintenance_thread_;
};

// A watch on the store: changes after a version, filtered by selectors, in
// version order. With selectors, a change that moves a node into the
// selection is reported as kAdded and one that moves it out as kDeleted, as
// Kubernetes does.
//
// Thread safety: one thread at a time per watcher. Ownership: borrows the
// store, which must outlive it.
class NodeWatcher {
 public:
  // Waits until there are changes or `deadline` passes, then returns up to
  // `max_events` of them (none on timeout: the caller may send a bookmark at
  // cursor()). OutOfRange when the watcher fell behind the change log
  // (the client must relist); Cancelled once the store is closed.
  absl::StatusOr<std::vector<WatchEvent>> Next(size_t max_events, absl::Time deadline);

  // Every change up to this version has been delivered or filtered out: a
  // bookmark at this version resumes without a gap.
  uint64_t cursor() const { return cursor_; }

 private:
  friend class NodeStore;
  NodeWatcher(const NodeStore* store, uint64_t cursor, LabelSelector labels, FieldSelector fields)
      : store_(store), cursor_(cursor), labels_(std::move(labels)), fields_(std::move(fields)) {}

  const NodeStore* store_;
  uint64_t cursor_;
  LabelSelector labels_;
  FieldSelector fields_;
  NodeStore::LabelMatchCache label_cache_;
};

// True when `status` means "that version is gone": the API answers 410 Gone
// and the client relists.
bool IsExpired(const absl::Status& status);
// An OutOfRange status that IsExpired() recognises.
absl::Status ExpiredError(std::string message);

}  // namespace kole::storage
