// API benchmark: kole-apiserver's HTTPS front end over loopback, in process,
// with a fleet from the shared generator and heartbeats flowing meanwhile.
//
//   kole-bench-api --nodes 100000 [--heartbeats-per-second 100000]
//                  [--watchers 100] [--seconds 3] [--kubectl PATH]
//
// Phases: GET of single nodes, LIST pages of 500 (the Table kubectl asks
// for), watch fan-out (a label change reaching every watcher), one full
// list plain and gzipped, and `kubectl get nodes.edge.kole.io` over the
// whole fleet direct to the server. Every figure is printed as
// `figure NAME VALUE UNIT` on a line of its own (DESIGN §7).

#include <fmt/format.h>
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "apiserver-ext/node_json.h"
#include "apiserver-ext/node_render.h"
#include "apiserver-ext/server.h"
#include "apiserver-ext/tls.h"
#include "bench/bench_support.h"
#include "common/log.h"
#include "edge/fleet_generator.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"

namespace kole {
namespace {

using bench::Clock;
using bench::Figure;
using bench::Note;
using bench::Seconds;
using bench::ToNode;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

struct Pki {
  std::string dir;
  std::string ca() const { return dir + "/ca.crt"; }
  std::string cert() const { return dir + "/admin.crt"; }
  std::string key() const { return dir + "/admin.key"; }
};

std::unique_ptr<httplib::SSLClient> Client(const Pki& pki, int port, int timeout = 120) {
  auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port, pki.cert(), pki.key());
  c->set_ca_cert_path(pki.ca());
  c->enable_server_certificate_verification(true);
  c->set_read_timeout(timeout, 0);
  c->set_keep_alive(true);
  c->set_decompress(false);
  return c;
}

constexpr char kTableAccept[] =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta."
    "k8s.io,application/json";

// Runs `request` on `threads` clients for `seconds`; returns latencies (ms).
std::vector<double> Load(const Pki& pki, int port, int threads, double seconds,
                         const std::function<bool(httplib::SSLClient&, std::mt19937_64&)>& request,
                         uint64_t* failures) {
  std::vector<std::vector<double>> per(threads);
  std::atomic<uint64_t> failed{0};
  auto end = Clock::now() +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto c = Client(pki, port);
      std::mt19937_64 rng(t + 1);
      while (Clock::now() < end) {
        auto start = Clock::now();
        bool ok = request(*c, rng);
        if (!ok) ++failed;
        per[t].push_back(Seconds(Clock::now() - start) * 1000);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  *failures = failed.load();
  return all;
}

}  // namespace
}  // namespace kole

