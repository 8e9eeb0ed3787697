#pragma once

// The compact, fixed-width form in which NodeStore keeps every node, and the
// codec between it and the expanded Node (node.h).
//
// Layout: 120 bytes, no pointers, no per-node heap objects. Values that
// repeat across a fleet are BlobPool ids: the labels (a list of interned
// key=value pairs) and one "profile" that names the node-info strings,
// capacity, conditions, annotations, taints and gateway, which nodes of one
// kind share as a whole. The name lives in a ByteArena;
// machine id, system UUID and boot id, unique per node, are kept as 16 raw
// bytes when they have their usual hex or UUID form; the usual address list
// (InternalIP v4, then Hostname equal to the name) and the hostname label
// equal to the name are kept as flags, so they cost nothing. Anything
// unusual goes into the per-node `extra` blob, which typical nodes lack.
//
// The record is also the unit of the write-ahead log and of snapshots, byte
// for byte: changing it changes the on-disk format (kRecordFormatVersion).

#include <absl/functional/function_ref.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/arena.h"
#include "storage/blob_pool.h"
#include "storage/node.h"

namespace kole::storage {

inline constexpr uint32_t kRecordFormatVersion = 1;

// NodeRecord::flags bits.
enum NodeFlag : uint16_t {
  kUnschedulable = 1 << 0,
  kConnected = 1 << 1,
  kHostnameLabel = 1 << 2,    // Label kubernetes.io/hostname equals the name.
  kFastAddresses = 1 << 3,    // Addresses are [InternalIP ipv4] (+ Hostname).
  kHostnameAddress = 1 << 4,  // With kFastAddresses: a Hostname address equal to the name.
  kMachineIdHex = 1 << 5,     // machine_id holds the 32 hex digits as bytes.
  kSystemUuidBytes = 1 << 6,  // system_uuid holds a lowercase UUID as bytes.
  kSystemUuidUpper = 1 << 7,  // ... printed in upper case.
  kBootIdBytes = 1 << 8,      // boot_id holds a lowercase UUID as bytes.
  kDeleted = 1 << 9,          // Retired slot: deleted, kept while the change log needs it.
};

struct NodeRecord {
  uint64_t resource_version;
  // The version that created the node. Its UID is derived from this by a
  // keyed bijection (UidKey), so it costs 8 bytes instead of 16 and stays
  // unique: versions are never reused.
  uint64_t created_rv;
  uint32_t name;     // ByteArena offset.
  uint32_t labels;   // Blob: the ids of the key=value pairs (see InternLabels).
  uint32_t profile;  // Blob: the ids of the parts below that nodes share.
  uint32_t extra;    // Blob: unusual per-node values, usually none.
  uint32_t created_s;
  uint32_t ready_transition_s;
  uint32_t conditions_transition_s;
  uint32_t heartbeat_published_s;
  uint32_t published_sequence;
  uint32_t epoch;
  uint32_t ipv4;

  // Live liveness state: updated in place by heartbeats, never visible, never
  // persisted (grace clocks restart at process start).
  uint32_t live_sequence;
  uint32_t last_seen_s;  // Cloud monotonic seconds of the last heartbeat.

  uint8_t machine_id[16];
  uint8_t system_uuid[16];
  uint8_t boot_id[16];
  uint8_t ready;  // ConditionStatus
  uint8_t reserved;
  uint16_t flags;
};
static_assert(sizeof(NodeRecord) == 120);
static_assert(std::is_trivially_copyable_v<NodeRecord>);

// True when the visible content of two records is the same (ignores the live
// fields and the resource version).
bool SameVisibleContent(const NodeRecord& a, const NodeRecord& b);

// Blob encoding: a sequence of varint-length-prefixed strings.
void AppendBlobString(std::string& out, std::string_view value);
bool ReadBlobString(std::string_view& in, std::string_view* value);
// Up to `limit` key/value pairs from a blob, consumed from `in`.
StringPairs ReadPairs(std::string_view& in, size_t limit = SIZE_MAX);
ConditionStatus ParseConditionStatus(std::string_view text);

// The raw per-node values in their text form, written to `out`; each returns
// the length written. 16 bytes as 32 hex digits, or as a UUID (36 chars).
size_t FormatHex16(const uint8_t bytes[16], bool uuid, bool upper, char* out);
// Dotted quad, at most 15 chars.
size_t FormatIpv4(uint32_t ip, char* out);

// Turns creation versions into UIDs and back. The key makes UIDs of two
// stores differ; a store keeps its key for life (in its data directory).
class UidKey {
 public:
  UidKey(uint64_t a, uint64_t b) : a_(a), b_(b) {}
  static UidKey Random();
  uint64_t a() const { return a_; }
  uint64_t b() const { return b_; }

