#include "apiserver-ext/workload_controller.h"

#include <absl/time/clock.h>
#include <arpa/inet.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <set>

#include "apiserver-ext/eds_json.h"
#include "apiserver-ext/json_util.h"
#include "common/log.h"
#include "storage/node_view.h"

namespace kole::apiserver {
namespace {

constexpr size_t kWatchBatch = 65536;
constexpr absl::Duration kIdleWait = absl::Milliseconds(200);

}  // namespace

storage::DaemonNodeFacts NodeFacts(const storage::Node& node) {
  storage::DaemonNodeFacts f;
  f.name = node.name;
  f.labels = node.labels;
  f.taints = node.taints;
  f.gateway = node.edge.gateway;
  for (const storage::NodeAddress& a : node.addresses) {
    in_addr ip;
    if (a.type == "InternalIP" && inet_pton(AF_INET, a.address.c_str(), &ip) == 1) {
      f.ipv4 = ntohl(ip.s_addr);
      break;
    }
  }
  return f;
}

WorkloadController::WorkloadController(storage::NodeStore* nodes, storage::PodStore* pods,
                                       storage::ObjectStore* workloads,
                                       WorkloadControllerOptions options)
    : nodes_(nodes), pods_(pods), workloads_(workloads), options_(options) {}

WorkloadController::~WorkloadController() { Stop(); }

void WorkloadController::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WorkloadController::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void WorkloadController::Loop() {
  while (!stop_.load()) {
    if (!SyncOnce()) absl::SleepFor(absl::Seconds(1));
  }
}

bool WorkloadController::ResyncNodes() {
  // Every node, then changes from the list's version on.
  std::vector<storage::DaemonNodeFacts> batch;
  std::vector<std::string> names;
  storage::ListResult result;
  absl::Status listed = nodes_->ListEach(
      {},
      [&](const storage::Node& node) {
        names.push_back(node.name);
        batch.push_back(NodeFacts(node));
        if (batch.size() >= options_.node_batch) {
          pods_->SetNodes(batch);
          batch.clear();
        }
      },
      &result);
  if (!listed.ok()) {
    KOLE_LOG(Error, "Workload controller cannot list nodes", "err", listed);
    return false;
  }
  pods_->SetNodes(batch);

  // A resync after the watch expired: nodes deleted meanwhile are in no
  // event and not in the list. The pods say which nodes the pod table still
  // runs something on; those the fleet no longer has lose their pods.
  std::sort(names.begin(), names.end());
  std::set<std::string> gone;
  storage::PodListResult pod_result;
  absl::Status scanned = pods_->ListEach(
      {},
      [&](const storage::Pod& pod) {
        if (!std::binary_search(names.begin(), names.end(), pod.node_name)) {
          gone.insert(pod.node_name);
        }
      },
      &pod_result);
  if (!scanned.ok()) {
    KOLE_LOG(Error, "Workload controller cannot list pods", "err", scanned);
    return false;
  }
  if (!gone.empty()) pods_->RemoveNodes(std::vector<std::string>(gone.begin(), gone.end()));

  auto watch = nodes_->Watch(result.resource_version);
  if (!watch.ok()) {
    KOLE_LOG(Error, "Workload controller cannot watch nodes", "err", watch.status());
    return false;
  }
  node_watch_ = std::move(*watch);
  KOLE_VLOG(2, "Workload controller synced nodes", "nodes", names.size(), "resourceVersion",
            result.resource_version);
  return true;
}

void WorkloadController::ApplyWorkload(const storage::StoredObject& object) {
  rapidjson::Document doc;
  doc.Parse(object.json.data(), object.json.size());
  absl::StatusOr<storage::WorkloadSpec> spec = WorkloadFromEds(doc);
  if (!spec.ok()) {
    KOLE_LOG(Error, "Stored EdgeDaemonSet cannot be read", "edgedaemonset",
             object.namespace_ + "/" + object.name, "err", spec.status());
    return;
  }
  int64_t generation = 0;
  if (const rapidjson::Value* meta = Member(doc, "metadata")) {
    if (const rapidjson::Value* g = Member(*meta, "generation"); g && g->IsInt64()) {
      generation = g->GetInt64();
    }
  }
  Seen& seen = seen_[{object.namespace_, object.name}];
  std::string uid = spec->uid.ToString();
  // Status writes (ours) change neither uid nor generation.
  if (seen.uid == uid && seen.generation == generation) return;
  seen = {uid, generation};

  // One pass over the fleet, reading nodes in place: the node store
  // evaluates the label selector against its interned label sets; taints
  // are checked here. Selected nodes need no labels (SetWorkload keeps none).
  std::vector<storage::DaemonNodeFacts> selected;
  storage::ListOptions options;
  options.label_selector = spec->node_selector;
  storage::ListResult result;
  absl::Status listed = nodes_->ListEachView(
      options,
      [&](const storage::NodeView& node) {
        std::vector<storage::Taint> taints = node.Taints();
        if (!storage::ToleratesTaints(*spec, taints)) return;
        storage::DaemonNodeFacts facts;
        facts.name = std::string(node.name());
        facts.gateway = std::string(node.gateway());
        node.ForEachAddress([&](std::string_view type, std::string_view address) {
          in_addr ip;
          std::string text(address);
          if (facts.ipv4 == 0 && type == "InternalIP" &&
              inet_pton(AF_INET, text.c_str(), &ip) == 1) {
            facts.ipv4 = ntohl(ip.s_addr);
          }
        });
        selected.push_back(std::move(facts));
      },
      &result);
  if (!listed.ok()) {
    KOLE_LOG(Error, "Workload controller cannot list nodes", "err", listed);
    seen.generation = -1;  // Try again next round.
    return;
  }
  pods_->SetWorkload(*spec, selected);
  KOLE_LOG(Info, "EdgeDaemonSet applied", "edgedaemonset", object.namespace_ + "/" + object.name,
           "generation", generation, "revision", storage::RevisionString(TemplateRevision(*spec)),
           "nodes", selected.size());
}

bool WorkloadController::ResyncWorkloads() {
  bool more = false;
  uint64_t rv = 0;
  std::vector<storage::StoredObject> all = workloads_->List("", "", 0, &more, &rv);
  std::map<std::pair<std::string, std::string>, Seen> keep;
  for (const storage::StoredObject& o : all) {
    ApplyWorkload(o);
    keep[{o.namespace_, o.name}] = seen_[{o.namespace_, o.name}];
  }
  for (const auto& [key, seen] : seen_) {
    if (!keep.contains(key)) pods_->RemoveWorkload(key.first, key.second);
  }
  seen_ = std::move(keep);
  auto watch = workloads_->Watch(rv, "");
  if (!watch.ok()) return false;
  workload_watch_ = std::move(*watch);
  return true;
}

bool WorkloadController::DrainNodeEvents() {
  auto events = node_watch_->Next(kWatchBatch, absl::Now());
  if (!events.ok()) {
    if (storage::IsExpired(events.status())) {
      KOLE_LOG(Warning, "Workload controller fell behind the node change log; resyncing");
      node_watch_.reset();
      return true;
    }
    return false;
  }
  std::vector<storage::DaemonNodeFacts> changed;
  std::vector<std::string> removed;
  auto flush = [&] {
    if (!changed.empty()) pods_->SetNodes(changed);
    if (!removed.empty()) pods_->RemoveNodes(removed);
    changed.clear();
    removed.clear();
  };
  for (const storage::WatchEvent& e : *events) {
    if (e.type == storage::EventType::kDeleted) {
      if (!changed.empty()) flush();  // Keep the order of one node's events.
      removed.push_back(e.node.name);
    } else {
      if (!removed.empty()) flush();
      changed.push_back(NodeFacts(e.node));
    }
    if (changed.size() + removed.size() >= options_.node_batch) flush();
  }
  flush();
  return true;
}

bool WorkloadController::DrainWorkloadEvents() {
  auto events = workload_watch_->Next(1024, absl::Now());
  if (!events.ok()) {
    if (storage::IsExpired(events.status())) {
      workload_watch_.reset();
      return true;
    }
    return false;
  }
  for (const storage::ObjectEvent& e : *events) {
    if (e.type == storage::EventType::kDeleted) {
      seen_.erase({e.object.namespace_, e.object.name});
      pods_->RemoveWorkload(e.object.namespace_, e.object.name);
      KOLE_LOG(Info, "EdgeDaemonSet removed; its pods go from every node", "edgedaemonset",
               e.object.namespace_ + "/" + e.object.name);
    } else {
      // A new EdgeDaemonSet in a namespace whose deletion suspended its
      // pods means the namespace exists again.
      if (e.type == storage::EventType::kAdded) pods_->ResumeNamespace(e.object.namespace_);
      ApplyWorkload(e.object);
    }
  }
  return true;
}

void WorkloadController::WriteStatuses() {
  for (const auto& [key, seen] : seen_) {
    absl::StatusOr<storage::StoredObject> current = workloads_->Get(key.first, key.second);
    if (!current.ok()) continue;
    rapidjson::Document doc;
    doc.Parse(current->json.data(), current->json.size());
    if (doc.HasParseError()) continue;
    storage::WorkloadStatus status = pods_->GetWorkloadStatus(key.first, key.second);
    // The generation the pods were derived from, not the object's: a spec
    // written since is not counted yet, and must not look rolled out.
    if (seen.generation < 0 || !SetEdsStatus(doc, status, seen.generation)) continue;
    storage::StoredObject next = *current;
    next.json = JsonToString(doc);
    // A conflict means someone wrote meanwhile: the next round retries.
    absl::StatusOr<storage::StoredObject> written =
        workloads_->Update(std::move(next), current->resource_version);
    if (!written.ok() && !absl::IsAborted(written.status())) {
      KOLE_LOG(Error, "Cannot write EdgeDaemonSet status", "edgedaemonset",
               key.first + "/" + key.second, "err", written.status());
    }
  }
}

bool WorkloadController::SyncOnce(bool force_status) {
  if (node_watch_ == nullptr && !ResyncNodes()) return false;
  if (workload_watch_ == nullptr && !ResyncWorkloads()) return false;
  if (!DrainNodeEvents() || !DrainWorkloadEvents()) return false;

  absl::Time now = absl::Now();
  if (now - last_rollout_ >= absl::Seconds(options_.rollout_period_seconds) || force_status) {
    size_t moved = pods_->Rollout();
    if (moved > 0) KOLE_VLOG(2, "Rolling update advanced", "pods", moved);
    last_rollout_ = now;
  }
  if (now - last_status_ >= absl::Seconds(options_.status_period_seconds) || force_status) {
    WriteStatuses();
    last_status_ = now;
  }
  if (!force_status) absl::SleepFor(kIdleWait);
  return true;
}

}  // namespace kole::apiserver
