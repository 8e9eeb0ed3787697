#pragma once

// DaemonPods keeps the pods of EdgeDaemonSets: one virtual pod per workload
// and matching node, derived from the workload's template, the node and a
// 32-byte cell of what the device reported. No pod is an object of its own;
// a million pods of one workload cost the cells (32 MB) plus the node index
// below, shared by every workload.
//
//   pods.SetWorkload(spec);            // an EdgeDaemonSet was created or changed
//   pods.SetNode(facts);               // a node registered or was relabelled
//   pods.ApplyPodRevision(node, rev);  // a heartbeat: the device runs `rev`
//   pods.TakeDirtyNodes(...);          // desired pod sets to send to devices
//
// Selection follows DaemonSets: a node gets a workload's pod when its labels
// match the node selector and the workload tolerates every NoSchedule and
// NoExecute taint of the node (taints the node lifecycle sets, such as
// node.kubernetes.io/unreachable, and spec.unschedulable are tolerated as
// DaemonSets tolerate them).
//
// Revisions: a workload's template revision is a hash of its pod template.
// Each cell holds the revision the cloud assigned (desired) and the one the
// device confirmed (running). A node's pod set revision is a hash of its
// (workload, revision, restart) triples; a heartbeat carrying it confirms
// every pod of the set as running at once. A new template moves nodes to the
// new revision at most max_unavailable at a time (Rollout()); nodes that
// newly match get the current revision at once.
//
// Versions: every pod event (added, modified, deleted) takes the next version
// from the `next_version` callback, the pod store's sequence, and is kept in
// a compact history (80 bytes an event) for watches, retained by time within
// a memory cap.
//
// Thread safety: none of its own. PodStore owns it and calls every method
// under its own mutex (pod_store.h).

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/functional/function_ref.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/arena.h"
#include "storage/change_log.h"
#include "storage/field_selector.h"
#include "storage/label_selector.h"
#include "storage/node.h"
#include "storage/pod.h"
#include "storage/pod_status_table.h"

