#pragma once

// Server: kole-apiserver's HTTPS front end on cpp-httplib and OpenSSL.
// It owns the transport and admission control and hands each admitted
// request to ApiHandler.
//
//   auto server = Server::Create(config, store.get(), pods.get());
//   server->health().AddCheck("mqtt-subscribed", HealthChecks::kReadyz, ...);
//   server->Start();     // binds, serves on its own threads
//   ...                  // wait for SIGTERM
//   server->Stop();      // ends watches, drains connections
//
// Why admission lives here (DESIGN §3, cpp-httplib notes): cpp-httplib runs
// one connection per worker for the connection's whole life, and its own
// pool queues connections without bound. KOLE therefore
//   - hands a connection to a worker only when one is idle; otherwise the
//     connection goes to a small overflow pool that answers cheap paths
//     (health, /version, discovery, OpenAPI, /metrics) and 429 for the rest,
//     so probes and the aggregator's availability check never wait;
//   - counts requests in flight (read-only and mutating separately, as
//     upstream's --max-requests-inflight / --max-mutating-requests-inflight)
//     and answers 429 with Retry-After before the body is read;
//   - caps watches below the worker count, so watches can never take every
//     worker;
//   - ends open watches on Stop() (they poll a stop flag every second).
//
// Thread safety: Start() and Stop() from one thread; health() only before
// Start(). Ownership: borrows the stores, which must outlive the server.

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apiserver-ext/api_handler.h"
#include "apiserver-ext/api_metrics.h"
#include "apiserver-ext/authn.h"
#include "apiserver-ext/authz.h"
#include "apiserver-ext/health.h"
#include "apiserver-ext/tls.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"

namespace httplib {
class SSLServer;
}

namespace kole::apiserver {

// Work the server repeats while it runs, on a thread of its own (re-reading
// the authentication ConfigMap, for one).
struct PeriodicTask {
  std::string name;
  int every_seconds = 60;
  std::function<void()> run;
};

// The completed configuration the server runs with (options.h builds it
// from flags).
struct ServerConfig {
  std::string bind_address = "0.0.0.0";
  int port = 8443;  // 0: any free port (tests).
  CertPaths serving;

  std::unique_ptr<Authenticator> authenticator;
  std::unique_ptr<Authorizer> authorizer;
  ApiHandlerOptions handler;

  int max_requests_inflight = 400;
  int max_mutating_requests_inflight = 200;
  // Workers for connections; watches may take at most max_watches of them.
  int worker_threads = 96;
  int max_watches = 64;
  int overflow_threads = 4;
  size_t max_request_body_bytes = 3 << 20;  // Upstream's 3 MiB.
  // cpp-httplib checks its stop flag only between requests, so an idle kept-alive
  // connection delays shutdown by up to this long; it also bounds how long an
  // idle client holds a worker. Clients reconnect after it (one TLS handshake).
  int keep_alive_timeout_seconds = 5;
  int keep_alive_max_count = 10000;
  int read_timeout_seconds = 30;
  int write_timeout_seconds = 60;
  std::vector<PeriodicTask> periodic;
};

class AdmissionPool;

class Server {
 public:
  // Validates the configuration and loads the serving certificate.
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerConfig config,
                                                        storage::NodeStore* store,
                                                        storage::PodStore* pods);
  ~Server();

  HealthChecks& health() { return health_; }
  ApiMetrics& metrics() { return metrics_; }

  // Binds and starts serving. Fails when the address cannot be bound.
  absl::Status Start();
  // Ends watches, stops accepting, waits for the workers. Idempotent.
  void Stop();
  // The bound port (the chosen one when configured with 0).
  int port() const { return port_; }
  // Runs every periodic task once, now (tests).
  void RunPeriodicTasksForTest();

 private:
  Server(ServerConfig config, storage::NodeStore* store, storage::PodStore* pods);
  void Install();

  ServerConfig config_;
  storage::NodeStore* store_;
  storage::PodStore* pods_;
  std::atomic<bool> stopping_{false};
  HealthChecks health_;
  ApiMetrics metrics_;
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<httplib::SSLServer> http_;
  std::thread listener_;
  std::thread periodic_;
  absl::Mutex periodic_mu_;
  bool periodic_stop_ ABSL_GUARDED_BY(periodic_mu_) = false;
  int port_ = 0;
  std::atomic<int> inflight_read_{0};
  std::atomic<int> inflight_mutating_{0};
  std::atomic<int> watches_{0};
  bool started_ = false;
};

}  // namespace kole::apiserver
