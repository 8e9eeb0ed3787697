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

#include <absl/container/flat_hash_set.h>
#include <absl/status/status.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

  // REQUIRES: id < size().
  std::string_view Get(uint32_t id) const {
    const char* at = blobs_[id];
    uint32_t length;
    std::memcpy(&length, at, sizeof(length));
    return std::string_view(at + sizeof(length), length);
  }

  // One more than the largest id.
  uint32_t size() const { return static_cast<uint32_t>(blobs_.size()); }

  size_t memory_bytes() const;

 private:
  // Blobs live in chunks as a 4-byte length and the bytes; an id maps to its
  // blob's address, and the index holds ids, hashing the bytes they name.
  struct IdHash {
    using is_transparent = void;
    const BlobPool* pool;
    size_t operator()(uint32_t id) const;
    size_t operator()(std::string_view blob) const;
  };
  struct IdEq {
    using is_transparent = void;
    const BlobPool* pool;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const { return pool->Get(a) == b; }
    bool operator()(std::string_view a, uint32_t b) const { return a == pool->Get(b); }
  };
  static constexpr size_t kChunkBytes = 1 << 20;

  const char* Store(std::string_view blob);

  ChunkedArray<const char*, 4096, 65536> blobs_;
  absl::flat_hash_set<uint32_t, IdHash, IdEq> index_{0, IdHash{this}, IdEq{this}};
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t chunk_used_ = kChunkBytes;
  size_t bytes_ = 0;
};

}  // namespace kole::storage
