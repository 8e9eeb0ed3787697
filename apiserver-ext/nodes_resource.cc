#include "apiserver-ext/nodes_resource.h"

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
#include "apiserver-ext/node_render.h"
#include "apiserver-ext/resource_common.h"
#include "apiserver-ext/table.h"
#include "common/log.h"

namespace kole::apiserver {
namespace {

using storage::Node;

// Pages up to this size are built whole (exact errors, Content-Length);
// larger and unlimited lists are streamed.
constexpr size_t kMaxBufferedPage = 5000;
// How many watch events one store call hands over.
constexpr size_t kWatchBatch = 512;
// How often an idle watch wakes up to notice a closed client or shutdown.
constexpr absl::Duration kWatchPoll = absl::Seconds(1);
// JSON patch and merge patch retries when the node changed under a patch
// that carried no resourceVersion of its own (upstream retries as well).
constexpr int kPatchAttempts = 5;

ErrorSubject Subject(std::string_view name) { return {"nodes", "Node", std::string(name)}; }

void RenderObject(const Node& node, const Negotiated& n, IncludeObject include, int64_t now,
                  bool table_columns, std::string& out) {
  switch (n.representation) {
    case Representation::kTable:
      AppendNodeTableStart(n.table_version, table_columns, out);
      AppendNodeTableRow(node, now, include, out);
      AppendTableEnd(node.resource_version, "", out);
      return;
    case Representation::kPartialObjectMetadata:
    case Representation::kPartialObjectMetadataList:
      AppendNodeMetadataJson(node, out);
      return;
    case Representation::kObject:
      AppendNodeJson(node, out);
      return;
  }
}

// RenderObject for a node of a list or of a watch's initial events.
void RenderObject(NodeRenderer& renderer, const storage::NodeView& node, const Negotiated& n,
                  IncludeObject include, int64_t now, bool table_columns, std::string& out) {
  switch (n.representation) {
    case Representation::kTable:
      AppendNodeTableStart(n.table_version, table_columns, out);
      renderer.AppendTableRow(node, now, include, out);
      AppendTableEnd(node.resource_version(), "", out);
      return;
    case Representation::kPartialObjectMetadata:
    case Representation::kPartialObjectMetadataList:
      renderer.AppendMetadataJson(node, out);
      return;
    case Representation::kObject:
      renderer.AppendJson(node, out);
      return;
  }
}

HttpResponse ObjectResponse(const HttpRequest& request, int status, const Node& node) {
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), false, false);
  if (!n) n = Negotiated{};  // Writes already happened; answer in JSON.
  ListQuery q;
  ApiError ignored;
  ParseListQuery(request, &q, &ignored);
  std::string body;
  RenderObject(node, *n, q.include_object, WallNow(), true, body);
  HttpResponse r = JsonResponse(status, std::move(body));
  MaybeGzip(request, r);
  return r;
}

// The node as a write of the user-owned fields of `desired` would leave it
// (for dry runs); mirrors NodeStore::UpdateSpec.
absl::StatusOr<Node> PreviewSpec(const Node& current, const Node& desired) {
  Node merged = current;
  merged.labels.clear();
  for (const auto& [k, v] : desired.labels) {
    if (!storage::IsDeviceOwnedLabel(k)) {
      merged.labels.emplace_back(k, v);
      continue;
    }
    bool same = false;
    for (const auto& [ck, cv] : current.labels) same = same || (ck == k && cv == v);
    if (!same) {
      return absl::InvalidArgumentError(fmt::format(
          "label {:?} is owned by the device and cannot be changed through the API", k));
    }
  }
  for (const auto& pair : current.labels) {
    if (storage::IsDeviceOwnedLabel(pair.first)) merged.labels.push_back(pair);
  }
  storage::NormalizePairs(merged.labels);
  merged.annotations = desired.annotations;
  merged.taints = desired.taints;
  merged.unschedulable = desired.unschedulable;
  return merged;
}

Node PreviewStatus(const Node& current, const Node& desired) {
  Node merged = current;
  merged.capacity = desired.capacity;
  merged.allocatable = desired.allocatable;
  merged.addresses = desired.addresses;
  merged.node_info = desired.node_info;
  merged.conditions = desired.conditions;
  merged.ready = desired.ready;
  merged.ready_reason = desired.ready_reason;
  merged.ready_message = desired.ready_message;
  return merged;
}

