#include "storage/blob_pool.h"

#include <fmt/format.h>

namespace kole::storage {

BlobPool::BlobPool() {
  // Id 0 stands for "none" and holds the empty blob, so Get(0) is harmless.
  blobs_.push_back(new std::string());
}

BlobPool::~BlobPool() {
  for (size_t i = 0; i < blobs_.size(); ++i) delete blobs_[i];
}

uint32_t BlobPool::Intern(std::string_view blob, bool* created) {
  if (blob.empty()) {
    *created = false;
    return kNone;
  }
  auto it = index_.find(blob);
  if (it != index_.end()) {
    *created = false;
    return it->second;
  }
  auto* stored = new std::string(blob);
  uint32_t id = static_cast<uint32_t>(blobs_.push_back(stored));
  index_.emplace(std::string_view(*stored), id);
  bytes_ += stored->capacity() + sizeof(std::string) + 32;
  *created = true;
  return id;
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
