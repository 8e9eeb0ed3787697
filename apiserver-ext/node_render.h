#pragma once

// NodeRenderer writes nodes of a list straight from the store's views
// (storage/node_view.h), in exactly the bytes AppendNodeJson,
// AppendNodeMetadataJson and AppendNodeTableRow write for the expanded node.
//
// Why: a list of a million nodes spent most of its time expanding each node
// into dozens of small strings and escaping the same node-info, capacity and
// condition text again for every node. The renderer keeps the JSON it made of
// each shared value (by the id the store interned it under) and writes only
// what is the node's own: name, UID, times, labels, ids and addresses.
//
// Ownership and lifetime: a renderer belongs to one response. Its caches
// hold at most a bounded number of fragments per kind (they start over when
// full), and ids are only meaningful within one store, so a renderer must
// not be shared between stores.
//
// Thread safety: none; one renderer per thread.

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <string>
#include <vector>

#include "apiserver-ext/table.h"
#include "storage/node_view.h"

namespace kole::apiserver {

class NodeRenderer {
 public:
  // The same bytes as AppendNodeJson(node.ToNode(), out).
  void AppendJson(const storage::NodeView& node, std::string& out);
  // The same bytes as AppendNodeMetadataJson(node.ToNode(), out).
  void AppendMetadataJson(const storage::NodeView& node, std::string& out);
  // The same bytes as AppendNodeTableRow(node.ToNode(), now, include, out).
  void AppendTableRow(const storage::NodeView& node, int64_t now, IncludeObject include,
                      std::string& out);

 private:
  // A cache starts over past this many entries: fleets share a few hundred
  // values of each kind, and a pathological one must not grow a response's
  // memory without bound.
  static constexpr size_t kMaxCached = 1 << 16;

  // The conditions blob as JSON pieces around the per-node times.
  struct ConditionFragments {
    // Per device condition: {"type":..,"status":..,"lastHeartbeatTime": and
    // ,"reason":..,"message":..},
    std::vector<std::pair<std::string, std::string>> device;
    // ,"reason":..,"message":..} of Ready.
    std::string ready_tail;
  };
  // Table cells taken from the shared node info, quoted.
  struct InfoCells {
    std::string version;
    std::string os_image;
    std::string kernel;
    std::string runtime;
  };

  void AppendMetadata(const storage::NodeView& node, uint32_t annotations_id, std::string& out);

  const std::string& Annotations(const storage::NodeView& node, uint32_t id);
  const std::string& Taints(const storage::NodeView& node, uint32_t id);
  const std::string& Resources(const storage::NodeView& node, uint32_t id);
  const std::string& NodeInfo(const storage::NodeView& node, uint32_t id);
  const std::string& Gateway(const storage::NodeView& node, uint32_t id);
  const ConditionFragments& Conditions(const storage::NodeView& node, uint32_t id);
  const InfoCells& Cells(const storage::NodeView& node, uint32_t id);

  absl::flat_hash_map<uint32_t, std::string> label_pairs_;
  absl::flat_hash_map<uint32_t, std::string> annotations_;
  absl::flat_hash_map<uint32_t, std::string> taints_;
  absl::flat_hash_map<uint32_t, std::string> resources_;
  absl::flat_hash_map<uint32_t, std::string> node_info_;
  absl::flat_hash_map<uint32_t, std::string> gateways_;
  absl::flat_hash_map<uint32_t, ConditionFragments> conditions_;
  absl::flat_hash_map<uint32_t, InfoCells> cells_;
};

}  // namespace kole::apiserver
