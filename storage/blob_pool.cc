#include "storage/blob_pool.h"

#include <absl/hash/hash.h>
#include <fmt/format.h>

namespace kole::storage {

BlobPool::BlobPool() {
  // Id 0 stands for "none" and holds the empty blob, so Get(0) is harmless.
  blobs_.push_back(Store(""));
}

BlobPool::~BlobPool() = default;

size_t BlobPool::IdHash::operator()(uint32_t id) const {
  return absl::Hash<std::string_view>{}(pool->Get(id));
}

size_t BlobPool::IdHash::operator()(std::string_view blob) const {
  return absl::Hash<std::string_view>{}(blob);
}

const char* BlobPool::Store(std::string_view blob) {
  size_t need = sizeof(uint32_t) + blob.size();
  char* at;
  if (need > kChunkBytes / 16) {
    // Large values get their own allocation rather than wasting a chunk's tail.
    chunks_.push_back(std::make_unique<char[]>(need));
    at = chunks_.back().get();
    // Keep filling the previous chunk: move it back to the end.
    if (chunks_.size() >= 2 && chunk_used_ < kChunkBytes) {
      std::swap(chunks_[chunks_.size() - 1], chunks_[chunks_.size() - 2]);
    }
  } else {
    if (chunk_used_ + need > kChunkBytes) {
      chunks_.push_back(std::make_unique<char[]>(kChunkBytes));
      chunk_used_ = 0;
      bytes_ += kChunkBytes;
    }
    at = chunks_.back().get() + chunk_used_;
    chunk_used_ += need;
  }
  uint32_t length = static_cast<uint32_t>(blob.size());
  std::memcpy(at, &length, sizeof(length));
  std::memcpy(at + sizeof(length), blob.data(), blob.size());
  return at;
}

uint32_t BlobPool::Intern(std::string_view blob, bool* created) {
  if (blob.empty()) {
    *created = false;
    return kNone;
  }
  auto it = index_.find(blob);
  if (it != index_.end()) {
    *created = false;
    return *it;
  }
  uint32_t id = static_cast<uint32_t>(blobs_.push_back(Store(blob)));
  index_.insert(id);
  if (blob.size() + sizeof(uint32_t) > kChunkBytes / 16) bytes_ += blob.size() + sizeof(uint32_t);
  *created = true;
  return id;
}

size_t BlobPool::memory_bytes() const {
  return bytes_ + blobs_.allocated_bytes() + index_.capacity() * (sizeof(uint32_t) + 1);
}

absl::Status BlobPool::Define(uint32_t id, std::string_view blob) {
  if (id != size()) {
    return absl::DataLossError(
        fmt::format("interned value {} is out of order: expected id {}", id, size()));
  }
  bool created = false;
  Intern(blob, &created);
  if (!created) {
    // The same bytes under two ids would mean the log and the pool disagree.
    return absl::DataLossError(fmt::format("interned value {} repeats an earlier one", id));
  }
  return absl::OkStatus();
}

}  // namespace kole::storage