namespace kole::storage {

struct Toleration {
  std::string key;  // Empty with operator Exists: every taint.
  std::string op;   // "Equal" (default) or "Exists".
  std::string value;
  std::string effect;  // Empty: every effect.
  bool operator==(const Toleration&) const = default;
};

// Whether `tolerations` let a pod onto a node with `taint`, the rules of
// core/v1 Toleration.ToleratesTaint.
bool Tolerates(const std::vector<Toleration>& tolerations, const Taint& taint);

// What the pods of one EdgeDaemonSet look like; the API parses it from the
// object (apiserver-ext/eds_json.h).
struct WorkloadSpec {
  std::string namespace_;
  std::string name;
  Uid uid;
  LabelSelector node_selector;
  std::vector<Toleration> tolerations;
  StringPairs pod_labels;
  StringPairs pod_annotations;
  std::string pod_spec_json;  // template.spec, compact JSON object.
  std::vector<std::string> container_names;
  std::vector<std::string> container_images;
  bool host_network = false;
  // Non-empty: not an EdgeDaemonSet but a standalone pod (created with
  // spec.nodeName), pinned to this node. The pod store serves the pod
  // itself; this entry only carries it to the device and its status back
  // (StandaloneChanges()). Its name is kStandalonePrefix + the pod's name.
  std::string node_name;
  // Rolling update: at most this many pods unavailable (or this percent of
  // the desired pods, rounded up).
  uint32_t max_unavailable = 1;
  bool max_unavailable_percent = false;
};

// Whether the workload tolerates every taint that keeps pods off a node.
// With `running`, the pod is there already: as for DaemonSets, only NoExecute
// taints evict it; NoSchedule ones keep new pods off only.
bool ToleratesTaints(const WorkloadSpec& spec, const std::vector<Taint>& taints,
                     bool running = false);

// Whether the workload runs a pod on a node with these labels and taints.
bool WorkloadSelects(const WorkloadSpec& spec, const StringPairs& labels,
                     const std::vector<Taint>& taints);

// The workload name of a standalone pod: a name no EdgeDaemonSet can have,
// so that both share the workload topics and the device protocol.
inline constexpr std::string_view kStandalonePrefix = "pod:";

// The template revision: a hash of everything that ends up in a pod.
uint32_t TemplateRevision(const WorkloadSpec& spec);
std::string RevisionString(uint32_t revision);  // 8 lowercase hex digits.
std::optional<uint32_t> ParseRevision(std::string_view text);

// The name of the pod of workload `workload` on `node`: "<workload>-<node>",
// shortened with a hash of the node name when that exceeds 253 characters.
std::string DaemonPodName(std::string_view workload, std::string_view node);

// What selection needs to know about a node.
struct DaemonNodeFacts {
  std::string name;
  StringPairs labels;
  std::vector<Taint> taints;
  uint32_t ipv4 = 0;  // InternalIP, 0 if none.
  std::string gateway;
};

// One virtual pod's state. 32 bytes.
struct DaemonPodCell {
  uint64_t rv = 0;                 // The pod's resourceVersion; 0: no pod.
  uint32_t desired_rev = 0;        // Template revision assigned.
  uint32_t running_rev = 0;        // Revision the device confirmed running, 0: none.
  uint32_t created_s = 0;          // Unix seconds.
  uint32_t last_restart_s = 0;     // Unix seconds of the last container restart.
  uint16_t restarts = 0;           // Container restarts the device reported.
  uint8_t restart_generation = 0;  // Deletions through the API; part of the UID.
  uint8_t phase = 0;               // PodPhase (pod_status_table.h).
  uint8_t ready = 0;               // Ready containers.
  uint8_t reason = 0;              // Index into kDaemonPodReasons.
  uint8_t flags = 0;               // kCellReported
  uint8_t reserved = 0;
};
static_assert(sizeof(DaemonPodCell) == 32);

// The cell's status came from a status report for its desired revision, so a
// heartbeat's pod revision does not overwrite it.
inline constexpr uint8_t kCellReported = 1 << 0;

// Waiting and terminated reasons a device may report; index 0 is none.
inline constexpr std::string_view kDaemonPodReasons[] = {
    "",           "ContainerCreating", "CrashLoopBackOff", "Error",     "Completed",
    "StartError", "ImagePullBackOff",  "ErrImagePull",     "OOMKilled", "Unknown"};
uint8_t DaemonPodReasonIndex(std::string_view reason);  // Unknown reasons map to "Unknown".

// A pod as the device is told to run it.
struct DesiredPod {
  std::string namespace_;
  std::string name;      // The pod's name.
  std::string workload;  // The EdgeDaemonSet's name.
  uint32_t revision = 0;
  uint32_t restart = 0;
};

// The full desired pod set of one node: what a `pods` message carries.
struct NodePodSet {
  std::string node;
  std::string gateway;
  uint32_t revision = 0;  // Of the set; 0 for an empty set.
  std::vector<DesiredPod> pods;
};

// The template of one workload revision, as devices fetch it.
struct WorkloadTemplateInfo {
  std::string namespace_;
  std::string workload;
  uint32_t revision = 0;
  std::string template_json;  // {"metadata":{"labels":..,"annotations":..},"spec":{..}}
};

// What a device reports about one of its pods.
struct DaemonPodReport {
  std::string namespace_;
  std::string workload;
  uint32_t revision = 0;
  uint8_t phase = 0;  // PodPhase
  uint8_t ready = 0;
  uint16_t restarts = 0;
  uint32_t last_restart_s = 0;
  std::string reason;
};

// The status fields of an EdgeDaemonSet, as DaemonSetStatus counts them.
struct WorkloadStatus {
  uint64_t desired = 0;    // desiredNumberScheduled
  uint64_t current = 0;    // currentNumberScheduled
  uint64_t ready = 0;      // numberReady
  uint64_t updated = 0;    // updatedNumberScheduled
  uint64_t available = 0;  // numberAvailable
  uint64_t unavailable = 0;
  uint32_t revision = 0;
  bool exists = false;
};

struct DaemonPodsOptions {
  int64_t retention_seconds = 300;
  size_t max_history_bytes = size_t{512} << 20;
};

class DaemonPods {
 public:
  // One retained pod event.
  struct Event {
    uint64_t rv;
    uint32_t workload;
    uint32_t node;
    EventType type;
    DaemonPodCell before;  // Valid unless kAdded.
    DaemonPodCell after;   // Valid unless kDeleted.
  };

