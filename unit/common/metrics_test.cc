// The metrics registry: the exact text format 0.0.4 it renders, series
// identity, and updates from several threads.

#include "common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace kole::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MetricsRegistry, EmptyRegistryRendersNothing) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsRegistry, CounterRendersHelpTypeAndValue) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("kole_test_events_total", "Events seen.");
  counter->Add();
  counter->Add(41);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_test_events_total Events seen.\n"
            "# TYPE kole_test_events_total counter\n"
            "kole_test_events_total 42\n");
}

TEST(MetricsRegistry, GaugeRendersSetAndAddedValues) {
  MetricsRegistry registry;
  Gauge* gauge = registry.AddGauge("kole_test_depth", "Queue depth.");
  gauge->Set(10);
  gauge->Add(-15);
  EXPECT_EQ(gauge->value(), -5);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_test_depth Queue depth.\n"
            "# TYPE kole_test_depth gauge\n"
            "kole_test_depth -5\n");
}

TEST(MetricsRegistry, FamiliesRenderInNameOrder) {
  MetricsRegistry registry;
  registry.AddGauge("kole_b", "B.")->Set(2);
  registry.AddCounter("kole_c_total", "C.")->Add(3);
  registry.AddCounter("kole_a_total", "A.")->Add(1);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_a_total A.\n# TYPE kole_a_total counter\nkole_a_total 1\n"
            "# HELP kole_b B.\n# TYPE kole_b gauge\nkole_b 2\n"
            "# HELP kole_c_total C.\n# TYPE kole_c_total counter\nkole_c_total 3\n");
}

TEST(MetricsRegistry, HelpAndTypeAppearOncePerFamily) {
  MetricsRegistry registry;
  registry.AddCounter("kole_drops_total", "Drops.", {{"reason", "malformed"}})->Add(2);
  registry.AddCounter("kole_drops_total", "Drops.", {{"reason", "too_large"}})->Add(5);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_drops_total Drops.\n"
            "# TYPE kole_drops_total counter\n"
            "kole_drops_total{reason=\"malformed\"} 2\n"
            "kole_drops_total{reason=\"too_large\"} 5\n");
}

TEST(MetricsRegistry, LabelsRenderSortedByKey) {
  MetricsRegistry registry;
  registry.AddGauge("kole_g", "G.", {{"zone", "b"}, {"app", "x"}, {"mode", "m"}})->Set(1);
  EXPECT_THAT(registry.Render(), HasSubstr("kole_g{app=\"x\",mode=\"m\",zone=\"b\"} 1\n"));
}

TEST(MetricsRegistry, LabelValuesEscapeBackslashQuoteAndNewline) {
  MetricsRegistry registry;
  registry.AddCounter("kole_c_total", "C.", {{"path", "a\\b\"c\nd"}});
  EXPECT_THAT(registry.Render(), HasSubstr("kole_c_total{path=\"a\\\\b\\\"c\\nd\"} 0\n"));
}

// Regression: HELP text went out raw, so a newline in it ended the line and
// the rest failed to parse as the text format.
TEST(MetricsRegistry, HelpTextEscapesBackslashAndNewline) {
  MetricsRegistry registry;
  registry.AddCounter("kole_c_total", "Line one\nline two, a \\ too.");
  EXPECT_EQ(registry.Render(),
            "# HELP kole_c_total Line one\\nline two, a \\\\ too.\n"
            "# TYPE kole_c_total counter\n"
            "kole_c_total 0\n");
}

TEST(MetricsRegistry, SameNameAndLabelsReturnTheSameCounter) {
  MetricsRegistry registry;
  Counter* first = registry.AddCounter("kole_c_total", "C.", {{"a", "1"}, {"b", "2"}});
  Counter* again = registry.AddCounter("kole_c_total", "C.", {{"a", "1"}, {"b", "2"}});
  Counter* reordered = registry.AddCounter("kole_c_total", "C.", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(first, again);
  EXPECT_EQ(first, reordered);
  first->Add(3);
  EXPECT_EQ(reordered->value(), 3u);
}

TEST(MetricsRegistry, SameNameAndLabelsReturnTheSameGaugeAndHistogram) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.AddGauge("kole_g", "G."), registry.AddGauge("kole_g", "G."));
  EXPECT_EQ(registry.AddHistogram("kole_h_seconds", "H.", {1}, {{"op", "x"}}),
            registry.AddHistogram("kole_h_seconds", "H.", {1}, {{"op", "x"}}));
}

