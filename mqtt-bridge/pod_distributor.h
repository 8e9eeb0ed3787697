#pragma once

// PodDistributor sends the pods of EdgeDaemonSets to devices, within the
// budget of DESIGN §4: about one message out per node per rollout, the
// template once per workload revision.
//
//   templates  each (workload, revision) a node may run is published once,
//              retained, on <prefix>/workloads/<ns>/<workload>/<rev>; the
//              broker keeps it and hands it to every device that subscribes.
//              Published again after every reconnection of the bridge (the
//              broker may have lost its retained messages), and cleared (an
//              empty retained message) once no node runs that revision.
//   pod sets   a node whose desired set changed gets it on its pods channel,
//              batched per gateway (up to 1000 nodes and kMaxPayloadBytes
//              per message, the limits devices decode); a node
//              whose heartbeat carries another revision gets it again, at
//              most every resend_after (PodStore::ApplyPodRevisions).
//
// Devices confirm with their heartbeat's podRev; failures come as podstatus
// messages (Bridge applies both).
//
// Thread safety: Run() loops on one thread until Stop(); Pass() (tests,
// benchmarks) may be called meanwhile from another thread: passes are
// serialised.

#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "common/metrics.h"
#include "mqtt-bridge/protocol.h"
#include "storage/pod_store.h"

namespace kole::bridge {

class Publisher;

struct PodDistributorOptions {
  absl::Duration interval = absl::Milliseconds(100);
  size_t nodes_per_pass = 20000;
};

class PodDistributor {
 public:
  // `generation` grows each time the bridge's broker connection was lost.
  PodDistributor(PodDistributorOptions options, const protocol::TopicScheme* topics,
                 storage::PodStore* pods, Publisher* publisher,
                 std::function<uint64_t()> generation, metrics::MetricsRegistry* registry);

  void Run();
  void Stop();
  // One round: templates, then pending pod sets. Returns the pod sets sent.
  size_t Pass();

 private:
  void PublishTemplates() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  size_t PublishPodSets() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Sends the sets of one gateway's nodes, split so that every message
  // stays within the protocol's limits. Returns the sets sent; the nodes
  // of messages that failed go to `failed`.
  size_t SendGatewaySets(const std::string& gateway,
                         std::span<const storage::NodePodSet* const> members,
                         std::vector<std::string>* failed);
  bool Send(const std::string& topic, const std::string& payload, bool retained);

  PodDistributorOptions options_;
  const protocol::TopicScheme* topics_;
  storage::PodStore* pods_;
  Publisher* publisher_;
  std::function<uint64_t()> generation_;

  // Held for a whole pass: Run() and a Pass() from a test must not
  // interleave over what was published.
  absl::Mutex pass_mu_;
  // (namespace, workload, revision) published and believed retained.
  std::set<std::tuple<std::string, std::string, uint32_t>> retained_ ABSL_GUARDED_BY(pass_mu_);
  uint64_t published_generation_ ABSL_GUARDED_BY(pass_mu_) = UINT64_MAX;

  metrics::Counter* templates_published_;
  metrics::Counter* templates_cleared_;
  metrics::Counter* pod_messages_;
  metrics::Counter* pod_sets_;
  metrics::Counter* failures_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kole::bridge
