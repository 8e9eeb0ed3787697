#pragma once

// Small helpers shared by the device-side mains (kole-edge-sim, kole-agent):
// duration flags, klog flags, process facts.
//
// Thread safety: free functions; ReadRssBytes reads /proc and may be called
// from any thread.

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kole::edge {

// Parses "10s", "500ms", "1m30s" (Go-style, as kubectl and kubelet flags
// take them) or a bare number of seconds ("2.5").
absl::StatusOr<absl::Duration> ParseDurationFlag(std::string_view text);

// The process's resident set size from /proc/self/status; 0 if unknown.
uint64_t ReadRssBytes();

// Applies --v and --vmodule; InvalidArgument for a bad --vmodule.
absl::Status ApplyLogFlags(int verbosity, const std::string& vmodule);

}  // namespace kole::edge