  DaemonPods(DaemonPodsOptions options, std::function<uint64_t()> next_version,
             std::function<int64_t()> wall_seconds);
  ~DaemonPods();

  // --- Workloads ---

  // Creates or replaces a workload and reconciles its pods: `selected` names
  // every node that matches it now (the caller evaluates the selector
  // against the node store, which keeps labels and taints; this table does
  // not). Nodes not known yet are added.
  void SetWorkload(const WorkloadSpec& spec, const std::vector<DaemonNodeFacts>& selected);
  // Deletes every pod of the workload.
  void RemoveWorkload(std::string_view namespace_, std::string_view name);
  WorkloadStatus Status(std::string_view namespace_, std::string_view name) const;
  // The namespace is being deleted: every pod of its workloads goes, and
  // SetWorkload() creates none there until ResumeNamespace().
  void SuspendNamespace(std::string_view namespace_);
  void ResumeNamespace(std::string_view namespace_);

  // --- Nodes ---

  // Adds or updates a node and reconciles its pods against every workload.
  void SetNode(const DaemonNodeFacts& facts);
  // The node left the fleet: its pods go.
  void RemoveNode(std::string_view name);
  size_t node_count() const { return live_nodes_; }

  // --- Devices ---

  // A heartbeat's pod revision: when it is the node's desired set, every pod
  // of the set runs. Returns true when the device runs something else and it
  // is time to send it the desired set again (at most every `resend_after_s`).
  bool ApplyPodRevision(std::string_view node, std::string_view revision, int64_t resend_after_s);
  // A status report from the device; unknown workloads are ignored.
  void ApplyReports(std::string_view node, const std::vector<DaemonPodReport>& reports);

  // Deleting a pod through the API restarts it on the device: the pod is
  // deleted and added again with a new UID. NotFound unless it is a pod here.
  std::optional<std::pair<Pod, Pod>> Restart(std::string_view namespace_, std::string_view name);

  // Advances rolling updates; returns how many pods moved to a new revision.
  size_t Rollout();

  // Desired pod sets of nodes whose set changed or must be sent again.
  std::vector<NodePodSet> TakeDirtyNodes(size_t max);
  size_t dirty_nodes() const { return dirty_.size(); }
  // Marks every node with pods dirty (the broker lost what it held).
  void MarkAllDirty();
  // Marks these nodes dirty again (their sets could not be sent).
  void MarkDirty(const std::vector<std::string>& nodes);
  // Templates of every revision some pod may run: each live workload's
  // current one, and the previous one while a rollout is under way.
  std::vector<WorkloadTemplateInfo> Templates() const;

  // Standalone pods whose device state changed since the last call: their
  // namespace and name, phase and status JSON, for the pod store to record.
  struct StandaloneChange {
    std::string namespace_;
    std::string name;
    std::string phase;
    std::string status_json;
  };
  std::vector<StandaloneChange> TakeStandaloneChanges();
  std::optional<NodePodSet> DesiredSet(std::string_view node) const;

  // --- Reads ---

  std::optional<Pod> Get(std::string_view namespace_, std::string_view name) const;
  // Visits pods in (namespace, workload, node) order after `after` (an
  // opaque position from a previous call; empty: from the start) until
  // `visit` returns false. Returns the position after the last pod visited,
  // empty when the end was reached.
  std::string ListEach(std::string_view namespace_, const LabelSelector& labels,
                       const FieldSelector& fields, std::string_view after, size_t limit,
                       absl::FunctionRef<void(Pod)> visit) const;

  // Retained events with versions in (after, ...], oldest first.
  const std::deque<Event>& history() const { return history_; }
  // Events up to this version have been dropped: a watch can resume only
  // after a later one.
  uint64_t trimmed_upto() const { return trimmed_upto_; }
  Pod Render(const Event& event) const;  // The pod after the event (before it, for kDeleted).
  bool MatchesEvent(const Event& event, bool after, std::string_view namespace_,
                    const LabelSelector& labels, const FieldSelector& fields) const;

