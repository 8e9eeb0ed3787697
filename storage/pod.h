#pragma once

// The expanded form of a pod as the API serves it: core/v1 Pod metadata,
// with spec and status kept as the JSON the client wrote (standalone pods)
// or the API renders (pods derived from EdgeDaemonSets), plus the fields
// that selectors and tables read, extracted once.
//
// Thread safety: a plain value.

#include <cstdint>
#include <string>

#include "storage/node.h"

namespace kole::storage {

struct Pod {
  std::string namespace_;
  std::string name;
  Uid uid;
  uint64_t resource_version = 0;
  int64_t creation_timestamp = 0;
  StringPairs labels;
  StringPairs annotations;

  // metadata.ownerReferences as a compact JSON array; empty for none.
  std::string owner_references_json;

  std::string node_name;    // spec.nodeName
  std::string phase;        // status.phase
  std::string spec_json;    // The spec object, compact JSON.
  std::string status_json;  // The status object, compact JSON ("{}" when empty).

  bool operator==(const Pod&) const = default;
};

}  // namespace kole::storage
