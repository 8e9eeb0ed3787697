#pragma once

// Query parameters of list and watch requests (k8s-api-contract.md §7, §8),
// parsed and validated the way upstream's ListOptions validation does, so
// that every resource answers malformed queries with the same errors.
//
// Thread safety: value types and pure functions.

#include <cstdint>
#include <optional>
#include <string>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/http_types.h"
#include "apiserver-ext/table.h"
#include "storage/field_selector.h"
#include "storage/label_selector.h"

namespace kole::apiserver {

struct ListQuery {
  storage::LabelSelector label_selector;
  storage::FieldSelector field_selector;
  size_t limit = 0;
  std::string continue_token;
  bool has_resource_version = false;
  uint64_t resource_version = 0;       // Meaningful when has_resource_version.
  std::string resource_version_match;  // "", "Exact" or "NotOlderThan".
  bool watch = false;
  bool allow_bookmarks = false;
  std::optional<bool> send_initial_events;
  int64_t timeout_seconds = 0;  // 0: none given.
  IncludeObject include_object = IncludeObject::kMetadata;
};

// Parses and validates. On failure returns false with a 400 (malformed
// values) or 422 (inconsistent combinations) in `error`.
bool ParseListQuery(const HttpRequest& request, ListQuery* query, ApiError* error);

// True when dryRun=All is in the query (any other value is a 400 in
// `error`, returned as false from ParseDryRun).
bool ParseDryRun(const HttpRequest& request, bool* dry_run, ApiError* error);

// The fieldValidation query parameter: Ignore, Warn or Strict; Warn when
// absent, as upstream. kubectl sends Strict.
enum class FieldValidation { kIgnore, kWarn, kStrict };
bool ParseFieldValidation(const HttpRequest& request, FieldValidation* mode, ApiError* error);

}  // namespace kole::apiserver
