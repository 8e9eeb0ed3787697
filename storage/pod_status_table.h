#pragma once

// PodStatusTable keeps the status each node reports for the pod of one
// workload (an EdgeDaemonSet) as a column of small fixed-width cells indexed by
// the node's slot in NodeStore. A million nodes running one workload cost
// 16 MB, and no pod is an object of its own: the API derives Pod objects from
// the workload's template, the node and this cell.
//
// The cell layout is deliberately small and versioned rather than final: the
// pod columns kubectl prints (READY x/y, STATUS reason, RESTARTS with the last
// restart time, IP) fit in it today, and the workload issue may widen it; the
// table does not care what the cell holds beyond its size.
//
// Thread safety: none of its own; NodeStore guards it with its lock (writers
// exclusive, readers shared). Ownership: the store owns its tables.

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "storage/arena.h"

namespace kole::storage {

enum class PodPhase : uint8_t {
  kPending = 0,
  kRunning = 1,
  kSucceeded = 2,
  kFailed = 3,
  kUnknown = 4
};

// What a node reports for one pod. 16 bytes.
struct PodStatusCell {
  uint32_t revision;         // The pod revision the node runs.
  uint32_t last_restart_s;   // Unix seconds of the last container restart, 0 if none.
  uint16_t restarts;         // Sum of container restarts, saturating.
  uint8_t phase;             // PodPhase
  uint8_t ready_containers;  // READY x/...
  uint8_t containers;        // READY .../y
  uint8_t reason;            // Index into a small table of waiting/terminated reasons.
  uint8_t flags;             // kPodHostNetwork: the pod IP is the node's InternalIP.
  uint8_t reserved;
};
static_assert(sizeof(PodStatusCell) == 16);

inline constexpr uint8_t kPodPresent = 1 << 0;
inline constexpr uint8_t kPodHostNetwork = 1 << 1;

class PodStatusTable {
 public:
  // Sets the cell of `node_slot` for `workload`, creating the column on first
  // use. The cell is marked present.
  void Set(uint32_t workload, uint32_t node_slot, PodStatusCell cell);

  // The cell, or nullopt when the node has reported nothing for the workload.
  std::optional<PodStatusCell> Get(uint32_t workload, uint32_t node_slot) const;

  // Forgets one node's pod (it stopped matching) or a whole workload (deleted).
  void Clear(uint32_t workload, uint32_t node_slot);
  void DropWorkload(uint32_t workload);
  // Forgets every pod of a node whose slot is about to be reused.
  void ClearNode(uint32_t node_slot);

  // How many nodes have reported a pod of `workload`.
  size_t CountPresent(uint32_t workload) const;

  size_t memory_bytes() const;

 private:
  struct Column {
    ChunkedArray<PodStatusCell, 16384, 65536> cells;  // Index = node slot.
    size_t present = 0;
  };
  static PodStatusCell Empty();

  absl::flat_hash_map<uint32_t, std::unique_ptr<Column>> columns_;
};

}  // namespace kole::storage
