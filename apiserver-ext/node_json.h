#pragma once

// Renders edge nodes as Kubernetes JSON: the core/v1 Node shape under
// apiVersion edge.kole.io/v1alpha1, as GET and LIST answer with.
//
// Output is appended to a caller's buffer so a list of a million nodes can
// be streamed item by item without building the whole body.
//
// Thread safety: free functions without shared state.

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/node.h"

namespace kole::apiserver {

inline constexpr std::string_view kEdgeApiVersion = "edge.kole.io/v1alpha1";

// "2026-12-04T13:31:05Z" for Unix seconds.
std::string FormatTimestamp(int64_t unix_seconds);

// Appends one Node object.
void AppendNodeJson(const storage::Node& node, std::string& out);

// The pieces of a NodeList around its items: AppendNodeListStart, then items
// separated by ',', then AppendNodeListEnd with the list's metadata.
void AppendNodeListStart(std::string& out);
void AppendNodeListEnd(uint64_t resource_version, std::string_view continue_token,
                       std::string& out);

}  // namespace kole::apiserver
