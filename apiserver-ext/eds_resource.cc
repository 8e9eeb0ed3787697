#include "apiserver-ext/eds_resource.h"

#include <absl/strings/escaping.h>
#include <absl/time/clock.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <memory>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/body_writer.h"
#include "apiserver-ext/eds_json.h"
#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/list_options.h"
#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/node_json.h"
#include "apiserver-ext/resource_common.h"
#include "apiserver-ext/server_side_apply.h"
#include "common/log.h"
#include "storage/node_store.h"

namespace kole::apiserver {
namespace {

using rapidjson::Document;
using rapidjson::Value;
using storage::StoredObject;

constexpr size_t kWatchBatch = 256;
constexpr absl::Duration kWatchPoll = absl::Seconds(1);
constexpr int kPatchAttempts = 5;

ErrorSubject Subject(std::string_view name) {
  return {"edgedaemonsets", "EdgeDaemonSet", std::string(name)};
}

Value* MutableMember(Value& v, const char* name) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(name);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

Value& EnsureObject(Document& doc, Value& parent, const char* name) {
  Value* v = MutableMember(parent, name);
  if (v == nullptr) {
    parent.AddMember(Value(name, doc.GetAllocator()), Value(rapidjson::kObjectType),
                     doc.GetAllocator());
    v = MutableMember(parent, name);
  } else if (!v->IsObject()) {
    v->SetObject();
  }
  return *v;
}

void SetString(Document& doc, Value& object, const char* name, std::string_view value) {
  object.RemoveMember(name);
  object.AddMember(
      Value(name, doc.GetAllocator()),
      Value(value.data(), static_cast<rapidjson::SizeType>(value.size()), doc.GetAllocator()),
      doc.GetAllocator());
}

std::string StringAt(const Value& object, const char* section, const char* field) {
  const Value* s = Member(object, section);
  const Value* v = s ? Member(*s, field) : nullptr;
  return v && v->IsString() ? std::string(AsView(*v)) : std::string();
}

// The name the write is recorded under in managedFields: ?fieldManager=, or
// the program name of the User-Agent, as kube-apiserver does.
std::string FieldManager(const HttpRequest& request) {
  if (auto m = request.Query("fieldManager"); m && !m->empty()) return std::string(*m);
  std::string_view agent = request.Header("User-Agent");
  agent = agent.substr(0, agent.find('/'));
  return agent.empty() ? "unknown" : std::string(agent);
}

// YAML (what apply patches may be) to JSON; JSON is YAML, so a body that
// parses as JSON takes the fast path. `budget` is how many more values may
// be produced: yaml-cpp shares an anchored node among its aliases, so a few
// hundred bytes of nested aliases ("billion laughs") would otherwise expand
// to billions of values and exhaust the memory.
bool YamlToJson(const YAML::Node& node, Document& doc, Value& out, int depth, size_t* budget) {
  if (depth > kMaxJsonDepth || *budget == 0) return false;
  --*budget;
  auto& a = doc.GetAllocator();
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out.SetNull();
      return true;
    case YAML::NodeType::Sequence:
      out.SetArray();
      for (const YAML::Node& item : node) {
        Value v;
        if (!YamlToJson(item, doc, v, depth + 1, budget)) return false;
        out.PushBack(v, a);
      }
      return true;
    case YAML::NodeType::Map:
      out.SetObject();
      for (const auto& kv : node) {
        Value v;
        if (!YamlToJson(kv.second, doc, v, depth + 1, budget)) return false;
        std::string key = kv.first.as<std::string>();
        out.AddMember(Value(key.c_str(), a), v, a);
      }
      return true;
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "!") {  // Plain scalars carry YAML's types.
        if (s == "null" || s == "~" || s.empty()) {
          out.SetNull();
          return true;
        }
        if (s == "true" || s == "false") {
          out.SetBool(s == "true");
          return true;
        }
        Document number;
        number.Parse(s.c_str());
        if (!number.HasParseError() && number.IsNumber()) {
          out.CopyFrom(number, a);
          return true;
        }
      }
      out.SetString(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
      return true;
    }
  }
  return false;
}

