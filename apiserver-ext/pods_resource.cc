#include "apiserver-ext/pods_resource.h"

#include <absl/time/clock.h>
#include <fmt/format.h>

#include <memory>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/body_writer.h"
#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/list_options.h"
#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/node_json.h"
#include "apiserver-ext/pod_json.h"
#include "apiserver-ext/resource_common.h"
#include "common/log.h"

namespace kole::apiserver {
namespace {

using storage::Pod;

constexpr size_t kWatchBatch = 512;
constexpr absl::Duration kWatchPoll = absl::Seconds(1);
constexpr int kPatchAttempts = 5;

ErrorSubject Subject(std::string_view name) { return {"pods", "Pod", std::string(name)}; }

void Render(const Pod& pod, const Negotiated& n, IncludeObject include, int64_t now, bool columns,
            std::string& out) {
  switch (n.representation) {
    case Representation::kTable:
      AppendPodTableStart(n.table_version, columns, out);
      AppendPodTableRow(pod, now, include, out);
      AppendTableEnd(pod.resource_version, "", out);
      return;
    case Representation::kPartialObjectMetadata:
    case Representation::kPartialObjectMetadataList:
      AppendPodMetadataJson(pod, out);
      return;
    case Representation::kObject:
      AppendPodJson(pod, out);
      return;
  }
}

HttpResponse ObjectResponse(const HttpRequest& request, int status, const Pod& pod) {
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), false, false);
  if (!n) n = Negotiated{};
  ListQuery q;
  ApiError ignored;
  ParseListQuery(request, &q, &ignored);
  std::string body;
  Render(pod, *n, q.include_object, WallNow(), true, body);
  HttpResponse r = JsonResponse(status, std::move(body));
  MaybeGzip(request, r);
  return r;
}

bool CheckFields(const ListQuery& q, ApiError* error) {
  absl::Status s = q.field_selector.CheckSupported(
      {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"});
  if (!s.ok()) {
    *error = BadRequest(std::string(s.message()));
    return false;
  }
  return true;
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
      out += fmt::format(R"({{"kind":"Pod","apiVersion":"{}",{}}})", kEdgeApiVersion, meta);
      break;
  }
  out += "}\n";
}

}  // namespace

PodsResource::PodsResource(storage::PodStore* store, const std::atomic<bool>* stopping,
                           WatchSettings watch, NamespaceTerminatingFn namespace_terminating)
    : store_(store),
      source_(store),
      stopping_(stopping),
      watch_(watch),
      namespace_terminating_(std::move(namespace_terminating)) {}

namespace {

ApiError DerivedPodIsReadOnly(std::string_view name) {
  return Invalid(Subject(name),
                 {{"FieldValueForbidden",
                   "Forbidden: pods of EdgeDaemonSets are derived from their EdgeDaemonSet: "
                   "change the EdgeDaemonSet, or delete the pod to restart it",
                   "metadata.ownerReferences"}});
}

}  // namespace

HttpResponse PodsResource::Handle(const HttpRequest& request, const RequestInfo& info) {
  if (info.extra_segments || (!info.subresource.empty() && info.subresource != "status")) {
    return ErrorResponse(NotFound({}));
  }
  bool status = info.subresource == "status";
  const std::string& verb = info.verb;
  // Only lists and watches span namespaces.
  if (info.namespace_.empty() && verb != "list" && verb != "watch") {
    return ErrorResponse(NotFound({}));
  }
  if (verb == "get") return Get(request, info);
  if (status && verb != "update" && verb != "patch") {
    return ErrorResponse(MethodNotAllowed(verb, "pods/status"));
  }
  if (verb == "list") return List(request, info);
  if (verb == "watch") return Watch(request, info);
  if (verb == "create") {
    if (!info.name.empty()) return ErrorResponse(MethodNotAllowed("create", "pods"));
    return Create(request, info);
  }
  if (verb == "update") return Update(request, info, status);
  if (verb == "patch") return Patch(request, info, status);
  if (verb == "delete") return Delete(request, info);
  if (verb == "deletecollection") return DeleteCollection(request, info);
  return ErrorResponse(MethodNotAllowed(verb, "pods"));
}