// Keeps only the status part of `node` (create ignores status, as the main
// resource does).
void ClearStatus(Node& node) {
  Node blank;
  node.capacity = blank.capacity;
  node.allocatable = blank.allocatable;
  node.addresses = blank.addresses;
  node.node_info = blank.node_info;
  node.conditions = blank.conditions;
  node.ready = blank.ready;
  node.ready_reason.clear();
  node.ready_message.clear();
  node.edge = blank.edge;
}

// The object of a BOOKMARK event: the watched kind with only a version (and
// the end-of-initial-events annotation for watch-list clients).
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
      out += fmt::format(R"({{"kind":"Node","apiVersion":"{}",{}}})", kEdgeApiVersion, meta);
      break;
  }
  out += "}\n";
}

// The selection a list or watch serves; nodes support these fields.
bool CheckFields(const ListQuery& q, ApiError* error) {
  absl::Status s = q.field_selector.CheckSupported({"metadata.name", "spec.unschedulable"});
  if (!s.ok()) {
    *error = BadRequest(std::string(s.message()));
    return false;
  }
  return true;
}

}  // namespace

NodesResource::NodesResource(storage::NodeStore* store, const std::atomic<bool>* stopping,
                             WatchSettings watch, std::function<int64_t()> now)
    : store_(store), stopping_(stopping), watch_(watch), now_(now ? std::move(now) : WallNow) {}

HttpResponse NodesResource::Handle(const HttpRequest& request, const RequestInfo& info) {
  if (info.extra_segments || (!info.subresource.empty() && info.subresource != "status")) {
    return ErrorResponse(NotFound({}));
  }
  if (!info.namespace_.empty()) return ErrorResponse(NotFound({}));
  bool status = info.subresource == "status";
  const std::string& verb = info.verb;
  if (verb == "get") return Get(request, info);
  if (status && verb != "update" && verb != "patch") {
    return ErrorResponse(MethodNotAllowed(verb, "nodes/status"));
  }
  if (verb == "list") return List(request);
  if (verb == "watch") return Watch(request);
  if (verb == "create") {
    if (!info.name.empty()) return ErrorResponse(MethodNotAllowed("create", "nodes"));
    return Create(request);
  }
  if (verb == "update") return Update(request, info, status);
  if (verb == "patch") return Patch(request, info, status);
  if (verb == "delete") return Delete(request, info);
  if (verb == "deletecollection") return DeleteCollection(request);
  return ErrorResponse(MethodNotAllowed(verb, "nodes"));
}

HttpResponse NodesResource::Get(const HttpRequest& request, const RequestInfo& info) {
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), false, false);
  if (!n) return ErrorResponse(NotAcceptable());
  absl::StatusOr<Node> node = store_->Get(info.name);
  if (!node.ok()) return ErrorResponse(FromStatus(node.status(), Subject(info.name)));
  return ObjectResponse(request, 200, *node);
}