TEST(MetricsRegistry, OtherLabelsAreAnotherSeries) {
  MetricsRegistry registry;
  Counter* a = registry.AddCounter("kole_c_total", "C.", {{"reason", "a"}});
  Counter* b = registry.AddCounter("kole_c_total", "C.", {{"reason", "b"}});
  Counter* none = registry.AddCounter("kole_c_total", "C.");
  EXPECT_NE(a, b);
  EXPECT_NE(a, none);
  EXPECT_NE(b, none);
}

TEST(MetricsRegistry, SeriesRenderInTheOrderTheyWereAdded) {
  MetricsRegistry registry;
  registry.AddCounter("kole_c_total", "C.", {{"reason", "z"}});
  registry.AddCounter("kole_c_total", "C.", {{"reason", "a"}});
  std::string text = registry.Render();
  EXPECT_LT(text.find("reason=\"z\""), text.find("reason=\"a\""));
}

TEST(MetricsRegistry, HistogramRendersCumulativeBucketsSumAndCount) {
  MetricsRegistry registry;
  Histogram* histogram =
      registry.AddHistogram("kole_apply_seconds", "Apply time.", {0.5, 1, 2.5}, {{"op", "beat"}});
  for (double value : {0.25, 0.5, 1.0, 2.0, 10.0}) histogram->Observe(value);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_apply_seconds Apply time.\n"
            "# TYPE kole_apply_seconds histogram\n"
            "kole_apply_seconds_bucket{op=\"beat\",le=\"0.5\"} 2\n"
            "kole_apply_seconds_bucket{op=\"beat\",le=\"1\"} 3\n"
            "kole_apply_seconds_bucket{op=\"beat\",le=\"2.5\"} 4\n"
            "kole_apply_seconds_bucket{op=\"beat\",le=\"+Inf\"} 5\n"
            "kole_apply_seconds_sum{op=\"beat\"} 13.75\n"
            "kole_apply_seconds_count{op=\"beat\"} 5\n");
}

TEST(MetricsRegistry, HistogramWithoutLabelsHasOnlyLeOnBuckets) {
  MetricsRegistry registry;
  registry.AddHistogram("kole_h_seconds", "H.", {1})->Observe(0.5);
  EXPECT_EQ(registry.Render(),
            "# HELP kole_h_seconds H.\n"
            "# TYPE kole_h_seconds histogram\n"
            "kole_h_seconds_bucket{le=\"1\"} 1\n"
            "kole_h_seconds_bucket{le=\"+Inf\"} 1\n"
            "kole_h_seconds_sum 0.5\n"
            "kole_h_seconds_count 1\n");
}

TEST(Histogram, ValueOnABoundCountsInThatBucket) {
  Histogram histogram({1, 2});
  histogram.Observe(1);
  histogram.Observe(2);
  Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(1, 2, 2));
}

TEST(Histogram, SnapshotIsCumulativeWithInfLast) {
  Histogram histogram({0.1, 1, 10});
  for (double value : {0.05, 0.05, 5.0, 50.0, 500.0}) histogram.Observe(value);
  Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_THAT(snapshot.upper_bounds, ElementsAre(0.1, 1, 10));
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(2, 2, 3, 5));
  EXPECT_EQ(snapshot.count, 5u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 555.1);
}

// Regression: observing infinity converted an out-of-range double to an
// integer, which is undefined behaviour (the sanitizer build reports it).
TEST(Histogram, InfinityAndNaNAreCountedWithoutCorruptingTheSum) {
  Histogram histogram({1});
  histogram.Observe(0.5);
  histogram.Observe(INFINITY);
  histogram.Observe(NAN);
  histogram.Observe(-3);
  Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 4u);
  EXPECT_EQ(snapshot.cumulative_counts.back(), 4u);
  EXPECT_TRUE(std::isfinite(snapshot.sum));
  EXPECT_GE(snapshot.sum, 0.5);
}