HttpResponse PodsResource::Get(const HttpRequest& request, const RequestInfo& info) {
  if (!NegotiateResource(request.Header("Accept"), false, false)) {
    return ErrorResponse(NotAcceptable());
  }
  absl::StatusOr<Pod> pod = source_->Get(info.namespace_, info.name);
  if (!pod.ok()) return ErrorResponse(FromStatus(pod.status(), Subject(info.name)));
  return ObjectResponse(request, 200, *pod);
}

HttpResponse PodsResource::List(const HttpRequest& request, const RequestInfo& info) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (q.watch) return Watch(request, info);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), true, false);
  if (!n) return ErrorResponse(NotAcceptable());

  storage::PodListOptions options;
  options.namespace_ = info.namespace_;
  options.label_selector = q.label_selector;
  options.field_selector = q.field_selector;
  options.limit = q.limit;
  options.continue_token = q.continue_token;
  uint64_t current = source_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }
  if (q.has_resource_version && q.resource_version != 0 &&
      (q.resource_version_match == "Exact" || (q.resource_version_match.empty() && q.limit > 0))) {
    options.resource_version = q.resource_version;
  }
  int64_t now = WallNow();
  std::string body;
  if (n->representation == Representation::kTable) {
    AppendPodTableStart(n->table_version, true, body);
  } else if (n->representation == Representation::kPartialObjectMetadataList) {
    AppendListStart("PartialObjectMetadataList", "meta.k8s.io/v1", body);
  } else {
    AppendListStart("PodList", kEdgeApiVersion, body);
  }
  bool first = true;
  storage::PodListResult result;
  // Standalone pods are few: the page is built whole (see pod_store.h).
  absl::Status listed = source_->ListEach(
      options,
      [&](const Pod& pod) {
        if (!first) body += ',';
        first = false;
        if (n->representation == Representation::kTable) {
          AppendPodTableRow(pod, now, q.include_object, body);
        } else if (n->representation == Representation::kPartialObjectMetadataList) {
          AppendPodMetadataJson(pod, body);
        } else {
          AppendPodJson(pod, body);
        }
      },
      &result);
  if (!listed.ok()) {
    if (absl::IsInvalidArgument(listed))
      return ErrorResponse(BadRequest(std::string(listed.message())));
    return ErrorResponse(FromStatus(listed, Subject("")));
  }
  AppendListEnd(result.resource_version, result.continue_token, body);
  HttpResponse r = JsonResponse(200, std::move(body));
  MaybeGzip(request, r);
  return r;
}