absl::Status ParseApplyBody(const std::string& body, Document& doc) {
  if (ParseJson(body, doc).ok()) return absl::OkStatus();
  try {
    YAML::Node node = YAML::Load(body);
    doc.SetObject();
    // Without aliases a document has fewer values than bytes; aliases may
    // repeat what they name, but the result stays linear in the body.
    size_t budget = 4 * body.size() + 1024;
    if (!YamlToJson(node, doc, doc, 0, &budget))
      return absl::InvalidArgumentError("the YAML nests too deep or its aliases expand too far");
    return absl::OkStatus();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        fmt::format("the apply patch is not YAML or JSON: {}", e.what()));
  }
}

void Render(const StoredObject& stored, const Value& object, const Negotiated& n,
            IncludeObject include, int64_t now, bool columns, std::string& out) {
  switch (n.representation) {
    case Representation::kTable:
      AppendEdsTableStart(n.table_version, columns, out);
      AppendEdsTableRow(object, stored.resource_version, now, include, out);
      AppendTableEnd(stored.resource_version, "", out);
      return;
    case Representation::kPartialObjectMetadata:
    case Representation::kPartialObjectMetadataList:
      AppendEdsMetadataJson(object, stored.resource_version, out);
      return;
    case Representation::kObject:
      out += RenderEds(stored);
      return;
  }
}

HttpResponse ObjectResponse(const HttpRequest& request, int status, const StoredObject& stored) {
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), false, false);
  if (!n) n = Negotiated{};
  ListQuery q;
  ApiError ignored;
  ParseListQuery(request, &q, &ignored);
  Document doc;
  doc.Parse(stored.json.data(), stored.json.size());
  std::string body;
  Render(stored, doc, *n, q.include_object, WallNow(), true, body);
  HttpResponse r = JsonResponse(status, std::move(body));
  MaybeGzip(request, r);
  return r;
}

bool CheckFields(const ListQuery& q, ApiError* error) {
  absl::Status s = q.field_selector.CheckSupported({"metadata.name", "metadata.namespace"});
  if (!s.ok()) {
    *error = BadRequest(std::string(s.message()));
    return false;
  }
  return true;
}

bool Selected(const StoredObject& o, const Value& object, const ListQuery& q) {
  if (!q.field_selector.Empty() &&
      !q.field_selector.Matches([&](std::string_view f) -> std::optional<std::string_view> {
        if (f == "metadata.name") return o.name;
        if (f == "metadata.namespace") return o.namespace_;
        return std::nullopt;
      })) {
    return false;
  }
  if (q.label_selector.Empty()) return true;
  const Value* meta = Member(object, "metadata");
  const Value* labels = meta ? Member(*meta, "labels") : nullptr;
  return q.label_selector.Matches([&](std::string_view key) -> std::optional<std::string_view> {
    if (labels == nullptr || !labels->IsObject()) return std::nullopt;
    const Value* v = Member(*labels, key);
    if (v == nullptr || !v->IsString()) return std::nullopt;
    return AsView(*v);
  });
}

void AppendBookmark(const Negotiated& n, uint64_t rv, bool initial_end, std::string& out) {
  out += EventJsonStart("BOOKMARK");
  std::string meta =
      fmt::format(R"("metadata":{{"resourceVersion":"{}"{}}})", rv,
                  initial_end ? R"(,"annotations":{"k8s.io/initial-events-end":"true"})" : "");
  switch (n.representation) {
    case Representation::kTable:
      out += fmt::format(
          R"({{"kind":"Table","apiVersion":"meta.k8s.io/{}",{},"columnDefinitions":[],"rows":[]}})",
          n.table_version, meta);
      break;
    case Representation::kPartialObjectMetadata:
    case Representation::kPartialObjectMetadataList:
      out += fmt::format(R"({{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",{}}})",
                         meta);
      break;
    case Representation::kObject:
      out +=
          fmt::format(R"({{"kind":"EdgeDaemonSet","apiVersion":"{}",{}}})", kEdgeApiVersion, meta);
      break;
  }
  out += "}\n";
}

