// Fuzzes what the API reads from a request line and its headers before any
// handler runs: the path (ParseRequestInfo), the Accept header (content
// negotiation) and the list query (ParseListQuery). Input: three fields
// separated by '\n': path, Accept, query string ("k=v&k=v", values taken
// as decoded). Properties: a resource verb is one of upstream's, a request
// is resource-scoped only under /apis/<group>/<version>/..., and query
// rejections are 400 or 422, never a 500.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "apiserver-ext/list_options.h"
#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/request_info.h"
#include "fuzz/fuzz_support.h"

namespace {

std::string_view NextField(std::string_view& data) {
  size_t nl = data.find('\n');
  std::string_view field = data.substr(0, nl);
  data = nl == std::string_view::npos ? std::string_view() : data.substr(nl + 1);
  return field;
}

void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  kole::fuzz::Abort("request_path_fuzz", what, input, detail);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace kole::apiserver;
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  std::string_view input = data;
  std::string_view path = NextField(data);
  std::string_view accept = NextField(data);
  std::string_view query = NextField(data);

  static const std::set<std::string> kVerbs = {"create", "get",   "list",   "watch",
                                               "update", "patch", "delete", "deletecollection"};
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    RequestInfo info = ParseRequestInfo(method, path, query.substr(0, 4), query);
    if (info.is_resource_request) {
      if (!kVerbs.contains(info.verb)) Fail("unexpected verb", input, info.verb);
      if (info.api_group.empty() || info.api_version.empty()) {
        Fail("resource request without group/version", input, info.path);
      }
    }
  }

  for (bool list : {false, true}) {
    for (bool watch : {false, true}) {
      NegotiateResource(accept, list, watch);
    }
  }
  NegotiateDiscovery(accept);
  AcceptsPlainJson(accept);

  HttpRequest request;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string_view item = query.substr(pos, amp == std::string_view::npos ? amp : amp - pos);
    size_t eq = item.find('=');
    request.query.emplace(std::string(item.substr(0, eq)),
                          eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  ListQuery q;
  ApiError error;
  if (!ParseListQuery(request, &q, &error) && error.code != 400 && error.code != 422) {
    Fail("list query rejected with an unexpected code", input, std::to_string(error.code));
  }
  bool dry_run = false;
  ParseDryRun(request, &dry_run, &error);
  return 0;
}