HttpResponse PodsResource::Watch(const HttpRequest& request, const RequestInfo& info) {
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
  uint64_t current = source_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }
  std::shared_ptr<storage::PodWatcher> watcher;
  std::string expired;
  if (!initial) {
    uint64_t from = q.has_resource_version ? q.resource_version : 0;
    auto w = source_->Watch(from, info.namespace_, q.label_selector, q.field_selector);
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
  const storage::PodSource* store = source_;
  const std::atomic<bool>* stopping = stopping_;
  const Negotiated neg = *n;
  const IncludeObject include = q.include_object;
  const bool bookmarks = q.allow_bookmarks;
  const int64_t bookmark_interval = watch_.bookmark_interval_seconds;
  std::string ns = info.namespace_;
  storage::LabelSelector labels = q.label_selector;
  storage::FieldSelector fields = q.field_selector;
  r.stream = [=](ChunkSink& sink) mutable {
    BodyWriter writer(&sink, false);
    bool columns = true;
    auto event = [&](std::string_view type, const Pod& pod) {
      writer.buffer() += EventJsonStart(type);
      Render(pod, neg, include, WallNow(), columns, writer.buffer());
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
      storage::PodListOptions options;
      options.namespace_ = ns;
      options.label_selector = labels;
      options.field_selector = fields;
      storage::PodListResult result;
      absl::Status listed = store->ListEach(
          options, [&](const Pod& pod) { event("ADDED", pod); }, &result);
      if (!listed.ok()) return false;
      if (initial_end) AppendBookmark(neg, result.resource_version, true, writer.buffer());
      if (!writer.Flush()) return false;
      auto w = store->Watch(result.resource_version, ns, labels, fields);
      if (!w.ok()) {
        if (storage::IsExpired(w.status())) return error_event(std::string(w.status().message()));
        return false;
      }
      watcher = std::move(*w);
    }
    absl::Time end = absl::Now() + absl::Seconds(timeout);
    absl::Time last_bookmark = absl::Now();
    while (!stopping->load(std::memory_order_relaxed) && sink.Alive()) {
      absl::Time deadline = std::min(absl::Now() + kWatchPoll, end);
      auto events = watcher->Next(kWatchBatch, deadline);
      if (!events.ok()) {
        if (storage::IsExpired(events.status())) {
          return error_event(std::string(events.status().message()));
        }
        return true;
      }
      for (const storage::PodWatchEvent& e : *events) {
        event(storage::EventTypeName(e.type), e.pod);
        writer.MaybeFlush();
      }
      absl::Time now = absl::Now();
      if (now >= end) {
        if (bookmarks) AppendBookmark(neg, watcher->cursor(), false, writer.buffer());
        return writer.Flush();
      }
      if (bookmarks && now - last_bookmark >= absl::Seconds(bookmark_interval)) {
        AppendBookmark(neg, watcher->cursor(), false, writer.buffer());
        last_bookmark = now;
      }
      if (!writer.Flush()) return false;
    }
    return true;
  };
  return r;
}

HttpResponse PodsResource::Create(const HttpRequest& request, const RequestInfo& info) {
  bool dry_run = false;
  FieldValidation validation;
  ApiError error;
  if (!ParseDryRun(request, &dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  rapidjson::Document doc;
  absl::Status parsed_json = ParseJson(request.body, doc);
  if (!parsed_json.ok()) return ErrorResponse(BadRequest(std::string(parsed_json.message())));
  ParsedPod parsed;
  std::vector<StatusCause> causes;
  if (!ParsePod(doc, &parsed, &error, &causes)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
    return ErrorResponse(error);
  }
  Pod& pod = parsed.pod;
  if (!pod.namespace_.empty() && pod.namespace_ != info.namespace_) {
    return ErrorResponse(BadRequest(fmt::format(
        "the namespace of the object ({}) does not match the namespace on the request ({})",
        pod.namespace_, info.namespace_)));
  }
  pod.namespace_ = info.namespace_;
  if (pod.name.empty() && !parsed.generate_name.empty()) {
    pod.name = parsed.generate_name + GenerateNameSuffix();
  }
  causes = ValidatePodFields(pod);
  if (parsed.has_resource_version) {
    return ErrorResponse(BadRequest("resourceVersion should not be set on objects to be created"));
  }
  if (!causes.empty()) return ErrorResponse(Invalid(Subject(pod.name), std::move(causes)));
  // Status is the device's; a create starts it empty.
  pod.status_json = "{}";
  pod.phase.clear();
  if (dry_run) {
    if (store_->Get(pod.namespace_, pod.name).ok()) {
      return ErrorResponse(FromStatus(absl::AlreadyExistsError(""), Subject(pod.name)));
    }
    pod.uid = storage::Uid::Random();
    pod.creation_timestamp = WallNow();
    return ObjectResponse(request, 201, pod);
  }
  absl::StatusOr<Pod> created = store_->Create(pod);
  if (!created.ok()) return ErrorResponse(FromStatus(created.status(), Subject(pod.name)));
  KOLE_VLOG(2, "Pod created", "pod", pod.namespace_ + "/" + pod.name, "node", pod.node_name);
  HttpResponse r = ObjectResponse(request, 201, *created);
  CopyWarnings(warnings, r);
  return r;
}

HttpResponse PodsResource::Write(const HttpRequest& request, const Pod& desired,
                                 uint64_t expected_rv, bool status, bool dry_run) {
  if (dry_run) {
    absl::StatusOr<Pod> base = store_->Get(desired.namespace_, desired.name);
    if (!base.ok()) return ErrorResponse(FromStatus(base.status(), Subject(desired.name)));
    if (expected_rv != 0 && expected_rv != base->resource_version) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(desired.name)));
    }
    Pod preview = *base;
    if (status) {
      preview.status_json = desired.status_json;
      preview.phase = desired.phase;
    } else {
      preview.labels = desired.labels;
      preview.annotations = desired.annotations;
      preview.spec_json = desired.spec_json;
      preview.node_name = desired.node_name;
    }
    return ObjectResponse(request, 200, preview);
  }
  absl::StatusOr<Pod> written =
      status ? store_->UpdateStatus(desired, expected_rv) : store_->Update(desired, expected_rv);
  if (!written.ok()) return ErrorResponse(FromStatus(written.status(), Subject(desired.name)));
  return ObjectResponse(request, 200, *written);
}

