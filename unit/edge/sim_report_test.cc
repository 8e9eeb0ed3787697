#include "edge/sim_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kole::edge {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

TEST(SimReport, FigureValuesPrintWholeNumbersWhole) {
  EXPECT_EQ(FigureValue(1000000), "1000000");
  EXPECT_EQ(FigureValue(21.34), "21.3");
  EXPECT_EQ(FigureValue(123456.7), "123457");
  EXPECT_EQ(FigureValue(0.0434), "0.0434");
  EXPECT_EQ(FigureValue(1.0 / 0.0), "0");
}

TEST(SimReport, FigureLineHasTheDesignForm) {
  EXPECT_EQ(FigureLine("sim.registered", 1000000, "nodes"), "figure sim.registered 1000000 nodes");
}

TEST(SimReport, FigureLinesNameEveryHeadlineFigure) {
  SimSummary summary;
  summary.counters.nodes = 1000;
  summary.counters.connections = 4;
  summary.counters.registered = 1000;
  summary.counters.registrations_retried = 12;
  summary.register_seconds = 2.5;
  summary.heartbeats_per_second = 100;
  summary.messages_per_second = 8;
  std::vector<std::string> lines = FigureLines(summary);
  EXPECT_THAT(lines, Contains("figure sim.registered 1000 nodes"));
  EXPECT_THAT(lines, Contains("figure sim.register_seconds 2.5 s"));
  EXPECT_THAT(lines, Contains("figure sim.nodes_per_connection 250 nodes"));
  EXPECT_THAT(lines, Contains("figure sim.registrations_retried 12 messages"));
  EXPECT_THAT(lines, Contains("figure sim.heartbeats_per_second 100 1/s"));
  EXPECT_THAT(lines, Contains("figure sim.messages_per_second 8 1/s"));
  for (const std::string& line : lines) {
    EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 3) << line;
  }
}

TEST(SimReport, RegisterSecondsOnlyWhenEveryNodeRegistered) {
  SimSummary summary;
  summary.register_seconds = -1;
  for (const std::string& line : FigureLines(summary)) {
    EXPECT_THAT(line, ::testing::Not(HasSubstr("register_seconds")));
  }
}

TEST(SimReport, ProgressLineShowsRatesBetweenSnapshots) {
  SimCounters before{.nodes = 10, .heartbeats_sent = 100, .messages_sent = 10};
  SimCounters now = before;
  now.registered = 7;
  now.connections = 2;
  now.connections_up = 1;
  now.heartbeats_sent = 300;
  now.messages_sent = 30;
  std::string line = ProgressLine(now, before, 2.0);
  EXPECT_THAT(line, HasSubstr("registered 7/10"));
  EXPECT_THAT(line, HasSubstr("heartbeats/s 100"));
  EXPECT_THAT(line, HasSubstr("messages/s 10"));
  EXPECT_THAT(line, HasSubstr("connections 1/2 up"));
}

TEST(SimReport, StatusTextIsKeyValueLines) {
  SimCounters counters{.nodes = 5, .registered = 5, .accepted = 4};
  std::string text = StatusText(counters, true);
  EXPECT_THAT(text, HasSubstr("\nregistered=5\naccepted=4\n"));
  EXPECT_THAT(text, HasSubstr("allRegistered=true\n"));
  EXPECT_THAT(text, ::testing::StartsWith("nodes=5\n"));
}

}  // namespace
}  // namespace kole::edge
