#pragma once

// JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to a parsed
// document, the two patch types the API accepts (application/merge-patch+json
// and application/json-patch+json). Strategic merge patch and apply patches
// are answered with 415 by the handlers and never reach here.
//
// Thread safety: pure functions over the caller's documents.

#include <absl/status/status.h>
#include <rapidjson/document.h>

#include <string_view>

namespace kole::apiserver {

// Upstream caps JSON patches at 10000 operations.
inline constexpr size_t kMaxJsonPatchOperations = 10000;

// Merges `patch` into `target` (RFC 7386: null removes, objects merge
// recursively, anything else replaces). `allocator` belongs to `target`'s
// document.
void ApplyMergePatch(rapidjson::Value& target, const rapidjson::Value& patch,
                     rapidjson::Document::AllocatorType& allocator);

// Applies the operations in `patch` (a JSON array) to `target` in order;
// all or nothing is the caller's business (it patches a copy). Returns
// InvalidArgument for a malformed patch or a failed "test", naming the
// operation, and NotFound-free wording: every failure is a 422 upstream.
absl::Status ApplyJsonPatch(rapidjson::Document& target, const rapidjson::Value& patch);

// Objects and arrays nested deeper than this are refused (400): Kubernetes
// objects are a few dozen levels deep at most, and the code that walks a
// document recurses.
inline constexpr int kMaxJsonDepth = 1000;

// Parses `text` as JSON into `doc`; InvalidArgument with the parser's
// message and offset when it is not JSON or nests deeper than kMaxJsonDepth.
absl::Status ParseJson(std::string_view text, rapidjson::Document& doc);

// InvalidArgument when `text` nests objects and arrays deeper than
// `max_depth` (strings are skipped; anything else is left to the parser).
absl::Status CheckJsonDepth(std::string_view text, int max_depth);

}  // namespace kole::apiserver
