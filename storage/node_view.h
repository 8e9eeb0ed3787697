#pragma once

// NodeView reads one node in its compact form, where it lies, without
// expanding it into a Node: a list of a million nodes rendered through views
// allocates nothing per node, where expanding each one costs dozens of small
// strings (docs/benchmarks.md, API figures).
//
//   store->ListEachView(options, [&](const NodeView& node) {
//     out += node.name();
//     ...
//   }, &result);
//
// Values that many nodes share (node-info strings, capacity and allocatable,
// condition reasons and messages, annotations, taints, the gateway) come with
// an id: within one store, equal ids mean equal values for the store's whole
// life, so a renderer may keep what it made of a value by its id and reuse it
// for every node that shares it. Per-node values (name, UID, times, labels,
// machine and boot ids, addresses) are read directly.
//
// Ownership: a view borrows a record copy and the store's interned values; it
// is valid only inside the ListEachView() callback that received it. The
// string_views it returns live as long as the store.
//
// Thread safety: a view is read by one thread; any number of views of one
// store may be read concurrently, and concurrently with writes to the store.

#include <absl/functional/function_ref.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/node.h"

namespace kole::storage {

class NodeCodec;
struct NodeRecord;

// The label a node carries as kubernetes.io/hostname.
inline constexpr std::string_view kHostnameLabelKey = "kubernetes.io/hostname";

class NodeView {
 public:
  // Ids of the shared parts of a node; equal ids, equal values.
  struct SharedIds {
    uint32_t node_info = 0;   // NodeInfo except machine, system and boot ids.
    uint32_t resources = 0;   // capacity and allocatable.
    uint32_t conditions = 0;  // Ready reason and message, device conditions.
    uint32_t annotations = 0;
    uint32_t taints = 0;
    uint32_t gateway = 0;
  };

  // Machine, system and boot ids are at most this long in their usual form;
  // longer ones are passed through as they were reported.
  static constexpr size_t kIdBufferSize = 40;

  NodeView(const NodeCodec& codec, const NodeRecord& record) : codec_(codec), record_(record) {}

  std::string_view name() const;
  Uid uid() const;
  uint64_t resource_version() const;
  int64_t creation_timestamp() const;
  bool unschedulable() const;

  ConditionStatus ready() const;
  int64_t ready_transition_time() const;
  int64_t conditions_transition_time() const;
  int64_t last_heartbeat_time() const;

  bool connected() const;
  uint32_t epoch() const;
  uint64_t sequence() const;
  int64_t last_report_time() const;

  // Labels in key order (the hostname label included), until `visit`
  // returns false.
  void ForEachLabel(
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> visit) const;

  // The same, with an id per key=value pair that nodes share (equal ids,
  // equal pairs); 0 for a pair that is the node's own (its hostname label).
  void ForEachLabelPair(
      absl::FunctionRef<bool(uint32_t id, std::string_view key, std::string_view value)> visit)
      const;

  // status.addresses in order.
  void ForEachAddress(
      absl::FunctionRef<void(std::string_view type, std::string_view address)> visit) const;

  // nodeInfo's per-node ids. The result may point into `buffer`.
  std::string_view machine_id(char (&buffer)[kIdBufferSize]) const;
  std::string_view system_uuid(char (&buffer)[kIdBufferSize]) const;
  std::string_view boot_id(char (&buffer)[kIdBufferSize]) const;

  // The shared parts: their ids, and each decoded (this allocates; callers
  // that render many nodes decode each id once).
  SharedIds shared_ids() const;
  // NodeInfo with the shared strings only: the three ids are left empty.
  NodeInfo SharedNodeInfo() const;
  void Resources(StringPairs* capacity, StringPairs* allocatable) const;
  void Conditions(std::string* ready_reason, std::string* ready_message,
                  std::vector<DeviceCondition>* conditions) const;
  StringPairs Annotations() const;
  std::vector<Taint> Taints() const;
  std::string_view gateway() const;

  // The node expanded, as NodeStore::Get() returns it.
  Node ToNode() const;

 private:
  const NodeCodec& codec_;
  const NodeRecord& record_;
};

}  // namespace kole::storage
