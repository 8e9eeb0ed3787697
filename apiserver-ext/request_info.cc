#include "apiserver-ext/request_info.h"

#include <cctype>
#include <vector>

namespace kole::apiserver {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t start = i;
    while (i < path.size() && path[i] != '/') ++i;
    if (i > start) parts.push_back(path.substr(start, i - start));
  }
  return parts;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

RequestInfo ParseRequestInfo(std::string_view method, std::string_view path,
                             std::string_view watch_param, std::string_view field_selector) {
  RequestInfo info;
  info.path = std::string(path);
  info.verb = Lower(method);

  std::vector<std::string_view> parts = Split(path);
  // /apis/<group>/<version>/<resource...>: at least four segments.
  if (parts.size() < 4 || parts[0] != "apis") return info;
  info.is_resource_request = true;
  info.api_group = std::string(parts[1]);
  info.api_version = std::string(parts[2]);
  size_t i = 3;
  if (parts[i] == "namespaces" && parts.size() > i + 1) {
    info.namespace_ = std::string(parts[i + 1]);
    if (parts.size() == i + 2) {
      // /namespaces/<ns> names the namespace object itself.
      info.resource = "namespaces";
      info.name = info.namespace_;
      i = parts.size();
    } else {
      i += 2;
    }
  }
  if (i < parts.size()) info.resource = std::string(parts[i++]);
  if (i < parts.size()) info.name = std::string(parts[i++]);
  if (i < parts.size()) info.subresource = std::string(parts[i++]);
  if (i < parts.size()) info.extra_segments = true;

  bool watch = watch_param == "true" || watch_param == "1";
  if (method == "POST") {
    info.verb = "create";
  } else if (method == "GET" || method == "HEAD") {
    info.verb = info.name.empty() ? (watch ? "watch" : "list") : "get";
  } else if (method == "PUT") {
    info.verb = "update";
  } else if (method == "PATCH") {
    info.verb = "patch";
  } else if (method == "DELETE") {
    info.verb = info.name.empty() ? "deletecollection" : "delete";
  }

  // A list or watch of one object by field selector is authorized as that
  // object, as upstream does.
  if ((info.verb == "list" || info.verb == "watch") && info.name.empty()) {
    constexpr std::string_view kPrefix = "metadata.name=";
    if (field_selector.substr(0, kPrefix.size()) == kPrefix &&
        field_selector.find(',') == std::string_view::npos) {
      info.name = std::string(field_selector.substr(kPrefix.size()));
    }
  }
  return info;
}

}  // namespace kole::apiserver
