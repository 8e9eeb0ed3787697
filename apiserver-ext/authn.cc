#include "apiserver-ext/authn.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/kube_client.h"
#include "common/log.h"

namespace kole::apiserver {
namespace {

constexpr std::string_view kAuthenticated = "system:authenticated";

std::string TokenKey(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(token.data(), token.size(), digest, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), n);
}

void AddAuthenticatedGroup(UserInfo& user) {
  if (std::find(user.groups.begin(), user.groups.end(), kAuthenticated) == user.groups.end()) {
    user.groups.emplace_back(kAuthenticated);
  }
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// Extra keys arrive percent-escaped and header-canonicalised; upstream
// lower-cases and unescapes them.
std::string ExtraKey(std::string_view raw) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size() &&
        std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(raw[i]))));
    }
  }
  return out;
}

bool SameNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && StartsWithNoCase(a, b);
}

void RemoveFrontProxyHeaders(HttpRequest& request, const RequestHeaderConfig& config) {
  for (auto it = request.headers.begin(); it != request.headers.end();) {
    bool drop = false;
    for (const std::string& h : config.username_headers) drop = drop || SameNoCase(it->first, h);
    for (const std::string& h : config.group_headers) drop = drop || SameNoCase(it->first, h);
    for (const std::string& p : config.extra_prefixes)
      drop = drop || StartsWithNoCase(it->first, p);
    it = drop ? request.headers.erase(it) : std::next(it);
  }
}

std::vector<std::string> JsonStringArray(const std::string& text) {
  std::vector<std::string> out;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsArray()) return out;
  for (const rapidjson::Value& v : doc.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

}  // namespace

Authenticator::Authenticator(Options options) : options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return absl::Now(); };
  request_header_ = options_.request_header;
  client_ca_ = options_.client_ca;
}

void Authenticator::SetClientCa(std::shared_ptr<CertificateAuthority> ca) {
  absl::MutexLock lock(&config_mu_);
  client_ca_ = std::move(ca);
}

void Authenticator::SetRequestHeader(RequestHeaderConfig config) {
  absl::MutexLock lock(&config_mu_);
  request_header_ = std::move(config);
}

AuthnOutcome Authenticator::Authenticate(HttpRequest& request,
                                         const std::vector<std::string>& peer_chain) {
  RequestHeaderConfig rh;
  std::shared_ptr<CertificateAuthority> client_ca;
  {
    absl::MutexLock lock(&config_mu_);
    rh = request_header_;
    client_ca = client_ca_;
  }
  bool presented = !peer_chain.empty();

  // 1. Front proxy.
  if (presented && rh.ca != nullptr) {
    absl::StatusOr<CertIdentity> id = rh.ca->Verify(peer_chain);
    bool allowed = id.ok() && (rh.allowed_names.empty() ||
                               std::find(rh.allowed_names.begin(), rh.allowed_names.end(),
                                         id->common_name) != rh.allowed_names.end());
    if (id.ok() && !allowed) {
      KOLE_LOG_EVERY_N(
          Warning, 100, "Front-proxy certificate not in the allowed names", "err",
          fmt::format("x509: subject with cn={} is not in the allowed list", id->common_name));
    }
    if (allowed) {
      UserInfo user;
      for (const std::string& h : rh.username_headers) {
        std::string_view v = request.Header(h);
        if (!v.empty()) {
          user.name = std::string(v);
          break;
        }
      }
      if (!user.name.empty()) {
        for (const std::string& h : rh.group_headers) {
          auto range = request.headers.equal_range(h);
          for (auto it = range.first; it != range.second; ++it) user.groups.push_back(it->second);
        }
        for (const auto& [key, value] : request.headers) {
          for (const std::string& p : rh.extra_prefixes) {
            if (key.size() > p.size() && StartsWithNoCase(key, p)) {
              std::string k = ExtraKey(std::string_view(key).substr(p.size()));
              auto it = std::find_if(user.extra.begin(), user.extra.end(),
                                     [&](const auto& e) { return e.first == k; });
              if (it == user.extra.end()) {
                user.extra.push_back({k, {value}});
              } else {
                it->second.push_back(value);
              }
            }
          }
        }
        RemoveFrontProxyHeaders(request, rh);
        AddAuthenticatedGroup(user);
        request.user = std::move(user);
        return AuthnOutcome::kAuthenticated;
      }
    }
  }
  // Headers from anyone else carry no weight.
  RemoveFrontProxyHeaders(request, rh);

  // 2. Client certificate.
  if (presented && client_ca != nullptr) {
    absl::StatusOr<CertIdentity> id = client_ca->Verify(peer_chain);
    if (id.ok() && !id->common_name.empty()) {
      UserInfo user;
      user.name = id->common_name;
      user.groups = id->organizations;
      AddAuthenticatedGroup(user);
      request.user = std::move(user);
      return AuthnOutcome::kAuthenticated;
    }
  }

  // 3. Bearer token.
  std::string_view authorization = request.Header("Authorization");
  if (StartsWithNoCase(authorization, "Bearer ")) {
    std::string token(authorization.substr(7));
    while (!token.empty() && token.front() == ' ') token.erase(token.begin());
    if (token.empty() || !options_.token_review) return AuthnOutcome::kRejected;
    std::string key = TokenKey(token);
    absl::Time now = options_.now();
    std::optional<absl::StatusOr<UserInfo>> cached;
    {
      absl::MutexLock lock(&cache_mu_);
      auto it = token_cache_.find(key);
      if (it != token_cache_.end() && it->second.expires > now) cached = it->second.user;
    }
    if (!cached) {
      absl::StatusOr<UserInfo> reviewed = options_.token_review(token);
      // Review failures are not cached: the next request tries again.
      if (!reviewed.ok() && !absl::IsUnauthenticated(reviewed.status())) {
        KOLE_LOG_EVERY_N(Error, 100, "Token review failed", "err", reviewed.status());
        return AuthnOutcome::kError;
      }
      absl::MutexLock lock(&cache_mu_);
      if (token_cache_.size() > 100000) token_cache_.clear();
      token_cache_[key] = {reviewed, now + options_.token_cache_ttl};
      cached = reviewed;
    }
    if (!cached->ok()) return AuthnOutcome::kRejected;
    request.user = **cached;
    AddAuthenticatedGroup(request.user);
    request.headers.erase("Authorization");
    return AuthnOutcome::kAuthenticated;
  }

  // A certificate that no CA accepted is a failed login, as upstream.
  if (presented && (rh.ca != nullptr || client_ca != nullptr)) {
    return AuthnOutcome::kRejected;
  }
  request.user = UserInfo{"system:anonymous", "", {"system:unauthenticated"}, {}};
  return AuthnOutcome::kAnonymous;
}

