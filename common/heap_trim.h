#pragma once

// Gives memory that the C allocator holds free back to the operating system.
//
// Why: glibc's malloc returns freed memory of a thread's arena to the system
// only from the top of that arena's heaps. A registration burst allocates
// each decoded registration on the MQTT client's receive thread and frees it
// on the store's apply thread once it is durable; afterwards the receive
// thread's arena is nearly empty but stays resident, pinned by a few live
// chunks (measured: 240 MB kept after 100,000 registrations, 385 MB after a
// million, with about 1 MB in use; docs/known-issues.md). malloc_trim(0)
// releases the free pages of every arena, so kole-apiserver calls it
// periodically; it costs milliseconds and returns nothing when nothing
// piled up.
//
// Thread safety: Trim() may be called from any thread; calls serialise in
// the allocator.

#include <cstdint>

#include "common/metrics.h"

namespace kole {

// The process's resident set in bytes (/proc/self/statm); 0 if unreadable.
int64_t ResidentBytes();

class HeapTrimmer {
 public:
  // Registers kole_process_heap_trims_total and
  // kole_process_heap_released_bytes_total on `registry`, which must outlive
  // the trimmer.
  explicit HeapTrimmer(metrics::MetricsRegistry* registry);

  // Trims now. Returns the resident bytes the process gave back (0 when its
  // resident set did not fall). Logs at V(2) when that was a lot.
  int64_t Trim();

 private:
  metrics::Counter* trims_;
  metrics::Counter* released_bytes_;
};

}  // namespace kole