// How a write reaches the store.
struct WriteRequest {
  std::optional<StoredObject> current;  // Null for a create.
  uint64_t expected_rv = 0;
  bool status = false;
  bool dry_run = false;
  std::string manager;
  // Set by server-side apply: the managedFields it computed.
  std::optional<std::string> applied_managed_fields;
};

HttpResponse Commit(storage::ObjectStore* store, const HttpRequest& request,
                    const RequestInfo& info, Document& next, const WriteRequest& w,
                    const HttpResponse& warnings) {
  auto& a = next.GetAllocator();
  Document current;
  if (w.current) current.Parse(w.current->json.data(), w.current->json.size());
  if (!next.IsObject()) return ErrorResponse(BadRequest("the object must be a JSON object"));
  SetString(next, next, "kind", kEdsKind);
  SetString(next, next, "apiVersion", kEdgeApiVersion);
  Value& meta = EnsureObject(next, next, "metadata");
  std::string name = StringAt(next, "metadata", "name");
  if (name.empty() && !w.current) {
    std::string generate = StringAt(next, "metadata", "generateName");
    if (!generate.empty()) name = generate + GenerateNameSuffix();
  }
  SetString(next, meta, "name", name);
  SetString(next, meta, "namespace", info.namespace_);
  meta.RemoveMember("resourceVersion");
  meta.RemoveMember("selfLink");
  meta.RemoveMember("deletionTimestamp");

  if (w.status) {
    // Only status changes: everything else comes from the stored object.
    Value status(rapidjson::kObjectType);
    if (Value* s = MutableMember(next, "status"); s != nullptr && s->IsObject())
      status.CopyFrom(*s, a);
    next.CopyFrom(current, a);
    next.RemoveMember("status");
    next.AddMember("status", status, a);
  } else if (w.current) {
    for (const char* field : {"uid", "creationTimestamp", "generation", "generateName"}) {
      MutableMember(next, "metadata")->RemoveMember(field);
      if (const Value* v = Member(*Member(current, "metadata"), field)) {
        MutableMember(next, "metadata")->AddMember(Value(field, a), Value(*v, a), a);
      }
    }
    next.RemoveMember("status");
    if (const Value* s = Member(current, "status")) next.AddMember("status", Value(*s, a), a);
    // The stored spec is defaulted: compare it with the defaulted new one, so
    // that a replace with the manifest as first written is no spec change.
    DefaultEds(next);
    const Value* old_spec = Member(current, "spec");
    const Value* new_spec = Member(next, "spec");
    bool spec_changed = old_spec == nullptr || new_spec == nullptr || *old_spec != *new_spec;
    Value* gen = MutableMember(*MutableMember(next, "metadata"), "generation");
    if (gen != nullptr && spec_changed) gen->SetInt64((gen->IsInt64() ? gen->GetInt64() : 0) + 1);
  } else {
    Value& m = *MutableMember(next, "metadata");
    SetString(next, m, "uid", storage::Uid::Random().ToString());
    SetString(next, m, "creationTimestamp", FormatTimestamp(WallNow()));
    m.RemoveMember("generation");
    m.AddMember("generation", 1, a);
    next.RemoveMember("status");
  }
  DefaultEds(next);
  if (!w.status) {
    std::vector<StatusCause> causes = ValidateEds(next);
    if (!causes.empty()) return ErrorResponse(Invalid(Subject(name), std::move(causes)));
  }

  // managedFields: what an apply computed, else this write recorded as an
  // Update by its manager.
  std::string managed;
  Value* m = MutableMember(next, "metadata");
  if (w.applied_managed_fields) {
    managed = *w.applied_managed_fields;
  } else if (!w.status) {
    std::string before_managed;
    if (w.current) {
      if (const Value* mf = Member(*Member(current, "metadata"), "managedFields")) {
        before_managed = JsonToString(*mf);
      }
      MutableMember(current, "metadata")->RemoveMember("managedFields");
    }
    m->RemoveMember("managedFields");
    managed = RecordUpdate(w.current ? &current : nullptr, next, before_managed, w.manager,
                           kEdgeApiVersion, WallNow());
  } else if (const Value* mf = Member(*Member(current, "metadata"), "managedFields")) {
    managed = JsonToString(*mf);
  }
  m->RemoveMember("managedFields");
  if (!managed.empty() && managed != "[]") {
    Document mf;
    mf.Parse(managed.data(), managed.size());
    if (!mf.HasParseError()) m->AddMember("managedFields", Value(mf, a), a);
  }

  StoredObject object{info.namespace_, name, 0, JsonToString(next)};
  absl::StatusOr<StoredObject> written;
  if (w.dry_run) {
    if (!w.current && store->Get(info.namespace_, name).ok()) {
      return ErrorResponse(FromStatus(absl::AlreadyExistsError(""), Subject(name)));
    }
    object.resource_version = w.current ? w.current->resource_version : 0;
    written = object;
  } else if (w.current) {
    written = store->Update(std::move(object), w.expected_rv);
  } else {
    written = store->Create(std::move(object));
  }
  if (!written.ok()) return ErrorResponse(FromStatus(written.status(), Subject(name)));
  if (!w.current && !w.dry_run) {
    KOLE_VLOG(2, "EdgeDaemonSet created", "edgedaemonset", info.namespace_ + "/" + name);
  }
  HttpResponse r = ObjectResponse(request, w.current ? 200 : 201, *written);
  CopyWarnings(warnings, r);
  return r;
}

}  // namespace

