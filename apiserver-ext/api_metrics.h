#pragma once

// The API server's Prometheus metrics, written by hand in the text format
// (prometheus-cpp is not packaged in Debian). Names follow
// kole_<component>_<what>_<unit> (STYLE.md); every metric is described in
// docs/api.md. No label carries a node name or anything else per object.
//
//   kole_apiserver_requests_total{verb,resource,scope,code,user_agent}
//   kole_apiserver_request_duration_seconds{verb,resource} (histogram)
//   kole_apiserver_inflight_requests{kind="readOnly"|"mutating"}
//   kole_apiserver_watches
//   kole_apiserver_rejected_requests_total{reason}
//
// scope is "resource" (one named object), "namespace" (a collection in one
// namespace) or "cluster" (a collection across namespaces, or of a
// cluster-scoped kind), as upstream's apiserver_request_total has it: a
// namespace controller's list of one namespace and an informer's list of
// the whole fleet differ only there.
//
// The user agent label is the product token of the User-Agent header
// ("kubectl.1.33", "kube-controller-manager"); after kMaxSeries distinct
// label sets new ones are counted under user_agent="other", so a client
// cannot grow the series without bound.
//
// Thread safety: every method may be called from any thread.

#include <absl/synchronization/mutex.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "storage/node_store.h"

namespace kole::apiserver {

class ApiMetrics {
 public:
  static constexpr size_t kMaxSeries = 2000;

  void ObserveRequest(std::string_view verb, std::string_view resource, std::string_view scope,
                      int code, std::string_view user_agent, double seconds);
  void Rejected(std::string_view reason);

  std::atomic<int64_t> inflight_read_only{0};
  std::atomic<int64_t> inflight_mutating{0};
  std::atomic<int64_t> watches{0};

  // Adds text in the exposition format that other components (the MQTT
  // bridge) produce; appended to every scrape. Call before serving.
  void AddSource(std::function<std::string()> source) { sources_.push_back(std::move(source)); }

  // The whole exposition, with the store's figures when `store` is given.
  std::string Render(const storage::NodeStore* store) const;

  // The product token of a User-Agent header.
  static std::string UserAgentToken(std::string_view user_agent);

  // The count recorded for one label set (tests).
  uint64_t RequestCountForTest(std::string_view verb, std::string_view resource,
                               std::string_view scope, int code, std::string_view user_agent) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  using RequestKey = std::tuple<std::string, std::string, std::string, int, std::string>;

  mutable absl::Mutex mu_;
  std::map<RequestKey, uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Histogram> latency_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> rejected_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<std::string()>> sources_;  // Fixed once serving.
};

}  // namespace kole::apiserver
