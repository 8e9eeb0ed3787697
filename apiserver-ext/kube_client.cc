#include "apiserver-ext/kube_client.h"

#include <absl/strings/escaping.h>
#include <fmt/format.h>
#include <httplib.h>
#include <openssl/pem.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "apiserver-ext/tls.h"

namespace kole::apiserver {
namespace {

absl::StatusOr<std::string> DataOrFile(const YAML::Node& node, const std::string& data_key,
                                       const std::string& file_key, const std::string& dir) {
  if (node[data_key]) {
    std::string decoded;
    std::string raw = node[data_key].as<std::string>();
    if (!absl::Base64Unescape(raw, &decoded)) {
      return absl::InvalidArgumentError(fmt::format("{} is not base64", data_key));
    }
    return decoded;
  }
  if (node[file_key]) {
    std::filesystem::path p = node[file_key].as<std::string>();
    if (p.is_relative()) p = std::filesystem::path(dir) / p;
    return ReadFile(p.string());
  }
  return std::string();
}

const YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* field) {
  if (list && list.IsSequence()) {
    for (const YAML::Node& item : list) {
      if (item["name"] && item["name"].as<std::string>() == name) return item[field];
    }
  }
  return YAML::Node();
}

}  // namespace

absl::StatusOr<KubeconfigTarget> LoadKubeconfig(const std::string& path) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    std::string dir = std::filesystem::path(path).parent_path().string();
    std::string context_name =
        root["current-context"] ? root["current-context"].as<std::string>() : "";
    YAML::Node context = FindNamed(root["contexts"], context_name, "context");
    std::string cluster_name, user_name;
    if (context) {
      cluster_name = context["cluster"].as<std::string>("");
      user_name = context["user"].as<std::string>("");
    }
    YAML::Node cluster = cluster_name.empty() && root["clusters"] && root["clusters"].size() > 0
                             ? root["clusters"][0]["cluster"]
                             : FindNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster) return absl::InvalidArgumentError(fmt::format("{}: no cluster", path));
    YAML::Node user = user_name.empty() && root["users"] && root["users"].size() > 0
                          ? root["users"][0]["user"]
                          : FindNamed(root["users"], user_name, "user");

    KubeconfigTarget t;
    std::string server = cluster["server"].as<std::string>("");
    constexpr std::string_view kScheme = "https://";
    if (server.rfind(kScheme, 0) != 0) {
      return absl::InvalidArgumentError(fmt::format("{}: server must be https://", path));
    }
    std::string hostport = server.substr(kScheme.size());
    hostport = hostport.substr(0, hostport.find('/'));
    size_t colon = hostport.rfind(':');
    if (!hostport.empty() && hostport[0] == '[') {
      size_t close = hostport.find(']');
      t.host = hostport.substr(1, close - 1);
      if (close + 1 < hostport.size() && hostport[close + 1] == ':') {
        t.port = std::stoi(hostport.substr(close + 2));
      }
    } else if (colon != std::string::npos) {
      t.host = hostport.substr(0, colon);
      t.port = std::stoi(hostport.substr(colon + 1));
    } else {
      t.host = hostport;
    }
    auto ca = DataOrFile(cluster, "certificate-authority-data", "certificate-authority", dir);
    if (!ca.ok()) return ca.status();
    t.ca_pem = *ca;
    t.insecure = cluster["insecure-skip-tls-verify"].as<bool>(false);
    if (user) {
      auto cert = DataOrFile(user, "client-certificate-data", "client-certificate", dir);
      if (!cert.ok()) return cert.status();
      auto key = DataOrFile(user, "client-key-data", "client-key", dir);
      if (!key.ok()) return key.status();
      t.client_cert_pem = *cert;
      t.client_key_pem = *key;
      t.token = user["token"].as<std::string>("");
      if (t.token.empty() && user["tokenFile"]) {
        std::filesystem::path file = user["tokenFile"].as<std::string>();
        if (file.is_relative()) file = std::filesystem::path(dir) / file;
        t.token_file = file.string();
        if (!ReadFile(t.token_file).ok()) {
          return absl::NotFoundError(
              fmt::format("{}: cannot read tokenFile {}", path, t.token_file));
        }
      }
    }
    return t;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
  }
}

absl::StatusOr<KubeconfigTarget> InClusterConfig(const std::string& account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  std::string token_file = account_dir + "/token";
  if (host == nullptr || port == nullptr || !std::filesystem::exists(token_file)) {
    return absl::NotFoundError("not running in a pod (no KUBERNETES_SERVICE_HOST or token)");
  }
  KubeconfigTarget t;
  t.host = host;
  t.port = std::atoi(port);
  t.token_file = token_file;
  auto ca = ReadFile(account_dir + "/ca.crt");
  if (ca.ok()) t.ca_pem = *ca;
  return t;
}

KubeClient::KubeClient(KubeconfigTarget target, int timeout_seconds)
    : target_(std::move(target)), timeout_seconds_(timeout_seconds) {}

KubeClient::~KubeClient() = default;

absl::StatusOr<std::string> KubeClient::Send(const std::string& method, const std::string& path,
                                             const std::string& json) const {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  if (!target_.client_cert_pem.empty() && !target_.client_key_pem.empty()) {
    BIO* b = BIO_new_mem_buf(target_.client_cert_pem.data(),
                             static_cast<int>(target_.client_cert_pem.size()));
    cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(target_.client_key_pem.data(),
                        static_cast<int>(target_.client_key_pem.size()));
    key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
  }
  httplib::SSLClient client(target_.host, target_.port, cert, key);
  if (cert != nullptr) X509_free(cert);
  if (key != nullptr) EVP_PKEY_free(key);

  X509_STORE* store = nullptr;
  if (!target_.ca_pem.empty()) {
    store = X509_STORE_new();
    BIO* b = BIO_new_mem_buf(target_.ca_pem.data(), static_cast<int>(target_.ca_pem.size()));
    while (X509* ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      X509_free(ca);
    }
    BIO_free(b);
    client.set_ca_cert_store(store);  // The client takes ownership.
  }
  client.enable_server_certificate_verification(!target_.insecure);
  client.set_connection_timeout(timeout_seconds_, 0);
  client.set_read_timeout(timeout_seconds_, 0);
  client.set_write_timeout(timeout_seconds_, 0);
  std::string token = target_.token;
  if (!target_.token_file.empty()) {
    absl::StatusOr<std::string> read = ReadFile(target_.token_file);
    if (read.ok()) {
      token = *read;
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    }
  }
  if (!token.empty()) client.set_bearer_token_auth(token);
  httplib::Headers headers = {{"Accept", "application/json"}, {"User-Agent", "kole-apiserver"}};
  httplib::Result res = method == "POST"
                            ? client.Post(path.c_str(), headers, json, "application/json")
                            : client.Get(path.c_str(), headers);
  if (!res) {
    return absl::UnavailableError(fmt::format("{} {}:{}{}: {}", method, target_.host, target_.port,
                                              path, httplib::to_string(res.error())));
  }
  if (res->status == 404) {
    return absl::NotFoundError(fmt::format("{} {}: HTTP 404", method, path));
  }
  if (res->status < 200 || res->status > 299) {
    return absl::UnavailableError(
        fmt::format("{} {}: HTTP {}: {}", method, path, res->status, res->body.substr(0, 256)));
  }
  return res->body;
}

absl::StatusOr<std::string> KubeClient::Post(const std::string& path,
                                             const std::string& json) const {
  return Send("POST", path, json);
}

absl::StatusOr<std::string> KubeClient::Get(const std::string& path) const {
  return Send("GET", path, "");
}

}  // namespace kole::apiserver