EdgeDaemonSetsResource::EdgeDaemonSetsResource(storage::ObjectStore* store,
                                               const std::atomic<bool>* stopping,
                                               WatchSettings watch)
    : store_(store), stopping_(stopping), watch_(watch) {}

HttpResponse EdgeDaemonSetsResource::Handle(const HttpRequest& request, const RequestInfo& info) {
  if (info.extra_segments || (!info.subresource.empty() && info.subresource != "status")) {
    return ErrorResponse(NotFound({}));
  }
  bool status = info.subresource == "status";
  const std::string& verb = info.verb;
  if (info.namespace_.empty() && verb != "list" && verb != "watch") {
    return ErrorResponse(NotFound({}));
  }
  if (verb == "get") return Get(request, info);
  if (status && verb != "update" && verb != "patch") {
    return ErrorResponse(MethodNotAllowed(verb, "edgedaemonsets/status"));
  }
  if (verb == "list") return List(request, info);
  if (verb == "watch") return Watch(request, info);
  if (verb == "create") {
    if (!info.name.empty()) return ErrorResponse(MethodNotAllowed("create", "edgedaemonsets"));
    return Create(request, info);
  }
  if (verb == "update") return Update(request, info, status);
  if (verb == "patch") return Patch(request, info, status);
  if (verb == "delete") return Delete(request, info);
  if (verb == "deletecollection") return DeleteCollection(request, info);
  return ErrorResponse(MethodNotAllowed(verb, "edgedaemonsets"));
}

HttpResponse EdgeDaemonSetsResource::Get(const HttpRequest& request, const RequestInfo& info) {
  if (!NegotiateResource(request.Header("Accept"), false, false)) {
    return ErrorResponse(NotAcceptable());
  }
  absl::StatusOr<StoredObject> o = store_->Get(info.namespace_, info.name);
  if (!o.ok()) return ErrorResponse(FromStatus(o.status(), Subject(info.name)));
  return ObjectResponse(request, 200, *o);
}

