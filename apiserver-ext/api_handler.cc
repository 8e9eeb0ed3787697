#include "apiserver-ext/api_handler.h"

#include <fmt/format.h>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/resources.h"
#include "common/log.h"

#ifndef KOLE_VERSION
#define KOLE_VERSION "0.0.0"
#endif

namespace kole::apiserver {
namespace {

std::string_view Platform() {
#if defined(__x86_64__)
  return "linux/amd64";
#elif defined(__aarch64__)
  return "linux/arm64";
#else
  return "linux/unknown";
#endif
}

HttpResponse Json(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

}  // namespace

std::string VersionJson() {
  std::string version = KOLE_VERSION;
  std::string major = version.substr(0, version.find('.'));
  std::string rest = version.substr(version.find('.') + 1);
  std::string minor = rest.substr(0, rest.find('.'));
  return fmt::format(
      R"({{"major":"{}","minor":"{}","gitVersion":"v{}","gitCommit":"","gitTreeState":"","buildDate":"{}","goVersion":"","compiler":"{}","platform":"{}"}})",
      major, minor, version, "", "gcc", Platform());
}

ApiHandler::ApiHandler(storage::NodeStore* store, storage::PodStore* pods,
                       Authenticator* authenticator, Authorizer* authorizer, ApiMetrics* metrics,
                       HealthChecks* health, const std::atomic<bool>* stopping,
                       ApiHandlerOptions options)
    : store_(store),
      authenticator_(authenticator),
      authorizer_(authorizer),
      metrics_(metrics),
      health_(health),
      options_(std::move(options)),
      nodes_(store, stopping, options_.watch),
      pods_(pods, stopping, options_.watch, options_.namespace_terminating) {
  if (options_.workloads != nullptr)
    workloads_.emplace(options_.workloads, stopping, options_.watch);
}

bool ApiHandler::AlwaysAllowed(std::string_view path) const {
  for (const std::string& p : options_.always_allow_paths) {
    if (!p.empty() && p.back() == '*') {
      if (path.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1)) return true;
    } else if (path == p) {
      return true;
    }
  }
  return false;
}

std::string ApiHandler::MetricResource(const RequestInfo& info) {
  if (!info.is_resource_request) return "";
  if (!info.subresource.empty()) return info.resource + "/" + info.subresource;
  return info.resource;
}

std::string_view ApiHandler::MetricScope(const RequestInfo& info) {
  if (!info.is_resource_request) return "";
  if (!info.name.empty()) return "resource";
  if (!info.namespace_.empty()) return "namespace";
  return "cluster";
}

HttpResponse ApiHandler::Handle(HttpRequest& request, const std::vector<std::string>& peer_chain) {
  AuthnOutcome outcome = authenticator_->Authenticate(request, peer_chain);
  if (outcome == AuthnOutcome::kRejected || outcome == AuthnOutcome::kError) {
    return ErrorResponse(Unauthorized());
  }
  // Anonymous callers may reach the health paths only.
  if (outcome == AuthnOutcome::kAnonymous && !HealthChecks::IsHealthPath(request.path)) {
    return ErrorResponse(Unauthorized());
  }
  RequestInfo info =
      ParseRequestInfo(request.method, request.path, request.Query("watch").value_or(""),
                       request.Query("fieldSelector").value_or(""));

  bool master = std::find(request.user.groups.begin(), request.user.groups.end(),
                          "system:masters") != request.user.groups.end();
  if (!AlwaysAllowed(request.path) && !master) {
    absl::StatusOr<Decision> decision = authorizer_->Authorize(request.user, info);
    if (!decision.ok() || !decision->allowed) {
      std::string reason =
          decision.ok() ? decision->reason : std::string(decision.status().message());
      ErrorSubject subject{info.resource, "", info.name};
      return ErrorResponse(Forbidden(ForbiddenMessage(request.user, info, reason), subject));
    }
  }
  return Route(request, info);
}

HttpResponse ApiHandler::Route(const HttpRequest& request, const RequestInfo& info) {
  const std::string& path = request.path;
  bool read = request.method == "GET" || request.method == "HEAD";

  if (info.is_resource_request) {
    if (info.api_group != kGroup || info.api_version != kVersion)
      return ErrorResponse(NotFound({}));
    if (info.resource == "nodes") return nodes_.Handle(request, info);
    if (info.resource == "pods") return pods_.Handle(request, info);
    if (info.resource == "edgedaemonsets" && workloads_) return workloads_->Handle(request, info);
    return ErrorResponse(NotFound({}));
  }
  if (!read) {
    if (path == "/apis/edge.kole.io/v1alpha1" || path == "/apis" || path == "/api") {
      return ErrorResponse(MethodNotAllowed(request.method, "discovery"));
    }
    return ErrorResponse(NotFound({}));
  }
  if (HealthChecks::IsHealthPath(path)) return health_->Serve(request);
  if (path == "/version" || path == "/version/") return Json(VersionJson());
  if (path == "/metrics") {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->Render(store_);
    return r;
  }
  if (path == "/api" || path == "/api/") return discovery_.Api(request);
  if (path == "/apis" || path == "/apis/") return discovery_.Apis(request);
  if (path == "/apis/edge.kole.io" || path == "/apis/edge.kole.io/") return discovery_.Group();
  if (path == "/apis/edge.kole.io/v1alpha1" || path == "/apis/edge.kole.io/v1alpha1/") {
    return discovery_.GroupVersion();
  }
  if (path == "/openapi/v2") return openapi_.V2(request);
  if (path == "/openapi/v3" || path == "/openapi/v3/") return openapi_.V3Root(request);
  if (path == "/openapi/v3/apis/edge.kole.io/v1alpha1") return openapi_.V3GroupVersion(request);
  return ErrorResponse(NotFound({}));
}

}  // namespace kole::apiserver
