#pragma once

// Edge nodes as Kubernetes JSON: the core/v1 Node shape under apiVersion
// edge.kole.io/v1alpha1, rendered for GET, LIST and watch events, and parsed
// back from request bodies for create, update and patch.
//
// Output is appended to a caller's buffer so a list of a million nodes can
// be streamed item by item without building the whole body.
//
// Thread safety: free functions without shared state.

#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "apiserver-ext/api_status.h"
#include "storage/node.h"

namespace kole::apiserver {

inline constexpr std::string_view kEdgeApiVersion = "edge.kole.io/v1alpha1";

// "2026-12-04T13:31:05Z" for Unix seconds.
std::string FormatTimestamp(int64_t unix_seconds);
// The same, appended to `out`.
void AppendTimestamp(int64_t unix_seconds, std::string& out);
// A metav1.Time value: the quoted timestamp, or null for 0 (never set).
void AppendTimeOrNull(int64_t unix_seconds, std::string& out);
// The inverse of FormatTimestamp; false for anything but that exact form.
bool ParseTimestamp(std::string_view text, int64_t* unix_seconds);

// {"key":"value",...} of sorted pairs (labels, annotations, quantities).
void AppendJsonPairsObject(const storage::StringPairs& pairs, std::string& out);

// Pieces of a Node object, shared with NodeRenderer (node_render.h) so that
// both write the same bytes:
// "taints":[...], nothing when there are none.
void AppendTaintsJson(const std::vector<storage::Taint>& taints, std::string& out);
// "capacity":{...},"allocatable":{...}, each with its comma, each only when
// not empty.
void AppendResourcesJson(const storage::StringPairs& capacity,
                         const storage::StringPairs& allocatable, std::string& out);
// ,"kernelVersion":... through ,"architecture":..., the nodeInfo fields that
// nodes share (all but the machine, system and boot ids).
void AppendSharedNodeInfoJson(const storage::NodeInfo& info, std::string& out);

// Appends one Node object.
void AppendNodeJson(const storage::Node& node, std::string& out);

// Appends {"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",
// "metadata":{...}} for metadata clients and Table rows.
void AppendNodeMetadataJson(const storage::Node& node, std::string& out);

// The pieces of a list around its items: AppendListStart, then items
// separated by ',', then AppendListEnd with the list's metadata.
// `kind` is "NodeList" or "PartialObjectMetadataList".
void AppendListStart(std::string_view kind, std::string_view api_version, std::string& out);
void AppendListEnd(uint64_t resource_version, std::string_view continue_token, std::string& out);
// The NodeList forms of the above.
void AppendNodeListStart(std::string& out);
void AppendNodeListEnd(uint64_t resource_version, std::string_view continue_token,
                       std::string& out);

// What a request body said about a node.
struct ParsedNode {
  storage::Node node;
  std::string generate_name;
  uint64_t resource_version = 0;  // metadata.resourceVersion, 0 when absent.
  bool has_resource_version = false;
  std::vector<std::string> unknown_fields;  // Paths such as "spec.foo".
};

// Reads a Node from a parsed body. Wrong kind/apiVersion, wrong JSON types
// and unparsable values are BadRequest (400) in `error`, returned false.
// Name, label, annotation and taint problems are collected as 422 causes
// in `causes` (the caller decides with the name known).
bool ParseNode(const rapidjson::Value& body, ParsedNode* parsed, ApiError* error,
               std::vector<StatusCause>* causes);

// Field-level validation of the user-owned parts, as causes for a 422.
std::vector<StatusCause> ValidateNodeFields(const storage::Node& node);

}  // namespace kole::apiserver
