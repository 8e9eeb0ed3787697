#include "common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace kole::metrics {
namespace {

// Label values escape backslash, double quote and newline (text format 0.0.4).
void AppendLabels(std::string& out, const Labels& labels, std::string_view extra_key = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) return;
  out += '{';
  bool first = true;
  auto append = [&](std::string_view key, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += key;
    out += "=\"";
    for (char c : value) {
      if (c == '\\' || c == '"') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  };
  for (const auto& [key, value] : labels) append(key, value);
  if (!extra_key.empty()) append(extra_key, extra_value);
  out += '}';
}

// HELP text escapes backslash and newline (text format 0.0.4); a raw newline
// would end the line and break the whole exposition.
std::string EscapeHelp(std::string_view help) {
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string FormatDouble(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  return fmt::format("{}", value);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double value) {
  // NaN compares false with every bound; like the Prometheus clients, count
  // it in +Inf only.
  size_t bucket = std::isnan(value)
                      ? upper_bounds_.size()
                      : std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
                            upper_bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  // Negative values and NaN add nothing; a huge value or infinity saturates
  // instead of overflowing the conversion (undefined behaviour).
  double micros = value > 0 ? std::min(value * 1e6, 1e18) : 0;
  sum_micros_.fetch_add(static_cast<uint64_t>(micros), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(running);
  }
  snapshot.count = running;
  snapshot.sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
  return snapshot;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

MetricsRegistry::Series* MetricsRegistry::FindOrAdd(std::string_view name, std::string_view help,
                                                    Type type, Labels labels, bool* added) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  }
  Family& family = it->second;
  std::sort(labels.begin(), labels.end());
  for (const auto& series : family.series) {
    if (series->labels == labels) {
      *added = false;
      return series.get();
    }
  }
  *added = true;
  family.series.push_back(std::make_unique<Series>());
  family.series.back()->labels = std::move(labels);
  return family.series.back().get();
}

Counter* MetricsRegistry::AddCounter(std::string_view name, std::string_view help, Labels labels) {
  absl::MutexLock lock(&mu_);
  bool added = false;
  Series* series = FindOrAdd(name, help, Type::kCounter, std::move(labels), &added);
  if (added) series->counter = std::make_unique<Counter>();
  return series->counter.get();
}

Gauge* MetricsRegistry::AddGauge(std::string_view name, std::string_view help, Labels labels) {
  absl::MutexLock lock(&mu_);
  bool added = false;
  Series* series = FindOrAdd(name, help, Type::kGauge, std::move(labels), &added);
  if (added) series->gauge = std::make_unique<Gauge>();
  return series->gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(std::string_view name, std::string_view help,
                                         std::vector<double> upper_bounds, Labels labels) {
  absl::MutexLock lock(&mu_);
  bool added = false;
  Series* series = FindOrAdd(name, help, Type::kHistogram, std::move(labels), &added);
  if (added) series->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return series->histogram.get();
}

void MetricsRegistry::AddCallbackGauge(std::string_view name, std::string_view help,
                                       std::function<double()> read, Labels labels) {
  absl::MutexLock lock(&mu_);
  bool added = false;
  Series* series = FindOrAdd(name, help, Type::kGauge, std::move(labels), &added);
  if (added) series->callback = std::move(read);
}

std::string MetricsRegistry::Render() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    std::string_view type = family.type == Type::kCounter ? "counter"
                            : family.type == Type::kGauge ? "gauge"
                                                          : "histogram";
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name,
                   EscapeHelp(family.help), name, type);
    for (const auto& series : family.series) {
      if (series->histogram) {
        Histogram::Snapshot snapshot = series->histogram->Read();
        for (size_t i = 0; i <= snapshot.upper_bounds.size(); ++i) {
          out += name;
          out += "_bucket";
          double bound = i < snapshot.upper_bounds.size() ? snapshot.upper_bounds[i] : INFINITY;
          AppendLabels(out, series->labels, "le", FormatDouble(bound));
          fmt::format_to(std::back_inserter(out), " {}\n", snapshot.cumulative_counts[i]);
        }
        out += name;
        out += "_sum";
        AppendLabels(out, series->labels);
        fmt::format_to(std::back_inserter(out), " {}\n", FormatDouble(snapshot.sum));
        out += name;
        out += "_count";
        AppendLabels(out, series->labels);
        fmt::format_to(std::back_inserter(out), " {}\n", snapshot.count);
        continue;
      }
      out += name;
      AppendLabels(out, series->labels);
      if (series->counter) {
        fmt::format_to(std::back_inserter(out), " {}\n", series->counter->value());
      } else if (series->gauge) {
        fmt::format_to(std::back_inserter(out), " {}\n", series->gauge->value());
      } else {
        fmt::format_to(std::back_inserter(out), " {}\n", FormatDouble(series->callback()));
      }
    }
  }
  return out;
}

}  // namespace kole::metrics
