#include "apiserver-ext/discovery.h"

#include <openssl/evp.h>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/resources.h"

namespace kole::apiserver {
namespace {

constexpr std::string_view kV2Type =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
constexpr std::string_view kV2Beta1Type =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

void Strings(JsonWriter& w, std::string_view key, const std::vector<std::string_view>& values) {
  Key(w, key);
  w.StartArray();
  for (std::string_view v : values) String(w, v);
  w.EndArray();
}

void VersionRef(JsonWriter& w) {
  w.StartObject();
  Field(w, "groupVersion", kGroupVersion);
  Field(w, "version", kVersion);
  w.EndObject();
}

std::string GroupJson(bool with_kind) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  if (with_kind) {
    Field(w, "kind", "APIGroup");
    Field(w, "apiVersion", "v1");
  }
  Field(w, "name", kGroup);
  Key(w, "versions");
  w.StartArray();
  VersionRef(w);
  w.EndArray();
  Key(w, "preferredVersion");
  VersionRef(w);
  w.EndObject();
  return out;
}

std::string StorageVersionHash(std::string_view kind) {
  std::string input = std::string(kGroupVersion) + "/" + std::string(kind);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr);
  unsigned char encoded[16];
  int n = EVP_EncodeBlock(encoded, digest, 8);
  return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(n));
}

std::string ResourceListJson() {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "APIResourceList");
  Field(w, "apiVersion", "v1");
  Field(w, "groupVersion", kGroupVersion);
  Key(w, "resources");
  w.StartArray();
  for (const ResourceDescriptor& r : ServedResources()) {
    w.StartObject();
    Field(w, "name", r.name);
    Field(w, "singularName", r.singular);
    Key(w, "namespaced");
    w.Bool(r.namespaced);
    Field(w, "kind", r.kind);
    Strings(w, "verbs", r.verbs);
    Strings(w, "shortNames", r.short_names);
    Strings(w, "categories", {"kole"});
    Field(w, "storageVersionHash", StorageVersionHash(r.kind));
    w.EndObject();

    w.StartObject();
    Field(w, "name", std::string(r.name) + "/status");
    Field(w, "singularName", "");
    Key(w, "namespaced");
    w.Bool(r.namespaced);
    Field(w, "kind", r.kind);
    Strings(w, "verbs", r.status_verbs);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

void ResponseKind(JsonWriter& w, std::string_view kind) {
  Key(w, "responseKind");
  w.StartObject();
  Field(w, "group", kGroup);
  Field(w, "version", kVersion);
  Field(w, "kind", kind);
  w.EndObject();
}

std::string AggregatedJson(std::string_view api_version, bool with_group) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "APIGroupDiscoveryList");
  Field(w, "apiVersion", api_version);
  Key(w, "metadata");
  w.StartObject();
  w.EndObject();
  Key(w, "items");
  w.StartArray();
  if (with_group) {
    w.StartObject();
    Key(w, "metadata");
    w.StartObject();
    Field(w, "name", kGroup);
    w.EndObject();
    Key(w, "versions");
    w.StartArray();
    w.StartObject();
    Field(w, "version", kVersion);
    Field(w, "freshness", "Current");
    Key(w, "resources");
    w.StartArray();
    for (const ResourceDescriptor& r : ServedResources()) {
      w.StartObject();
      Field(w, "resource", r.name);
      Field(w, "singularResource", r.singular);
      Field(w, "scope", r.namespaced ? "Namespaced" : "Cluster");
      ResponseKind(w, r.kind);
      Strings(w, "verbs", r.verbs);
      Strings(w, "shortNames", r.short_names);
      Strings(w, "categories", {"kole"});
      Key(w, "subresources");
      w.StartArray();
      w.StartObject();
      Field(w, "subresource", "status");
      ResponseKind(w, r.kind);
      Strings(w, "verbs", r.status_verbs);
      w.EndObject();
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

HttpResponse Json(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

}  // namespace

std::string Sha512Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha512(), nullptr);
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

Discovery::Discovery() {
  group_ = GroupJson(true);
  group_list_ = R"({"kind":"APIGroupList","apiVersion":"v1","groups":[)" + GroupJson(false) + "]}";
  resource_list_ = ResourceListJson();
  aggregated_v2_ = AggregatedJson("apidiscovery.k8s.io/v2", true);
  aggregated_v2beta1_ = AggregatedJson("apidiscovery.k8s.io/v2beta1", true);
  empty_v2_ = AggregatedJson("apidiscovery.k8s.io/v2", false);
  empty_v2beta1_ = AggregatedJson("apidiscovery.k8s.io/v2beta1", false);
  etag_v2_ = "\"" + Sha512Hex(aggregated_v2_) + "\"";
  etag_v2beta1_ = "\"" + Sha512Hex(aggregated_v2beta1_) + "\"";
  etag_empty_v2_ = "\"" + Sha512Hex(empty_v2_) + "\"";
  etag_empty_v2beta1_ = "\"" + Sha512Hex(empty_v2beta1_) + "\"";
}

HttpResponse Discovery::Aggregated(const HttpRequest& request, const std::string& v2,
                                   const std::string& v2beta1, const std::string& etag_v2,
                                   const std::string& etag_v2beta1, bool v2_wanted) const {
  const std::string& etag = v2_wanted ? etag_v2 : etag_v2beta1;
  HttpResponse r;
  r.headers.emplace("ETag", etag);
  r.headers.emplace("Vary", "Accept");
  r.headers.emplace("Cache-Control", "public");
  r.content_type = std::string(v2_wanted ? kV2Type : kV2Beta1Type);
  if (request.Header("If-None-Match") == etag) {
    r.status = 304;
    return r;
  }
  r.body = v2_wanted ? v2 : v2beta1;
  return r;
}

HttpResponse Discovery::Api(const HttpRequest& request) const {
  std::optional<DiscoveryFormat> format = NegotiateDiscovery(request.Header("Accept"));
  if (!format) return ErrorResponse(NotAcceptable());
  if (*format == DiscoveryFormat::kLegacy) {
    // No core group here: an empty version list keeps kubectl from asking
    // for an /api/v1 that would have no resources (kubectl-wire.md §3).
    return Json(R"({"kind":"APIVersions","versions":[],"serverAddressByClientCIDRs":[]})");
  }
  return Aggregated(request, empty_v2_, empty_v2beta1_, etag_empty_v2_, etag_empty_v2beta1_,
                    *format == DiscoveryFormat::kAggregatedV2);
}

HttpResponse Discovery::Apis(const HttpRequest& request) const {
  std::optional<DiscoveryFormat> format = NegotiateDiscovery(request.Header("Accept"));
  if (!format) return ErrorResponse(NotAcceptable());
  if (*format == DiscoveryFormat::kLegacy) return Json(group_list_);
  return Aggregated(request, aggregated_v2_, aggregated_v2beta1_, etag_v2_, etag_v2beta1_,
                    *format == DiscoveryFormat::kAggregatedV2);
}

HttpResponse Discovery::Group() const { return Json(group_); }

HttpResponse Discovery::GroupVersion() const { return Json(resource_list_); }

}  // namespace kole::apiserver
