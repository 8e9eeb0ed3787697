#pragma once

// kole-apiserver's command line: flags with upstream names where upstream
// has them (k8s-api-contract.md, DESIGN §7), parsed into Options, validated,
// then completed into the ServerConfig and StoreOptions the process runs
// with, the way Kubernetes components go options -> config -> run.
//
// The MQTT bridge adds its own flags to the same CLI::App (--mqtt-*) next to
// AddFlags().
//
// Thread safety: used by main() only.

#include <absl/status/statusor.h>

#include <string>
#include <vector>

#include "apiserver-ext/server.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"

namespace CLI {
class App;
}

namespace kole::apiserver {

struct Options {
  // Serving.
  // Not 6443: a local kube-apiserver (make demo, e2e) listens there.
  int secure_port = 8443;
  std::string bind_address = "0.0.0.0";
  std::string tls_cert_file;
  std::string tls_private_key_file;
  std::string cert_dir;
  std::vector<std::string> tls_sans;

  // Authentication.
  std::string client_ca_file;
  std::string requestheader_client_ca_file;
  std::vector<std::string> requestheader_allowed_names;
  std::vector<std::string> requestheader_username_headers = {"X-Remote-User"};
  std::vector<std::string> requestheader_group_headers = {"X-Remote-Group"};
  std::vector<std::string> requestheader_extra_headers_prefix = {"X-Remote-Extra-"};
  std::string authentication_kubeconfig;
  std::string authentication_token_webhook_cache_ttl = "10s";

  // Authorization.
  std::string authorization_kubeconfig;
  std::vector<std::string> authorization_always_allow_paths = {"/healthz", "/readyz", "/livez"};
  std::string authorization_webhook_cache_authorized_ttl = "10s";
  std::string authorization_webhook_cache_unauthorized_ttl = "10s";

  std::string kubeconfig;
  bool standalone = false;

  // Limits.
  int max_requests_inflight = 400;
  int max_mutating_requests_inflight = 200;
  int worker_threads = 96;
  int max_watches = 64;
  int max_request_body_bytes = 3 << 20;
  // How often free allocator memory is given back to the system
  // (common/heap_trim.h); 0 never.
  int heap_trim_interval_seconds = 15;

  // Logging.
  int v = 0;
  std::string vmodule;

  // Store.
  std::string data_dir;
  bool wal_truncate_at_corruption = false;
  int node_report_period_seconds = 300;
};

// Registers every flag on `app`, bound to `options`, in sections.
void AddFlags(CLI::App& app, Options& options);

// Checks the options against each other (InvalidArgument naming the flags).
absl::Status Validate(const Options& options);

// Applies --v and --vmodule.
absl::Status ApplyLogging(const Options& options);

// The stores' options.
storage::StoreOptions CompleteStoreOptions(const Options& options);
storage::PodStoreOptions CompletePodStoreOptions(const Options& options);

// Builds the server configuration: certificates (generated into --cert-dir
// when not given), authenticators and authorizer (webhooks through
// kube-apiserver, or standalone), limits.
absl::StatusOr<ServerConfig> CompleteServerConfig(const Options& options);

// Standalone mode: writes <cert-dir>/admin.kubeconfig for the admin client
// certificate and the server at `port`, and returns its path.
absl::StatusOr<std::string> WriteStandaloneKubeconfig(const Options& options, int port);

}  // namespace kole::apiserver
