// kole-apiserver: serves the edge fleet as the Kubernetes aggregated API
// edge.kole.io/v1alpha1. Kept small: options -> stores -> MQTT bridge and
// server -> wait for a signal -> stop.

#include <CLI/CLI.hpp>
#include <csignal>

#include "apiserver-ext/options.h"
#include "apiserver-ext/server.h"
#include "apiserver-ext/workload_controller.h"
#include "common/heap_trim.h"
#include "common/log.h"
#include "common/metrics.h"
#include "mqtt-bridge/bridge.h"
#include "mqtt-bridge/bridge_flags.h"
#include "storage/data_dir.h"
#include "storage/node_store.h"
#include "storage/object_store.h"
#include "storage/pod_store.h"

namespace {

// Blocks SIGTERM and SIGINT in every thread (call before starting any) and
// returns once one arrives.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kole;
  apiserver::Options options;
  CLI::App app{"kole-apiserver serves far-edge nodes as the Kubernetes API edge.kole.io/v1alpha1"};
  apiserver::AddFlags(app, options);
  bridge::BridgeFlags bridge_flags;
  bridge::AddBridgeFlags(app, bridge_flags);
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = apiserver::ApplyLogging(options); !s.ok()) {
    KOLE_LOG(Error, "Invalid logging flags", "err", s);
    return 2;
  }
  sigset_t stop_signals = BlockStopSignals();

  absl::StatusOr<apiserver::ServerConfig> config = apiserver::CompleteServerConfig(options);
  if (!config.ok()) {
    KOLE_LOG(Error, "Invalid configuration", "err", config.status());
    return 2;
  }
  absl::StatusOr<bridge::BridgeOptions> bridge_options =
      bridge::CompleteBridgeOptions(bridge_flags);
  if (!bridge_options.ok()) {
    KOLE_LOG(Error, "Invalid MQTT bridge configuration", "err", bridge_options.status());
    return 2;
  }
  // Free heap memory goes back to the system periodically: after a
  // registration burst or a large list the allocator would keep it
  // (common/heap_trim.h). Its metrics join /metrics.
  metrics::MetricsRegistry process_metrics;
  HeapTrimmer heap_trimmer(&process_metrics);
  if (options.heap_trim_interval_seconds > 0) {
    config->periodic.push_back({"heap-trim", options.heap_trim_interval_seconds,
                                [&heap_trimmer] { heap_trimmer.Trim(); }});
  }

  auto store = storage::NodeStore::Open(apiserver::CompleteStoreOptions(options));
  if (!store.ok()) {
    KOLE_LOG(Error, "Cannot open the store", "dataDir", options.data_dir, "err", store.status());
    return 1;
  }
  // The node store takes the data directory's lock; the pod store lives in
  // its pods/ subdirectory under that lock, so it opens second.
  auto pods = storage::PodStore::Open(apiserver::CompletePodStoreOptions(options));
  if (!pods.ok()) {
    KOLE_LOG(Error, "Cannot open the pod store", "dataDir", options.data_dir, "err", pods.status());
    return 1;
  }
  // EdgeDaemonSets: a few objects, in their own directory under the lock.
  auto workloads = storage::ObjectStore::Open(
      {.data_dir = options.data_dir, .subdir = std::string(storage::kDataDirWorkloadsName)});
  if (!workloads.ok()) {
    KOLE_LOG(Error, "Cannot open the EdgeDaemonSet store", "dataDir", options.data_dir, "err",
             workloads.status());
    return 1;
  }
  config->handler.workloads = workloads->get();
  auto server = apiserver::Server::Create(std::move(*config), store->get(), pods->get());
  if (!server.ok()) {
    KOLE_LOG(Error, "Cannot create the server", "err", server.status());
    return 1;
  }
  (*server)->metrics().AddSource([&process_metrics] { return process_metrics.Render(); });

  // The MQTT bridge shares the node store. Its metrics join /metrics; its
  // connection is reported under /healthz only: the API keeps serving what
  // the store holds while the broker is away, so readiness does not depend
  // on it (docs/api.md).
  metrics::MetricsRegistry bridge_metrics;
  std::unique_ptr<bridge::Bridge> mqtt_bridge;
  if (bridge_flags.broker.empty()) {
    KOLE_LOG(Warning,
             "No --mqtt-broker given: no device can register or heartbeat, and nodes "
             "are served as the store holds them");
  } else {
    absl::StatusOr<std::unique_ptr<bridge::Bridge>> created = bridge::Bridge::Create(
        *std::move(bridge_options), store->get(), &bridge_metrics, pods->get());
    if (!created.ok()) {
      KOLE_LOG(Error, "Cannot create the MQTT bridge", "err", created.status());
      return 2;
    }
    mqtt_bridge = *std::move(created);
    bridge::Bridge* b = mqtt_bridge.get();
    (*server)->health().AddCheck("mqtt-connected", apiserver::HealthChecks::kHealthz, [b] {
      bridge::BridgeStatus status = b->status();
      if (status.consumers_connected == status.consumers) return absl::OkStatus();
      return absl::UnavailableError("not connected to the MQTT broker");
    });
    (*server)->metrics().AddSource([&bridge_metrics] { return bridge_metrics.Render(); });
    mqtt_bridge->Start();
  }

  // EdgeDaemonSets become pods: the controller follows the node and
  // workload stores; the bridge sends the pods to devices.
  apiserver::WorkloadController workload_controller(store->get(), pods->get(), workloads->get());
  workload_controller.Start();

  if (absl::Status s = (*server)->Start(); !s.ok()) {
    KOLE_LOG(Error, "Cannot start the server", "err", s);
    return 1;
  }

  if (options.standalone) {
    absl::StatusOr<std::string> kubeconfig =
        apiserver::WriteStandaloneKubeconfig(options, (*server)->port());
    if (kubeconfig.ok()) {
      KOLE_LOG(Info, "Standalone kubeconfig written", "path", *kubeconfig);
    } else {
      KOLE_LOG(Error, "Cannot write the standalone kubeconfig", "err", kubeconfig.status());
    }
  }

  int signal = 0;
  sigwait(&stop_signals, &signal);
  KOLE_LOG(Info, "Shutting down", "signal", signal);
  // The server first, so that no API write races the shutdown; then the
  // components beside it, then the stores.
  (*server)->Stop();
  if (mqtt_bridge != nullptr) mqtt_bridge->Stop();
  workload_controller.Stop();
  (*workloads)->Close();
  (*pods)->Close();
  (*store)->Close();
  return 0;
}
