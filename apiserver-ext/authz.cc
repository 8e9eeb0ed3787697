#include "apiserver-ext/authz.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/kube_client.h"

namespace kole::apiserver {

WebhookAuthorizer::WebhookAuthorizer(SarPostFn post, Options options)
    : post_(std::move(post)), options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return absl::Now(); };
}

std::unique_ptr<WebhookAuthorizer> WebhookAuthorizer::ForClient(std::shared_ptr<KubeClient> client,
                                                                Options options) {
  return std::make_unique<WebhookAuthorizer>(
      [client](const std::string& body) {
        return client->Post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body);
      },
      std::move(options));
}

std::string WebhookAuthorizer::ReviewJson(const UserInfo& user, const RequestInfo& info) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "apiVersion", "authorization.k8s.io/v1");
  Field(w, "kind", "SubjectAccessReview");
  Key(w, "spec");
  w.StartObject();
  Field(w, "user", user.name);
  if (!user.uid.empty()) Field(w, "uid", user.uid);
  Key(w, "groups");
  w.StartArray();
  for (const std::string& g : user.groups) String(w, g);
  w.EndArray();
  if (!user.extra.empty()) {
    Key(w, "extra");
    w.StartObject();
    for (const auto& [k, values] : user.extra) {
      Key(w, k);
      w.StartArray();
      for (const std::string& v : values) String(w, v);
      w.EndArray();
    }
    w.EndObject();
  }
  if (info.is_resource_request) {
    Key(w, "resourceAttributes");
    w.StartObject();
    Field(w, "namespace", info.namespace_);
    Field(w, "verb", info.verb);
    Field(w, "group", info.api_group);
    Field(w, "version", info.api_version);
    Field(w, "resource", info.resource);
    Field(w, "subresource", info.subresource);
    Field(w, "name", info.name);
    w.EndObject();
  } else {
    Key(w, "nonResourceAttributes");
    w.StartObject();
    Field(w, "path", info.path);
    Field(w, "verb", info.verb);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  return out;
}

absl::StatusOr<Decision> WebhookAuthorizer::Authorize(const UserInfo& user,
                                                      const RequestInfo& info) {
  std::string body = ReviewJson(user, info);
  absl::Time now = options_.now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(body);
    if (it != cache_.end() && it->second.expires > now) return it->second.decision;
  }
  absl::StatusOr<std::string> reply = post_(body);
  if (!reply.ok()) return reply.status();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(reply->data(), reply->size());
  const rapidjson::Value* status = doc.HasParseError() ? nullptr : Member(doc, "status");
  if (status == nullptr) return absl::UnavailableError("SubjectAccessReview reply has no status");
  Decision d;
  const rapidjson::Value* allowed = Member(*status, "allowed");
  d.allowed = allowed != nullptr && allowed->IsBool() && allowed->GetBool();
  if (const rapidjson::Value* r = Member(*status, "reason"); r && r->IsString())
    d.reason = AsView(*r);
  absl::MutexLock lock(&mu_);
  if (cache_.size() > 100000) cache_.clear();
  cache_[body] = {d, now + (d.allowed ? options_.allow_ttl : options_.deny_ttl)};
  return d;
}

std::string ForbiddenMessage(const UserInfo& user, const RequestInfo& info,
                             const std::string& reason) {
  std::string message;
  if (!info.is_resource_request) {
    message = fmt::format("forbidden: User \"{}\" cannot {} path \"{}\"", user.name, info.verb,
                          info.path);
  } else {
    std::string resource = info.resource;
    if (!info.subresource.empty()) resource += "/" + info.subresource;
    std::string object = fmt::format("{}.{}", info.resource, info.api_group);
    if (!info.name.empty()) object += fmt::format(" \"{}\"", info.name);
    std::string scope = info.namespace_.empty()
                            ? "at the cluster scope"
                            : fmt::format("in the namespace \"{}\"", info.namespace_);
    message = fmt::format(
        "{} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group "
        "\"{}\" {}",
        object, user.name, info.verb, resource, info.api_group, scope);
  }
  if (!reason.empty()) message += ": " + reason;
  return message;
}

}  // namespace kole::apiserver
