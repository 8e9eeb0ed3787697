// kole-admin: operations on a kole-apiserver's data directory. Backup (also
// of a running server), restore, export as JSON lines, inspect. Logs go to
// standard error in klog's format; results (summaries, exports, reports) to
// standard output. See docs/backup.md.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "common/log.h"
#include "storage/backup.h"
#include "storage/tools/export.h"
#include "storage/tools/inspect.h"

namespace {

using namespace kole;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Fail(std::string_view what, const absl::Status& status) {
  KOLE_LOG(Error, what, "err", status);
  std::fprintf(stderr, "kole-admin: %.*s: %.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return 1;
}

int RunBackup(const std::string& data_dir, const std::string& to) {
  absl::StatusOr<storage::BackupManifest> manifest = storage::BackupDataDir(data_dir, to);
  if (!manifest.ok()) return Fail("backup failed", manifest.status());
  std::printf(
      "backup complete: %s -> %s nodes=%llu pods=%llu bytes=%llu seconds=%.2f "
      "nodeResourceVersion=%llu podResourceVersion=%llu files=%zu\n",
      data_dir.c_str(), to.c_str(), static_cast<unsigned long long>(manifest->nodes),
      static_cast<unsigned long long>(manifest->pods),
      static_cast<unsigned long long>(manifest->total_bytes()), manifest->seconds,
      static_cast<unsigned long long>(manifest->node_resource_version),
      static_cast<unsigned long long>(manifest->pod_resource_version), manifest->files.size());
  return 0;
}

int RunRestore(const std::string& from, const std::string& data_dir, bool force) {
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<storage::RestoreResult> restored =
      storage::RestoreDataDir(from, data_dir, {.force = force});
  if (!restored.ok()) return Fail("restore failed", restored.status());
  const storage::BackupManifest& m = restored->manifest;
  std::printf(
      "restore complete: %s -> %s nodes=%llu pods=%llu bytes=%llu seconds=%.2f "
      "nodeResourceVersion=%llu%s%s\n",
      from.c_str(), data_dir.c_str(), static_cast<unsigned long long>(m.nodes),
      static_cast<unsigned long long>(m.pods), static_cast<unsigned long long>(m.total_bytes()),
      SecondsSince(start), static_cast<unsigned long long>(m.node_resource_version),
      restored->moved_aside.empty() ? "" : " movedAside=", restored->moved_aside.c_str());
  return 0;
}

int RunExport(const std::string& data_dir, const std::string& output) {
  auto start = std::chrono::steady_clock::now();
  std::FILE* out = stdout;
  if (!output.empty() && output != "-") {
    out = std::fopen(output.c_str(), "w");
    if (out == nullptr) {
      return Fail("export failed", absl::InvalidArgumentError("cannot open " + output));
    }
  }
  absl::StatusOr<admin::ExportCounts> counts =
      admin::ExportDataDir(data_dir, [&](std::string_view chunk) {
        if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
          return absl::DataLossError("writing the export failed (disk full? closed pipe?)");
        }
        return absl::OkStatus();
      });
  bool closed = out == stdout ? std::fflush(out) == 0 : std::fclose(out) == 0;
  if (!counts.ok()) return Fail("export failed", counts.status());
  if (!closed) return Fail("export failed", absl::DataLossError("closing the output failed"));
  KOLE_LOG(Info, "Export complete", "dataDir", data_dir, "nodes", counts->nodes, "pods",
           counts->pods, "bytes", counts->bytes, "nodeResourceVersion",
           counts->node_resource_version, "seconds", SecondsSince(start));
  return 0;
}

int RunInspect(const std::string& data_dir) {
  absl::StatusOr<admin::Inspection> inspection = admin::InspectDataDir(data_dir);
  if (!inspection.ok()) return Fail("inspect failed", inspection.status());
  std::string report = admin::FormatInspection(*inspection);
  std::fwrite(report.data(), 1, report.size(), stdout);
  return inspection->recover_error.empty() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kole-admin: back up, restore, export and inspect a kole-apiserver data directory"};
  app.require_subcommand(1);
  int verbosity = 0;
  app.add_option("--v", verbosity, "Log verbosity (klog levels)")->capture_default_str();

  std::string data_dir, to, from, format = "json", output;
  bool force = false;

  CLI::App* backup = app.add_subcommand(
      "backup", "Copy a data directory consistently, also while kole-apiserver runs on it");
  backup->add_option("--data-dir", data_dir, "The data directory to back up")->required();
  backup->add_option("--to", to, "New or empty directory for the backup")->required();

  CLI::App* restore =
      app.add_subcommand("restore", "Restore a backup into a data directory no server is using");
  restore->add_option("--from", from, "The backup directory")->required();
  restore->add_option("--data-dir", data_dir, "The data directory to restore into")->required();
  restore->add_flag("--force", force,
                    "Restore over a data directory that holds a store, moving the old contents "
                    "aside into <data-dir>/pre-restore-<time>/");

  CLI::App* export_cmd = app.add_subcommand(
      "export", "Write the nodes and pods as JSON lines, as the API serves them");
  export_cmd->add_option("--data-dir", data_dir, "A backup, or a stopped server's data directory")
      ->required();
  export_cmd->add_option("--format", format, "Output format")
      ->check(CLI::IsMember({"json"}))
      ->capture_default_str();
  export_cmd->add_option("-o,--output", output, "Write here instead of standard output");

  CLI::App* inspect = app.add_subcommand(
      "inspect", "Show what a data directory or backup holds, without changing it");
  inspect->add_option("--data-dir", data_dir, "A data directory or a backup")->required();

  CLI11_PARSE(app, argc, argv);
  log::SetVerbosity(verbosity);

  if (backup->parsed()) return RunBackup(data_dir, to);
  if (restore->parsed()) return RunRestore(from, data_dir, force);
  if (export_cmd->parsed()) return RunExport(data_dir, output);
  return RunInspect(data_dir);
}
