#pragma once

// Helpers the fuzz targets share: reporting a broken property, the selector
// round trip, writing files, and muting the store's log, which at thousands
// of runs a second only slows the fuzzer.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
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

// Parses `text` with Selector::Parse (label or field selectors). A rejection
// must be InvalidArgument (the API answers 400; anything else would be a
// 500); an accepted selector must survive a canonical round trip. Returns
// the selector when it parsed. `fail(what, input, detail)` reports a broken
// property.
template <typename Selector, typename FailFn>
std::optional<Selector> ParseWithRoundTrip(std::string_view text, FailFn fail) {
  absl::StatusOr<Selector> selector = Selector::Parse(text);
  if (!selector.ok()) {
    if (!absl::IsInvalidArgument(selector.status())) {
      fail("rejected with a code other than InvalidArgument", text, selector.status().ToString());
    }
    return std::nullopt;
  }
  std::string canonical = selector->String();
  absl::StatusOr<Selector> again = Selector::Parse(canonical);
  if (!again.ok()) {
    fail("canonical form does not parse", text, canonical + " -> " + again.status().ToString());
  }
  if (!(*again == *selector)) fail("canonical form parses to another selector", text, canonical);
  if (again->String() != canonical) {
    fail("canonical form is not stable", text, canonical + " -> " + again->String());
  }
  if (selector->Empty() != canonical.empty()) fail("Empty() disagrees with String()", text, "");
  return *std::move(selector);
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