  // A version-4-shaped UID; distinct versions give distinct UIDs.
  Uid FromVersion(uint64_t created_rv) const;
  // The inverse; 0 for a UID this key did not make.
  uint64_t ToVersion(const Uid& uid) const;

 private:
  uint64_t a_;
  uint64_t b_;
};

// The shared parts of a node, interned together as its profile.
struct NodeProfile {
  uint32_t node_info = 0;
  uint32_t resources = 0;
  uint32_t conditions = 0;  // Ready reason and message, then device conditions.
  uint32_t annotations = 0;
  uint32_t taints = 0;
  uint32_t gateway = 0;
};

// Converts between the expanded and the compact form. Encoding interns values
// into `pool`; each id it creates is appended to `new_blobs` so the caller can
// log it before the record. The name is not encoded (the caller owns the
// arena offset); resource_version and the live fields are left zero, and
// created_rv comes from the node's UID (0 for a new node).
class NodeCodec {
 public:
  NodeCodec(BlobPool* pool, const ByteArena* names, UidKey uid_key)
      : pool_(pool), names_(names), uid_key_(uid_key) {}

  const UidKey& uid_key() const { return uid_key_; }
  const BlobPool& pool() const { return *pool_; }
  void set_uid_key(UidKey key) { uid_key_ = key; }

  NodeRecord Encode(const Node& node, std::vector<uint32_t>* new_blobs) const;
  Node Decode(const NodeRecord& record) const;

  // Whether every blob id the record holds (and every id those blobs hold)
  // names a value the pool has: a record read from disk must pass this
  // before anything decodes it.
  bool ReferencesAreValid(const NodeRecord& record) const;

  // Pieces used by selectors and renderers without a full decode.
  std::string_view Name(const NodeRecord& record) const { return names_->Get(record.name); }
  StringPairs DecodeLabels(const NodeRecord& record) const;
  // Calls `visit` for each label in key order until it returns false.
  void ForEachLabel(
      const NodeRecord& record,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> visit) const;
  // The same, with the interned id of each key=value pair; the hostname
  // label kept as a flag (equal to the name) comes with BlobPool::kNone.
  void ForEachLabelPair(
      const NodeRecord& record,
      absl::FunctionRef<bool(uint32_t id, std::string_view key, std::string_view value)> visit)
      const;
  std::optional<std::string_view> LabelValue(const NodeRecord& record, std::string_view key) const;
  std::string_view Gateway(const NodeRecord& record) const;
  NodeProfile Profile(const NodeRecord& record) const;
  uint32_t InternProfile(const NodeProfile& profile, std::vector<uint32_t>* new_blobs) const;

  // Sets the Ready condition's status, reason and message, stamping the
  // transition time when the status changes.
  void SetReady(NodeRecord& record, ConditionStatus ready, std::string_view reason,
                std::string_view message, int64_t now_s, std::vector<uint32_t>* new_blobs) const;

  // Encodes one user-owned part, for updates that change only it.
  uint32_t InternLabels(const StringPairs& labels, std::string_view name, uint16_t* flags,
                        std::vector<uint32_t>* new_blobs) const;
  uint32_t InternPairs(const StringPairs& pairs, std::vector<uint32_t>* new_blobs) const;
  uint32_t InternTaints(const std::vector<Taint>& taints, std::vector<uint32_t>* new_blobs) const;

 private:
  uint32_t Intern(std::string_view blob, std::vector<uint32_t>* new_blobs) const;

  BlobPool* pool_;
  const ByteArena* names_;
  UidKey uid_key_;
};

}  // namespace kole::storage
