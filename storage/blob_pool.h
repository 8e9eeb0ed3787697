#pragma once

// BlobPool interns the byte strings that repeat across a fleet: encoded label
// sets, node-info tuples, resource lists, taint sets, condition sets. A
// million nodes typically share a few thousand of each, so a node record holds
// a 32-bit id instead of the value.
//
// Ids are dense, start at 1 (0 means "none") and are never reused or freed:
// the pool grows with the number of distinct values seen since start-up. Ids
// are durable: the write-ahead log records each new blob with its id and
// snapshots keep the ids, so a record written to disk refers to the same
// value after a restart.
//
// Thread safety: Intern() and Define() need the caller's writer lock. Get()
// may run concurrently with them for any id below a size() the caller has
// observed; a returned view stays valid for the pool's life.

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/arena.h"

namespace kole::storage {

class BlobPool {
 public:
  static constexpr uint32_t kNone = 0;

  BlobPool();
  ~BlobPool();
  BlobPool(const BlobPool&) = delete;
  BlobPool& operator=(const BlobPool&) = delete;

  // Returns the id of `blob`, adding it if new. `*created` tells which.
  uint32_t Intern(std::string_view blob, bool* created);

  // Adds `blob` under a given id while replaying the log or a snapshot.
  // Fails with DataLoss unless id == size() (ids are replayed in order).
  absl::Status Define(uint32_t id, std::string_view blob);

  // REQUIRES: 0 < id < size().
  std::string_view Get(uint32_t id) const { return *blobs_[id]; }

  // One more than the largest id.
  uint32_t size() const { return static_cast<uint32_t>(blobs_.size()); }

  size_t memory_bytes() const { return bytes_; }

 private:
  ChunkedArray<const std::string*, 4096, 65536> blobs_;
  absl::flat_hash_map<std::string_view, uint32_t> index_;
  size_t bytes_ = 0;
};

}  // namespace kole::storage
