#include "storage/tools/export.h"

#include <fmt/format.h>

#include "apiserver-ext/node_json.h"
#include "apiserver-ext/pod_json.h"
#include "storage/data_dir.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"

namespace kole::admin {
namespace {

// Output is handed on in chunks of about this size.
constexpr size_t kChunk = 256 << 10;

}  // namespace

absl::StatusOr<ExportCounts> ExportDataDir(
    const std::string& data_dir, absl::FunctionRef<absl::Status(std::string_view)> write) {
  std::string holder;
  absl::StatusOr<bool> held =
      storage::IsFileLockHeld(storage::JoinPath(data_dir, storage::kDataDirLockName), &holder);
  if (!held.ok()) return held.status();
  if (*held) {
    return absl::FailedPreconditionError(fmt::format(
        "data directory {} is in use by a running kole-apiserver{}; export reads a stopped "
        "server's directory or a backup: run `kole-admin backup --data-dir {} --to DIR` and "
        "export DIR",
        data_dir, holder.empty() ? "" : fmt::format(" (pid {})", holder), data_dir));
  }

  storage::StoreOptions store_options;
  store_options.data_dir = data_dir;
  store_options.background_maintenance = false;
  store_options.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::NodeStore>> nodes =
      storage::NodeStore::Open(store_options);
  if (!nodes.ok()) return nodes.status();
  storage::PodStoreOptions pod_options;
  pod_options.data_dir = data_dir;
  pod_options.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::PodStore>> pods = storage::PodStore::Open(pod_options);
  if (!pods.ok()) return pods.status();

  ExportCounts counts;
  std::string out;
  absl::Status written;
  auto flush = [&](bool last) {
    if (!written.ok() || out.empty() || (!last && out.size() < kChunk)) return;
    counts.bytes += out.size();
    written = write(out);
    out.clear();
  };

  storage::ListResult node_list;
  absl::Status listed = (*nodes)->ListEach(
      {},
      [&](const storage::Node& node) {
        apiserver::AppendNodeJson(node, out);
        out += '\n';
        ++counts.nodes;
        flush(false);
      },
      &node_list);
  if (!listed.ok()) return listed;
  counts.node_resource_version = node_list.resource_version;

  storage::PodListResult pod_list;
  listed = (*pods)->ListEach(
      {},
      [&](const storage::Pod& pod) {
        apiserver::AppendPodJson(pod, out);
        out += '\n';
        ++counts.pods;
        flush(false);
      },
      &pod_list);
  if (!listed.ok()) return listed;
  counts.pod_resource_version = pod_list.resource_version;
  flush(true);
  if (!written.ok()) return written;
  return counts;
}

}  // namespace kole::admin
