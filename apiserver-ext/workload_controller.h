#pragma once

// WorkloadController turns EdgeDaemonSets into pods: it keeps the pod
// table (storage/daemon_pods.h, inside the PodStore) in step with the
// EdgeDaemonSet objects and with the fleet, advances rolling updates and
// writes each EdgeDaemonSet's status.
//
//   EdgeDaemonSet added or its spec changed -> evaluate its selector and
//       tolerations against every node (one pass over the node store), then
//       PodStore::SetWorkload
//   EdgeDaemonSet deleted                   -> PodStore::RemoveWorkload
//   node registered, relabelled, tainted    -> PodStore::SetNodes (every
//       workload re-evaluated for that node)
//   node deleted                            -> PodStore::RemoveNodes
//   every rollout period                    -> PodStore::Rollout
//   every status period                     -> status subresource of each
//       EdgeDaemonSet, written only when it changed
//
// It follows both stores through their watches, so it needs nothing from
// the API handlers; a watch that expires (410) starts a full resync.
// Distribution to devices is the MQTT bridge's (mqtt-bridge/pod_distributor.h).
//
// Thread safety: Start() runs one background thread; Stop() ends it. SyncOnce()
// is for tests and must not run concurrently with the thread.

#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "storage/node_store.h"
#include "storage/object_store.h"
#include "storage/pod_store.h"

namespace kole::apiserver {

struct WorkloadControllerOptions {
  double rollout_period_seconds = 1;
  double status_period_seconds = 2;
  // Node changes applied per lock acquisition of the pod store.
  size_t node_batch = 8192;
};

class WorkloadController {
 public:
  WorkloadController(storage::NodeStore* nodes, storage::PodStore* pods,
                     storage::ObjectStore* workloads, WorkloadControllerOptions options = {});
  ~WorkloadController();

  void Start();
  void Stop();

  // One round: resync if needed, apply pending node and workload changes,
  // roll out, write statuses. Returns false on a store error.
  bool SyncOnce(bool force_status = false);

 private:
  struct Seen {
    std::string uid;
    int64_t generation = 0;
  };

  bool ResyncNodes();
  bool ResyncWorkloads();
  void ApplyWorkload(const storage::StoredObject& object);
  bool DrainNodeEvents();
  bool DrainWorkloadEvents();
  void WriteStatuses();
  void Loop();

  storage::NodeStore* nodes_;
  storage::PodStore* pods_;
  storage::ObjectStore* workloads_;
  WorkloadControllerOptions options_;

  std::unique_ptr<storage::NodeWatcher> node_watch_;
  std::unique_ptr<storage::ObjectWatcher> workload_watch_;
  std::map<std::pair<std::string, std::string>, Seen> seen_;
  absl::Time last_rollout_ = absl::InfinitePast();
  absl::Time last_status_ = absl::InfinitePast();

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What selection reads from a node.
storage::DaemonNodeFacts NodeFacts(const storage::Node& node);

}  // namespace kole::apiserver
