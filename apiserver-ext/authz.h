#pragma once

// Authorization. The server skips it for always-allowed paths (health by
// default) and for members of system:masters, as upstream does; everything
// else asks the Authorizer.
//
//   AlwaysAllowAuthorizer  standalone mode: every authenticated user may do
//                          everything (the server says so loudly at start)
//   WebhookAuthorizer      a SubjectAccessReview per distinct request
//                          attributes, allow and deny answers cached for
//                          their TTLs (10 s each upstream)
//
// Thread safety: Authorize() may be called from many threads at once.

#include <absl/container/flat_hash_map.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <functional>
#include <memory>
#include <string>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/request_info.h"

namespace kole::apiserver {

class KubeClient;

struct Decision {
  bool allowed = false;
  std::string reason;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // An error means the decision could not be made (the request gets 403 with
  // the error as reason, as upstream's webhook authorizer does on failure).
  virtual absl::StatusOr<Decision> Authorize(const UserInfo& user, const RequestInfo& info) = 0;
};

class AlwaysAllowAuthorizer : public Authorizer {
 public:
  absl::StatusOr<Decision> Authorize(const UserInfo&, const RequestInfo&) override {
    return Decision{true, ""};
  }
};

// Posts a SubjectAccessReview body and returns the reply body.
using SarPostFn = std::function<absl::StatusOr<std::string>(const std::string& body)>;

class WebhookAuthorizer : public Authorizer {
 public:
  struct Options {
    absl::Duration allow_ttl = absl::Seconds(10);
    absl::Duration deny_ttl = absl::Seconds(10);
    std::function<absl::Time()> now;
  };
  WebhookAuthorizer(SarPostFn post, Options options);
  // Posts through a kube-apiserver client.
  static std::unique_ptr<WebhookAuthorizer> ForClient(std::shared_ptr<KubeClient> client,
                                                      Options options);

  absl::StatusOr<Decision> Authorize(const UserInfo& user, const RequestInfo& info) override;

  // The SubjectAccessReview JSON for a request (also the cache key).
  static std::string ReviewJson(const UserInfo& user, const RequestInfo& info);

 private:
  SarPostFn post_;
  Options options_;
  struct Cached {
    Decision decision;
    absl::Time expires;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

// The 403 message upstream writes for a denied request.
std::string ForbiddenMessage(const UserInfo& user, const RequestInfo& info,
                             const std::string& reason);

}  // namespace kole::apiserver