  // Drops events past retention or the memory cap.
  void Trim();

  size_t pod_count() const { return pod_count_; }
  size_t memory_bytes() const;
  size_t history_bytes() const { return history_.size() * sizeof(Event); }

 private:
  struct Workload;
  struct NodeEntry {
    uint32_t name;  // Offset in names_.
    uint32_t ipv4 = 0;
    uint32_t set_revision = 0;
    uint32_t sent_s = 0;   // When the set was last queued to send.
    uint16_t gateway = 0;  // Index into gateways_; 0: none.
    bool live = false;
    bool dirty = false;
    bool confirmed = false;  // The device confirmed set_revision.
  };
  struct NameOrder {
    using is_transparent = void;
    const DaemonPods* pods;
    bool operator()(uint32_t a, uint32_t b) const;
    bool operator()(uint32_t a, std::string_view b) const;
    bool operator()(std::string_view a, uint32_t b) const;
  };
  struct NameHash {
    using is_transparent = void;
    const DaemonPods* pods;
    size_t operator()(uint32_t id) const;
    size_t operator()(std::string_view name) const;
  };
  struct NameEq {
    using is_transparent = void;
    const DaemonPods* pods;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const;
    bool operator()(std::string_view a, uint32_t b) const { return (*this)(b, a); }
  };

  std::string_view NodeName(uint32_t node) const { return names_.Get(nodes_[node].name); }
  uint32_t FindNode(std::string_view name) const;
  Workload* FindWorkload(std::string_view namespace_, std::string_view name) const;
  uint32_t InternNode(const DaemonNodeFacts& facts);
  // The cell of `node`, grown into existence; rv 0 when there is no pod.
  DaemonPodCell* MutableCell(Workload& w, uint32_t node);
  // The cell of the pod on `node`, or null when there is none.
  const DaemonPodCell* Cell(const Workload& w, uint32_t node) const;
  bool HasPod(const Workload& w, uint32_t node) const;
  void Emit(Workload& w, uint32_t node, EventType type, const DaemonPodCell& before,
            DaemonPodCell& after);
  void AddPod(Workload& w, uint32_t node);
  void DeletePod(Workload& w, uint32_t node);
  void MarkDirty(uint32_t node);
  void RecomputeSet(uint32_t node);
  Pod RenderPod(const Workload& w, uint32_t node, const DaemonPodCell& cell, uint64_t rv) const;
  std::string StatusJson(const WorkloadSpec& spec, uint32_t node, const DaemonPodCell& cell) const;
  NodePodSet BuildSet(uint32_t node) const;
  std::optional<std::pair<const Workload*, uint32_t>> Resolve(std::string_view namespace_,
                                                              std::string_view name) const;

  DaemonPodsOptions options_;
  std::function<uint64_t()> next_version_;
  std::function<int64_t()> wall_seconds_;

  std::vector<std::unique_ptr<Workload>> workloads_;  // Index = workload id; never reused.
  ByteArena names_;
  std::vector<NodeEntry> nodes_;
  size_t live_nodes_ = 0;
  absl::flat_hash_set<uint32_t, NameHash, NameEq> by_name_{0, NameHash{this}, NameEq{this}};
  absl::btree_set<uint32_t, NameOrder> ordered_{NameOrder{this}};
  std::map<std::pair<std::string, std::string>, uint32_t> workload_order_;  // Live ones.
  absl::flat_hash_set<std::string> suspended_;
  std::vector<std::pair<uint32_t, uint32_t>> standalone_changes_;  // (workload, node)
  std::vector<std::string> gateways_{""};
  absl::flat_hash_map<std::string, uint16_t> gateway_ids_;
  std::deque<uint32_t> dirty_;
  std::deque<Event> history_;
  struct TimeMark {
    uint64_t rv;
    int64_t time_s;
  };
  std::deque<TimeMark> marks_;
  uint64_t trimmed_upto_ = 0;  // Events up to this version were dropped.
  size_t pod_count_ = 0;
};

}  // namespace kole::storage