HttpResponse NodesResource::List(const HttpRequest& request) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (q.watch) return Watch(request);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), true, false);
  if (!n) return ErrorResponse(NotAcceptable());

  storage::ListOptions options;
  options.label_selector = q.label_selector;
  options.field_selector = q.field_selector;
  options.limit = q.limit;
  options.continue_token = q.continue_token;
  uint64_t current = store_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }
  // Exact, or the legacy meaning of RV=N with a limit: the state at N.
  // Everything else (unset, 0, NotOlderThan) is served from the newest state,
  // which is never older than what the client asked for.
  if (q.has_resource_version && q.resource_version != 0 &&
      (q.resource_version_match == "Exact" || (q.resource_version_match.empty() && q.limit > 0))) {
    options.resource_version = q.resource_version;
  }

  const Negotiated neg = *n;
  const IncludeObject include = q.include_object;
  const int64_t now = now_();
  auto start = [neg](std::string& out) {
    if (neg.representation == Representation::kTable) {
      AppendNodeTableStart(neg.table_version, true, out);
    } else if (neg.representation == Representation::kPartialObjectMetadataList) {
      AppendListStart("PartialObjectMetadataList", "meta.k8s.io/v1", out);
    } else {
      AppendNodeListStart(out);
    }
  };
  // Items are rendered from the store's compact records (node_render.h).
  auto item = [neg, include, now](NodeRenderer& renderer, const storage::NodeView& node,
                                  std::string& out) {
    if (neg.representation == Representation::kTable) {
      renderer.AppendTableRow(node, now, include, out);
    } else if (neg.representation == Representation::kPartialObjectMetadataList) {
      renderer.AppendMetadataJson(node, out);
    } else {
      renderer.AppendJson(node, out);
    }
  };

  if (q.limit > 0 && q.limit <= kMaxBufferedPage) {
    std::string body;
    start(body);
    NodeRenderer renderer;
    bool first = true;
    storage::ListResult page;
    absl::Status listed = store_->ListEachView(
        options,
        [&](const storage::NodeView& node) {
          if (!first) body += ',';
          first = false;
          item(renderer, node, body);
        },
        &page);
    if (!listed.ok()) {
      if (absl::IsInvalidArgument(listed)) {
        return ErrorResponse(BadRequest(std::string(listed.message())));
      }
      return ErrorResponse(FromStatus(listed, Subject("")));
    }
    AppendListEnd(page.resource_version, page.continue_token, body);
    HttpResponse r = JsonResponse(200, std::move(body));
    MaybeGzip(request, r);
    return r;
  }

  // Streamed. What could fail is checked first with a one-item probe, so
  // that the status line is right; only a trim racing with this request can
  // still cut the stream short.
  if (!options.continue_token.empty() || options.resource_version != 0) {
    storage::ListOptions probe = options;
    probe.limit = 1;
    absl::StatusOr<storage::ListResult> checked = store_->List(probe);
    if (!checked.ok()) {
      if (absl::IsInvalidArgument(checked.status())) {
        return ErrorResponse(BadRequest(std::string(checked.status().message())));
      }
      return ErrorResponse(FromStatus(checked.status(), Subject("")));
    }
  }
  bool gzip = AcceptsGzip(request.Header("Accept-Encoding"));
  HttpResponse r;
  if (gzip) {
    r.headers.emplace("Content-Encoding", "gzip");
    r.headers.emplace("Vary", "Accept-Encoding");
  }
  storage::NodeStore* store = store_;
  r.stream = [store, options, start, item, gzip](ChunkSink& sink) {
    BodyWriter writer(&sink, gzip);
    start(writer.buffer());
    NodeRenderer renderer;
    bool first = true;
    storage::ListResult result;
    absl::Status listed = store->ListEachView(
        options,
        [&](const storage::NodeView& node) {
          if (!writer.ok()) return;
          if (!first) writer.buffer() += ',';
          first = false;
          item(renderer, node, writer.buffer());
          writer.MaybeFlush();
        },
        &result);
    if (!listed.ok()) {
      KOLE_LOG(Error, "List stream ended early", "err", listed);
      return false;
    }
    AppendListEnd(result.resource_version, result.continue_token, writer.buffer());
    return writer.Flush();
  };
  return r;
}

