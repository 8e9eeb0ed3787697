#include "apiserver-ext/tls.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kole::apiserver {
namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(e, buffer, sizeof(buffer));
  return buffer;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

PkeyPtr NewKey() { return PkeyPtr(EVP_EC_gen("P-256")); }

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext != nullptr) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

struct CertSpec {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> hosts;  // SANs
  bool ca = false;
  bool server = false;
  bool client = false;
  int days = 365;
};

X509Ptr MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  FILE* random = fopen("/dev/urandom", "rb");
  if (random != nullptr) {
    size_t got = fread(serial, 1, sizeof(serial), random);
    (void)got;
    fclose(random);
  }
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  // Back-date by an hour for clocks that differ a little.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(spec.days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const std::string& o : spec.organizations) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (spec.ca) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage,
                 "critical,keyCertSign,cRLSign,digitalSignature");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    std::string eku;
    if (spec.server) eku = "serverAuth";
    if (spec.client) eku += eku.empty() ? "clientAuth" : ",clientAuth";
    AddExtension(cert.get(), signer, NID_ext_key_usage, eku);
  }
  AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid");
  if (!spec.hosts.empty()) {
    std::string san;
    for (const std::string& h : spec.hosts) {
      unsigned char buf[16];
      bool ip = inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
      if (!san.empty()) san += ',';
      san += (ip ? "IP:" : "DNS:") + h;
    }
    AddExtension(cert.get(), signer, NID_subject_alt_name, san);
  }
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

absl::Status WritePem(const std::string& cert_path, X509* cert, const std::string& key_path,
                      EVP_PKEY* key) {
  std::filesystem::create_directories(std::filesystem::path(cert_path).parent_path());
  FILE* c = fopen(cert_path.c_str(), "w");
  if (c == nullptr) return absl::PermissionDeniedError(fmt::format("cannot write {}", cert_path));
  PEM_write_X509(c, cert);
  fclose(c);
  if (key != nullptr) {
    // The key is readable by its owner only.
    FILE* k = fopen(key_path.c_str(), "w");
    if (k == nullptr) return absl::PermissionDeniedError(fmt::format("cannot write {}", key_path));
    chmod(key_path.c_str(), 0600);
    PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
    fclose(k);
  }
  return absl::OkStatus();
}

absl::StatusOr<X509Ptr> LoadCert(const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return absl::NotFoundError(fmt::format("cannot read {}", path));
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) return absl::InvalidArgumentError(fmt::format("{}: no certificate", path));
  return X509Ptr(cert);
}

absl::StatusOr<PkeyPtr> LoadKey(const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return absl::NotFoundError(fmt::format("cannot read {}", path));
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (key == nullptr) return absl::InvalidArgumentError(fmt::format("{}: no private key", path));
  return PkeyPtr(key);
}

// Accepts every chain at the handshake: the authenticator verifies it
// against the CA that applies (front proxy or client CA).
int AcceptAnyPeer(int, X509_STORE_CTX*) { return 1; }

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<CertPaths> EnsureSelfSignedServingCert(const std::string& cert_dir,
                                                      const std::vector<std::string>& hosts) {
  CertPaths paths{cert_dir + "/apiserver.crt", cert_dir + "/apiserver.key"};
  if (Exists(paths.cert_file) && Exists(paths.key_file)) return paths;
  PkeyPtr key = NewKey();
  if (!key) return absl::InternalError(OpenSslError());
  CertSpec spec{.common_name = "kole-apiserver", .hosts = hosts, .server = true};
  X509Ptr cert = MakeCert(spec, key.get(), nullptr, nullptr);
  absl::Status written = WritePem(paths.cert_file, cert.get(), paths.key_file, key.get());
  if (!written.ok()) return written;
  return paths;
}

absl::Status CreateCa(const std::string& common_name, const std::string& out_cert,
                      const std::string& out_key) {
  PkeyPtr key = NewKey();
  if (!key) return absl::InternalError(OpenSslError());
  CertSpec spec{.common_name = common_name, .ca = true, .days = 3650};
  X509Ptr cert = MakeCert(spec, key.get(), nullptr, nullptr);
  return WritePem(out_cert, cert.get(), out_key, key.get());
}

namespace {

absl::Status IssueSigned(const std::string& ca_cert, const std::string& ca_key, CertSpec spec,
                         const std::string& out_cert, const std::string& out_key) {
  absl::StatusOr<X509Ptr> ca = LoadCert(ca_cert);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<PkeyPtr> ca_pkey = LoadKey(ca_key);
  if (!ca_pkey.ok()) return ca_pkey.status();
  PkeyPtr key = NewKey();
  if (!key) return absl::InternalError(OpenSslError());
  X509Ptr cert = MakeCert(spec, key.get(), ca->get(), ca_pkey->get());
  return WritePem(out_cert, cert.get(), out_key, key.get());
}

}  // namespace

