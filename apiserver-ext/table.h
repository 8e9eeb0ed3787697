#pragma once

// meta.k8s.io Table output, as `kubectl get` asks for it: the columns that
// kubectl prints for core nodes (k8s-api-contract.md §5.3), with Age
// pre-rendered the way upstream humanizes durations, and each row carrying
// a PartialObjectMetadata (or the full object with includeObject=Object).
//
// Thread safety: free functions without shared state.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/node.h"

namespace kole::apiserver {

enum class IncludeObject { kMetadata, kObject, kNone };

// "45s", "5m10s", "3d4h", ... like apimachinery's HumanDuration.
std::string HumanDuration(int64_t seconds);

// STATUS and ROLES cells of `kubectl get nodes`.
std::string NodeStatusCell(storage::ConditionStatus ready, bool unschedulable);
std::string NodeStatusCell(const storage::Node& node);
std::string NodeRolesCell(const storage::Node& node);

// Collects the ROLES cell from a node's labels, given one at a time.
class NodeRoles {
 public:
  void Add(std::string_view key, std::string_view value);
  // "<none>", or the roles sorted, unique and joined by commas.
  std::string Cell();

 private:
  std::vector<std::string> roles_;
};

// {"kind":"Table","apiVersion":"meta.k8s.io/<version>","metadata":{...},
//  "columnDefinitions":[...],"rows":[  -- rows follow, separated by ','.
// `with_columns` false writes an empty columnDefinitions (watch events after
// the first).
void AppendNodeTableStart(std::string_view version, bool with_columns, std::string& out);
void AppendNodeTableRow(const storage::Node& node, int64_t now, IncludeObject include,
                        std::string& out);
void AppendTableEnd(uint64_t resource_version, std::string_view continue_token, std::string& out);

}  // namespace kole::apiserver
