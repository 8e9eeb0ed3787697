#pragma once

// Helpers every fuzz target shares: reporting a broken property, and muting
// the store's log, which at thousands of runs a second only slows the fuzzer.

#include <absl/status/status.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/log.h"
#include "storage/file_system.h"

namespace kole::fuzz {

// Prints what failed for `target`, with the input when there is one, and
// aborts so libFuzzer keeps the input as a crash.
[[noreturn]] inline void Abort(std::string_view target, std::string_view what,
                               std::string_view input, std::string_view detail) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(target.size()), target.data(),
               static_cast<int>(what.size()), what.data());
  if (!input.empty()) {
    std::fprintf(stderr, "  input: \"%.*s\"\n", static_cast<int>(input.size()), input.data());
  }
  std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void MuteLogs() {
  static FILE* null = std::fopen("/dev/null", "w");
  if (null != nullptr) log::SetOutputFdForTest(fileno(null));
}

// Writes a whole file on `fs` (the in-memory file system of a target), syncs
// it, and aborts through `fail` if any step fails.
template <typename FailFn>
void WriteFile(storage::FileSystem& fs, const std::string& path, std::string_view contents,
               FailFn fail) {
  auto must = [&](const absl::Status& status, std::string_view step) {
    if (!status.ok()) fail(step, status.ToString());
  };
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> file = fs.NewWritableFile(path);
  must(file.status(), "create a file");
  must((*file)->Append(contents), "write a file");
  must((*file)->Sync(), "sync a file");
  must((*file)->Close(), "close a file");
}

}  // namespace kole::fuzz