HttpResponse EdgeDaemonSetsResource::List(const HttpRequest& request, const RequestInfo& info) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (q.watch) return Watch(request, info);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), true, false);
  if (!n) return ErrorResponse(NotAcceptable());
  uint64_t current = store_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }

  // Continue tokens name the last key; EdgeDaemonSets are few, so pages are
  // served from the current state.
  std::string after;
  if (!q.continue_token.empty()) {
    std::string raw;
    if (!absl::WebSafeBase64Unescape(q.continue_token, &raw)) {
      return ErrorResponse(BadRequest("the continue token is malformed"));
    }
    after = raw;
  }
  bool more = false;
  uint64_t rv = 0;
  std::vector<StoredObject> items = store_->List(info.namespace_, after, 0, &more, &rv);
  int64_t now = WallNow();
  std::string body;
  if (n->representation == Representation::kTable) {
    AppendEdsTableStart(n->table_version, true, body);
  } else if (n->representation == Representation::kPartialObjectMetadataList) {
    AppendListStart("PartialObjectMetadataList", "meta.k8s.io/v1", body);
  } else {
    AppendListStart("EdgeDaemonSetList", kEdgeApiVersion, body);
  }
  size_t served = 0;
  std::string last;
  bool first = true;
  for (const StoredObject& o : items) {
    Document doc;
    doc.Parse(o.json.data(), o.json.size());
    if (!Selected(o, doc, q)) continue;
    if (q.limit != 0 && served == q.limit) {
      more = true;
      break;
    }
    more = false;
    if (!first) body += ',';
    first = false;
    if (n->representation == Representation::kTable) {
      AppendEdsTableRow(doc, o.resource_version, now, q.include_object, body);
    } else if (n->representation == Representation::kPartialObjectMetadataList) {
      AppendEdsMetadataJson(doc, o.resource_version, body);
    } else {
      body += RenderEds(o);
    }
    ++served;
    last = o.namespace_ + "/" + o.name;
  }
  AppendListEnd(rv, more ? absl::WebSafeBase64Escape(last) : "", body);
  HttpResponse r = JsonResponse(200, std::move(body));
  MaybeGzip(request, r);
  return r;
}

HttpResponse EdgeDaemonSetsResource::Watch(const HttpRequest& request, const RequestInfo& info) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), true, true);
  if (!n) return ErrorResponse(NotAcceptable());
  bool initial = q.send_initial_events.has_value()
                     ? *q.send_initial_events
                     : !q.has_resource_version || q.resource_version == 0;
  bool initial_end = q.send_initial_events.value_or(false);
  uint64_t current = store_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }
  std::shared_ptr<storage::ObjectWatcher> watcher;
  std::string expired;
  if (!initial) {
    auto w = store_->Watch(q.has_resource_version ? q.resource_version : 0, info.namespace_);
    if (!w.ok()) {
      if (!storage::IsExpired(w.status()))
        return ErrorResponse(FromStatus(w.status(), Subject("")));
      expired = std::string(w.status().message());
    } else {
      watcher = std::move(*w);
    }
  }
  int64_t timeout = q.timeout_seconds > 0 ? q.timeout_seconds : watch_.default_timeout_seconds;
  HttpResponse r;
  r.long_running = true;
  storage::ObjectStore* store = store_;
  const std::atomic<bool>* stopping = stopping_;
  const Negotiated neg = *n;
  const int64_t bookmark_interval = watch_.bookmark_interval_seconds;
  std::string ns = info.namespace_;
  r.stream = [=](ChunkSink& sink) mutable {
    BodyWriter writer(&sink, false);
    bool columns = true;
    auto event = [&](std::string_view type, const StoredObject& o) {
      Document doc;
      doc.Parse(o.json.data(), o.json.size());
      if (!Selected(o, doc, q)) return;
      writer.buffer() += EventJsonStart(type);
      Render(o, doc, neg, q.include_object, WallNow(), columns, writer.buffer());
      columns = false;
      writer.buffer() += "}\n";
    };
    auto error_event = [&](const std::string& message) {
      writer.buffer() += EventJsonStart("ERROR");
      writer.buffer() += StatusJson(Expired(message));
      writer.buffer() += "}\n";
      return writer.Flush();
    };
    if (!expired.empty()) return error_event(expired);
    if (initial) {
      bool more = false;
      uint64_t rv = 0;
      for (const StoredObject& o : store->List(ns, "", 0, &more, &rv)) event("ADDED", o);
      if (initial_end) AppendBookmark(neg, rv, true, writer.buffer());
      if (!writer.Flush()) return false;
      auto w = store->Watch(rv, ns);
      if (!w.ok()) {
        if (storage::IsExpired(w.status())) return error_event(std::string(w.status().message()));
        return false;
      }
      watcher = std::move(*w);
    }
    absl::Time end = absl::Now() + absl::Seconds(timeout);
    absl::Time last_bookmark = absl::Now();
    while (!stopping->load(std::memory_order_relaxed) && sink.Alive()) {
      auto events = watcher->Next(kWatchBatch, std::min(absl::Now() + kWatchPoll, end));
      if (!events.ok()) {
        if (storage::IsExpired(events.status())) {
          return error_event(std::string(events.status().message()));
        }
        return true;
      }
      for (const storage::ObjectEvent& e : *events) {
        event(storage::EventTypeName(e.type), e.object);
        writer.MaybeFlush();
      }
      absl::Time now = absl::Now();
      if (now >= end) {
        if (q.allow_bookmarks) AppendBookmark(neg, watcher->cursor(), false, writer.buffer());
        return writer.Flush();
      }
      if (q.allow_bookmarks && now - last_bookmark >= absl::Seconds(bookmark_interval)) {
        AppendBookmark(neg, watcher->cursor(), false, writer.buffer());
        last_bookmark = now;
      }
      if (!writer.Flush()) return false;
    }
    return true;
  };
  return r;
}