HttpResponse PodsResource::Update(const HttpRequest& request, const RequestInfo& info,
                                  bool status) {
  if (store_->IsDerived(info.namespace_, info.name)) {
    return ErrorResponse(DerivedPodIsReadOnly(info.name));
  }
  bool dry_run = false;
  FieldValidation validation;
  ApiError error;
  if (!ParseDryRun(request, &dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  rapidjson::Document doc;
  absl::Status parsed_json = ParseJson(request.body, doc);
  if (!parsed_json.ok()) return ErrorResponse(BadRequest(std::string(parsed_json.message())));
  ParsedPod parsed;
  std::vector<StatusCause> causes;
  if (!ParsePod(doc, &parsed, &error, &causes)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
    return ErrorResponse(error);
  }
  Pod& pod = parsed.pod;
  if (pod.name.empty()) pod.name = info.name;
  if (pod.namespace_.empty()) pod.namespace_ = info.namespace_;
  if (pod.name != info.name || pod.namespace_ != info.namespace_) {
    return ErrorResponse(BadRequest("the name or namespace of the object does not match the URL"));
  }
  if (!status) {
    causes = ValidatePodFields(pod);
    if (!causes.empty()) return ErrorResponse(Invalid(Subject(info.name), std::move(causes)));
  }
  HttpResponse r = Write(request, pod, parsed.resource_version, status, dry_run);
  CopyWarnings(warnings, r);
  return r;
}

HttpResponse PodsResource::Patch(const HttpRequest& request, const RequestInfo& info, bool status) {
  if (store_->IsDerived(info.namespace_, info.name)) {
    return ErrorResponse(DerivedPodIsReadOnly(info.name));
  }
  PatchType type;
  ApiError error;
  if (!ParsePatchType(request.Header("Content-Type"), "pods", &type, &error)) {
    return ErrorResponse(error);
  }
  bool dry_run = false;
  FieldValidation validation;
  if (!ParseDryRun(request, &dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  rapidjson::Document patch;
  absl::Status parsed_json = ParseJson(request.body, patch);
  if (!parsed_json.ok()) return ErrorResponse(BadRequest(std::string(parsed_json.message())));
  bool merge = type == PatchType::kMerge;
  if (merge != patch.IsObject()) {
    return ErrorResponse(BadRequest(merge ? "a merge patch must be a JSON object"
                                          : "a JSON patch must be an array"));
  }
  bool explicit_rv = false;
  if (merge) {
    const rapidjson::Value* meta = Member(patch, "metadata");
    explicit_rv = meta != nullptr && Member(*meta, "resourceVersion") != nullptr;
  }
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<Pod> current = store_->Get(info.namespace_, info.name);
    if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
    std::string rendered;
    AppendPodJson(*current, rendered);
    rapidjson::Document doc;
    if (!ParseJson(rendered, doc).ok()) return ErrorResponse(InternalError("rendering a pod"));
    if (merge) {
      ApplyMergePatch(doc, patch, doc.GetAllocator());
    } else {
      absl::Status applied = ApplyJsonPatch(doc, patch);
      if (!applied.ok()) {
        return ErrorResponse(Invalid(Subject(info.name),
                                     {{"FieldValueInvalid", std::string(applied.message()), ""}}));
      }
    }
    ParsedPod parsed;
    std::vector<StatusCause> causes;
    if (!ParsePod(doc, &parsed, &error, &causes)) return ErrorResponse(error);
    HttpResponse warnings;
    if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
      return ErrorResponse(error);
    }
    if (parsed.pod.name != info.name || parsed.pod.namespace_ != info.namespace_) {
      return ErrorResponse(Invalid(Subject(info.name),
                                   {{"FieldValueInvalid", "field is immutable", "metadata.name"}}));
    }
    if (!status && !causes.empty()) {
      return ErrorResponse(Invalid(Subject(info.name), std::move(causes)));
    }
    if (parsed.has_resource_version && parsed.resource_version != current->resource_version) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(info.name)));
    }
    HttpResponse r = Write(request, parsed.pod, current->resource_version, status, dry_run);
    if (r.status == 409 && !explicit_rv && attempt < kPatchAttempts) continue;
    CopyWarnings(warnings, r);
    return r;
  }
}

