#pragma once

// ApiHandler is the request pipeline of kole-apiserver without the HTTP
// transport: authentication, authorization, then routing to health,
// /version, /metrics, discovery, OpenAPI and the resources. server.cc feeds
// it requests from cpp-httplib; unit tests feed it requests directly.
//
// Ownership: borrows the node and pod stores, authenticator, authorizer, metrics and
// health checks; all must outlive it and every stream it returned.
// Thread safety: Handle() may be called from many threads at once.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "apiserver-ext/api_metrics.h"
#include "apiserver-ext/authn.h"
#include "apiserver-ext/authz.h"
#include "apiserver-ext/discovery.h"
#include "apiserver-ext/eds_resource.h"
#include "apiserver-ext/health.h"
#include "apiserver-ext/http_types.h"
#include "apiserver-ext/namespace_lifecycle.h"
#include "apiserver-ext/nodes_resource.h"
#include "apiserver-ext/openapi.h"
#include "apiserver-ext/pods_resource.h"
#include "storage/node_store.h"

namespace kole::apiserver {

// KOLE's version in /version's shape.
std::string VersionJson();

struct ApiHandlerOptions {
  // Paths that skip authorization (anonymous callers still need a health
  // path). Entries ending in '*' match by prefix, as upstream.
  std::vector<std::string> always_allow_paths = {"/healthz", "/readyz", "/livez"};
  WatchSettings watch;
  // The EdgeDaemonSets; null serves none (404), as in tests of other resources.
  storage::ObjectStore* workloads = nullptr;
  // Whether a namespace is being deleted (namespace_lifecycle.h); unset:
  // never, as in standalone mode.
  NamespaceTerminatingFn namespace_terminating;
};

class ApiHandler {
 public:
  ApiHandler(storage::NodeStore* store, storage::PodStore* pods, Authenticator* authenticator,
             Authorizer* authorizer, ApiMetrics* metrics, HealthChecks* health,
             const std::atomic<bool>* stopping, ApiHandlerOptions options = {});

  // Handles one request. `peer_chain` is the TLS client certificate chain
  // (DER, leaf first), empty when the client sent none.
  HttpResponse Handle(HttpRequest& request, const std::vector<std::string>& peer_chain);

  // The pieces of the pipeline, for the server's request log and metrics.
  static std::string MetricResource(const RequestInfo& info);
  // "resource", "namespace" or "cluster" (api_metrics.h); empty for
  // non-resource paths.
  static std::string_view MetricScope(const RequestInfo& info);

 private:
  HttpResponse Route(const HttpRequest& request, const RequestInfo& info);
  bool AlwaysAllowed(std::string_view path) const;

  storage::NodeStore* store_;
  Authenticator* authenticator_;
  Authorizer* authorizer_;
  ApiMetrics* metrics_;
  HealthChecks* health_;
  ApiHandlerOptions options_;
  Discovery discovery_;
  OpenApi openapi_;
  NodesResource nodes_;
  PodsResource pods_;
  std::optional<EdgeDaemonSetsResource> workloads_;
};

}  // namespace kole::apiserver