HttpResponse EdgeDaemonSetsResource::Create(const HttpRequest& request, const RequestInfo& info) {
  WriteRequest w;
  FieldValidation validation;
  ApiError error;
  if (!ParseDryRun(request, &w.dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  Document doc;
  absl::Status parsed = ParseJson(request.body, doc);
  if (!parsed.ok()) return ErrorResponse(BadRequest(std::string(parsed.message())));
  std::vector<std::string> unknown;
  if (!CheckEdsBody(doc, &error, &unknown)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(unknown, validation, &warnings, &error)) return ErrorResponse(error);
  std::string ns = StringAt(doc, "metadata", "namespace");
  if (!ns.empty() && ns != info.namespace_) {
    return ErrorResponse(BadRequest(fmt::format(
        "the namespace of the object ({}) does not match the namespace on the request ({})", ns,
        info.namespace_)));
  }
  if (!StringAt(doc, "metadata", "resourceVersion").empty()) {
    return ErrorResponse(BadRequest("resourceVersion should not be set on objects to be created"));
  }
  w.manager = FieldManager(request);
  return Commit(store_, request, info, doc, w, warnings);
}

HttpResponse EdgeDaemonSetsResource::Update(const HttpRequest& request, const RequestInfo& info,
                                            bool status) {
  WriteRequest w;
  w.status = status;
  FieldValidation validation;
  ApiError error;
  if (!ParseDryRun(request, &w.dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  Document doc;
  absl::Status parsed = ParseJson(request.body, doc);
  if (!parsed.ok()) return ErrorResponse(BadRequest(std::string(parsed.message())));
  std::vector<std::string> unknown;
  if (!CheckEdsBody(doc, &error, &unknown)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(unknown, validation, &warnings, &error)) return ErrorResponse(error);
  std::string name = StringAt(doc, "metadata", "name");
  std::string ns = StringAt(doc, "metadata", "namespace");
  if ((!name.empty() && name != info.name) || (!ns.empty() && ns != info.namespace_)) {
    return ErrorResponse(BadRequest("the name or namespace of the object does not match the URL"));
  }
  if (name.empty()) SetString(doc, EnsureObject(doc, doc, "metadata"), "name", info.name);
  absl::StatusOr<StoredObject> current = store_->Get(info.namespace_, info.name);
  if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
  std::string rv = StringAt(doc, "metadata", "resourceVersion");
  if (!rv.empty()) {
    if (rv != std::to_string(current->resource_version)) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(info.name)));
    }
    w.expected_rv = current->resource_version;
  }
  w.current = *current;
  w.manager = FieldManager(request);
  return Commit(store_, request, info, doc, w, warnings);
}

HttpResponse EdgeDaemonSetsResource::Patch(const HttpRequest& request, const RequestInfo& info,
                                           bool status) {
  PatchType type;
  ApiError error;
  if (!ParsePatchType(request.Header("Content-Type"), "edgedaemonsets", &type, &error, true)) {
    return ErrorResponse(error);
  }
  WriteRequest w;
  w.status = status;
  FieldValidation validation;
  if (!ParseDryRun(request, &w.dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  Document patch;
  absl::Status parsed = type == PatchType::kApply ? ParseApplyBody(request.body, patch)
                                                  : ParseJson(request.body, patch);
  if (!parsed.ok()) return ErrorResponse(BadRequest(std::string(parsed.message())));
  w.manager = FieldManager(request);

  if (type == PatchType::kApply) {
    std::vector<std::string> unknown;
    if (!CheckEdsBody(patch, &error, &unknown)) return ErrorResponse(error);
    HttpResponse warnings;
    if (!CheckUnknownFields(unknown, validation, &warnings, &error)) return ErrorResponse(error);
    if (request.Query("fieldManager").value_or("").empty()) {
      return ErrorResponse(Invalid(
          Subject(info.name),
          {{"FieldValueRequired", "Required value: is required for apply patch", "fieldManager"}}));
    }
    std::string name = StringAt(patch, "metadata", "name");
    if (name != info.name) {
      return ErrorResponse(BadRequest("the name of the object does not match the URL"));
    }
    bool force = request.Query("force").value_or("") == "true";
    for (int attempt = 1;; ++attempt) {
      absl::StatusOr<StoredObject> current = store_->Get(info.namespace_, info.name);
      if (!current.ok() && !absl::IsNotFound(current.status())) {
        return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
      }
      Document live;
      std::string managed;
      if (current.ok()) {
        live.Parse(current->json.data(), current->json.size());
        if (const Value* mf = Member(live["metadata"], "managedFields")) {
          managed = JsonToString(*mf);
        }
        live["metadata"].RemoveMember("managedFields");
        w.current = *current;
        w.expected_rv = current->resource_version;
      } else {
        w.current.reset();
      }
      absl::StatusOr<ApplyOutcome> outcome =
          ServerSideApply(current.ok() ? &live : nullptr, managed, patch, w.manager, force,
                          kEdgeApiVersion, WallNow());
      if (!outcome.ok()) {
        return ErrorResponse(
            Invalid(Subject(info.name),
                    {{"FieldValueInvalid", std::string(outcome.status().message()), ""}}));
      }
      if (!outcome->conflicts.empty()) {
        std::vector<StatusCause> causes;
        for (const ApplyConflict& c : outcome->conflicts) {
          causes.push_back({"FieldManagerConflict", ApplyConflictCauseMessage(c), c.field});
        }
        ApiError conflict = Conflict(Subject(info.name), ApplyConflictMessage(outcome->conflicts));
        conflict.causes = std::move(causes);
        return ErrorResponse(conflict);
      }
      w.applied_managed_fields = outcome->managed_fields_json;
      if (current.ok() && !outcome->changed) return ObjectResponse(request, 200, *current);
      HttpResponse r = Commit(store_, request, info, outcome->object, w, warnings);
      if (r.status == 409 && attempt < kPatchAttempts && current.ok()) continue;
      return r;
    }
  }

  bool merge = type == PatchType::kMerge;
  if (merge != patch.IsObject()) {
    return ErrorResponse(BadRequest(merge ? "a merge patch must be a JSON object"
                                          : "a JSON patch must be an array"));
  }
  bool explicit_rv = merge && !StringAt(patch, "metadata", "resourceVersion").empty();
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<StoredObject> current = store_->Get(info.namespace_, info.name);
    if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
    Document doc;
    absl::Status loaded = ParseJson(RenderEds(*current), doc);
    if (!loaded.ok()) return ErrorResponse(InternalError("reading a stored EdgeDaemonSet"));
    if (merge) {
      ApplyMergePatch(doc, patch, doc.GetAllocator());
    } else {
      absl::Status applied = ApplyJsonPatch(doc, patch);
      if (!applied.ok()) {
        return ErrorResponse(Invalid(Subject(info.name),
                                     {{"FieldValueInvalid", std::string(applied.message()), ""}}));
      }
    }
    std::vector<std::string> unknown;
    if (!CheckEdsBody(doc, &error, &unknown)) return ErrorResponse(error);
    HttpResponse warnings;
    if (!CheckUnknownFields(unknown, validation, &warnings, &error)) return ErrorResponse(error);
    if (StringAt(doc, "metadata", "name") != info.name ||
        StringAt(doc, "metadata", "namespace") != info.namespace_) {
      return ErrorResponse(Invalid(Subject(info.name),
                                   {{"FieldValueInvalid", "field is immutable", "metadata.name"}}));
    }
    // A patch that removes metadata.resourceVersion asks for no precondition.
    std::string patched_rv = StringAt(doc, "metadata", "resourceVersion");
    if (!patched_rv.empty() && patched_rv != std::to_string(current->resource_version)) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(info.name)));
    }
    w.current = *current;
    w.expected_rv = current->resource_version;
    HttpResponse r = Commit(store_, request, info, doc, w, warnings);
    if (r.status == 409 && !explicit_rv && attempt < kPatchAttempts) continue;
    return r;
  }
}