absl::Status IssueClientCert(const std::string& ca_cert, const std::string& ca_key,
                             const std::string& common_name,
                             const std::vector<std::string>& organizations,
                             const std::string& out_cert, const std::string& out_key) {
  CertSpec spec{.common_name = common_name, .organizations = organizations, .client = true};
  return IssueSigned(ca_cert, ca_key, spec, out_cert, out_key);
}

absl::StatusOr<std::string> EnsureStandaloneCertificates(const std::string& cert_dir,
                                                         const std::vector<std::string>& hosts) {
  std::string ca_cert = cert_dir + "/ca.crt";
  std::string ca_key = cert_dir + "/ca.key";
  if (!Exists(ca_cert) || !Exists(ca_key)) {
    absl::Status s = CreateCa("kole-standalone-ca", ca_cert, ca_key);
    if (!s.ok()) return s;
  }
  if (!Exists(cert_dir + "/apiserver.crt") || !Exists(cert_dir + "/apiserver.key")) {
    CertSpec spec{.common_name = "kole-apiserver", .hosts = hosts, .server = true};
    absl::Status s = IssueSigned(ca_cert, ca_key, spec, cert_dir + "/apiserver.crt",
                                 cert_dir + "/apiserver.key");
    if (!s.ok()) return s;
  }
  if (!Exists(cert_dir + "/admin.crt") || !Exists(cert_dir + "/admin.key")) {
    absl::Status s = IssueClientCert(ca_cert, ca_key, "kole-admin", {"system:masters"},
                                     cert_dir + "/admin.crt", cert_dir + "/admin.key");
    if (!s.ok()) return s;
  }
  return ca_cert;
}

bool ConfigureServerContext(SSL_CTX& ctx, const CertPaths& paths) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION |
                                SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, paths.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(&ctx, paths.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    return false;
  }
  // Ask for a certificate, do not require one, verify later per CA.
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, AcceptAnyPeer);
  static const unsigned char kContext[] = "kole-apiserver";
  SSL_CTX_set_session_id_context(&ctx, kContext, sizeof(kContext) - 1);
  return true;
}

std::vector<std::string> PeerChainDer(const SSL* ssl) {
  std::vector<std::string> out;
  if (ssl == nullptr) return out;
  auto append = [&out](X509* cert) {
    unsigned char* der = nullptr;
    int n = i2d_X509(cert, &der);
    if (n > 0) {
      out.emplace_back(reinterpret_cast<char*>(der), static_cast<size_t>(n));
      OPENSSL_free(der);
    }
  };
  // On the server side the chain excludes the leaf.
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) return out;
  append(leaf);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  if (chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i) append(sk_X509_value(chain, i));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<CertificateAuthority>> CertificateAuthority::FromPem(
    std::string_view pem) {
  std::shared_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->store_ = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(ca->store_, cert);
    X509_free(cert);
    ++count;
  }
  BIO_free(bio);
  ERR_clear_error();
  if (count == 0) return absl::InvalidArgumentError("the CA bundle holds no certificate");
  return ca;
}

absl::StatusOr<std::shared_ptr<CertificateAuthority>> CertificateAuthority::FromFile(
    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return pem.status();
  return FromPem(*pem);
}

CertificateAuthority::~CertificateAuthority() {
  if (store_ != nullptr) X509_STORE_free(store_);
}

absl::StatusOr<CertIdentity> CertificateAuthority::Verify(
    const std::vector<std::string>& chain_der) const {
  if (chain_der.empty()) return absl::PermissionDeniedError("no client certificate");
  std::vector<X509Ptr> certs;
  for (const std::string& der : chain_der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (cert == nullptr) return absl::PermissionDeniedError("unparsable client certificate");
    certs.emplace_back(cert);
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted, certs[i].get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store_, certs[0].get(), untrusted);
  // Requires extended key usage clientAuth on the leaf, as upstream does.
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  int ok = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  ERR_clear_error();
  if (ok != 1) {
    return absl::PermissionDeniedError(fmt::format("x509: {}", X509_verify_cert_error_string(err)));
  }
  CertIdentity id;
  X509_NAME* subject = X509_get_subject_name(certs[0].get());
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (n < 0) continue;
    std::string value(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    if (nid == NID_commonName) id.common_name = value;
    if (nid == NID_organizationName) id.organizations.push_back(value);
  }
  return id;
}

}  // namespace kole::apiserver