// Regression: NaN compared false with every bound and landed in the first
// bucket; the Prometheus clients count it in +Inf only.
TEST(Histogram, NaNCountsOnlyInTheInfBucket) {
  Histogram histogram({1, 2});
  histogram.Observe(NAN);
  EXPECT_THAT(histogram.Read().cumulative_counts, ElementsAre(0, 0, 1));
}

TEST(Histogram, LatencyBucketsAreIncreasing) {
  std::vector<double> buckets = LatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_DOUBLE_EQ(buckets.front(), 0.0001);
  EXPECT_DOUBLE_EQ(buckets.back(), 60);
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_LT(buckets[i - 1], buckets[i]) << i;
}

TEST(MetricsRegistry, CallbackGaugeIsReadAtEachRender) {
  MetricsRegistry registry;
  std::atomic<int> calls{0};
  double value = 1.5;
  registry.AddCallbackGauge("kole_cb", "Callback.", [&] {
    ++calls;
    return value;
  });
  EXPECT_EQ(calls.load(), 0);
  EXPECT_THAT(registry.Render(), HasSubstr("\nkole_cb 1.5\n"));
  value = -2;
  EXPECT_THAT(registry.Render(), HasSubstr("\nkole_cb -2\n"));
  EXPECT_EQ(calls.load(), 2);
}

TEST(MetricsRegistry, CallbackGaugeRendersNonFiniteValues) {
  MetricsRegistry registry;
  registry.AddCallbackGauge("kole_a", "A.", [] { return INFINITY; });
  registry.AddCallbackGauge("kole_b", "B.", [] { return -INFINITY; });
  registry.AddCallbackGauge("kole_c", "C.", [] { return NAN; });
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("\nkole_a +Inf\n"));
  EXPECT_THAT(text, HasSubstr("\nkole_b -Inf\n"));
  EXPECT_THAT(text, HasSubstr("\nkole_c NaN\n"));
}

TEST(MetricsRegistry, CallbackGaugeRendersAsAGaugeWithLabels) {
  MetricsRegistry registry;
  registry.AddCallbackGauge("kole_connected", "Connected consumers.", [] { return 3.0; },
                            {{"broker", "b1"}});
  EXPECT_EQ(registry.Render(),
            "# HELP kole_connected Connected consumers.\n"
            "# TYPE kole_connected gauge\n"
            "kole_connected{broker=\"b1\"} 3\n");
}

TEST(MetricsRegistry, ConcurrentAddsSumExactly) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("kole_c_total", "C.");
  Gauge* gauge = registry.AddGauge("kole_g", "G.");
  Histogram* histogram = registry.AddHistogram("kole_h_seconds", "H.", {1});
  constexpr int kThreads = 4;
  constexpr int kAdds = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAdds; ++i) {
        counter->Add();
        gauge->Add(2);
        histogram->Observe(0.5);
      }
    });
  }
  // Rendering while the others add must not block or tear them.
  for (int i = 0; i < 20; ++i) registry.Render();
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(counter->value(), uint64_t{kThreads} * kAdds);
  EXPECT_EQ(gauge->value(), int64_t{2} * kThreads * kAdds);
  Histogram::Snapshot snapshot = histogram->Read();
  EXPECT_EQ(snapshot.count, uint64_t{kThreads} * kAdds);
  EXPECT_DOUBLE_EQ(snapshot.sum, 0.5 * kThreads * kAdds);
}

TEST(MetricsRegistry, ConcurrentRegistrationsShareOneSeries) {
  MetricsRegistry registry;
  constexpr int kThreads = 4;
  std::vector<Counter*> counters(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      counters[t] = registry.AddCounter("kole_c_total", "C.", {{"k", "v"}});
      counters[t]->Add();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (Counter* counter : counters) EXPECT_EQ(counter, counters[0]);
  EXPECT_EQ(counters[0]->value(), uint64_t{kThreads});
}

}  // namespace
}  // namespace kole::metrics
