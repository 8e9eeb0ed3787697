#include "storage/change_log.h"

namespace kole::storage {

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
  }
  return "UNKNOWN";
}

ChangeLog::ChangeLog(ChangeLogOptions options, uint64_t next_rv)
    : options_(options), first_rv_(next_rv) {}

void ChangeLog::Append(uint64_t rv, uint32_t slot, EventType type, const NodeRecord* before,
                       int64_t now_s) {
  if (rv != next_rv()) {
    KOLE_LOG(Fatal, "Change log out of order", "resourceVersion", rv, "expected", next_rv());
  }

  if (slot > kSlotMask) KOLE_LOG(Fatal, "Slot out of range for the change log", "slot", slot);
  Entry entry{slot | (static_cast<uint32_t>(type) << kTypeShift), 0, 0};
  if (before != nullptr) {
    uint32_t id = image_base_ + static_cast<uint32_t>(images_.size());
    images_.push_back(*before);
    entry.meta |= kHasBefore;
    entry.before = id;

    // The replaced state is also the "after" of the change that made it.
    uint64_t previous = before->resource_version;
    if (previous >= first_rv_ && previous < rv) {
      Entry& maker = entries_[previous - first_rv_];
      maker.meta |= kHasAfter;
      maker.after = id;
    }
  }
  entries_.push_back(entry);

  if (marks_.empty() || marks_.back().time_s != now_s) marks_.push_back({rv, now_s});
}

std::optional<NodeRecord> ChangeLog::StateAt(const NodeRecord& current, uint64_t rv) const {
  const NodeRecord* state = &current;
  while (state->resource_version > rv) {
    const Entry& entry = entries_[state->resource_version - first_rv_];
    if (!(entry.meta & kHasBefore)) return std::nullopt;  // Added after rv.
    state = &Image(entry.before);
  }
  if (state->flags & kDeleted) return std::nullopt;
  return *state;
}

ChangeLog::Change ChangeLog::At(uint64_t rv,
                                const std::function<const NodeRecord&(uint32_t)>& current) const {
  const Entry& entry = entries_[rv - first_rv_];
  Change change{rv, entry.type(), entry.slot(), nullptr, nullptr};
  if (entry.meta & kHasBefore) change.before = &Image(entry.before);
  if (change.type != EventType::kDeleted) {
    // Not yet superseded: the slot still holds this version.
    change.after = (entry.meta & kHasAfter) ? &Image(entry.after) : &current(entry.slot());
  }
  return change;
}

void ChangeLog::PopFront(const std::function<void(uint32_t)>& freed_slot) {
  const Entry& entry = entries_.front();
  if (entry.meta & kHasBefore) {
    // Images are created in entry order, one per entry that has a before.
    images_.pop_front();
    ++image_base_;
  }
  if (entry.type() == EventType::kDeleted) freed_slot(entry.slot());
  entries_.pop_front();
  ++first_rv_;
  while (marks_.size() > 1 && marks_[1].rv <= first_rv_) marks_.pop_front();
}

size_t ChangeLog::Trim(int64_t now_s, uint64_t keep_after,
                       const std::function<void(uint32_t)>& freed_slot) {
  auto may_pop = [&] { return !entries_.empty() && first_rv_ <= keep_after; };
  size_t capped = 0;
  int64_t horizon = now_s - options_.retention_seconds;
  while (may_pop() && memory_bytes() > options_.max_bytes) {
    if (marks_.empty() || marks_.front().time_s >= horizon) ++capped;
    PopFront(freed_slot);
  }

  while (may_pop() && !marks_.empty() && marks_.front().time_s < horizon) {
    // Drop whole seconds: everything before the next mark is that old.
    uint64_t end = marks_.size() > 1 ? marks_[1].rv : next_rv();
    while (first_rv_ < end && may_pop()) PopFront(freed_slot);
    if (entries_.empty()) marks_.clear();
    if (first_rv_ < end) break;  // Held back by keep_after.
  }
  return capped;
}

void ChangeLog::Reset(uint64_t next_rv) {
  entries_.clear();
  images_.clear();
  marks_.clear();
  image_base_ = 0;
  first_rv_ = next_rv;
}

size_t ChangeLog::memory_bytes() const {
  return entries_.size() * sizeof(Entry) + images_.size() * sizeof(NodeRecord) +
         marks_.size() * sizeof(TimeMark);
}

int64_t ChangeLog::oldest_age_seconds(int64_t now_s) const {
  return marks_.empty() ? 0 : now_s - marks_.front().time_s;
}

}  // namespace kole::storage
