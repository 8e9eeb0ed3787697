#include "apiserver-ext/api_metrics.h"

#include <fmt/format.h>

namespace kole::apiserver {
namespace {

// Label values in the text format escape '\', '"' and newlines.
std::string Escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string ApiMetrics::UserAgentToken(std::string_view ua) {
  size_t end = ua.find_first_of("/ ");
  std::string_view token = ua.substr(0, end);
  if (token.empty()) return "unknown";
  if (token.size() > 64) token = token.substr(0, 64);
  return std::string(token);
}

void ApiMetrics::ObserveRequest(std::string_view verb, std::string_view resource,
                                std::string_view scope, int code, std::string_view user_agent,
                                double seconds) {
  std::string agent = UserAgentToken(user_agent);
  absl::MutexLock lock(&mu_);
  RequestKey key{std::string(verb), std::string(resource), std::string(scope), code, agent};
  auto it = requests_.find(key);
  if (it == requests_.end()) {
    if (requests_.size() >= kMaxSeries) std::get<4>(key) = "other";
    it = requests_.try_emplace(key, 0).first;
  }
  ++it->second;
  if (latency_.size() < kMaxSeries ||
      latency_.contains({std::string(verb), std::string(resource)})) {
    Histogram& h = latency_[{std::string(verb), std::string(resource)}];
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
}

void ApiMetrics::Rejected(std::string_view reason) {
  absl::MutexLock lock(&mu_);
  ++rejected_[std::string(reason)];
}

uint64_t ApiMetrics::RequestCountForTest(std::string_view verb, std::string_view resource,
                                         std::string_view scope, int code,
                                         std::string_view user_agent) const {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(RequestKey{std::string(verb), std::string(resource), std::string(scope),
                                      code, std::string(user_agent)});
  return it == requests_.end() ? 0 : it->second;
}

std::string ApiMetrics::Render(const storage::NodeStore* store) const {
  std::string out;
  auto add = [&out](std::string_view f, const auto&... args) {
    fmt::format_to(std::back_inserter(out), fmt::runtime(f), args...);
  };
  {
    absl::MutexLock lock(&mu_);
    add("# HELP kole_apiserver_requests_total Requests answered, by verb, resource, scope, HTTP "
        "code and client.\n# TYPE kole_apiserver_requests_total counter\n");
    for (const auto& [key, n] : requests_) {
      const auto& [verb, resource, scope, code, agent] = key;
      add("kole_apiserver_requests_total{{verb=\"{}\",resource=\"{}\",scope=\"{}\",code=\"{}\","
          "user_agent=\"{}\"}} {}\n",
          Escape(verb), Escape(resource), Escape(scope), code, Escape(agent), n);
    }
    add("# HELP kole_apiserver_request_duration_seconds Time to answer a request (for streams: "
        "until the headers).\n# TYPE kole_apiserver_request_duration_seconds histogram\n");
    for (const auto& [key, h] : latency_) {
      std::string labels =
          fmt::format("verb=\"{}\",resource=\"{}\"", Escape(key.first), Escape(key.second));
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        add("kole_apiserver_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
            kBuckets[i], h.buckets[i]);
      }
      add("kole_apiserver_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, h.count);
      add("kole_apiserver_request_duration_seconds_sum{{{}}} {}\n", labels, h.sum);
      add("kole_apiserver_request_duration_seconds_count{{{}}} {}\n", labels, h.count);
    }
    add("# HELP kole_apiserver_rejected_requests_total Requests refused with 429, by reason.\n"
        "# TYPE kole_apiserver_rejected_requests_total counter\n");
    for (const auto& [reason, n] : rejected_) {
      add("kole_apiserver_rejected_requests_total{{reason=\"{}\"}} {}\n", Escape(reason), n);
    }
  }
  add("# HELP kole_apiserver_inflight_requests Requests being served, by kind.\n"
      "# TYPE kole_apiserver_inflight_requests gauge\n"
      "kole_apiserver_inflight_requests{{kind=\"readOnly\"}} {}\n"
      "kole_apiserver_inflight_requests{{kind=\"mutating\"}} {}\n",
      inflight_read_only.load(), inflight_mutating.load());
  add("# HELP kole_apiserver_watches Open watch streams.\n# TYPE kole_apiserver_watches gauge\n"
      "kole_apiserver_watches {}\n",
      watches.load());
  if (store != nullptr) {
    storage::StoreStats s = store->Stats();
    add("# HELP kole_store_nodes Nodes in the store.\n# TYPE kole_store_nodes gauge\n"
        "kole_store_nodes {}\n",
        s.nodes);
    add("# HELP kole_store_tombstones Deleted node names that may not re-register.\n"
        "# TYPE kole_store_tombstones gauge\nkole_store_tombstones {}\n",
        s.tombstones);
    add("# HELP kole_store_resource_version The store's newest resourceVersion.\n"
        "# TYPE kole_store_resource_version gauge\nkole_store_resource_version {}\n",
        s.resource_version);
    add("# HELP kole_store_change_log_entries Changes retained for watches and paging.\n"
        "# TYPE kole_store_change_log_entries gauge\nkole_store_change_log_entries {}\n",
        s.change_log_entries);
  }
  for (const auto& source : sources_) out += source();
  return out;
}

}  // namespace kole::apiserver
