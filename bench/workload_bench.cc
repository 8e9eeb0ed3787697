// kole-bench-workload: an EdgeDaemonSet rolled out to a simulated fleet
// through a real broker, with heartbeats flowing.
//
//   kole-bench-workload --nodes 1000000 [--heartbeat-interval 10]
//                       [--pod-start-delay 2s] [--kubectl PATH]
//
// In one process: the node store, the pod store, the EdgeDaemonSet store,
// the MQTT bridge (connected to a mosquitto on a loopback port), the
// workload controller and the API server; kole-edge-sim simulates the fleet
// over gateway connections as a child process. Phases:
//
//   1. the fleet registers and heartbeats;
//   2. an EdgeDaemonSet selecting every node is created: the time until every
//      node holds its pod set (and the template), and until 50/90/99/100 %
//      of the pods report Running, the messages the bridge used for it, and
//      the memory the pods cost;
//   3. a new image rolled out with maxUnavailable 25 %: the time until every
//      pod runs it and is available;
//   4. `kubectl get pods.edge.kole.io -A` over those pods, unpaged (and with
//      kubectl's default paging with --kubectl-paged).
//
// Every figure is printed as `figure NAME VALUE UNIT` on a line of its own.

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "apiserver-ext/authn.h"
#include "apiserver-ext/authz.h"
#include "apiserver-ext/eds_json.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"
#include "apiserver-ext/server.h"
#include "apiserver-ext/tls.h"
#include "apiserver-ext/workload_controller.h"
#include "bench/bench_support.h"
#include "common/log.h"
#include "common/metrics.h"
#include "mqtt-bridge/bridge.h"
#include "storage/object_store.h"
#include "storage/pod_store.h"
#include "unit/testing/mosquitto_server.h"

