#pragma once

// Prometheus metrics, written by hand in the text exposition format (0.0.4)
// because no client library is packaged for Debian. A registry owns every
// metric; components keep the raw pointers it hands out, which stay valid for
// the registry's life. Values are atomics, so updating a metric on a hot path
// costs one relaxed atomic add and no lock.
//
//   MetricsRegistry registry;
//   Counter* dropped = registry.AddCounter("kole_bridge_messages_dropped_total",
//                                          "Messages dropped, by reason.", {{"reason",
//                                          "malformed"}});
//   dropped->Add();
//   std::string text = registry.Render();
//
// Series of one name share a family (one HELP and TYPE line); each series is
// one label set. Adding the same name and labels twice returns the first.
//
// Thread safety: every method may be called from any thread.

#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  void Add(int64_t delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Cumulative buckets with fixed upper bounds, as Prometheus histograms are.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // One per bound, then +Inf.
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // Per bucket, not cumulative.
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // The sum, in millionths, for lock-free adds.
};

// Latency buckets from 0.1 ms to 60 s, for request and apply durations.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  Counter* AddCounter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge* AddGauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram* AddHistogram(std::string_view name, std::string_view help,
                          std::vector<double> upper_bounds, Labels labels = {});
  // A gauge whose value is read at each Render(). Series cannot be removed, so
  // `read` must be thread-safe and capture only what outlives the registry.
  void AddCallbackGauge(std::string_view name, std::string_view help, std::function<double()> read,
                        Labels labels = {});

  // The whole registry in the Prometheus text format, families in name order.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> callback;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<std::unique_ptr<Series>> series;
  };

  Series* FindOrAdd(std::string_view name, std::string_view help, Type type, Labels labels,
                    bool* added) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kole::metrics