TokenReviewFn TokenReviewWebhook(std::shared_ptr<KubeClient> client) {
  return [client](const std::string& token) -> absl::StatusOr<UserInfo> {
    std::string body =
        R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":)";
    AppendJsonString(token, body);
    body += "}}";
    absl::StatusOr<std::string> reply =
        client->Post("/apis/authentication.k8s.io/v1/tokenreviews", body);
    if (!reply.ok()) return reply.status();
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(reply->data(), reply->size());
    if (doc.HasParseError()) return absl::UnavailableError("TokenReview reply is not JSON");
    const rapidjson::Value* status = Member(doc, "status");
    if (status == nullptr) return absl::UnavailableError("TokenReview reply has no status");
    const rapidjson::Value* ok = Member(*status, "authenticated");
    if (ok == nullptr || !ok->IsBool() || !ok->GetBool()) {
      return absl::UnauthenticatedError("token not authenticated");
    }
    UserInfo user;
    if (const rapidjson::Value* u = Member(*status, "user")) {
      if (const rapidjson::Value* n = Member(*u, "username"); n && n->IsString())
        user.name = AsView(*n);
      if (const rapidjson::Value* id = Member(*u, "uid"); id && id->IsString())
        user.uid = AsView(*id);
      if (const rapidjson::Value* g = Member(*u, "groups"); g && g->IsArray()) {
        for (const rapidjson::Value& v : g->GetArray()) {
          if (v.IsString()) user.groups.emplace_back(AsView(v));
        }
      }
      if (const rapidjson::Value* e = Member(*u, "extra"); e && e->IsObject()) {
        for (auto m = e->MemberBegin(); m != e->MemberEnd(); ++m) {
          std::vector<std::string> values;
          if (m->value.IsArray()) {
            for (const rapidjson::Value& v : m->value.GetArray()) {
              if (v.IsString()) values.emplace_back(AsView(v));
            }
          }
          user.extra.push_back({std::string(AsView(m->name)), std::move(values)});
        }
      }
    }
    if (user.name.empty()) return absl::UnauthenticatedError("TokenReview gave no user name");
    return user;
  };
}

absl::StatusOr<RequestHeaderConfig> LoadAuthenticationConfigMap(const KubeClient& client,
                                                                std::string* client_ca_pem) {
  absl::StatusOr<std::string> reply =
      client.Get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication");
  if (!reply.ok()) return reply.status();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(reply->data(), reply->size());
  const rapidjson::Value* data = doc.HasParseError() ? nullptr : Member(doc, "data");
  if (data == nullptr) return absl::UnavailableError("the ConfigMap has no data");
  auto get = [&](std::string_view key) -> std::string {
    const rapidjson::Value* v = Member(*data, key);
    return v != nullptr && v->IsString() ? std::string(AsView(*v)) : std::string();
  };
  RequestHeaderConfig config;
  *client_ca_pem = get("client-ca-file");
  std::string rh_ca = get("requestheader-client-ca-file");
  if (!rh_ca.empty()) {
    absl::StatusOr<std::shared_ptr<CertificateAuthority>> ca = CertificateAuthority::FromPem(rh_ca);
    if (!ca.ok()) return ca.status();
    config.ca = *ca;
  }
  config.allowed_names = JsonStringArray(get("requestheader-allowed-names"));
  std::vector<std::string> users = JsonStringArray(get("requestheader-username-headers"));
  std::vector<std::string> groups = JsonStringArray(get("requestheader-group-headers"));
  std::vector<std::string> extras = JsonStringArray(get("requestheader-extra-headers-prefix"));
  if (!users.empty()) config.username_headers = users;
  if (!groups.empty()) config.group_headers = groups;
  if (!extras.empty()) config.extra_prefixes = extras;
  return config;
}

}  // namespace kole::apiserver