namespace kole::bench {
namespace {

struct Options {
  uint64_t nodes = 100000;
  uint64_t connections = 0;
  double heartbeat_interval = 10;
  std::string pod_start_delay = "2s";
  double timeout_seconds = 600;
  std::string kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
  bool roll = true;
  bool kubectl_paged = false;
};

double Counter(const metrics::MetricsRegistry& registry, std::string_view series) {
  // The sample line, not the # HELP line that names the series too.
  std::string text = "\n" + registry.Render();
  size_t at = text.find("\n" + std::string(series) + " ");
  if (at == std::string::npos) return 0;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

// The EdgeDaemonSet as the API stores it after a create.
storage::StoredObject Workload(std::string_view image, std::string_view max_unavailable) {
  std::string text = fmt::format(
      R"({{"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet",)"
      R"("metadata":{{"name":"agent","namespace":"fleet","uid":"{}","generation":1,)"
      R"("creationTimestamp":"{}"}},)"
      R"("spec":{{"nodeSelector":{{"matchLabels":{{"kubernetes.io/os":"linux"}}}},)"
      R"("updateStrategy":{{"rollingUpdate":{{"maxUnavailable":"{}"}}}},)"
      R"("template":{{"metadata":{{"labels":{{"app":"agent"}}}},"spec":{{"containers":[)"
      R"({{"name":"agent","image":"{}","command":["/usr/bin/agent","--serve"],)"
      R"("env":[{{"name":"LOG_LEVEL","value":"info"}}]}}]}}}}}}}})",
      "6f1d2c3b-4a59-4e7d-9c1a-2b3c4d5e6f70", apiserver::FormatTimestamp(std::time(nullptr)),
      max_unavailable, image);
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  apiserver::DefaultEds(doc);
  return {"fleet", "agent", 0, apiserver::JsonToString(doc)};
}

int Run(const Options& o) {
  Figure("workload.nodes", static_cast<double>(o.nodes), "nodes");
  Figure("workload.heartbeat_interval_seconds", o.heartbeat_interval, "s");
  testing::MosquittoServer broker({.allow_anonymous = true, .max_queued_messages = 1'000'000});
  if (absl::Status started = broker.Start(); !started.ok()) {
    std::fprintf(stderr, "mosquitto: %s\n", started.ToString().c_str());
    return 1;
  }
  std::string dir = broker.dir() + "/data";
  auto store = storage::NodeStore::Open({.data_dir = dir});
  auto pods = storage::PodStore::Open({});
  auto workloads = storage::ObjectStore::Open({});
  if (!store.ok() || !pods.ok() || !workloads.ok()) {
    std::fprintf(stderr, "cannot open the stores\n");
    return 1;
  }

  metrics::MetricsRegistry registry;
  bridge::BridgeOptions options;
  options.mqtt = {.broker = broker.url(), .client_id = "kole-bench"};
  auto created = bridge::Bridge::Create(options, store->get(), &registry, pods->get());
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  bridge::Bridge& bridge = **created;
  bridge.Start();
  apiserver::WorkloadController controller(store->get(), pods->get(), workloads->get());
  controller.Start();

  // The API server, for kubectl, with certificates of its own.
  std::string pki = broker.dir() + "/pki";
  if (!apiserver::EnsureStandaloneCertificates(pki, {"127.0.0.1"}).ok()) return 1;
  apiserver::ServerConfig config;
  config.bind_address = "127.0.0.1";
  config.port = 0;
  config.serving = {pki + "/apiserver.crt", pki + "/apiserver.key"};
  apiserver::Authenticator::Options authn;
  authn.client_ca = *apiserver::CertificateAuthority::FromFile(pki + "/ca.crt");
  config.authenticator = std::make_unique<apiserver::Authenticator>(std::move(authn));
  config.authorizer = std::make_unique<apiserver::AlwaysAllowAuthorizer>();
  config.handler.workloads = workloads->get();
  auto server = apiserver::Server::Create(std::move(config), store->get(), pods->get());
  if (!server.ok() || !(*server)->Start().ok()) {
    std::fprintf(stderr, "cannot start the API server\n");
    return 1;
  }

  // 1. The fleet.
  std::string sim =
      (std::filesystem::canonical("/proc/self/exe").parent_path() / "kole-edge-sim").string();
  std::string status_file = broker.dir() + "/sim.status";
  std::vector<std::string> args = {sim,
                                   "--broker",
                                   broker.url(),
                                   "--nodes",
                                   std::to_string(o.nodes),
                                   "--connections",
                                   std::to_string(o.connections),
                                   "--heartbeat-interval",
                                   fmt::format("{}s", o.heartbeat_interval),
                                   "--pod-start-delay",
                                   o.pod_start_delay,
                                   "--status-file",
                                   status_file,
                                   "--progress-interval",
                                   "10s"};
  pid_t child = fork();
  if (child == 0) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  auto stop_child = [&] {
    kill(child, SIGTERM);
    int exit_status = 0;
    waitpid(child, &exit_status, 0);
  };
  Clock::time_point start = Clock::now();
  while (ReadStatus(status_file)["accepted"] < static_cast<double>(o.nodes)) {
    if (Seconds(start) > o.timeout_seconds) {
      std::fprintf(stderr, "the fleet did not register within %g s\n", o.timeout_seconds);
      stop_child();
      return 1;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  Figure("workload.register_seconds", Seconds(start), "s");
  // Until the controller has every node and heartbeats are steady.
  while (pods->get()->derived_stats().nodes < o.nodes) absl::SleepFor(absl::Milliseconds(100));
  absl::SleepFor(absl::Seconds(o.heartbeat_interval));
  storage::PodStore::DerivedStats before = pods->get()->derived_stats();
  size_t rss_before = ResidentBytes();
  std::map<std::string, double> sim_before = ReadStatus(status_file);
  double pods_published_before =
      Counter(registry, R"(kole_bridge_messages_published_total{channel="pods"})");

  // 2. The EdgeDaemonSet.
  start = Clock::now();
  if (!workloads->get()->Create(Workload("registry.example/agent:1.0", "25%")).ok()) return 1;
  double spec_seconds = 0;
  std::map<int, double> running_at;  // Percent -> seconds.
  while (Seconds(start) < o.timeout_seconds) {
    std::map<std::string, double> status = ReadStatus(status_file);
    if (spec_seconds == 0 && status["nodesWithPodSet"] >= static_cast<double>(o.nodes)) {
      spec_seconds = Seconds(start);
    }
    storage::WorkloadStatus ws = pods->get()->GetWorkloadStatus("fleet", "agent");
    for (int percent : {50, 90, 99, 100}) {
      if (!running_at.contains(percent) && ws.desired == o.nodes &&
          static_cast<double>(ws.ready) >= static_cast<double>(o.nodes) * percent / 100.0) {
        running_at[percent] = Seconds(start);
      }
    }
    if (running_at.contains(100) && spec_seconds > 0) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (spec_seconds > 0) Figure("workload.spec_on_every_node_seconds", spec_seconds, "s");
  for (const auto& [percent, seconds] : running_at) {
    Figure(fmt::format("workload.running_{}pct_seconds", percent), seconds, "s");
  }
  std::map<std::string, double> sim_after = ReadStatus(status_file);
  storage::PodStore::DerivedStats after = pods->get()->derived_stats();
  double pod_messages =
      Counter(registry, R"(kole_bridge_messages_published_total{channel="pods"})") -
      pods_published_before;
  Figure("workload.pods", static_cast<double>(after.pods), "pods");
  Figure("workload.pod_messages_published", pod_messages, "messages");
  Figure("workload.pod_sets_sent", Counter(registry, "kole_bridge_pod_sets_sent_total"), "sets");
  Figure("workload.templates_published",
         Counter(registry, "kole_bridge_workload_templates_published_total"), "messages");
  Figure("workload.templates_received_by_devices",
         sim_after["templatesReceived"] - sim_before["templatesReceived"], "messages");
  Figure("workload.pod_sets_received_by_devices",
         sim_after["podSetsReceived"] - sim_before["podSetsReceived"], "sets");
  Figure("workload.podstatus_received",
         Counter(registry, R"(kole_bridge_messages_received_total{channel="podstatus"})"),
         "messages");
  Figure("workload.cloud_messages_out_per_node",
         (pod_messages + Counter(registry, "kole_bridge_workload_templates_published_total")) /
             static_cast<double>(o.nodes),
         "messages");
  Figure("workload.pod_events", static_cast<double>(after.history_events), "events");
  Figure("workload.pod_history_bytes", static_cast<double>(after.history_bytes), "B");
  // What the pods cost the store: their cells and the node index, apart from
  // the history of events (retained five minutes, then trimmed).
  double steady = static_cast<double>((after.memory_bytes - after.history_bytes) -
                                      (before.memory_bytes - before.history_bytes));
  Figure("workload.store_bytes_per_pod", steady / static_cast<double>(o.nodes), "B");
  Figure("workload.node_index_bytes_per_node",
         static_cast<double>(before.memory_bytes - before.history_bytes) /
             static_cast<double>(o.nodes),
         "B");
  Figure("workload.rss_delta_per_pod",
         static_cast<double>(ResidentBytes() - rss_before) / static_cast<double>(o.nodes), "B");

  // 3. A new image, rolled out 25 % at a time.
  if (o.roll) {
    absl::StatusOr<storage::StoredObject> current = workloads->get()->Get("fleet", "agent");
    storage::StoredObject next = Workload("registry.example/agent:2.0", "25%");
    rapidjson::Document doc, old;
    doc.Parse(next.json.c_str());
    old.Parse(current->json.c_str());
    doc["metadata"]["generation"].SetInt64(2);
    doc.RemoveMember("status");
    doc.AddMember("status", rapidjson::Value(old["status"], doc.GetAllocator()),
                  doc.GetAllocator());
    next.json = apiserver::JsonToString(doc);
    uint32_t old_revision = pods->get()->GetWorkloadStatus("fleet", "agent").revision;
    start = Clock::now();
    if (!workloads->get()->Update(next, 0).ok()) return 1;
    double rolled = 0;
    while (Seconds(start) < o.timeout_seconds) {
      storage::WorkloadStatus ws = pods->get()->GetWorkloadStatus("fleet", "agent");
      if (ws.revision != old_revision && ws.updated == o.nodes && ws.available == o.nodes) {
        rolled = Seconds(start);
        break;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (rolled > 0) Figure("workload.rolling_update_seconds", rolled, "s");
  }

  // 4. kubectl over the pods: unpaged, and with kubectl's default paging when
  // asked (kubectl paces itself to 5 pages a second: 400 s and more for 1M).
  if (!o.kubectl.empty() && std::filesystem::exists(o.kubectl)) {
    std::string kubeconfig = pki + "/admin.kubeconfig";
    std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n"
                              << "    server: https://127.0.0.1:" << (*server)->port() << "\n"
                              << "    certificate-authority: " << pki << "/ca.crt\n"
                              << "users:\n- name: a\n  user:\n    client-certificate: " << pki
                              << "/admin.crt\n    client-key: " << pki << "/admin.key\n"
                              << "contexts:\n- name: k\n  context:\n    cluster: k\n    user: a\n"
                              << "current-context: k\n";
    std::vector<const char*> chunks = {" --chunk-size=0"};
    if (o.kubectl_paged) chunks.push_back("");
    for (const char* chunk : chunks) {
      std::string command = fmt::format(
          "{} --kubeconfig {} --cache-dir {}/cache --request-timeout=0 get pods.edge.kole.io -A "
          "--no-headers{} | wc -l",
          o.kubectl, kubeconfig, pki, chunk);
      std::string suffix = *chunk == '\0' ? "" : "_unpaged";
      Clock::time_point t = Clock::now();
      FILE* p = popen(command.c_str(), "r");
      char line[64] = {0};
      if (p != nullptr && fgets(line, sizeof(line), p) != nullptr) {
        Figure("workload.kubectl_get_pods" + suffix + "_seconds", Seconds(t), "s");
        Figure("workload.kubectl_get_pods" + suffix + "_rows", std::atof(line), "rows");
      }
      if (p != nullptr) pclose(p);
    }
  }

  stop_child();
  (*server)->Stop();
  controller.Stop();
  bridge.Stop();
  return running_at.contains(99) ? 0 : 1;
}

}  // namespace
}  // namespace kole::bench

int main(int argc, char** argv) {
  kole::bench::Options o;
  CLI::App app{"kole-bench-workload: an EdgeDaemonSet rolled out to a simulated fleet"};
  if (const char* env = std::getenv("KOLE_BENCH_NODES")) o.nodes = std::strtoull(env, nullptr, 10);
  app.add_option("--nodes", o.nodes, "Fleet size");
  app.add_option("--connections", o.connections, "Simulator connections (0: 1000 nodes each)");
  app.add_option("--heartbeat-interval", o.heartbeat_interval, "Seconds between heartbeats");
  app.add_option("--pod-start-delay", o.pod_start_delay, "How long a device takes to start a pod");
  app.add_option("--timeout", o.timeout_seconds, "Give up on a phase after this many seconds");
  app.add_option("--kubectl", o.kubectl, "kubectl of a pinned release; empty skips that phase");
  app.add_flag("!--no-roll", o.roll, "Skip the rolling update");
  app.add_flag("--kubectl-paged", o.kubectl_paged,
               "Also time kubectl get with its default paging (slow: kubectl's own pacing)");
  CLI11_PARSE(app, argc, argv);
  return kole::bench::Run(o);
}
