#pragma once

// Export of a data directory's fleet as JSON lines, for migration and
// audits: one object per line, exactly as the API serves it (the renderers
// of apiserver-ext/node_json.h and pod_json.h), every node first in name
// order, then every standalone pod in namespace/name order.
//
//   {"kind":"Node","apiVersion":"edge.kole.io/v1alpha1","metadata":{...},...}
//   {"kind":"Pod","apiVersion":"edge.kole.io/v1alpha1","metadata":{...},...}
//
// The directory is opened read-only (StoreOptions::read_only): a backup, or
// the directory of a stopped kole-apiserver. A directory whose lock a
// running server holds is refused, since its snapshots and segments may be
// pruned mid-read; back it up and export the backup.
//
// Thread safety: a free function without shared state.

#include <absl/functional/function_ref.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kole::admin {

struct ExportCounts {
  uint64_t nodes = 0;
  uint64_t pods = 0;
  uint64_t bytes = 0;
  uint64_t node_resource_version = 0;  // The list's version (the store's).
  uint64_t pod_resource_version = 0;
};

// Calls `write` with chunks of the output, each ending in a newline; a
// non-OK return stops the export and is returned.
absl::StatusOr<ExportCounts> ExportDataDir(const std::string& data_dir,
                                           absl::FunctionRef<absl::Status(std::string_view)> write);

}  // namespace kole::admin
