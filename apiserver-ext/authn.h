#pragma once

// Authentication, in upstream's order (k8s-api-contract.md §2.2), first
// success wins:
//   1. front proxy: a client certificate that chains to the request-header
//      CA (with clientAuth usage) and whose CN is allowed; the user comes
//      from X-Remote-User / -Group / -Extra-* (names configurable);
//   2. client certificate chaining to the client CA: user = CN, groups = O;
//   3. bearer token, reviewed with a TokenReview and cached for a TTL;
//   4. otherwise anonymous, which the server accepts on health paths only.
// Every authenticated user gets system:authenticated. X-Remote-* headers
// from anyone but a verified front proxy are ignored.
//
// Thread safety: Authenticate() may be called from many threads; the token
// cache has its own lock. Configuration is fixed at construction, except
// the request-header settings and the client CA, which SetRequestHeader()
// and SetClientCa() may replace at any time (the ConfigMap is re-read
// periodically, so a CA rotation takes effect without a restart).

#include <absl/container/flat_hash_map.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/tls.h"

namespace kole::apiserver {

class KubeClient;

struct RequestHeaderConfig {
  std::shared_ptr<CertificateAuthority> ca;  // Null: front proxy disabled.
  std::vector<std::string> allowed_names;    // Empty: any CN the CA signed.
  std::vector<std::string> username_headers = {"X-Remote-User"};
  std::vector<std::string> group_headers = {"X-Remote-Group"};
  std::vector<std::string> extra_prefixes = {"X-Remote-Extra-"};
};

// Reviews a bearer token. Returns the user, Unauthenticated when the token is
// not valid, another error when the review could not be made.
using TokenReviewFn = std::function<absl::StatusOr<UserInfo>(const std::string& token)>;

// A TokenReviewFn that posts TokenReviews through `client`.
TokenReviewFn TokenReviewWebhook(std::shared_ptr<KubeClient> client);

// Reads kube-system/extension-apiserver-authentication through `client`
// into a request-header config and, in `client_ca_pem`, the client CA.
absl::StatusOr<RequestHeaderConfig> LoadAuthenticationConfigMap(const KubeClient& client,
                                                                std::string* client_ca_pem);

enum class AuthnOutcome {
  kAuthenticated,
  kAnonymous,  // No credentials: system:anonymous.
  kRejected,   // Credentials were presented and are not valid: 401.
  kError,      // The token review failed: 401 (logged).
};

class Authenticator {
 public:
  struct Options {
    RequestHeaderConfig request_header;
    std::shared_ptr<CertificateAuthority> client_ca;  // Null: no client certs.
    TokenReviewFn token_review;                       // Null: no tokens.
    absl::Duration token_cache_ttl = absl::Seconds(10);
    std::function<absl::Time()> now;  // Default: absl::Now.
  };

  explicit Authenticator(Options options);

  // Sets request.user. `peer_chain` is the client certificate chain (DER,
  // leaf first). Front-proxy headers are removed from the request.
  AuthnOutcome Authenticate(HttpRequest& request, const std::vector<std::string>& peer_chain);

  void SetRequestHeader(RequestHeaderConfig config);
  void SetClientCa(std::shared_ptr<CertificateAuthority> ca);

 private:
  Options options_;
  absl::Mutex config_mu_;
  RequestHeaderConfig request_header_ ABSL_GUARDED_BY(config_mu_);
  std::shared_ptr<CertificateAuthority> client_ca_ ABSL_GUARDED_BY(config_mu_);

  struct CachedToken {
    absl::StatusOr<UserInfo> user;
    absl::Time expires;
  };
  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, CachedToken> token_cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace kole::apiserver
