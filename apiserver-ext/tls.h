#pragma once

// Certificates for the API server: the serving certificate (from files, or
// generated self-signed into --cert-dir as upstream does), the standalone
// mode's own CA and the admin client certificate it issues, and the chain
// verification the authenticator runs per request.
//
// TLS asks for a client certificate without requiring one (kubelet probes
// and bearer-token clients send none), accepts whatever the peer sends at
// the handshake, and leaves the decision to the authenticator, which checks
// the chain against each CA it trusts (front proxy, client CA) separately.
//
// Thread safety: free functions; a CertificateAuthority is immutable after
// Load and may verify from many threads at once.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

typedef struct x509_store_st X509_STORE;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kole::apiserver {

struct CertPaths {
  std::string cert_file;
  std::string key_file;
};

// Writes a self-signed serving certificate and key for `hosts` (DNS names
// and IP addresses) into `cert_dir` as apiserver.crt / apiserver.key,
// unless both exist already. Returns their paths.
absl::StatusOr<CertPaths> EnsureSelfSignedServingCert(const std::string& cert_dir,
                                                      const std::vector<std::string>& hosts);

// Standalone mode: a CA in `cert_dir` (ca.crt, ca.key), a serving
// certificate it signs (apiserver.crt/.key, for `hosts`) and an admin client
// certificate (admin.crt/.key, CN kole-admin, O system:masters). Existing
// files are kept. Returns the CA certificate path.
absl::StatusOr<std::string> EnsureStandaloneCertificates(const std::string& cert_dir,
                                                         const std::vector<std::string>& hosts);

// Issues a client certificate signed by the CA in `ca_cert`/`ca_key` (PEM
// files) and writes it to `out_cert`/`out_key`. For tests and standalone
// mode.
absl::Status IssueClientCert(const std::string& ca_cert, const std::string& ca_key,
                             const std::string& common_name,
                             const std::vector<std::string>& organizations,
                             const std::string& out_cert, const std::string& out_key);

// Creates a CA certificate and key at the given paths (tests and standalone).
absl::Status CreateCa(const std::string& common_name, const std::string& out_cert,
                      const std::string& out_key);

// Configures a server context: TLS 1.2 minimum, the serving certificate,
// client certificates requested but not required and not verified at the
// handshake (see above).
bool ConfigureServerContext(SSL_CTX& ctx, const CertPaths& paths);

// The peer's certificate chain as DER, leaf first; empty without one.
std::vector<std::string> PeerChainDer(const SSL* ssl);

// The identity a verified client certificate carries.
struct CertIdentity {
  std::string common_name;
  std::vector<std::string> organizations;
};

// A set of trusted roots for client certificates.
class CertificateAuthority {
 public:
  // Parses a PEM bundle. InvalidArgument when it holds no certificate.
  static absl::StatusOr<std::shared_ptr<CertificateAuthority>> FromPem(std::string_view pem);
  static absl::StatusOr<std::shared_ptr<CertificateAuthority>> FromFile(const std::string& path);
  ~CertificateAuthority();

  // Verifies `chain_der` (leaf first) up to one of these roots, for client
  // authentication. PermissionDenied with the reason when it does not.
  absl::StatusOr<CertIdentity> Verify(const std::vector<std::string>& chain_der) const;

 private:
  CertificateAuthority() = default;
  X509_STORE* store_ = nullptr;
};

// Reads a whole file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace kole::apiserver
