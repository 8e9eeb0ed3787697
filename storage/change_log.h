#pragma once

// ChangeLog is the bounded history of node changes that feeds watches and
// gives paginated lists one consistent snapshot.
//
// Every visible change to a node gets the next resourceVersion and exactly
// one entry here, so the entry for version v sits at index v - first_rv().
// An entry costs 12 bytes; a change that replaces an earlier state also keeps
// that state (one record image, shared by the entry that made it and the entry
// that replaced it). A burst of a million registrations therefore costs 12 MB,
// a million modifications about 130 MB.
//
// State at an older version: the image an entry keeps carries its own
// resourceVersion, which names the entry before it for the same slot, so
// walking back from a record's current version reaches its state at any
// retained version in a few steps, without per-node bookkeeping.
//
// Retention: entries are kept for at least `retention` (watch resumption and
// continue tokens stay valid that long) unless the memory cap is reached
// first; the oldest go first either way. Trimming a deletion hands the slot
// back to the caller, which may then reuse it.
//
// Thread safety: none of its own. NodeStore calls mutating methods under its
// writer lock and reading methods under its reader lock.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "storage/node_record.h"

namespace kole::storage {

enum class EventType : uint8_t { kAdded = 0, kModified = 1, kDeleted = 2 };

std::string_view EventTypeName(EventType type);

struct ChangeLogOptions {
  int64_t retention_seconds = 300;
  size_t max_bytes = size_t{512} << 20;
};

class ChangeLog {
 public:
  // One retained change, with the states before and after it resolved.
  struct Change {
    uint64_t resource_version;
    EventType type;
    uint32_t slot;
    const NodeRecord* before;  // Null for kAdded.
    const NodeRecord* after;   // Null for kDeleted.
  };

  ChangeLog(ChangeLogOptions options, uint64_t next_rv);

  // The version the next Append must carry, and the oldest retained one.
  // The log is empty when first_rv() == next_rv().
  uint64_t next_rv() const { return first_rv_ + entries_.size(); }
  uint64_t first_rv() const { return first_rv_; }

  // True when every change after version `rv` is still retained, i.e. the
  // state at `rv` can be reconstructed and a watch from `rv` misses nothing.
  bool Covers(uint64_t rv) const { return rv + 1 >= first_rv_ && rv < next_rv(); }

  // Records the change that produced version `rv` of `slot`. `before` is the
  // state it replaced (null for an addition). REQUIRES: rv == next_rv().
  void Append(uint64_t rv, uint32_t slot, EventType type, const NodeRecord* before, int64_t now_s);

  // The state of `slot` at version `rv`, given its current record (which is
  // that state when it is no newer than `rv`); nullopt when the slot held no
  // node then, deleted included. REQUIRES: Covers(rv) or current.rv <= rv.
  std::optional<NodeRecord> StateAt(const NodeRecord& current, uint64_t rv) const;

  // The retained change at version `rv`, given a way to read a slot's
  // current record. REQUIRES: first_rv() <= rv < next_rv().
  Change At(uint64_t rv, const std::function<const NodeRecord&(uint32_t)>& current) const;

  // Drops entries older than the retention period, and more while over the
  // memory cap, but none after version `keep_after` (a snapshot in progress
  // reads the state at that version). Calls `freed_slot` for each deletion
  // dropped.
  // Returns how many entries the memory cap (not age) took.
  size_t Trim(int64_t now_s, uint64_t keep_after, const std::function<void(uint32_t)>& freed_slot);

  // Drops everything (after a restart the history does not survive).
  void Reset(uint64_t next_rv);

  size_t size() const { return entries_.size(); }
  size_t memory_bytes() const;
  int64_t oldest_age_seconds(int64_t now_s) const;

 private:
  // Slot, event type and image flags share one word: slots stay below 2^28
  // (NodeStore's chunked record array holds 2^32 records, but the name arena's
  // 4 GiB of 32-bit offsets runs out long before 2^28 nodes).
  static constexpr uint32_t kSlotBits = 28;
  static constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1;
  static constexpr uint32_t kHasBefore = 1u << 28;
  static constexpr uint32_t kHasAfter = 1u << 29;
  static constexpr uint32_t kTypeShift = 30;

  struct Entry {
    uint32_t meta;    // slot | flags | type << kTypeShift
    uint32_t before;  // Image id, valid with kHasBefore.
    uint32_t after;   // Image id, valid with kHasAfter.

    uint32_t slot() const { return meta & kSlotMask; }
    EventType type() const { return static_cast<EventType>(meta >> kTypeShift); }
  };
  static_assert(sizeof(Entry) == 12);

  // A coarse clock: the first version appended in each second.
  struct TimeMark {
    uint64_t rv;
    int64_t time_s;
  };

  const NodeRecord& Image(uint32_t id) const { return images_[id - image_base_]; }
  void PopFront(const std::function<void(uint32_t)>& freed_slot);

  ChangeLogOptions options_;
  uint64_t first_rv_;
  std::deque<Entry> entries_;
  std::deque<NodeRecord> images_;
  uint32_t image_base_ = 0;  // Id of images_.front(); ids wrap modulo 2^32.
  std::deque<TimeMark> marks_;
};

}  // namespace kole::storage
