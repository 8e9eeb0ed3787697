#pragma once

// Helpers shared by the apiserver tests: a throw-away PKI in a temporary
// directory (CA, client certificates as DER chains for ApiHandler tests and
// as files for real TLS clients) and request builders.

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/tls.h"

namespace kole::apiserver::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kole-apiserver-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The DER of the first certificate in a PEM file.
inline std::string DerOfPemFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) return "";
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

// A CA and the client certificates it issued, under one temporary dir.
class TestPki {
 public:
  explicit TestPki(const std::string& dir, const std::string& name = "test-ca")
      : dir_(dir), name_(name) {
    CreateCa(name, CaCert(), dir_ + "/" + name_ + ".key").IgnoreError();
  }
  std::string CaCert() const { return dir_ + "/" + name_ + ".crt"; }
  std::string CaKey() const { return dir_ + "/" + name_ + ".key"; }

  // Issues a client certificate; returns the path prefix (.crt / .key).
  std::string Issue(const std::string& cn, const std::vector<std::string>& orgs = {}) {
    std::string prefix = dir_ + "/" + name_ + "-" + cn;
    IssueClientCert(CaCert(), CaKey(), cn, orgs, prefix + ".crt", prefix + ".key").IgnoreError();
    return prefix;
  }
  std::vector<std::string> Chain(const std::string& cn, const std::vector<std::string>& orgs = {}) {
    return {DerOfPemFile(Issue(cn, orgs) + ".crt")};
  }

 private:
  std::string dir_;
  std::string name_;
};

inline HttpRequest Request(std::string method, std::string path, std::string body = "") {
  HttpRequest r;
  r.method = std::move(method);
  size_t q = path.find('?');
  if (q != std::string::npos) {
    std::string query = path.substr(q + 1);
    path = path.substr(0, q);
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      std::string item =
          query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      size_t eq = item.find('=');
      if (!item.empty()) {
        r.query.emplace(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
      }
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
  }
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

}  // namespace kole::apiserver::testing