HttpResponse NodesResource::Watch(const HttpRequest& request) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  std::optional<Negotiated> n = NegotiateResource(request.Header("Accept"), true, true);
  if (!n) return ErrorResponse(NotAcceptable());

  // Initial events: asked for, or implied by an unset or "0" version.
  bool initial = q.send_initial_events.has_value()
                     ? *q.send_initial_events
                     : !q.has_resource_version || q.resource_version == 0;
  bool initial_end_bookmark = q.send_initial_events.value_or(false);
  uint64_t current = store_->resource_version();
  if (q.has_resource_version && q.resource_version > current) {
    return ErrorResponse(TooLargeResourceVersion(q.resource_version, current));
  }
  uint64_t from = (!initial && q.has_resource_version) ? q.resource_version : 0;

  // Without initial events the watcher starts now, so a version that is too
  // old is reported the way upstream does: 200, one ERROR event, close.
  std::shared_ptr<storage::NodeWatcher> watcher;
  std::string expired_message;
  if (!initial) {
    absl::StatusOr<std::unique_ptr<storage::NodeWatcher>> w =
        store_->Watch(from, q.label_selector, q.field_selector);
    if (!w.ok()) {
      if (!storage::IsExpired(w.status()))
        return ErrorResponse(FromStatus(w.status(), Subject("")));
      expired_message = std::string(w.status().message());
    } else {
      watcher = std::move(*w);
    }
  }

  int64_t timeout = q.timeout_seconds > 0 ? q.timeout_seconds : watch_.default_timeout_seconds;
  HttpResponse r;
  r.long_running = true;
  storage::NodeStore* store = store_;
  const std::atomic<bool>* stopping = stopping_;
  const Negotiated neg = *n;
  const IncludeObject include = q.include_object;
  const bool bookmarks = q.allow_bookmarks;
  const int64_t bookmark_interval = watch_.bookmark_interval_seconds;
  std::function<int64_t()> now_fn = now_;
  storage::LabelSelector labels = q.label_selector;
  storage::FieldSelector fields = q.field_selector;

  r.stream = [=](ChunkSink& sink) mutable {
    BodyWriter writer(&sink, false);
    bool table_columns = true;
    auto event = [&](std::string_view type, const Node& node) {
      writer.buffer() += EventJsonStart(type);
      RenderObject(node, neg, include, now_fn(), table_columns, writer.buffer());
      table_columns = false;
      writer.buffer() += "}\n";
    };
    NodeRenderer renderer;
    auto initial_event = [&](const storage::NodeView& node) {
      writer.buffer() += EventJsonStart("ADDED");
      RenderObject(renderer, node, neg, include, now_fn(), table_columns, writer.buffer());
      table_columns = false;
      writer.buffer() += "}\n";
    };
    auto error_event = [&](const std::string& message) {
      ApiError e = Expired(message);
      writer.buffer() += EventJsonStart("ERROR");
      writer.buffer() += StatusJson(e);
      writer.buffer() += "}\n";
      return writer.Flush();
    };
    if (!expired_message.empty()) return error_event(expired_message);

    if (initial) {
      storage::ListOptions options;
      options.label_selector = labels;
      options.field_selector = fields;
      storage::ListResult result;
      absl::Status listed = store->ListEachView(
          options,
          [&](const storage::NodeView& node) {
            if (!writer.ok()) return;
            initial_event(node);
            writer.MaybeFlush();
          },
          &result);
      if (!listed.ok()) return false;
      if (initial_end_bookmark) {
        AppendBookmark(neg, result.resource_version, true, writer.buffer());
      }
      if (!writer.Flush()) return false;
      absl::StatusOr<std::unique_ptr<storage::NodeWatcher>> w =
          store->Watch(result.resource_version, labels, fields);
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
      absl::StatusOr<std::vector<storage::WatchEvent>> events =
          watcher->Next(kWatchBatch, deadline);
      if (!events.ok()) {
        if (storage::IsExpired(events.status())) {
          return error_event(std::string(events.status().message()));
        }
        return true;  // The store closed: end the stream cleanly.
      }
      for (const storage::WatchEvent& e : *events) {
        event(storage::EventTypeName(e.type), e.node);
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

HttpResponse NodesResource::Create(const HttpRequest& request) {
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
  ParsedNode parsed;
  std::vector<StatusCause> causes;
  if (!ParseNode(doc, &parsed, &error, &causes)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
    return ErrorResponse(error);
  }
  Node& node = parsed.node;
  if (node.name.empty() && !parsed.generate_name.empty()) {
    node.name = parsed.generate_name + GenerateNameSuffix();
    causes = ValidateNodeFields(node);
  }
  if (parsed.has_resource_version) {
    return ErrorResponse(BadRequest("resourceVersion should not be set on objects to be created"));
  }
  if (!causes.empty()) return ErrorResponse(Invalid(Subject(node.name), std::move(causes)));
  ClearStatus(node);

  if (dry_run) {
    if (store_->Get(node.name).ok()) {
      return ErrorResponse(FromStatus(absl::AlreadyExistsError(""), Subject(node.name)));
    }
    node.uid = storage::Uid::Random();
    node.creation_timestamp = now_();
    node.resource_version = 0;
    HttpResponse r = ObjectResponse(request, 201, node);
    CopyWarnings(warnings, r);
    return r;
  }
  absl::StatusOr<Node> created = store_->Create(node);
  if (!created.ok()) return ErrorResponse(FromStatus(created.status(), Subject(node.name)));
  KOLE_VLOG(2, "Node created through the API", "node", node.name);
  HttpResponse r = ObjectResponse(request, 201, *created);
  CopyWarnings(warnings, r);
  return r;
}

HttpResponse NodesResource::Write(const Node& desired, uint64_t expected_rv, bool status,
                                  bool dry_run, const Node* current) {
  if (dry_run) {
    absl::StatusOr<Node> base =
        current ? absl::StatusOr<Node>(*current) : store_->Get(desired.name);
    if (!base.ok()) return ErrorResponse(FromStatus(base.status(), Subject(desired.name)));
    if (expected_rv != 0 && expected_rv != base->resource_version) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(desired.name)));
    }
    absl::StatusOr<Node> preview =
        status ? absl::StatusOr<Node>(PreviewStatus(*base, desired)) : PreviewSpec(*base, desired);
    if (!preview.ok()) return ErrorResponse(FromStatus(preview.status(), Subject(desired.name)));
    HttpResponse r;
    r.status = 200;
    std::string body;
    AppendNodeJson(*preview, body);
    r.body = std::move(body);
    return r;
  }
  absl::StatusOr<Node> written = status ? store_->UpdateStatus(desired, expected_rv)
                                        : store_->UpdateSpec(desired, expected_rv);
  if (!written.ok()) return ErrorResponse(FromStatus(written.status(), Subject(desired.name)));
  HttpResponse r;
  std::string body;
  AppendNodeJson(*written, body);
  r.body = std::move(body);
  return r;
}

