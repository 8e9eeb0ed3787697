#pragma once

// Append-only containers with stable addresses, the building blocks of the
// compact store.
//
// Both grow in fixed-size chunks reached through a directory that is
// allocated once and never moves, so growing never copies what is already
// there (no stall at a million records) and an element, once published, stays
// at the same address for the container's life.
//
// Thread safety: one writer at a time (the caller's lock). Readers may access
// any index below a size they observed through the caller's lock, or through
// size() (acquire), while the writer appends: appends never touch published
// elements or the directory slots readers use.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "common/log.h"

namespace kole::storage {

// A vector of trivially copyable T with stable element addresses.
// Capacity is kChunkSize * kMaxChunks elements.
template <typename T, size_t kChunkSize = 65536, size_t kMaxChunks = 65536>
class ChunkedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ChunkedArray() : chunks_(std::make_unique<std::atomic<T*>[]>(kMaxChunks)) {}
  ~ChunkedArray() {
    for (size_t i = 0; i < kMaxChunks && chunks_[i].load() != nullptr; ++i) {
      delete[] chunks_[i].load();
    }
  }
  ChunkedArray(const ChunkedArray&) = delete;
  ChunkedArray& operator=(const ChunkedArray&) = delete;

  static constexpr size_t capacity() { return kChunkSize * kMaxChunks; }
  static constexpr size_t chunk_size() { return kChunkSize; }

  size_t size() const { return size_.load(std::memory_order_acquire); }

  // Appends a value and returns its index. REQUIRES: size() < capacity().
  size_t push_back(const T& value) {
    size_t index = size_.load(std::memory_order_relaxed);
    if (index >= capacity()) {
      KOLE_LOG(Fatal, "Chunked array is full", "capacity", capacity());
    }
    size_t chunk = index / kChunkSize;
    T* base = chunks_[chunk].load(std::memory_order_relaxed);
    if (base == nullptr) {
      // Left uninitialised on purpose: pages are touched as elements are
      // written, so resident memory follows the element count.
      base = new T[kChunkSize];
      chunks_[chunk].store(base, std::memory_order_release);
    }
    base[index % kChunkSize] = value;
    size_.store(index + 1, std::memory_order_release);
    return index;
  }

  T& operator[](size_t index) {
    return chunks_[index / kChunkSize].load(std::memory_order_acquire)[index % kChunkSize];
  }
  const T& operator[](size_t index) const {
    return chunks_[index / kChunkSize].load(std::memory_order_acquire)[index % kChunkSize];
  }

  // The contiguous run of elements starting at `index` within its chunk,
  // clipped to `count` and to size(). Used to copy records in bulk.
  const T* RunAt(size_t index, size_t* count) const {
    size_t in_chunk = kChunkSize - index % kChunkSize;
    size_t left = size() - index;
    *count = std::min({*count, in_chunk, left});
    return &(*this)[index];
  }

  size_t allocated_bytes() const {
    return (size() + kChunkSize - 1) / kChunkSize * kChunkSize * sizeof(T) +
           kMaxChunks * sizeof(std::atomic<T*>);
  }

 private:
  std::unique_ptr<std::atomic<T*>[]> chunks_;
  std::atomic<size_t> size_{0};
};

// An append-only store of short byte strings addressed by a 32-bit offset.
// Each string is stored with a one-byte length prefix, so it holds strings of
// at most 255 bytes (node names are at most 253), and never straddles a chunk.
class ByteArena {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;
  static constexpr size_t kMaxChunks = 4096;  // 4 GiB of offsets.
  static constexpr size_t kMaxStringBytes = 255;

  ByteArena() : chunks_(std::make_unique<std::atomic<char*>[]>(kMaxChunks)) {}
  ~ByteArena() {
    for (size_t i = 0; i < kMaxChunks && chunks_[i].load() != nullptr; ++i) {
      delete[] chunks_[i].load();
    }
  }
  ByteArena(const ByteArena&) = delete;
  ByteArena& operator=(const ByteArena&) = delete;

  // Appends `value` and returns its offset. REQUIRES: value.size() <= 255.
  uint32_t Append(std::string_view value) {
    size_t used = used_.load(std::memory_order_relaxed);
    size_t need = value.size() + 1;
    if (used % kChunkBytes + need > kChunkBytes) {
      used = (used / kChunkBytes + 1) * kChunkBytes;
    }
    size_t chunk = used / kChunkBytes;
    if (chunk >= kMaxChunks) {
      KOLE_LOG(Fatal, "Name arena is full", "bytes", used);
    }
    char* base = chunks_[chunk].load(std::memory_order_relaxed);
    if (base == nullptr) {
      base = new char[kChunkBytes];
      chunks_[chunk].store(base, std::memory_order_release);
    }
    char* at = base + used % kChunkBytes;
    at[0] = static_cast<char>(value.size());
    std::memcpy(at + 1, value.data(), value.size());
    used_.store(used + need, std::memory_order_release);
    return static_cast<uint32_t>(used);
  }

  std::string_view Get(uint32_t offset) const {
    const char* at =
        chunks_[offset / kChunkBytes].load(std::memory_order_acquire) + offset % kChunkBytes;
    return std::string_view(at + 1, static_cast<unsigned char>(at[0]));
  }

  size_t used_bytes() const { return used_.load(std::memory_order_acquire); }

 private:
  std::unique_ptr<std::atomic<char*>[]> chunks_;
  std::atomic<size_t> used_{0};
};

}  // namespace kole::storage
