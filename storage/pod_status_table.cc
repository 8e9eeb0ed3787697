#include "storage/pod_status_table.h"

#include <cstring>

namespace kole::storage {

PodStatusCell PodStatusTable::Empty() {
  PodStatusCell cell;
  std::memset(&cell, 0, sizeof(cell));
  return cell;
}

void PodStatusTable::Set(uint32_t workload, uint32_t node_slot, PodStatusCell cell) {
  std::unique_ptr<Column>& column = columns_[workload];
  if (column == nullptr) column = std::make_unique<Column>();

  // Columns grow to the highest slot that reported; slots below it that never
  // reported hold empty cells (one page of them at most per 256 nodes).
  while (column->cells.size() <= node_slot) column->cells.push_back(Empty());
  PodStatusCell& stored = column->cells[node_slot];
  if (!(stored.flags & kPodPresent)) ++column->present;
  stored = cell;
  stored.flags |= kPodPresent;
}

std::optional<PodStatusCell> PodStatusTable::Get(uint32_t workload, uint32_t node_slot) const {
  auto it = columns_.find(workload);
  if (it == columns_.end() || node_slot >= it->second->cells.size()) return std::nullopt;
  const PodStatusCell& cell = it->second->cells[node_slot];
  if (!(cell.flags & kPodPresent)) return std::nullopt;
  return cell;
}

void PodStatusTable::Clear(uint32_t workload, uint32_t node_slot) {
  auto it = columns_.find(workload);
  if (it == columns_.end() || node_slot >= it->second->cells.size()) return;
  PodStatusCell& cell = it->second->cells[node_slot];
  if (cell.flags & kPodPresent) --it->second->present;
  cell = Empty();
}

void PodStatusTable::DropWorkload(uint32_t workload) { columns_.erase(workload); }

void PodStatusTable::ClearNode(uint32_t node_slot) {
  for (auto& [workload, column] : columns_) Clear(workload, node_slot);
}

size_t PodStatusTable::CountPresent(uint32_t workload) const {
  auto it = columns_.find(workload);
  return it == columns_.end() ? 0 : it->second->present;
}

size_t PodStatusTable::memory_bytes() const {
  size_t bytes = 0;
  for (const auto& [workload, column] : columns_) bytes += column->cells.allocated_bytes();
  return bytes;
}

}  // namespace kole::storage
