#include "apiserver-ext/openapi.h"

#include <string_view>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/discovery.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/resources.h"

namespace kole::apiserver {
namespace {

constexpr std::string_view kSchemas =
#include "apiserver-ext/openapi_schemas.inc"
    ;

std::string SchemasWithPrefix(std::string_view prefix) {
  std::string out;
  out.reserve(kSchemas.size() * 2);
  for (char c : kSchemas) {
    if (c == '@') {
      out += prefix;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct Doc {
  bool v3;
  std::string_view ref_prefix() const { return v3 ? "#/components/schemas/" : "#/definitions/"; }
};

void Ref(JsonWriter& w, const Doc& d, std::string_view name) {
  w.StartObject();
  Field(w, "$ref", std::string(d.ref_prefix()) + std::string(name));
  w.EndObject();
}

void Gvk(JsonWriter& w, std::string_view kind) {
  Key(w, "x-kubernetes-group-version-kind");
  w.StartObject();
  Field(w, "group", kGroup);
  Field(w, "kind", kind);
  Field(w, "version", kVersion);
  w.EndObject();
}

void QueryParam(JsonWriter& w, const Doc& d, std::string_view name, std::string_view type,
                std::string_view description) {
  w.StartObject();
  Field(w, "name", name);
  Field(w, "in", "query");
  Field(w, "description", description);
  if (d.v3) {
    Key(w, "schema");
    w.StartObject();
    Field(w, "type", type);
    w.EndObject();
  } else {
    Field(w, "type", type);
  }
  w.EndObject();
}

void PathParam(JsonWriter& w, const Doc& d, std::string_view name) {
  w.StartObject();
  Field(w, "name", name);
  Field(w, "in", "path");
  Key(w, "required");
  w.Bool(true);
  Field(w, "description", "name of the object");
  if (d.v3) {
    Key(w, "schema");
    w.StartObject();
    Field(w, "type", "string");
    w.EndObject();
  } else {
    Field(w, "type", "string");
  }
  w.EndObject();
}

void WriteParams(JsonWriter& w, const Doc& d, std::string_view action) {
  QueryParam(w, d, "pretty", "string", "If 'true', the output is indented.");
  if (action == "post" || action == "put" || action == "patch" || action == "delete" ||
      action == "deletecollection") {
    QueryParam(w, d, "dryRun", "string",
               "When present ('All'), the change is validated but not persisted.");
  }
  if (action == "post" || action == "put" || action == "patch") {
    QueryParam(w, d, "fieldManager", "string", "A name for the actor making the change.");
    QueryParam(w, d, "fieldValidation", "string",
               "Ignore, Warn or Strict: how to treat unknown fields in the body.");
  }
  if (action == "patch") {
    QueryParam(w, d, "force", "boolean", "Force an apply; apply patches are not supported.");
  }
  if (action == "list" || action == "deletecollection") {
    QueryParam(w, d, "labelSelector", "string", "Only objects whose labels match.");
    QueryParam(w, d, "fieldSelector", "string", "Only objects whose fields match.");
    QueryParam(w, d, "limit", "integer", "At most this many objects; continue with ?continue=.");
    QueryParam(w, d, "continue", "string", "The token of the previous page.");
    QueryParam(w, d, "resourceVersion", "string", "The version to list at or watch from.");
    QueryParam(w, d, "resourceVersionMatch", "string", "Exact or NotOlderThan.");
    QueryParam(w, d, "timeoutSeconds", "integer", "End a watch after this many seconds.");
    QueryParam(w, d, "watch", "boolean", "Stream changes instead of listing.");
    QueryParam(w, d, "allowWatchBookmarks", "boolean", "Send BOOKMARK events.");
    QueryParam(w, d, "sendInitialEvents", "boolean", "Start a watch with the current objects.");
  }
}

void Body(JsonWriter& w, const Doc& d, const std::vector<std::string_view>& types,
          std::string_view schema) {
  if (d.v3) {
    Key(w, "requestBody");
    w.StartObject();
    Key(w, "required");
    w.Bool(true);
    Key(w, "content");
    w.StartObject();
    for (std::string_view t : types) {
      Key(w, t);
      w.StartObject();
      Key(w, "schema");
      Ref(w, d, schema);
      w.EndObject();
    }
    w.EndObject();
    w.EndObject();
  }
}

void Operation(JsonWriter& w, const Doc& d, std::string_view method, std::string_view action,
               std::string_view id, std::string_view kind, std::string_view response_schema,
               bool has_name, bool namespaced) {
  Key(w, method);
  w.StartObject();
  Field(w, "operationId", id);
  Field(w, "description", std::string(action) + " " + std::string(kind));
  Key(w, "tags");
  w.StartArray();
  String(w, "edgeKoleIo_v1alpha1");
  w.EndArray();
  Key(w, "parameters");
  w.StartArray();
  if (namespaced) PathParam(w, d, "namespace");
  if (has_name) PathParam(w, d, "name");
  WriteParams(w, d, action);
  if (!d.v3 && (action == "post" || action == "put" || action == "patch")) {
    w.StartObject();
    Field(w, "name", "body");
    Field(w, "in", "body");
    Key(w, "required");
    w.Bool(true);
    Key(w, "schema");
    Ref(w, d,
        action == "patch" ? "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
                          : "io.kole.edge.v1alpha1." + std::string(kind));
    w.EndObject();
  }
  w.EndArray();
  if (action == "patch") {
    if (!d.v3) {
      Key(w, "consumes");
      w.StartArray();
      String(w, "application/json-patch+json");
      String(w, "application/merge-patch+json");
      w.EndArray();
    }
    Body(w, d, {"application/json-patch+json", "application/merge-patch+json"},
         "io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
  } else if (action == "post" || action == "put") {
    Body(w, d, {"application/json"}, "io.kole.edge.v1alpha1." + std::string(kind));
  }
  if (!d.v3) {
    Key(w, "produces");
    w.StartArray();
    String(w, "application/json");
    w.EndArray();
  }
  Key(w, "responses");
  w.StartObject();
  for (std::string_view code : {"200", "201"}) {
    if (code == "201" && action != "post") continue;
    Key(w, code);
    w.StartObject();
    Field(w, "description", code == "200" ? "OK" : "Created");
    if (d.v3) {
      Key(w, "content");
      w.StartObject();
      Key(w, "application/json");
      w.StartObject();
      Key(w, "schema");
      Ref(w, d, response_schema);
      w.EndObject();
      w.EndObject();
    } else {
      Key(w, "schema");
      Ref(w, d, response_schema);
    }
    w.EndObject();
  }
  w.EndObject();
  Field(w, "x-kubernetes-action", action);
  Gvk(w, kind);
  w.EndObject();
}

std::string Document(const Doc& d) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  if (d.v3) {
    Field(w, "openapi", "3.0.0");
  } else {
    Field(w, "swagger", "2.0");
  }
  Key(w, "info");
  w.StartObject();
  Field(w, "title", "KOLE");
  Field(w, "version", "v1alpha1");
  w.EndObject();
  Key(w, "paths");
  w.StartObject();
  for (const ResourceDescriptor& r : ServedResources()) {
    std::string kind(r.kind);
    std::string object = "io.kole.edge.v1alpha1." + kind;
    std::string list = object + "List";
    std::string status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    std::string base = "/apis/edge.kole.io/v1alpha1/";
    if (r.namespaced) base += "namespaces/{namespace}/";
    base += std::string(r.name);

    bool ns = r.namespaced;
    if (ns) {
      // Lists across namespaces.
      Key(w, "/apis/edge.kole.io/v1alpha1/" + std::string(r.name));
      w.StartObject();
      Operation(w, d, "get", "list", "list" + kind + "ForAllNamespaces", kind, list, false, false);
      w.EndObject();
    }

    Key(w, base);
    w.StartObject();
    Operation(w, d, "get", "list", "list" + kind, kind, list, false, ns);
    Operation(w, d, "post", "post", "create" + kind, kind, object, false, ns);
    Operation(w, d, "delete", "deletecollection", "deleteCollection" + kind, kind, status, false,
              ns);
    w.EndObject();

    Key(w, base + "/{name}");
    w.StartObject();
    Operation(w, d, "get", "get", "read" + kind, kind, object, true, ns);
    Operation(w, d, "put", "put", "replace" + kind, kind, object, true, ns);
    Operation(w, d, "patch", "patch", "patch" + kind, kind, object, true, ns);
    Operation(w, d, "delete", "delete", "delete" + kind, kind, status, true, ns);
    w.EndObject();

    Key(w, base + "/{name}/status");
    w.StartObject();
    Operation(w, d, "get", "get", "read" + kind + "Status", kind, object, true, ns);
    Operation(w, d, "put", "put", "replace" + kind + "Status", kind, object, true, ns);
    Operation(w, d, "patch", "patch", "patch" + kind + "Status", kind, object, true, ns);
    w.EndObject();
  }
  w.EndObject();
  // The schemas are prepared text; splice them in after the paths.
  std::string schemas = SchemasWithPrefix(d.ref_prefix());
  if (d.v3) {
    out += R"(,"components":{"schemas":)" + schemas + "}}";
  } else {
    out += R"(,"definitions":)" + schemas + "}";
  }
  return out;
}

}  // namespace

OpenApi::OpenApi() {
  v3_ = Document({true});
  v2_ = Document({false});
  v3_hash_ = Sha512Hex(v3_);
  v2_etag_ = "\"" + Sha512Hex(v2_) + "\"";
  v3_root_ =
      R"({"paths":{"apis/edge.kole.io/v1alpha1":{"serverRelativeURL":"/openapi/v3/apis/edge.kole.io/v1alpha1?hash=)" +
      v3_hash_ + "\"}}}";
}

HttpResponse OpenApi::V2(const HttpRequest& request) const {
  // kubectl asks for protobuf only and fails on a JSON body; the aggregator
  // asks for JSON. Answer JSON only to those who accept it.
  std::string_view accept = request.Header("Accept");
  bool json = false;
  for (const MediaRange& m : ParseAccept(accept)) {
    if ((m.type == "application" && m.subtype == "json") || (m.type == "*" && m.subtype == "*") ||
        (m.type == "application" && m.subtype == "*")) {
      json = true;
      break;
    }
  }
  if (accept.empty()) json = true;
  if (!json) return ErrorResponse(NotAcceptable());
  HttpResponse r;
  r.headers.emplace("ETag", v2_etag_);
  r.headers.emplace("Vary", "Accept");
  if (request.Header("If-None-Match") == v2_etag_) {
    r.status = 304;
    return r;
  }
  r.body = v2_;
  return r;
}

HttpResponse OpenApi::V3Root(const HttpRequest& request) const {
  HttpResponse r;
  r.body = v3_root_;
  return r;
}

HttpResponse OpenApi::V3GroupVersion(const HttpRequest& request) const {
  if (!AcceptsPlainJson(request.Header("Accept"))) return ErrorResponse(NotAcceptable());
  HttpResponse r;
  std::optional<std::string_view> hash = request.Query("hash");
  if (hash && *hash != v3_hash_) {
    r.status = 301;
    r.headers.emplace("Location", "/openapi/v3/apis/edge.kole.io/v1alpha1?hash=" + v3_hash_);
    return r;
  }
  std::string etag = "\"" + v3_hash_ + "\"";
  r.headers.emplace("ETag", etag);
  r.headers.emplace("Vary", "Accept");
  if (hash) {
    r.headers.emplace("Cache-Control", "public, immutable");
  } else {
    r.headers.emplace("Cache-Control", "no-cache, private");
  }
  if (request.Header("If-None-Match") == etag) {
    r.status = 304;
    return r;
  }
  r.body = v3_;
  return r;
}

}  // namespace kole::apiserver