HttpResponse NodesResource::Update(const HttpRequest& request, const RequestInfo& info,
                                   bool status) {
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
  ParsedNode parsed;
  std::vector<StatusCause> causes;
  if (!ParseNode(doc, &parsed, &error, &causes)) return ErrorResponse(error);
  HttpResponse warnings;
  if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
    return ErrorResponse(error);
  }
  if (parsed.node.name.empty()) {
    parsed.node.name = info.name;
    causes = ValidateNodeFields(parsed.node);
  }
  if (parsed.node.name != info.name) {
    return ErrorResponse(BadRequest(
        fmt::format("the name of the object ({}) does not match the name on the URL ({})",
                    parsed.node.name, info.name)));
  }
  if (!causes.empty()) return ErrorResponse(Invalid(Subject(info.name), std::move(causes)));
  HttpResponse r = Write(parsed.node, parsed.resource_version, status, dry_run, nullptr);
  if (r.status == 200) {
    // Re-render in the negotiated form (Table for kubectl replace -o wide).
    CopyWarnings(warnings, r);
  }
  return r;
}

HttpResponse NodesResource::Patch(const HttpRequest& request, const RequestInfo& info,
                                  bool status) {
  PatchType patch_type;
  ApiError error;
  if (!ParsePatchType(request.Header("Content-Type"), "nodes", &patch_type, &error)) {
    return ErrorResponse(error);
  }
  bool merge = patch_type == PatchType::kMerge;
  bool dry_run = false;
  FieldValidation validation;
  if (!ParseDryRun(request, &dry_run, &error) ||
      !ParseFieldValidation(request, &validation, &error)) {
    return ErrorResponse(error);
  }
  rapidjson::Document patch;
  absl::Status parsed_json = ParseJson(request.body, patch);
  if (!parsed_json.ok()) return ErrorResponse(BadRequest(std::string(parsed_json.message())));
  if (merge && !patch.IsObject()) {
    return ErrorResponse(BadRequest("a merge patch must be a JSON object"));
  }
  if (!merge && !patch.IsArray()) return ErrorResponse(BadRequest("a JSON patch must be an array"));

  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<Node> current = store_->Get(info.name);
    if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
    std::string rendered;
    AppendNodeJson(*current, rendered);
    rapidjson::Document doc;
    if (!ParseJson(rendered, doc).ok()) return ErrorResponse(InternalError("rendering a node"));
    if (merge) {
      ApplyMergePatch(doc, patch, doc.GetAllocator());
    } else {
      absl::Status applied = ApplyJsonPatch(doc, patch);
      if (!applied.ok()) {
        return ErrorResponse(Invalid(Subject(info.name),
                                     {{"FieldValueInvalid", std::string(applied.message()), ""}}));
      }
    }
    ParsedNode parsed;
    std::vector<StatusCause> causes;
    if (!ParseNode(doc, &parsed, &error, &causes)) return ErrorResponse(error);
    HttpResponse warnings;
    if (!CheckUnknownFields(parsed.unknown_fields, validation, &warnings, &error)) {
      return ErrorResponse(error);
    }
    if (parsed.node.name != info.name) {
      return ErrorResponse(Invalid(Subject(info.name),
                                   {{"FieldValueInvalid", "field is immutable", "metadata.name"}}));
    }
    if (!causes.empty()) return ErrorResponse(Invalid(Subject(info.name), std::move(causes)));
    // A resourceVersion the patch set (or left different) is a precondition.
    if (parsed.has_resource_version && parsed.resource_version != current->resource_version) {
      return ErrorResponse(FromStatus(absl::AbortedError(""), Subject(info.name)));
    }
    bool explicit_rv = false;
    if (merge) {
      const rapidjson::Value* meta = Member(patch, "metadata");
      explicit_rv = meta != nullptr && Member(*meta, "resourceVersion") != nullptr;
    }
    HttpResponse r = Write(parsed.node, current->resource_version, status, dry_run, &*current);
    if (r.status == 409 && !explicit_rv && attempt < kPatchAttempts) continue;
    CopyWarnings(warnings, r);
    return r;
  }
}