int main(int argc, char** argv) {
  using namespace kole;
  uint64_t nodes = 100000;
  if (const char* env = std::getenv("KOLE_BENCH_NODES")) nodes = std::strtoull(env, nullptr, 10);
  double heartbeat_rate = 100000;
  int watchers = 100;
  double seconds = 3;
  int threads = 4;
  std::string kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
  CLI::App app{"kole-apiserver API benchmark"};
  app.add_option("--nodes", nodes, "Fleet size")->capture_default_str();
  app.add_option("--heartbeats-per-second", heartbeat_rate, "Heartbeats applied meanwhile")
      ->capture_default_str();
  app.add_option("--watchers", watchers, "Watch streams for the fan-out phase")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "Length of each load phase")->capture_default_str();
  app.add_option("--threads", threads, "Client threads in the load phases")->capture_default_str();
  app.add_option("--kubectl", kubectl, "kubectl of a pinned release; empty skips that phase");
  CLI11_PARSE(app, argc, argv);
  log::SetVerbosity(0);

  // The fleet, in memory (durability is the store benchmark's subject).
  storage::StoreOptions store_options;
  store_options.background_maintenance = true;
  auto store = std::move(*storage::NodeStore::Open(store_options));
  auto fleet = edge::FleetGenerator::Create({});
  if (!fleet.ok()) return 1;
  edge::NodeSpec spec;
  std::vector<std::string> names;
  std::vector<uint32_t> epochs;
  names.reserve(nodes);
  epochs.reserve(nodes);
  for (uint64_t i = 0; i < nodes; ++i) {
    fleet->FillNode(i, 0, &spec);
    auto registered = store->Register(ToNode(spec));
    if (!registered.ok()) {
      Note(registered.status().ToString());
      return 1;
    }
    names.push_back(spec.name);
    epochs.push_back(registered->epoch);
  }
  Figure("api.nodes", static_cast<double>(nodes), "nodes");
  auto pods = std::move(*storage::PodStore::Open({}));

  // The server, with standalone-style certificates in a temporary directory.
  char tmpl[] = "/tmp/kole-bench-api-XXXXXX";
  Pki pki{mkdtemp(tmpl)};
  if (!apiserver::EnsureStandaloneCertificates(pki.dir, {"127.0.0.1"}).ok()) return 1;
  apiserver::ServerConfig config;
  config.bind_address = "127.0.0.1";
  config.port = 0;
  config.serving = {pki.dir + "/apiserver.crt", pki.dir + "/apiserver.key"};
  apiserver::Authenticator::Options authn;
  authn.client_ca = *apiserver::CertificateAuthority::FromFile(pki.ca());
  config.authenticator = std::make_unique<apiserver::Authenticator>(std::move(authn));
  config.authorizer = std::make_unique<apiserver::AlwaysAllowAuthorizer>();
  config.max_watches = watchers + 8;
  config.worker_threads = watchers + 40;
  auto server = std::move(*apiserver::Server::Create(std::move(config), store.get(), pods.get()));
  if (!server->Start().ok()) return 1;
  int port = server->port();

  // Heartbeats flow during every phase, as the bridge would apply them, at
  // the rate asked for. A thread that fell more than a second behind (the
  // two cores busy with a phase's clients) drops the deficit rather than
  // bursting into the next phase; each phase reports the rate it really had.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> beats_applied{0};
  std::atomic<uint64_t> beats_refused{0};
  std::thread heartbeats([&] {
    constexpr size_t kBatch = 512;
    std::vector<storage::Heartbeat> batch(kBatch);
    std::vector<storage::HeartbeatOutcome> outcomes(kBatch);
    uint32_t sequence = 1;
    uint64_t next = 0;
    auto window_start = Clock::now();
    uint64_t window_beats = 0;
    while (!stop.load()) {
      for (size_t j = 0; j < kBatch; ++j) {
        // A batch that wraps around the fleet starts the next round there.
        size_t i = (next + j) % names.size();
        uint32_t round = sequence + static_cast<uint32_t>((next + j) / names.size());
        batch[j] = {names[i], epochs[i], round};
      }
      next += kBatch;
      if (next >= names.size()) {
        next -= names.size();
        ++sequence;
      }
      store->ApplyHeartbeats(batch, outcomes).IgnoreError();
      for (storage::HeartbeatOutcome o : outcomes) {
        if (o != storage::HeartbeatOutcome::kApplied &&
            o != storage::HeartbeatOutcome::kPublished) {
          ++beats_refused;
        }
      }
      beats_applied += kBatch;
      window_beats += kBatch;
      double due = static_cast<double>(window_beats) / heartbeat_rate;
      double elapsed = Seconds(Clock::now() - window_start);
      if (due > elapsed) {
        std::this_thread::sleep_for(std::chrono::duration<double>(due - elapsed));
      } else if (elapsed - due > 1) {
        window_start = Clock::now();
        window_beats = 0;
      }
    }
  });
  // The heartbeat rate of the phase that ends when the returned function is
  // called, as figure api.<phase>_heartbeats_per_second.
  auto heartbeat_meter = [&](std::string phase) {
    uint64_t beats = beats_applied.load();
    auto start = Clock::now();
    return [&, phase, beats, start] {
      Figure("api." + phase + "_heartbeats_per_second",
             static_cast<double>(beats_applied.load() - beats) / Seconds(Clock::now() - start),
             "heartbeats/s");
    };
  };
  auto bench_start = Clock::now();

  // GET of single nodes.
  uint64_t failures = 0;
  auto get_phase = heartbeat_meter("get");
  std::vector<double> get = Load(
      pki, port, threads, seconds,
      [&](httplib::SSLClient& c, std::mt19937_64& rng) {
        const std::string& name = names[rng() % names.size()];
        auto res = c.Get(("/apis/edge.kole.io/v1alpha1/nodes/" + name).c_str());
        return res && res->status == 200;
      },
      &failures);
  Figure("api.get_per_second", get.size() / seconds, "requests/s");
  Figure("api.get_p50", Percentile(get, 0.5), "ms");
  Figure("api.get_p99", Percentile(get, 0.99), "ms");
  Figure("api.get_failures", static_cast<double>(failures), "requests");
  get_phase();

  // LIST pages of 500 at random points of the fleet, as kubectl asks.
  auto list_phase = heartbeat_meter("list500");
  std::vector<double> list = Load(
      pki, port, threads, seconds,
      [&](httplib::SSLClient& c, std::mt19937_64&) {
        auto res = c.Get("/apis/edge.kole.io/v1alpha1/nodes?limit=500",
                         {{"Accept", kTableAccept}, {"Accept-Encoding", "gzip"}});
        return res && res->status == 200;
      },
      &failures);
  Figure("api.list500_per_second", list.size() / seconds, "requests/s");
  Figure("api.list500_p50", Percentile(list, 0.5), "ms");
  Figure("api.list500_p99", Percentile(list, 0.99), "ms");
  list_phase();

  // Watch fan-out: every watcher sees each of a series of label changes.
  // (Heartbeats used to stop here: the readers shared the heartbeat
  // thread's stop flag.)
  {
    std::atomic<bool> watches_done{false};
    auto watch_phase = heartbeat_meter("watch_fanout");
    constexpr int kChanges = 10;
    std::mutex mu;
    std::vector<std::vector<Clock::time_point>> seen(kChanges);
    std::atomic<int> ready{0};
    std::vector<std::thread> streams;
    std::vector<std::unique_ptr<httplib::SSLClient>> clients;
    for (int w = 0; w < watchers; ++w) clients.push_back(Client(pki, port, 600));
    std::string target = names[0];
    uint64_t from = store->resource_version();
    for (int w = 0; w < watchers; ++w) {
      streams.emplace_back([&, w] {
        std::string pending;
        ready++;
        clients[w]->Get(fmt::format("/apis/edge.kole.io/v1alpha1/nodes?watch=1&resourceVersion={}&"
                                    "fieldSelector=metadata.name%3D{}&timeoutSeconds=60",
                                    from, target)
                            .c_str(),
                        [&](const char* data, size_t n) {
                          pending.append(data, n);
                          size_t nl;
                          while ((nl = pending.find('\n')) != std::string::npos) {
                            std::string line = pending.substr(0, nl);
                            pending.erase(0, nl + 1);
                            size_t at = line.find("\"bench\":\"");
                            if (at != std::string::npos) {
                              int i = std::atoi(line.c_str() + at + 9);
                              std::lock_guard<std::mutex> lock(mu);
                              if (i >= 0 && i < kChanges) seen[i].push_back(Clock::now());
                            }
                          }
                          return !watches_done.load();
                        });
      });
    }
    while (ready.load() < watchers || server->metrics().watches.load() < watchers) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<double> delivery;
    auto writer = Client(pki, port);
    for (int i = 0; i < kChanges; ++i) {
      auto sent = Clock::now();
      auto res = writer->Patch(("/apis/edge.kole.io/v1alpha1/nodes/" + target).c_str(),
                               fmt::format(R"({{"metadata":{{"labels":{{"bench":"{}"}}}}}})", i),
                               "application/merge-patch+json");
      if (!res || res->status != 200) Note("patch failed");
      for (int spin = 0; spin < 500; ++spin) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (static_cast<int>(seen[i].size()) >= watchers) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      std::lock_guard<std::mutex> lock(mu);
      for (auto t : seen[i]) delivery.push_back(Seconds(t - sent) * 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Figure("api.watch_fanout_watchers", watchers, "watchers");
    Figure("api.watch_fanout_deliveries", static_cast<double>(delivery.size()), "events");
    Figure("api.watch_fanout_p50", Percentile(delivery, 0.5), "ms");
    Figure("api.watch_fanout_p99", Percentile(delivery, 0.99), "ms");
    watches_done.store(true);  // Ends the watch readers (their receivers return false).
    for (auto& c : clients) c->stop();
    for (std::thread& t : streams) t.join();
    watch_phase();
  }

  // The same list in process: the store's decode alone, then decode and
  // render, to split server time from transport time.
  {
    std::string buffer;
    size_t count = 0;
    storage::ListResult result;
    auto start = Clock::now();
    store
        ->ListEach(
            {}, [&](const storage::Node&) { ++count; }, &result)
        .IgnoreError();
    Figure("api.list_decode_seconds", Seconds(Clock::now() - start), "s");
    start = Clock::now();
    size_t bytes = 0;
    store
        ->ListEach(
            {},
            [&](const storage::Node& node) {
              apiserver::AppendNodeJson(node, buffer);
              buffer += ',';
              if (buffer.size() > (256 << 10)) {
                bytes += buffer.size();
                buffer.clear();
              }
            },
            &result)
        .IgnoreError();
    Figure("api.list_decode_render_seconds", Seconds(Clock::now() - start), "s");
    Figure("api.list_render_bytes_per_node", static_cast<double>(bytes + buffer.size()) / count,
           "B");

    // What the API does: render straight from the compact records, as JSON
    // and as the Table rows kubectl asks for.
    for (bool table : {false, true}) {
      apiserver::NodeRenderer renderer;
      const int64_t now = std::time(nullptr);
      buffer.clear();
      bytes = 0;
      start = Clock::now();
      store
          ->ListEachView(
              {},
              [&](const storage::NodeView& node) {
                if (table) {
                  renderer.AppendTableRow(node, now, apiserver::IncludeObject::kMetadata, buffer);
                } else {
                  renderer.AppendJson(node, buffer);
                }
                buffer += ',';
                if (buffer.size() > (256 << 10)) {
                  bytes += buffer.size();
                  buffer.clear();
                }
              },
              &result)
          .IgnoreError();
      std::string name = table ? "api.list_view_render_table" : "api.list_view_render";
      Figure(name + "_seconds", Seconds(Clock::now() - start), "s");
      Figure(name + "_bytes_per_node", static_cast<double>(bytes + buffer.size()) / count, "B");
    }
  }

  // One full list, plain and gzipped (kubectl always asks for gzip), and
  // the gzipped Table that `kubectl get --chunk-size=0` asks for.
  auto full_list_phase = heartbeat_meter("full_list");
  for (auto [gzip, table] : {std::pair{false, false}, {true, false}, {true, true}}) {
    auto c = Client(pki, port, 600);
    httplib::Headers headers;
    if (gzip) headers.emplace("Accept-Encoding", "gzip");
    if (table) headers.emplace("Accept", kTableAccept);
    size_t bytes = 0;
    auto start = Clock::now();
    auto res = c->Get("/apis/edge.kole.io/v1alpha1/nodes", headers, [&](const char*, size_t n) {
      bytes += n;
      return true;
    });
    double took = Seconds(Clock::now() - start);
    if (!res || res->status != 200) Note("full list failed");
    std::string suffix = std::string(table ? "_table" : "") + (gzip ? "_gzip" : "");
    Figure("api.full_list" + suffix + "_seconds", took, "s");
    Figure("api.full_list" + suffix + "_bytes", static_cast<double>(bytes), "B");
  }
  full_list_phase();

  // kubectl get over the whole fleet, direct to the server.
  if (!kubectl.empty() && std::filesystem::exists(kubectl)) {
    std::string kubeconfig = pki.dir + "/admin.kubeconfig";
    std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n"
                              << "    server: https://127.0.0.1:" << port << "\n"
                              << "    certificate-authority: " << pki.ca() << "\n"
                              << "users:\n- name: a\n  user:\n    client-certificate: "
                              << pki.cert() << "\n    client-key: " << pki.key() << "\n"
                              << "contexts:\n- name: k\n  context:\n    cluster: k\n    user: a\n"
                              << "current-context: k\n";
    // Default paging (500 a page; kubectl's client-side limit of 5
    // requests a second then sets the pace), and one unpaginated request.
    for (const char* chunk : {"", " --chunk-size=0"}) {
      std::string command = fmt::format(
          "{} --kubeconfig {} --cache-dir {}/cache --request-timeout=0 get nodes.edge.kole.io "
          "--no-headers{} | wc -l",
          kubectl, kubeconfig, pki.dir, chunk);
      std::string suffix = *chunk == '\0' ? "" : "_unpaged";
      auto kubectl_phase = heartbeat_meter("kubectl_get" + suffix);
      auto start = Clock::now();
      FILE* p = popen(command.c_str(), "r");
      char line[64] = {0};
      if (p != nullptr && fgets(line, sizeof(line), p) != nullptr) {
        double took = Seconds(Clock::now() - start);
        Figure("api.kubectl_get" + suffix + "_seconds", took, "s");
        Figure("api.kubectl_get" + suffix + "_rows", std::atof(line), "rows");
      }
      if (p != nullptr) pclose(p);
      kubectl_phase();
    }
  }

  stop.store(true);
  heartbeats.join();
  Figure("api.heartbeats_refused", static_cast<double>(beats_refused.load()), "heartbeats");
  Figure("api.heartbeats_per_second",
         static_cast<double>(beats_applied.load()) / Seconds(Clock::now() - bench_start),
         "heartbeats/s");
  server->Stop();
  store->Close();
  std::filesystem::remove_all(pki.dir);
  return 0;
}
