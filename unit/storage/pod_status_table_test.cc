#include "storage/pod_status_table.h"

#include <gtest/gtest.h>

namespace kole::storage {
namespace {

PodStatusCell Running(uint32_t revision, uint16_t restarts = 0) {
  PodStatusCell cell{};
  cell.revision = revision;
  cell.phase = static_cast<uint8_t>(PodPhase::kRunning);
  cell.ready_containers = 1;
  cell.containers = 1;
  cell.restarts = restarts;
  return cell;
}

TEST(PodStatusTable, UnreportedPodIsAbsent) {
  PodStatusTable table;
  EXPECT_FALSE(table.Get(1, 0).has_value());
  table.Set(1, 10, Running(3));
  EXPECT_FALSE(table.Get(1, 9).has_value());
  EXPECT_FALSE(table.Get(2, 10).has_value());
}

TEST(PodStatusTable, SetThenGetReturnsTheCell) {
  PodStatusTable table;
  table.Set(7, 42, Running(5, 2));
  auto cell = table.Get(7, 42);
  ASSERT_TRUE(cell.has_value());
  EXPECT_EQ(cell->revision, 5u);
  EXPECT_EQ(cell->restarts, 2u);
  EXPECT_EQ(cell->phase, static_cast<uint8_t>(PodPhase::kRunning));
}

TEST(PodStatusTable, CountsPresentPodsPerWorkload) {
  PodStatusTable table;
  for (uint32_t slot = 0; slot < 1000; slot += 2) table.Set(1, slot, Running(1));
  table.Set(1, 0, Running(2));  // An update is not a new pod.
  table.Set(2, 5, Running(1));
  EXPECT_EQ(table.CountPresent(1), 500u);
  EXPECT_EQ(table.CountPresent(2), 1u);
  table.Clear(1, 0);
  EXPECT_EQ(table.CountPresent(1), 499u);
  EXPECT_FALSE(table.Get(1, 0).has_value());
}

TEST(PodStatusTable, ClearNodeForgetsItInEveryWorkload) {
  PodStatusTable table;
  table.Set(1, 3, Running(1));
  table.Set(2, 3, Running(1));
  table.Set(2, 4, Running(1));
  table.ClearNode(3);
  EXPECT_FALSE(table.Get(1, 3).has_value());
  EXPECT_FALSE(table.Get(2, 3).has_value());
  EXPECT_TRUE(table.Get(2, 4).has_value());
}

TEST(PodStatusTable, DropWorkloadForgetsAllItsPods) {
  PodStatusTable table;
  table.Set(1, 3, Running(1));
  table.DropWorkload(1);
  EXPECT_FALSE(table.Get(1, 3).has_value());
  EXPECT_EQ(table.CountPresent(1), 0u);
}

TEST(PodStatusTable, AMillionNodesCostSixteenBytesEach) {
  PodStatusTable table;
  for (uint32_t slot = 0; slot < 1'000'000; ++slot) table.Set(1, slot, Running(1));
  EXPECT_LE(table.memory_bytes(), 1'000'000 * sizeof(PodStatusCell) + (2u << 20));
}

}  // namespace
}  // namespace kole::storage
