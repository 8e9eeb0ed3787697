#include "apiserver-ext/resource_common.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <ctime>
#include <random>

#include "apiserver-ext/body_writer.h"
#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"

namespace kole::apiserver {

int64_t WallNow() { return static_cast<int64_t>(std::time(nullptr)); }

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

void MaybeGzip(const HttpRequest& request, HttpResponse& r) {
  if (r.body.size() < kGzipMinBytes || !AcceptsGzip(request.Header("Accept-Encoding"))) return;
  r.body = GzipWhole(r.body);
  r.headers.emplace("Content-Encoding", "gzip");
  r.headers.emplace("Vary", "Accept-Encoding");
}

std::string GenerateNameSuffix() {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (int i = 0; i < 5; ++i) s.push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
  return s;
}

bool CheckUnknownFields(const std::vector<std::string>& unknown, FieldValidation mode,
                        HttpResponse* warnings, ApiError* error) {
  if (unknown.empty() || mode == FieldValidation::kIgnore) return true;
  if (mode == FieldValidation::kStrict) {
    std::string list;
    for (const std::string& f : unknown) {
      if (!list.empty()) list += ", ";
      list += fmt::format("unknown field \"{}\"", f);
    }
    *error = BadRequest("strict decoding error: " + list);
    return false;
  }
  for (const std::string& f : unknown) {
    warnings->headers.emplace("Warning", fmt::format("299 - \"unknown field \\\"{}\\\"\"", f));
  }
  return true;
}

void CopyWarnings(const HttpResponse& from, HttpResponse& to) {
  auto range = from.headers.equal_range("Warning");
  for (auto it = range.first; it != range.second; ++it) to.headers.emplace(it->first, it->second);
}

std::string EventJsonStart(std::string_view type) {
  return fmt::format(R"({{"type":"{}","object":)", type);
}

ApiError TooLargeResourceVersion(uint64_t asked, uint64_t current) {
  ApiError e;
  e.code = 504;
  e.reason = "Timeout";
  e.message = fmt::format("Too large resource version: {}, current: {}", asked, current);
  e.causes.push_back({"ResourceVersionTooLarge", "Too large resource version", ""});
  e.retry_after_seconds = 1;
  return e;
}

bool ParsePatchType(std::string_view content_type, std::string_view what, PatchType* type,
                    ApiError* error, bool apply_supported) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  constexpr std::string_view kAccepted =
      "application/json-patch+json, application/merge-patch+json";
  if (media == "application/strategic-merge-patch+json") {
    *error = UnsupportedMediaType(
        media, std::string(kAccepted) +
                   "; strategic merge patch is not supported by edge.kole.io, use --type=merge "
                   "or --type=json");
    return false;
  }
  if (media == "application/apply-patch+yaml" && apply_supported) {
    *type = PatchType::kApply;
    return true;
  }
  if (media == "application/apply-patch+yaml" || media == "application/apply-patch+cbor") {
    *error = UnsupportedMediaType(media, fmt::format("{}; server-side apply is not supported by "
                                                     "edge.kole.io {}, use client-side "
                                                     "kubectl apply (edgedaemonsets support it)",
                                                     kAccepted, what));
    return false;
  }
  if (media == "application/merge-patch+json") {
    *type = PatchType::kMerge;
    return true;
  }
  if (media == "application/json-patch+json") {
    *type = PatchType::kJson;
    return true;
  }
  *error = UnsupportedMediaType(media, kAccepted);
  return false;
}

bool ParseDeleteOptions(const HttpRequest& request, DeleteOptions* options, ApiError* error) {
  if (!ParseDryRun(request, &options->dry_run, error)) return false;
  if (request.body.empty()) return true;
  rapidjson::Document doc;
  absl::Status parsed = ParseJson(request.body, doc);
  if (!parsed.ok()) {
    *error = BadRequest(std::string(parsed.message()));
    return false;
  }
  if (!doc.IsObject()) {
    *error = BadRequest("DeleteOptions must be a JSON object");
    return false;
  }
  if (const rapidjson::Value* kind = Member(doc, "kind");
      kind != nullptr && kind->IsString() && AsView(*kind) != "DeleteOptions") {
    *error = BadRequest(
        fmt::format("the body has kind {:?}; DELETE takes DeleteOptions", AsView(*kind)));
    return false;
  }
  if (const rapidjson::Value* pre = Member(doc, "preconditions"); pre != nullptr) {
    if (const rapidjson::Value* uid = Member(*pre, "uid"); uid && uid->IsString()) {
      options->precondition_uid = std::string(AsView(*uid));
    }
    if (const rapidjson::Value* rv = Member(*pre, "resourceVersion"); rv && rv->IsString()) {
      options->precondition_resource_version = std::string(AsView(*rv));
    }
  }
  if (const rapidjson::Value* dr = Member(doc, "dryRun"); dr != nullptr && dr->IsArray()) {
    for (const rapidjson::Value& v : dr->GetArray()) {
      if (v.IsString() && AsView(v) == "All") options->dry_run = true;
    }
  }
  return true;
}

}  // namespace kole::apiserver