HttpResponse EdgeDaemonSetsResource::Delete(const HttpRequest& request, const RequestInfo& info) {
  DeleteOptions options;
  ApiError error;
  if (!ParseDeleteOptions(request, &options, &error)) return ErrorResponse(error);
  absl::StatusOr<StoredObject> current = store_->Get(info.namespace_, info.name);
  if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
  Document doc;
  doc.Parse(current->json.data(), current->json.size());
  std::string uid = StringAt(doc, "metadata", "uid");
  if (!options.precondition_uid.empty() && options.precondition_uid != uid) {
    return ErrorResponse(Conflict(
        Subject(info.name), fmt::format("Precondition failed: UID in precondition: {}, UID in "
                                        "object meta: {}",
                                        options.precondition_uid, uid)));
  }
  uint64_t expected_rv = 0;
  if (!options.precondition_resource_version.empty()) {
    if (options.precondition_resource_version != std::to_string(current->resource_version)) {
      return ErrorResponse(Conflict(
          Subject(info.name),
          fmt::format("Precondition failed: ResourceVersion in precondition: {}, ResourceVersion "
                      "in object meta: {}",
                      options.precondition_resource_version, current->resource_version)));
    }
    expected_rv = current->resource_version;
  }
  if (!options.dry_run) {
    absl::StatusOr<StoredObject> deleted = store_->Delete(info.namespace_, info.name, expected_rv);
    if (!deleted.ok()) return ErrorResponse(FromStatus(deleted.status(), Subject(info.name)));
    KOLE_VLOG(2, "EdgeDaemonSet deleted", "edgedaemonset", info.namespace_ + "/" + info.name);
  }
  return JsonResponse(200, SuccessStatusJson(Subject(info.name), uid));
}

HttpResponse EdgeDaemonSetsResource::DeleteCollection(const HttpRequest& request,
                                                      const RequestInfo& info) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  DeleteOptions options;
  if (!ParseDeleteOptions(request, &options, &error)) return ErrorResponse(error);
  bool more = false;
  uint64_t rv = 0;
  std::string body;
  AppendListStart("EdgeDaemonSetList", kEdgeApiVersion, body);
  bool first = true;
  for (StoredObject& o : store_->List(info.namespace_, "", 0, &more, &rv)) {
    Document doc;
    doc.Parse(o.json.data(), o.json.size());
    if (!Selected(o, doc, q)) continue;
    if (!options.dry_run) {
      absl::StatusOr<StoredObject> deleted = store_->Delete(o.namespace_, o.name, 0);
      if (!deleted.ok()) {
        if (absl::IsNotFound(deleted.status())) continue;
        return ErrorResponse(FromStatus(deleted.status(), Subject(o.name)));
      }
      o = std::move(*deleted);
    }
    if (!first) body += ',';
    first = false;
    body += RenderEds(o);
  }
  AppendListEnd(store_->resource_version(), "", body);
  return JsonResponse(200, std::move(body));
}

}  // namespace kole::apiserver