HttpResponse NodesResource::Delete(const HttpRequest& request, const RequestInfo& info) {
  DeleteOptions options;
  ApiError error;
  if (!ParseDeleteOptions(request, &options, &error)) return ErrorResponse(error);
  bool dry_run = options.dry_run;
  const std::string& precondition_uid = options.precondition_uid;
  const std::string& precondition_rv = options.precondition_resource_version;
  absl::StatusOr<Node> current = store_->Get(info.name);
  if (!current.ok()) return ErrorResponse(FromStatus(current.status(), Subject(info.name)));
  std::string uid = current->uid.ToString();
  if (!precondition_uid.empty() && precondition_uid != uid) {
    return ErrorResponse(Conflict(
        Subject(info.name), fmt::format("Precondition failed: UID in precondition: {}, UID in "
                                        "object meta: {}",
                                        precondition_uid, uid)));
  }
  uint64_t expected_rv = 0;
  if (!precondition_rv.empty()) {
    if (precondition_rv != std::to_string(current->resource_version)) {
      return ErrorResponse(Conflict(
          Subject(info.name),
          fmt::format("Precondition failed: ResourceVersion in precondition: {}, ResourceVersion "
                      "in object meta: {}",
                      precondition_rv, current->resource_version)));
    }
    expected_rv = current->resource_version;
  }
  if (!dry_run) {
    absl::StatusOr<Node> deleted = store_->Delete(info.name, expected_rv, /*tombstone=*/true);
    if (!deleted.ok()) return ErrorResponse(FromStatus(deleted.status(), Subject(info.name)));
    KOLE_VLOG(2, "Node deleted through the API", "node", info.name);
  }
  return JsonResponse(200, SuccessStatusJson(Subject(info.name), uid));
}

HttpResponse NodesResource::DeleteCollection(const HttpRequest& request) {
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error)) return ErrorResponse(error);
  if (!CheckFields(q, &error)) return ErrorResponse(error);
  bool dry_run = false;
  if (!ParseDryRun(request, &dry_run, &error)) return ErrorResponse(error);

  // Page through one snapshot so that a collection of the whole fleet never
  // sits in memory as expanded nodes.
  storage::ListOptions options;
  options.label_selector = q.label_selector;
  options.field_selector = q.field_selector;
  options.limit = 1000;
  std::string body;
  AppendNodeListStart(body);
  bool first = true;
  uint64_t rv = 0;
  while (true) {
    absl::StatusOr<storage::ListResult> page = store_->List(options);
    if (!page.ok()) return ErrorResponse(FromStatus(page.status(), Subject("")));
    for (Node& node : page->nodes) {
      if (!dry_run) {
        absl::StatusOr<Node> deleted = store_->Delete(node.name, 0, /*tombstone=*/true);
        if (!deleted.ok()) {
          if (absl::IsNotFound(deleted.status())) continue;
          return ErrorResponse(FromStatus(deleted.status(), Subject(node.name)));
        }
        node = std::move(*deleted);
      }
      if (!first) body += ',';
      first = false;
      AppendNodeJson(node, body);
    }
    rv = page->resource_version;
    if (page->continue_token.empty()) break;
    options.continue_token = page->continue_token;
  }
  AppendNodeListEnd(dry_run ? rv : store_->resource_version(), "", body);
  HttpResponse r = JsonResponse(200, std::move(body));
  MaybeGzip(request, r);
  return r;
}

}  // namespace kole::apiserver
