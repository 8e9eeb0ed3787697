#pragma once

// A minimal client for the calls KOLE makes to kube-apiserver: TokenReview,
// SubjectAccessReview and reading the extension-apiserver-authentication
// ConfigMap. It reads a kubeconfig (current context: server, CA, client
// certificate or bearer token) and speaks JSON over HTTPS with a timeout.
//
// Thread safety: Post() and Get() may be called from many threads; each call
// uses its own connection (these calls are cached by their callers, so they
// are rare).

#include <absl/status/statusor.h>

#include <memory>
#include <string>

namespace kole::apiserver {

struct KubeconfigTarget {
  std::string host;
  int port = 443;
  std::string ca_pem;           // Empty: system roots.
  bool insecure = false;        // insecure-skip-tls-verify
  std::string client_cert_pem;  // With client_key_pem.
  std::string client_key_pem;
  std::string token;
  // Read before every call when set: service-account tokens are rotated
  // by the kubelet, and a token read once expires.
  std::string token_file;
};

// Reads the current context of a kubeconfig file (file references resolve
// relative to the file, *-data fields are base64).
absl::StatusOr<KubeconfigTarget> LoadKubeconfig(const std::string& path);

// The in-cluster configuration a pod gets: KUBERNETES_SERVICE_HOST/PORT and
// the service account's token and CA under
// /var/run/secrets/kubernetes.io/serviceaccount. NotFound outside a pod.
absl::StatusOr<KubeconfigTarget> InClusterConfig(
    const std::string& account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

class KubeClient {
 public:
  explicit KubeClient(KubeconfigTarget target, int timeout_seconds = 10);
  ~KubeClient();

  // POSTs `json` to `path`; the response body on 2xx, NotFound on 404, an
  // error naming the status otherwise (Unavailable for transport errors).
  absl::StatusOr<std::string> Post(const std::string& path, const std::string& json) const;
  absl::StatusOr<std::string> Get(const std::string& path) const;

 private:
  absl::StatusOr<std::string> Send(const std::string& method, const std::string& path,
                                   const std::string& json) const;

  KubeconfigTarget target_;
  int timeout_seconds_;
};

}  // namespace kole::apiserver
