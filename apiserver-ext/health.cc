#include "apiserver-ext/health.h"

#include <fmt/format.h>

#include "apiserver-ext/api_status.h"
#include "common/log.h"

namespace kole::apiserver {
namespace {

HttpResponse Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.headers.emplace("X-Content-Type-Options", "nosniff");
  r.body = std::move(body);
  return r;
}

}  // namespace

HealthChecks::HealthChecks() {
  AddCheck("ping", kAll, [] { return absl::OkStatus(); });
  AddCheck("log", kAll, [] { return absl::OkStatus(); });
}

void HealthChecks::AddCheck(std::string name, unsigned endpoints, CheckFn check) {
  checks_.push_back({std::move(name), endpoints, std::move(check)});
}

bool HealthChecks::IsHealthPath(std::string_view path) {
  for (std::string_view base : {"/healthz", "/livez", "/readyz"}) {
    if (path == base || (path.size() > base.size() && path.substr(0, base.size()) == base &&
                         path[base.size()] == '/')) {
      return true;
    }
  }
  return false;
}

HttpResponse HealthChecks::Serve(const HttpRequest& request) const {
  std::string_view path = request.path;
  unsigned endpoint = 0;
  std::string_view base;
  for (auto [b, e] : {std::pair<std::string_view, unsigned>{"/healthz", kHealthz},
                      {"/livez", kLivez},
                      {"/readyz", kReadyz}}) {
    if (path.substr(0, b.size()) == b) {
      base = b;
      endpoint = e;
    }
  }
  std::string_view rest = path.substr(base.size());
  if (!rest.empty() && rest != "/") {
    std::string_view name = rest.substr(1);
    for (const Check& c : checks_) {
      if ((c.endpoints & endpoint) && c.name == name) {
        absl::Status s = c.fn();
        if (s.ok()) return Text(200, "ok");
        return Text(500, fmt::format("internal server error: {}", std::string(s.message())));
      }
    }
    return ErrorResponse(NotFound({}));
  }

  bool verbose = request.query.count("verbose") > 0;
  std::vector<std::string> excluded;
  auto range = request.query.equal_range("exclude");
  for (auto it = range.first; it != range.second; ++it) excluded.push_back(it->second);

  std::string lines;
  bool failed = false;
  for (const Check& c : checks_) {
    if (!(c.endpoints & endpoint)) continue;
    if (std::find(excluded.begin(), excluded.end(), c.name) != excluded.end()) {
      lines += fmt::format("[+]{} excluded: ok\n", c.name);
      continue;
    }
    absl::Status s = c.fn();
    if (s.ok()) {
      lines += fmt::format("[+]{} ok\n", c.name);
    } else {
      failed = true;
      // The reason goes to the log only, as upstream withholds it.
      KOLE_LOG_EVERY_N(Warning, 20, "Health check failed", "endpoint", std::string(base.substr(1)),
                       "check", c.name, "err", s);
      lines += fmt::format("[-]{} failed: reason withheld\n", c.name);
    }
  }
  std::string name(base.substr(1));
  if (failed) return Text(500, lines + name + " check failed\n");
  if (verbose) return Text(200, lines + name + " check passed\n");
  return Text(200, "ok");
}

}  // namespace kole::apiserver
