#pragma once

// /healthz, /livez and /readyz with named checks, in upstream's format
// (k8s-api-contract.md §10.1): "ok", ?verbose lists "[+]name ok", failures
// answer 500 with "[-]name failed: reason withheld", ?exclude=name skips a
// check, and /<endpoint>/<name> runs one check.
//
// Other components add their own checks (the MQTT bridge adds
// "mqtt-subscribed" to readyz) with AddCheck before the server starts.
//
// Thread safety: AddCheck() before serving; Serve() from any thread. Check
// functions must be thread-safe and fast (kubelet probes time out in 1 s).

#include <absl/status/status.h>

#include <functional>
#include <string>
#include <vector>

#include "apiserver-ext/http_types.h"

namespace kole::apiserver {

class HealthChecks {
 public:
  enum Endpoint : unsigned { kHealthz = 1, kLivez = 2, kReadyz = 4, kAll = 7 };
  using CheckFn = std::function<absl::Status()>;

  HealthChecks();

  // Registers `check` under `name` for the endpoints in the `endpoints` mask.
  void AddCheck(std::string name, unsigned endpoints, CheckFn check);

  // Answers `path` (/healthz, /livez, /readyz or one of their checks);
  // nullopt-like 404 for unknown checks.
  HttpResponse Serve(const HttpRequest& request) const;

  // True for the health paths (open to anonymous callers, not authorized).
  static bool IsHealthPath(std::string_view path);

 private:
  struct Check {
    std::string name;
    unsigned endpoints;
    CheckFn fn;
  };
  std::vector<Check> checks_;
};

}  // namespace kole::apiserver