HttpResponse PodsResource::Delete(const HttpRequest& request, const RequestInfo& info) {
  DeleteOptions options;
  ApiError error;
  if (!ParseDeleteOptions(request, &options, &error)) return ErrorResponse(error);
  absl::StatusOr<Pod> current = store_->Get(info.namespace_, info.name);
  if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
  std::string uid = current->uid.ToString();
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
    if (!current->owner_references_json.empty() && namespace_terminating_ &&
        namespace_terminating_(info.namespace_)) {
      // The namespace is being emptied: its derived pods go for good.
      store_->SuspendNamespace(info.namespace_);
      return JsonResponse(200, SuccessStatusJson(Subject(info.name), uid));
    }
    absl::StatusOr<Pod> deleted = store_->Delete(info.namespace_, info.name, expected_rv);
    if (!deleted.ok()) return ErrorResponse(FromStatus(deleted.status(), Subject(info.name)));
  }
  return JsonResponse(200, SuccessStatusJson(Subject(info.name), uid));
}

HttpResponse PodsResource::DeleteCollection(const HttpRequest& request, const RequestInfo& info) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  DeleteOptions options;
  if (!ParseDeleteOptions(request, &options, &error)) return ErrorResponse(error);
  storage::PodListOptions list;
  list.namespace_ = info.namespace_;
  list.label_selector = q.label_selector;
  list.field_selector = q.field_selector;
  std::vector<Pod> matched;
  storage::PodListResult result;
  absl::Status listed = store_->ListEach(
      list, [&](const Pod& pod) { matched.push_back(pod); }, &result);
  if (!listed.ok()) return ErrorResponse(FromStatus(listed, Subject("")));
  bool any_derived = false;
  for (const Pod& pod : matched) any_derived |= !pod.owner_references_json.empty();
  if (any_derived && !options.dry_run && !info.namespace_.empty() && namespace_terminating_ &&
      namespace_terminating_(info.namespace_)) {
    // The namespace controller empties a namespace being deleted: the pods of
    // its EdgeDaemonSets go for good rather than restart (pods_resource.h).
    store_->SuspendNamespace(info.namespace_);
    KOLE_LOG(Info, "Namespace is terminating; its EdgeDaemonSets' pods are removed", "namespace",
             info.namespace_);
  }
  std::string body;
  AppendListStart("PodList", kEdgeApiVersion, body);
  bool first = true;
  for (Pod& pod : matched) {
    if (!options.dry_run) {
      absl::StatusOr<Pod> deleted = store_->Delete(pod.namespace_, pod.name, 0);
      if (!deleted.ok()) {
        if (absl::IsNotFound(deleted.status())) continue;
        return ErrorResponse(FromStatus(deleted.status(), Subject(pod.name)));
      }
      pod = std::move(*deleted);
    }
    if (!first) body += ',';
    first = false;
    AppendPodJson(pod, body);
  }
  AppendListEnd(store_->resource_version(), "", body);
  return JsonResponse(200, std::move(body));
}

}  // namespace kole::apiserver
