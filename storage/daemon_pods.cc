#include "storage/daemon_pods.h"

#include <absl/hash/hash.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "storage/node_record.h"
#include "storage/pod_source.h"
#include "storage/pod_status_table.h"

namespace kole::storage {
namespace {

constexpr size_t kMaxPodName = 253;
constexpr std::string_view kRevisionLabel = "controller-revision-hash";

// FNV-1a, 64 bits: stable across processes and releases, unlike absl::Hash,
// because revisions and UIDs derived from it travel to devices and clients.
uint64_t Fnv(std::string_view data, uint64_t h = 1469598103934665603ull) {
  for (char c : data) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t FnvU64(uint64_t v, uint64_t h) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return Fnv(std::string_view(bytes, 8), h);
}

uint64_t FnvPairs(const StringPairs& pairs, uint64_t h) {
  for (const auto& [k, v] : pairs) {
    h = Fnv(k, h);
    h = Fnv(std::string_view("\0", 1), h);
    h = Fnv(v, h);
    h = Fnv(std::string_view("\1", 1), h);
  }
  return h;
}

bool Available(const DaemonPodCell& c, size_t containers) {
  return c.rv != 0 && c.running_rev == c.desired_rev &&
         c.phase == static_cast<uint8_t>(PodPhase::kRunning) && c.ready >= containers;
}

std::string_view PhaseName(uint8_t phase) {
  switch (static_cast<PodPhase>(phase)) {
    case PodPhase::kPending:
      return "Pending";
    case PodPhase::kRunning:
      return "Running";
    case PodPhase::kSucceeded:
      return "Succeeded";
    case PodPhase::kFailed:
      return "Failed";
    case PodPhase::kUnknown:
      break;
  }
  return "Unknown";
}

void AppendJsonString(std::string_view s, std::string& out) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string Rfc3339(int64_t unix_s) {
  if (unix_s <= 0) return "null";
  time_t t = static_cast<time_t>(unix_s);
  struct tm tm;
  gmtime_r(&t, &tm);
  return fmt::format("\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\"", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace

struct DaemonPods::Workload {
  uint32_t id = 0;
  bool live = true;
  std::shared_ptr<const WorkloadSpec> spec;
  uint32_t revision = 0;
  // Specs of the revisions pods may still run: the current and the previous.
  std::shared_ptr<const WorkloadSpec> previous;
  uint32_t previous_revision = 0;
  ChunkedArray<DaemonPodCell, 16384, 65536> cells;  // Index = node id.
  size_t pods = 0;
  size_t outdated = 0;  // Pods whose desired revision is not the current one.

  const WorkloadSpec& SpecFor(uint32_t rev) const {
    return rev == previous_revision && previous ? *previous : *spec;
  }
};

bool Tolerates(const std::vector<Toleration>& tolerations, const Taint& taint) {
  for (const Toleration& t : tolerations) {
    if (!t.effect.empty() && t.effect != taint.effect) continue;
    if (t.key.empty()) {
      if (t.op == "Exists") return true;
      continue;
    }
    if (t.key != taint.key) continue;
    if (t.op == "Exists") return true;
    if ((t.op.empty() || t.op == "Equal") && t.value == taint.value) return true;
  }
  return false;
}

bool ToleratesTaints(const WorkloadSpec& spec, const std::vector<Taint>& taints, bool running) {
  for (const Taint& taint : taints) {
    if (taint.effect != "NoSchedule" && taint.effect != "NoExecute") continue;
    if (running && taint.effect == "NoSchedule") continue;
    // DaemonSet pods tolerate what the node lifecycle and cordoning set.
    if (taint.key == "node.kubernetes.io/not-ready" ||
        taint.key == "node.kubernetes.io/unreachable" ||
        taint.key == "node.kubernetes.io/unschedulable" ||
        taint.key == "node.kubernetes.io/disk-pressure" ||
        taint.key == "node.kubernetes.io/memory-pressure" ||
        taint.key == "node.kubernetes.io/pid-pressure") {
      continue;
    }
    if (!Tolerates(spec.tolerations, taint)) return false;
  }
  return true;
}

bool WorkloadSelects(const WorkloadSpec& spec, const StringPairs& labels,
                     const std::vector<Taint>& taints) {
  return spec.node_selector.Matches([&](std::string_view key) -> std::optional<std::string_view> {
    for (const auto& [k, v] : labels) {
      if (k == key) return v;
    }
    return std::nullopt;
  }) && ToleratesTaints(spec, taints);
}

uint32_t TemplateRevision(const WorkloadSpec& spec) {
  uint64_t h = Fnv(spec.pod_spec_json);
  h = FnvPairs(spec.pod_labels, h);
  h = FnvPairs(spec.pod_annotations, h);
  uint32_t rev = static_cast<uint32_t>(h ^ (h >> 32));
  return rev == 0 ? 1 : rev;  // 0 means "none".
}

std::string RevisionString(uint32_t revision) { return fmt::format("{:08x}", revision); }

std::optional<uint32_t> ParseRevision(std::string_view text) {
  if (text.size() != 8) return std::nullopt;
  uint32_t v = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), v, 16);
  if (err != std::errc() || end != text.data() + text.size()) return std::nullopt;
  for (char c : text) {
    if (c >= 'A' && c <= 'F') return std::nullopt;
  }
  return v;
}

std::string DaemonPodName(std::string_view workload, std::string_view node) {
  if (workload.size() + 1 + node.size() <= kMaxPodName) {
    return fmt::format("{}-{}", workload, node);
  }
  // "<workload>-<start of node>-<16 hex>": stable, unique for practical
  // purposes, and a valid name (the cut never ends on '-' or '.').
  std::string hash = fmt::format("{:016x}", Fnv(node));
  size_t keep = kMaxPodName - workload.size() - 2 - hash.size();
  std::string_view head = node.substr(0, std::min(keep, node.size()));
  while (!head.empty() && (head.back() == '-' || head.back() == '.')) head.remove_suffix(1);
  if (head.empty()) return fmt::format("{}-{}", workload.substr(0, kMaxPodName - 17), hash);
  return fmt::format("{}-{}-{}", workload, head, hash);
}

uint8_t DaemonPodReasonIndex(std::string_view reason) {
  for (size_t i = 0; i < std::size(kDaemonPodReasons); ++i) {
    if (kDaemonPodReasons[i] == reason) return static_cast<uint8_t>(i);
  }
  return static_cast<uint8_t>(std::size(kDaemonPodReasons) - 1);
}

bool DaemonPods::NameOrder::operator()(uint32_t a, uint32_t b) const {
  return pods->NodeName(a) < pods->NodeName(b);
}
bool DaemonPods::NameOrder::operator()(uint32_t a, std::string_view b) const {
  return pods->NodeName(a) < b;
}
bool DaemonPods::NameOrder::operator()(std::string_view a, uint32_t b) const {
  return a < pods->NodeName(b);
}
size_t DaemonPods::NameHash::operator()(uint32_t id) const {
  return absl::Hash<std::string_view>()(pods->NodeName(id));
}
size_t DaemonPods::NameHash::operator()(std::string_view name) const {
  return absl::Hash<std::string_view>()(name);
}
bool DaemonPods::NameEq::operator()(uint32_t a, std::string_view b) const {
  return pods->NodeName(a) == b;
}

DaemonPods::DaemonPods(DaemonPodsOptions options, std::function<uint64_t()> next_version,
                       std::function<int64_t()> wall_seconds)
    : options_(options),
      next_version_(std::move(next_version)),
      wall_seconds_(std::move(wall_seconds)) {}

DaemonPods::~DaemonPods() = default;

uint32_t DaemonPods::FindNode(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? UINT32_MAX : *it;
}

DaemonPods::Workload* DaemonPods::FindWorkload(std::string_view ns, std::string_view name) const {
  auto it = workload_order_.find({std::string(ns), std::string(name)});
  return it == workload_order_.end() ? nullptr : workloads_[it->second].get();
}

DaemonPodCell* DaemonPods::MutableCell(Workload& w, uint32_t node) {
  while (w.cells.size() <= node) w.cells.push_back(DaemonPodCell{});
  return &w.cells[node];
}

bool DaemonPods::HasPod(const Workload& w, uint32_t node) const { return Cell(w, node) != nullptr; }

const DaemonPodCell* DaemonPods::Cell(const Workload& w, uint32_t node) const {
  if (node >= w.cells.size()) return nullptr;
  const DaemonPodCell& c = w.cells[node];
  return c.rv == 0 ? nullptr : &c;
}

uint32_t DaemonPods::InternNode(const DaemonNodeFacts& facts) {
  uint32_t id = FindNode(facts.name);
  if (id == UINT32_MAX) {
    id = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(NodeEntry{.name = names_.Append(facts.name)});
    by_name_.insert(id);
    ordered_.insert(id);
  }
  NodeEntry& n = nodes_[id];
  if (!n.live) ++live_nodes_;
  n.live = true;
  n.ipv4 = facts.ipv4;
  uint16_t gateway = 0;
  if (!facts.gateway.empty()) {
    auto it = gateway_ids_.find(facts.gateway);
    if (it != gateway_ids_.end()) {
      gateway = it->second;
    } else if (gateways_.size() < UINT16_MAX) {
      gateway = static_cast<uint16_t>(gateways_.size());
      gateway_ids_.emplace(facts.gateway, gateway);
      gateways_.push_back(facts.gateway);
    }
    // Past 65,535 gateways, a new gateway's nodes get their sets on their
    // own node topics (docs/known-issues.md).
  }
  n.gateway = gateway;
  return id;
}

void DaemonPods::Emit(Workload& w, uint32_t node, EventType type, const DaemonPodCell& before,
                      DaemonPodCell& after) {
  if (!w.spec->node_name.empty()) {
    // A standalone pod: the pod store versions the pod; here only its
    // presence (rv 1) and what the device says are kept.
    if (type != EventType::kDeleted) after.rv = 1;
    standalone_changes_.emplace_back(w.id, node);
    return;
  }
  uint64_t rv = next_version_();
  if (type != EventType::kDeleted) after.rv = rv;
  history_.push_back(Event{rv, w.id, node, type, before, after});
  int64_t now = wall_seconds_();
  if (marks_.empty() || marks_.back().time_s != now) marks_.push_back({rv, now});
}

void DaemonPods::AddPod(Workload& w, uint32_t node) {
  DaemonPodCell* cell = MutableCell(w, node);
  DaemonPodCell before = *cell;
  DaemonPodCell fresh;
  fresh.desired_rev = w.revision;
  fresh.created_s = static_cast<uint32_t>(wall_seconds_());
  fresh.phase = static_cast<uint8_t>(PodPhase::kPending);
  fresh.reason = DaemonPodReasonIndex("ContainerCreating");
  // A pod that comes back (the node matches again) is a new pod.
  fresh.restart_generation = static_cast<uint8_t>(before.restart_generation + 1);
  Emit(w, node, EventType::kAdded, before, fresh);
  *cell = fresh;
  ++w.pods;
  ++pod_count_;
  RecomputeSet(node);
}

void DaemonPods::DeletePod(Workload& w, uint32_t node) {
  DaemonPodCell* cell = MutableCell(w, node);
  DaemonPodCell before = *cell;
  DaemonPodCell gone;
  gone.restart_generation = before.restart_generation;
  Emit(w, node, EventType::kDeleted, before, gone);
  if (before.desired_rev != w.revision) --w.outdated;
  *cell = gone;
  --w.pods;
  --pod_count_;
  RecomputeSet(node);
}

void DaemonPods::MarkDirty(uint32_t node) {
  NodeEntry& n = nodes_[node];
  if (n.dirty) return;
  n.dirty = true;
  dirty_.push_back(node);
}

void DaemonPods::RecomputeSet(uint32_t node) {
  uint64_t h = 1469598103934665603ull;
  bool any = false;
  for (const auto& [key, id] : workload_order_) {
    const Workload& w = *workloads_[id];
    const DaemonPodCell* c = Cell(w, node);
    if (c == nullptr) continue;
    any = true;
    h = FnvU64(w.spec->uid.hi, h);
    h = FnvU64(w.spec->uid.lo, h);
    h = FnvU64(uint64_t{c->desired_rev} << 8 | c->restart_generation, h);
  }
  uint32_t rev = any ? static_cast<uint32_t>(h ^ (h >> 32)) : 0;
  if (any && rev == 0) rev = 1;
  NodeEntry& n = nodes_[node];
  if (rev == n.set_revision) return;
  n.set_revision = rev;
  n.confirmed = false;
  MarkDirty(node);
}

void DaemonPods::SuspendNamespace(std::string_view ns) {
  suspended_.insert(std::string(ns));
  std::vector<std::string> names;
  for (auto it = workload_order_.lower_bound({std::string(ns), std::string()});
       it != workload_order_.end() && it->first.first == ns; ++it) {
    names.push_back(it->first.second);
  }
  for (const std::string& name : names) RemoveWorkload(ns, name);
}

void DaemonPods::ResumeNamespace(std::string_view ns) { suspended_.erase(std::string(ns)); }

void DaemonPods::SetWorkload(const WorkloadSpec& spec,
                             const std::vector<DaemonNodeFacts>& selected) {
  if (suspended_.contains(spec.namespace_)) return;
  Workload* w = FindWorkload(spec.namespace_, spec.name);
  if (w != nullptr && !(w->spec->uid == spec.uid)) {
    RemoveWorkload(spec.namespace_, spec.name);
    w = nullptr;
  }
  uint32_t revision = TemplateRevision(spec);
  auto shared = std::make_shared<const WorkloadSpec>(spec);
  if (w == nullptr) {
    auto fresh = std::make_unique<Workload>();
    fresh->id = static_cast<uint32_t>(workloads_.size());
    fresh->spec = shared;
    fresh->revision = revision;
    w = fresh.get();
    workloads_.push_back(std::move(fresh));
    workload_order_[{spec.namespace_, spec.name}] = w->id;
  } else if (revision != w->revision) {
    w->previous = w->spec;
    w->previous_revision = w->revision;
    w->spec = shared;
    w->revision = revision;
    w->outdated = w->pods;  // Every pod now runs an older revision.
  } else {
    w->spec = shared;  // Selection or rollout settings changed, not the pods.
  }

  std::vector<DaemonNodeFacts> pinned;
  if (!spec.node_name.empty()) {
    // A standalone pod runs on its node once that node is in the fleet.
    uint32_t node = FindNode(spec.node_name);
    if (node != UINT32_MAX && nodes_[node].live) {
      pinned.push_back(DaemonNodeFacts{.name = spec.node_name,
                                       .ipv4 = nodes_[node].ipv4,
                                       .gateway = gateways_[nodes_[node].gateway]});
    }
  }
  const std::vector<DaemonNodeFacts>& chosen = spec.node_name.empty() ? selected : pinned;
  std::vector<uint8_t> keep(nodes_.size() + chosen.size(), 0);
  for (const DaemonNodeFacts& facts : chosen) {
    uint32_t node = InternNode(facts);
    if (node >= keep.size()) keep.resize(node + 1, 0);
    keep[node] = 1;
    if (!HasPod(*w, node)) AddPod(*w, node);
  }
  for (uint32_t node = 0; node < w->cells.size(); ++node) {
    if (w->cells[node].rv != 0 && (node >= keep.size() || !keep[node])) DeletePod(*w, node);
  }
}

void DaemonPods::RemoveWorkload(std::string_view ns, std::string_view name) {
  Workload* w = FindWorkload(ns, name);
  if (w == nullptr) return;
  for (uint32_t node = 0; node < w->cells.size(); ++node) {
    if (w->cells[node].rv != 0) DeletePod(*w, node);
  }
  // Keep the spec: retained events of this workload still render from it.
  w->live = false;
  workload_order_.erase({std::string(ns), std::string(name)});
  for (uint32_t node = 0; node < w->cells.size(); ++node) {
    if (nodes_[node].set_revision != 0) RecomputeSet(node);
  }
}

WorkloadStatus DaemonPods::Status(std::string_view ns, std::string_view name) const {
  WorkloadStatus s;
  const Workload* w = FindWorkload(ns, name);
  if (w == nullptr) return s;
  s.exists = true;
  s.revision = w->revision;
  for (uint32_t node = 0; node < w->cells.size(); ++node) {
    const DaemonPodCell& c = w->cells[node];
    if (c.rv == 0) continue;
    ++s.desired;
    if (c.desired_rev == w->revision) ++s.updated;
    size_t containers = w->SpecFor(c.desired_rev).container_names.size();
    if (Available(c, containers)) ++s.ready;
  }
  s.current = s.desired;
  s.available = s.ready;
  s.unavailable = s.desired - s.available;
  return s;
}

void DaemonPods::SetNode(const DaemonNodeFacts& facts) {
  uint32_t node = InternNode(facts);
  for (const auto& [key, id] : workload_order_) {
    Workload& w = *workloads_[id];
    bool present = HasPod(w, node);
    // A pod already there stays on a node tainted NoSchedule since, as a
    // DaemonSet's does; only NoExecute evicts it.
    bool selected = w.spec->node_name.empty()
                        ? WorkloadSelects(*w.spec, facts.labels, facts.taints) ||
                              (present && WorkloadSelects(*w.spec, facts.labels, {}) &&
                               ToleratesTaints(*w.spec, facts.taints, /*running=*/true))
                        : w.spec->node_name == facts.name;
    if (selected && !present) AddPod(w, node);
    if (!selected && present) DeletePod(w, node);
  }
}

void DaemonPods::RemoveNode(std::string_view name) {
  uint32_t node = FindNode(name);
  if (node == UINT32_MAX || !nodes_[node].live) return;
  for (const auto& [key, id] : workload_order_) {
    Workload& w = *workloads_[id];
    if (HasPod(w, node)) DeletePod(w, node);
  }
  NodeEntry& n = nodes_[node];
  n.live = false;
  n.confirmed = false;
  --live_nodes_;
}

bool DaemonPods::ApplyPodRevision(std::string_view name, std::string_view revision,
                                  int64_t resend_after_s) {
  uint32_t node = FindNode(name);
  if (node == UINT32_MAX) return false;
  NodeEntry& n = nodes_[node];
  if (!n.live) return false;
  std::optional<uint32_t> rev =
      revision.empty() ? std::optional<uint32_t>(0) : ParseRevision(revision);
  if (rev && *rev == n.set_revision) {
    if (n.confirmed || n.set_revision == 0) return false;
    n.confirmed = true;
    for (const auto& [key, id] : workload_order_) {
      Workload& w = *workloads_[id];
      DaemonPodCell* c = node < w.cells.size() ? &w.cells[node] : nullptr;
      if (c == nullptr || c->rv == 0) continue;
      // A device's report for this revision stays in force (a crash loop, a
      // failure): the heartbeat says the set is applied, not that it is well.
      if ((c->flags & kCellReported) != 0) continue;
      size_t containers = w.SpecFor(c->desired_rev).container_names.size();
      DaemonPodCell next = *c;
      next.running_rev = c->desired_rev;
      next.phase = static_cast<uint8_t>(PodPhase::kRunning);
      next.ready = static_cast<uint8_t>(std::min<size_t>(containers, 255));
      next.reason = 0;
      if (std::memcmp(&next, c, sizeof(next)) == 0) continue;
      DaemonPodCell before = *c;
      Emit(w, node, EventType::kModified, before, next);
      *c = next;
    }
    return false;
  }
  int64_t now = wall_seconds_();
  if (now - int64_t{n.sent_s} < resend_after_s) return false;
  MarkDirty(node);
  return true;
}

void DaemonPods::ApplyReports(std::string_view name, const std::vector<DaemonPodReport>& reports) {
  uint32_t node = FindNode(name);
  if (node == UINT32_MAX || !nodes_[node].live) return;
  for (const DaemonPodReport& r : reports) {
    Workload* w = FindWorkload(r.namespace_, r.workload);
    if (w == nullptr) continue;
    DaemonPodCell* c = MutableCell(*w, node);
    if (c->rv == 0 || r.revision != c->desired_rev) continue;
    DaemonPodCell next = *c;
    next.phase = std::min<uint8_t>(r.phase, static_cast<uint8_t>(PodPhase::kUnknown));
    next.ready = r.ready;
    next.restarts = r.restarts;
    next.last_restart_s = r.last_restart_s;
    next.reason = r.reason.empty() ? 0 : DaemonPodReasonIndex(r.reason);
    next.flags |= kCellReported;
    if (next.phase == static_cast<uint8_t>(PodPhase::kRunning)) next.running_rev = r.revision;
    if (std::memcmp(&next, c, sizeof(next)) == 0) continue;
    DaemonPodCell before = *c;
    Emit(*w, node, EventType::kModified, before, next);
    *c = next;
  }
}

std::optional<std::pair<const DaemonPods::Workload*, uint32_t>> DaemonPods::Resolve(
    std::string_view ns, std::string_view name) const {
  for (auto it = workload_order_.lower_bound({std::string(ns), std::string()});
       it != workload_order_.end() && it->first.first == ns; ++it) {
    const Workload& w = *workloads_[it->second];
    if (!w.spec->node_name.empty()) continue;  // Served by the pod store.
    const std::string& wname = w.spec->name;
    if (name.size() <= wname.size() + 1 || name.substr(0, wname.size()) != wname ||
        name[wname.size()] != '-') {
      continue;
    }
    std::string_view rest = name.substr(wname.size() + 1);
    uint32_t node = FindNode(rest);
    if (node != UINT32_MAX && Cell(w, node) != nullptr && DaemonPodName(wname, rest) == name) {
      return std::make_pair(&w, node);
    }
    // A shortened name: "<start of node>-<16 hex>".
    if (rest.size() > 17 && rest[rest.size() - 17] == '-') {
      std::string_view head = rest.substr(0, rest.size() - 17);
      for (auto n = ordered_.lower_bound(head); n != ordered_.end(); ++n) {
        std::string_view candidate = NodeName(*n);
        if (candidate.substr(0, head.size()) != head) break;
        if (Cell(w, *n) != nullptr && DaemonPodName(wname, candidate) == name) {
          return std::make_pair(&w, *n);
        }
      }
    }
  }
  return std::nullopt;
}

std::optional<std::pair<Pod, Pod>> DaemonPods::Restart(std::string_view ns, std::string_view name) {
  auto found = Resolve(ns, name);
  if (!found) return std::nullopt;
  Workload& w = *workloads_[found->first->id];
  uint32_t node = found->second;
  DaemonPodCell* c = MutableCell(w, node);
  DaemonPodCell before = *c;
  DaemonPodCell gone;
  Emit(w, node, EventType::kDeleted, before, gone);
  Pod deleted = RenderPod(w, node, before, history_.back().rv);

  // The pod comes back with the current template, as a deleted DaemonSet
  // pod does; under OnDelete this is the only way a pod moves to it.
  DaemonPodCell fresh;
  fresh.desired_rev = w.revision;
  if (before.desired_rev != w.revision) --w.outdated;
  fresh.created_s = static_cast<uint32_t>(wall_seconds_());
  fresh.phase = static_cast<uint8_t>(PodPhase::kPending);
  fresh.reason = DaemonPodReasonIndex("ContainerCreating");
  fresh.restart_generation = static_cast<uint8_t>(before.restart_generation + 1);
  Emit(w, node, EventType::kAdded, gone, fresh);
  *c = fresh;
  RecomputeSet(node);
  return std::make_pair(std::move(deleted), RenderPod(w, node, fresh, fresh.rv));
}

size_t DaemonPods::Rollout() {
  size_t moved = 0;
  for (const auto& [key, id] : workload_order_) {
    Workload& w = *workloads_[id];
    if (w.outdated == 0) continue;
    // OnDelete (max_unavailable 0, eds_json.h): pods move to the new
    // template only when deleted (Restart()), never here.
    if (w.spec->max_unavailable == 0) continue;
    size_t limit = w.spec->max_unavailable;
    if (w.spec->max_unavailable_percent) {
      limit = (w.pods * w.spec->max_unavailable + 99) / 100;
    }
    limit = std::max<size_t>(limit, 1);
    size_t unavailable = 0;
    std::vector<uint32_t> outdated_unavailable, outdated_available;
    for (uint32_t node = 0; node < w.cells.size(); ++node) {
      const DaemonPodCell& c = w.cells[node];
      if (c.rv == 0) continue;
      bool available = Available(c, w.SpecFor(c.desired_rev).container_names.size());
      if (c.desired_rev == w.revision) {
        if (!available) ++unavailable;
      } else if (available) {
        outdated_available.push_back(node);
      } else {
        // An old pod that is down anyway is replaced without counting
        // against the budget, as the DaemonSet controller does.
        outdated_unavailable.push_back(node);
      }
    }
    size_t budget = limit > unavailable ? limit - unavailable : 0;
    auto move = [&](uint32_t node) {
      DaemonPodCell* c = &w.cells[node];
      DaemonPodCell next = *c;
      next.desired_rev = w.revision;
      next.phase = static_cast<uint8_t>(PodPhase::kPending);
      next.ready = 0;
      next.reason = DaemonPodReasonIndex("ContainerCreating");
      next.flags &= static_cast<uint8_t>(~kCellReported);
      DaemonPodCell before = *c;
      Emit(w, node, EventType::kModified, before, next);
      *c = next;
      --w.outdated;
      ++moved;
      RecomputeSet(node);
    };
    for (uint32_t node : outdated_unavailable) move(node);
    for (size_t i = 0; i < outdated_available.size() && i < budget; ++i) {
      move(outdated_available[i]);
    }
  }
  return moved;
}

NodePodSet DaemonPods::BuildSet(uint32_t node) const {
  NodePodSet set;
  const NodeEntry& n = nodes_[node];
  set.node = std::string(NodeName(node));
  set.gateway = gateways_[n.gateway];
  set.revision = n.set_revision;
  for (const auto& [key, id] : workload_order_) {
    const Workload& w = *workloads_[id];
    const DaemonPodCell* c = Cell(w, node);
    if (c == nullptr) continue;
    bool standalone = !w.spec->node_name.empty();
    set.pods.push_back(DesiredPod{.namespace_ = w.spec->namespace_,
                                  .name = standalone ? w.spec->name.substr(kStandalonePrefix.size())
                                                     : DaemonPodName(w.spec->name, set.node),
                                  .workload = w.spec->name,
                                  .revision = c->desired_rev,
                                  .restart = c->restart_generation});
  }
  return set;
}

std::vector<NodePodSet> DaemonPods::TakeDirtyNodes(size_t max) {
  std::vector<NodePodSet> sets;
  uint32_t now = static_cast<uint32_t>(wall_seconds_());
  while (!dirty_.empty() && sets.size() < max) {
    uint32_t node = dirty_.front();
    dirty_.pop_front();
    NodeEntry& n = nodes_[node];
    n.dirty = false;
    if (!n.live) continue;
    n.sent_s = now;
    sets.push_back(BuildSet(node));
  }
  return sets;
}

void DaemonPods::MarkAllDirty() {
  for (uint32_t node = 0; node < nodes_.size(); ++node) {
    if (nodes_[node].live && nodes_[node].set_revision != 0) MarkDirty(node);
  }
}

void DaemonPods::MarkDirty(const std::vector<std::string>& nodes) {
  for (const std::string& name : nodes) {
    uint32_t node = FindNode(name);
    if (node != UINT32_MAX && nodes_[node].live) MarkDirty(node);
  }
}

std::vector<DaemonPods::StandaloneChange> DaemonPods::TakeStandaloneChanges() {
  std::vector<StandaloneChange> out;
  for (const auto& [id, node] : standalone_changes_) {
    const Workload& w = *workloads_[id];
    if (!w.live) continue;
    const DaemonPodCell* c = Cell(w, node);
    StandaloneChange change;
    change.namespace_ = w.spec->namespace_;
    change.name = w.spec->name.substr(kStandalonePrefix.size());
    if (c == nullptr) {
      // Its node left the fleet: the device no longer reports it.
      change.phase = "Unknown";
      change.status_json = R"({"phase":"Unknown","reason":"NodeLost"})";
    } else {
      change.phase = std::string(PhaseName(c->phase));
      change.status_json = StatusJson(*w.spec, node, *c);
    }
    out.push_back(std::move(change));
  }
  standalone_changes_.clear();
  return out;
}

std::vector<WorkloadTemplateInfo> DaemonPods::Templates() const {
  std::vector<WorkloadTemplateInfo> out;
  auto add = [&](const WorkloadSpec& spec, uint32_t revision) {
    std::string t = "{\"metadata\":{\"labels\":{";
    bool first = true;
    for (const auto& [k, v] : spec.pod_labels) {
      if (!first) t += ',';
      first = false;
      AppendJsonString(k, t);
      t += ':';
      AppendJsonString(v, t);
    }
    t += "},\"annotations\":{";
    first = true;
    for (const auto& [k, v] : spec.pod_annotations) {
      if (!first) t += ',';
      first = false;
      AppendJsonString(k, t);
      t += ':';
      AppendJsonString(v, t);
    }
    t += "}},\"spec\":";
    t += spec.pod_spec_json.empty() ? "{}" : spec.pod_spec_json;
    t += '}';
    out.push_back({spec.namespace_, spec.name, revision, std::move(t)});
  };
  for (const auto& [key, id] : workload_order_) {
    const Workload& w = *workloads_[id];
    add(*w.spec, w.revision);
    if (w.outdated > 0 && w.previous) add(*w.previous, w.previous_revision);
  }
  return out;
}

std::optional<NodePodSet> DaemonPods::DesiredSet(std::string_view name) const {
  uint32_t node = FindNode(name);
  if (node == UINT32_MAX || !nodes_[node].live) return std::nullopt;
  return BuildSet(node);
}

Pod DaemonPods::RenderPod(const Workload& w, uint32_t node, const DaemonPodCell& cell,
                          uint64_t rv) const {
  const WorkloadSpec& spec = w.SpecFor(cell.desired_rev);
  std::string_view node_name = NodeName(node);
  Pod pod;
  pod.namespace_ = spec.namespace_;
  pod.name = DaemonPodName(spec.name, node_name);
  uint64_t h = FnvU64(spec.uid.lo, FnvU64(spec.uid.hi, Fnv(node_name)));
  h = FnvU64(cell.restart_generation, h);
  uint64_t h2 = FnvU64(h, Fnv(pod.name));
  // A version-5-shaped UUID from the workload, the node and the restart
  // generation: stable across restarts of the server, new after a delete.
  pod.uid.hi = (h & ~uint64_t{0xf000}) | 0x5000;
  pod.uid.lo = (h2 & ~(uint64_t{0xc} << 60)) | (uint64_t{0x8} << 60);
  pod.resource_version = rv;
  pod.creation_timestamp = cell.created_s;
  pod.labels = spec.pod_labels;
  pod.labels.emplace_back(kRevisionLabel, RevisionString(cell.desired_rev));
  std::sort(pod.labels.begin(), pod.labels.end());
  pod.annotations = spec.pod_annotations;
  pod.node_name = std::string(node_name);
  pod.phase = std::string(PhaseName(cell.phase));
  pod.owner_references_json = fmt::format(
      R"([{{"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet","name":"{}","uid":"{}","controller":true,"blockOwnerDeletion":true}}])",
      spec.name, spec.uid.ToString());

  std::string& s = pod.spec_json;
  s = "{\"nodeName\":";
  AppendJsonString(node_name, s);
  if (spec.pod_spec_json.size() > 2) {
    s += ',';
    s.append(spec.pod_spec_json, 1, std::string::npos);
  } else {
    s += '}';
  }

  pod.status_json = StatusJson(spec, node, cell);
  return pod;
}

std::string DaemonPods::StatusJson(const WorkloadSpec& spec, uint32_t node,
                                   const DaemonPodCell& cell) const {
  std::string ip;
  if (nodes_[node].ipv4 != 0) {
    char buf[16];
    ip.assign(buf, FormatIpv4(nodes_[node].ipv4, buf));
  }
  std::string st;
  bool running = cell.phase == static_cast<uint8_t>(PodPhase::kRunning);
  size_t containers = spec.container_names.size();
  bool ready = running && cell.ready >= containers;
  std::string_view reason = kDaemonPodReasons[cell.reason % std::size(kDaemonPodReasons)];
  st = fmt::format(R"({{"phase":"{}","conditions":[{{"type":"Ready","status":"{}"}}])",
                   PhaseName(cell.phase), ready ? "True" : "False");
  if (!ip.empty()) {
    st += fmt::format(R"(,"hostIP":"{}")", ip);
    if (spec.host_network) st += fmt::format(R"(,"podIP":"{}","podIPs":[{{"ip":"{}"}}])", ip, ip);
  }
  if (cell.created_s != 0) st += ",\"startTime\":" + Rfc3339(cell.created_s);
  st += ",\"containerStatuses\":[";
  for (size_t i = 0; i < containers; ++i) {
    if (i > 0) st += ',';
    bool c_ready = running && i < cell.ready;
    st += "{\"name\":";
    AppendJsonString(spec.container_names[i], st);
    st += ",\"image\":";
    AppendJsonString(i < spec.container_images.size() ? spec.container_images[i] : "", st);
    st += fmt::format(R"(,"ready":{},"restartCount":{},"started":{},"state":)",
                      c_ready ? "true" : "false", i == 0 ? cell.restarts : 0,
                      running ? "true" : "false");
    if (c_ready || (running && reason.empty())) {
      st += "{\"running\":{}}";
    } else if (reason == "Completed" || reason == "Error" || reason == "OOMKilled") {
      st += fmt::format(R"({{"terminated":{{"reason":"{}"}}}})", reason);
    } else {
      st += fmt::format(R"({{"waiting":{{"reason":"{}"}}}})",
                        reason.empty() ? "ContainerCreating" : reason);
    }
    if (i == 0 && cell.last_restart_s != 0) {
      st += R"(,"lastState":{"terminated":{"finishedAt":)" + Rfc3339(cell.last_restart_s) + "}}";
    }
    st += '}';
  }
  st += "]}";
  return st;
}

std::optional<Pod> DaemonPods::Get(std::string_view ns, std::string_view name) const {
  auto found = Resolve(ns, name);
  if (!found) return std::nullopt;
  const DaemonPodCell& c = *Cell(*found->first, found->second);
  return RenderPod(*found->first, found->second, c, c.rv);
}

std::string DaemonPods::ListEach(std::string_view ns, const LabelSelector& labels,
                                 const FieldSelector& fields, std::string_view after, size_t limit,
                                 absl::FunctionRef<void(Pod)> visit) const {
  // Position: "<namespace>\x1f<workload>\x1f<node>".
  std::string after_ns, after_workload, after_node;
  if (!after.empty()) {
    size_t a = after.find('\x1f');
    size_t b = a == std::string_view::npos ? a : after.find('\x1f', a + 1);
    if (b != std::string_view::npos) {
      after_ns = after.substr(0, a);
      after_workload = after.substr(a + 1, b - a - 1);
      after_node = after.substr(b + 1);
    }
  }
  std::optional<std::string_view> only_node = fields.RequiredValue("spec.nodeName");
  size_t visited = 0;
  std::string last;
  auto start = workload_order_.lower_bound({after_ns, after_workload});
  for (auto it = start; it != workload_order_.end(); ++it) {
    if (!ns.empty() && it->first.first != ns) {
      if (it->first.first > ns) break;
      continue;
    }
    const Workload& w = *workloads_[it->second];
    if (!w.spec->node_name.empty()) continue;  // Served by the pod store.
    bool resume =
        !after.empty() && it->first.first == after_ns && it->first.second == after_workload;
    auto visit_node = [&](uint32_t node) -> bool {
      const DaemonPodCell* c = Cell(w, node);
      if (c == nullptr) return true;
      if (limit != 0 && visited >= limit) return false;
      Pod pod = RenderPod(w, node, *c, c->rv);
      if (!PodMatches(pod, ns, labels, fields)) return true;
      ++visited;
      last = fmt::format("{}\x1f{}\x1f{}", w.spec->namespace_, w.spec->name, pod.node_name);
      visit(std::move(pod));
      return true;
    };
    if (only_node) {
      uint32_t node = FindNode(*only_node);
      if (node == UINT32_MAX || (resume && NodeName(node) <= after_node)) continue;
      if (!visit_node(node)) return last;
      continue;
    }
    auto n = resume ? ordered_.upper_bound(std::string_view(after_node)) : ordered_.begin();
    for (; n != ordered_.end(); ++n) {
      if (!visit_node(*n)) return last;
    }
  }
  return "";
}

bool DaemonPods::MatchesEvent(const Event& event, bool after, std::string_view ns,
                              const LabelSelector& labels, const FieldSelector& fields) const {
  const Workload& w = *workloads_[event.workload];
  if (!ns.empty() && w.spec->namespace_ != ns) return false;
  if (labels.Empty() && fields.Empty()) return true;
  const DaemonPodCell& cell = after ? event.after : event.before;
  return PodMatches(RenderPod(w, event.node, cell, event.rv), ns, labels, fields);
}

Pod DaemonPods::Render(const Event& event) const {
  const Workload& w = *workloads_[event.workload];
  const DaemonPodCell& cell = event.type == EventType::kDeleted ? event.before : event.after;
  return RenderPod(w, event.node, cell, event.rv);
}

void DaemonPods::Trim() {
  int64_t horizon = wall_seconds_() - options_.retention_seconds;
  size_t cap = std::max<size_t>(options_.max_history_bytes / sizeof(Event), 1);
  while (!history_.empty()) {
    bool old = !marks_.empty() && marks_.front().time_s < horizon &&
               (marks_.size() < 2 || history_.front().rv < marks_[1].rv);
    if (!old && history_.size() <= cap) {
      if (marks_.size() >= 2 && marks_[1].time_s < horizon) {
        marks_.pop_front();
        continue;
      }
      break;
    }
    trimmed_upto_ = history_.front().rv;
    history_.pop_front();
    while (marks_.size() >= 2 && !history_.empty() && marks_[1].rv <= history_.front().rv) {
      marks_.pop_front();
    }
  }
  if (history_.empty()) marks_.clear();
}

size_t DaemonPods::memory_bytes() const {
  size_t bytes = nodes_.capacity() * sizeof(NodeEntry) + by_name_.capacity() * 5 +
                 ordered_.size() * 8 + history_bytes();
  for (const auto& w : workloads_) bytes += w->cells.allocated_bytes();
  return bytes;
}

}  // namespace kole::storage
