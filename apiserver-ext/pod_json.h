#pragma once

// Pods as Kubernetes JSON (core/v1 Pod shape under edge.kole.io/v1alpha1):
// rendering for responses and watch events, parsing and validation of
// request bodies, and the row `kubectl get pods` prints.
//
// Thread safety: free functions without shared state.

#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/table.h"
#include "storage/pod.h"

namespace kole::apiserver {

void AppendPodJson(const storage::Pod& pod, std::string& out);
void AppendPodMetadataJson(const storage::Pod& pod, std::string& out);

struct ParsedPod {
  storage::Pod pod;
  std::string generate_name;
  uint64_t resource_version = 0;
  bool has_resource_version = false;
  std::vector<std::string> unknown_fields;
};

// Reads a Pod from a parsed body (400 in `error` on type errors, wrong kind
// or apiVersion); collects 422 causes for names, labels and the spec rules
// standalone pods must follow (spec.nodeName set, at least one container
// with a name and an image).
bool ParsePod(const rapidjson::Value& body, ParsedPod* parsed, ApiError* error,
              std::vector<StatusCause>* causes);
std::vector<StatusCause> ValidatePodFields(const storage::Pod& pod);

// Table rendering with the columns of `kubectl get pods`.
void AppendPodTableStart(std::string_view version, bool with_columns, std::string& out);
void AppendPodTableRow(const storage::Pod& pod, int64_t now, IncludeObject include,
                       std::string& out);

}  // namespace kole::apiserver
