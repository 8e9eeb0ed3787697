#include "apiserver-ext/list_options.h"

#include <fmt/format.h>

#include <charconv>

namespace kole::apiserver {
namespace {

bool ParseUint(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return err == std::errc() && end == text.data() + text.size();
}

bool ParseBool(std::string_view text, bool* out) {
  if (text == "true" || text == "1" || text == "True" || text == "TRUE" || text == "t") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "0" || text == "False" || text == "FALSE" || text == "f" ||
      text.empty()) {
    *out = false;
    return true;
  }
  return false;
}

ApiError ListOptionsInvalid(std::string field, std::string message) {
  ApiError e;
  e.code = 422;
  e.reason = "Invalid";
  e.kind = "ListOptions";
  e.group = "meta.k8s.io";
  e.message = fmt::format("ListOptions.meta.k8s.io \"\" is invalid: {}: {}", field, message);
  e.causes.push_back({"FieldValueInvalid", message, field});
  return e;
}

}  // namespace

bool ParseListQuery(const HttpRequest& request, ListQuery* q, ApiError* error) {
  if (auto v = request.Query("labelSelector")) {
    auto parsed = storage::LabelSelector::Parse(*v);
    if (!parsed.ok()) {
      *error = BadRequest(
          fmt::format("unable to parse requirement: {}", std::string(parsed.status().message())));
      return false;
    }
    q->label_selector = std::move(*parsed);
  }
  if (auto v = request.Query("fieldSelector")) {
    auto parsed = storage::FieldSelector::Parse(*v);
    if (!parsed.ok()) {
      *error = BadRequest(std::string(parsed.status().message()));
      return false;
    }
    q->field_selector = std::move(*parsed);
  }
  if (auto v = request.Query("limit")) {
    uint64_t n = 0;
    if (!v->empty() && (!ParseUint(*v, &n))) {
      *error = BadRequest(fmt::format("invalid limit {:?}", *v));
      return false;
    }
    q->limit = static_cast<size_t>(n);
  }
  if (auto v = request.Query("continue")) q->continue_token = std::string(*v);
  if (auto v = request.Query("resourceVersion")) {
    if (!v->empty()) {
      if (!ParseUint(*v, &q->resource_version)) {
        *error = BadRequest(fmt::format("invalid resource version {:?}", *v));
        return false;
      }
      q->has_resource_version = true;
    }
  }
  if (auto v = request.Query("resourceVersionMatch")) q->resource_version_match = std::string(*v);
  if (auto v = request.Query("watch")) {
    if (!ParseBool(*v, &q->watch)) {
      *error = BadRequest(fmt::format("invalid watch {:?}", *v));
      return false;
    }
  }
  if (auto v = request.Query("allowWatchBookmarks")) {
    if (!ParseBool(*v, &q->allow_bookmarks)) {
      *error = BadRequest(fmt::format("invalid allowWatchBookmarks {:?}", *v));
      return false;
    }
  }
  if (auto v = request.Query("sendInitialEvents")) {
    bool b = false;
    if (!ParseBool(*v, &b)) {
      *error = BadRequest(fmt::format("invalid sendInitialEvents {:?}", *v));
      return false;
    }
    q->send_initial_events = b;
  }
  if (auto v = request.Query("timeoutSeconds")) {
    uint64_t n = 0;
    if (!v->empty() && !ParseUint(*v, &n)) {
      *error = BadRequest(fmt::format("invalid timeoutSeconds {:?}", *v));
      return false;
    }
    q->timeout_seconds = static_cast<int64_t>(std::min<uint64_t>(n, 1u << 30));
  }
  if (auto v = request.Query("includeObject")) {
    if (*v == "Metadata" || v->empty()) {
      q->include_object = IncludeObject::kMetadata;
    } else if (*v == "Object") {
      q->include_object = IncludeObject::kObject;
    } else if (*v == "None") {
      q->include_object = IncludeObject::kNone;
    } else {
      *error = BadRequest(fmt::format("invalid includeObject {:?}", *v));
      return false;
    }
  }

  // Combinations, as upstream validates them (all 422 on ListOptions).
  const std::string& match = q->resource_version_match;
  if (!match.empty()) {
    if (match != "Exact" && match != "NotOlderThan") {
      *error = ListOptionsInvalid("resourceVersionMatch",
                                  fmt::format("Unsupported value: {:?}: supported values: "
                                              "\"Exact\", \"NotOlderThan\", \"\"",
                                              match));
      return false;
    }
    if (!q->has_resource_version && !(q->watch && q->send_initial_events.value_or(false))) {
      *error = ListOptionsInvalid("resourceVersionMatch",
                                  "Forbidden: resourceVersionMatch is forbidden unless "
                                  "resourceVersion is provided");
      return false;
    }
    if (!q->continue_token.empty()) {
      *error = ListOptionsInvalid("resourceVersionMatch",
                                  "Forbidden: resourceVersionMatch is forbidden when continue is "
                                  "provided");
      return false;
    }
    if (match == "Exact" && q->has_resource_version && q->resource_version == 0) {
      *error = ListOptionsInvalid("resourceVersionMatch",
                                  "Forbidden: resourceVersionMatch \"exact\" is forbidden for "
                                  "resourceVersion \"0\"");
      return false;
    }
  }
  if (q->send_initial_events.has_value()) {
    if (!q->watch) {
      *error = ListOptionsInvalid("sendInitialEvents",
                                  "Forbidden: sendInitialEvents is forbidden for list");
      return false;
    }
    if (*q->send_initial_events && match != "NotOlderThan") {
      *error = ListOptionsInvalid("resourceVersionMatch",
                                  "Forbidden: sendInitialEvents requires setting "
                                  "resourceVersionMatch to NotOlderThan");
      return false;
    }
  } else if (q->watch && !match.empty()) {
    *error = ListOptionsInvalid("resourceVersionMatch",
                                "Forbidden: resourceVersionMatch is forbidden for watch unless "
                                "sendInitialEvents is provided");
    return false;
  }
  if (!q->continue_token.empty() && q->has_resource_version && q->resource_version != 0) {
    *error = BadRequest("specifying resource version is not allowed when using continue");
    return false;
  }
  return true;
}

bool ParseDryRun(const HttpRequest& request, bool* dry_run, ApiError* error) {
  *dry_run = false;
  auto range = request.query.equal_range("dryRun");
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == "All") {
      *dry_run = true;
    } else if (!it->second.empty()) {
      *error =
          BadRequest(fmt::format("Unsupported value: {:?}: supported values: \"All\"", it->second));
      return false;
    }
  }
  return true;
}

bool ParseFieldValidation(const HttpRequest& request, FieldValidation* mode, ApiError* error) {
  *mode = FieldValidation::kWarn;
  auto v = request.Query("fieldValidation");
  if (!v || v->empty()) return true;
  if (*v == "Ignore") {
    *mode = FieldValidation::kIgnore;
  } else if (*v == "Warn") {
    *mode = FieldValidation::kWarn;
  } else if (*v == "Strict") {
    *mode = FieldValidation::kStrict;
  } else {
    *error =
        BadRequest(fmt::format("fieldValidation must be one of \"Ignore\", \"Warn\" or "
                               "\"Strict\", got {:?}",
                               *v));
    return false;
  }
  return true;
}

}  // namespace kole::apiserver
