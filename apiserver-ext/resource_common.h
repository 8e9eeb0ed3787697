#pragma once

// Pieces every resource handler shares (nodes_resource.cc,
// pods_resource.cc): response helpers, unknown-field handling, the patch
// media types, DeleteOptions, watch event framing.
//
// Thread safety: pure functions (GenerateNameSuffix uses a per-thread
// generator).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/http_types.h"
#include "apiserver-ext/list_options.h"

namespace kole::apiserver {

// Bodies above this size are gzipped when the client accepts it.
inline constexpr size_t kGzipMinBytes = 8 << 10;

int64_t WallNow();
HttpResponse JsonResponse(int status, std::string body);
void MaybeGzip(const HttpRequest& request, HttpResponse& r);
// Five characters from upstream's generateName alphabet.
std::string GenerateNameSuffix();

// Strict: unknown fields end the request with 400; Warn: each becomes a
// Warning header on `warnings`.
bool CheckUnknownFields(const std::vector<std::string>& unknown, FieldValidation mode,
                        HttpResponse* warnings, ApiError* error);
void CopyWarnings(const HttpResponse& from, HttpResponse& to);

// {"type":"<type>","object":   -- the object and "}\n" follow.
std::string EventJsonStart(std::string_view type);
ApiError TooLargeResourceVersion(uint64_t asked, uint64_t current);

enum class PatchType { kMerge, kJson, kApply };
// The patch type of a PATCH request's Content-Type; false with a 415 in
// `error` for strategic merge, unknown types, and apply unless the resource
// supports it. `what` names the resource in the message ("nodes").
bool ParsePatchType(std::string_view content_type, std::string_view what, PatchType* type,
                    ApiError* error, bool apply_supported = false);

struct DeleteOptions {
  std::string precondition_uid;
  std::string precondition_resource_version;
  bool dry_run = false;
};
// Reads an optional DeleteOptions body; every apiVersion clients send it
// under is accepted (v1, meta.k8s.io/v1, edge.kole.io/v1alpha1;
// kubernetes/kubernetes#19317).
bool ParseDeleteOptions(const HttpRequest& request, DeleteOptions* options, ApiError* error);

}  // namespace kole::apiserver
