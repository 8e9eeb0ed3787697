#pragma once

// EdgeDaemonSets as Kubernetes JSON (edge.kole.io/v1alpha1, shaped like
// apps/v1 DaemonSet): checking request bodies, the canonical stored form,
// the WorkloadSpec the pod table derives pods from, status, and the row
// `kubectl get ds` prints.
//
//   apiVersion: edge.kole.io/v1alpha1
//   kind: EdgeDaemonSet
//   metadata: {name: agent, namespace: fleet}
//   spec:
//     nodeSelector: {matchLabels: {tier: edge}}     # metav1.LabelSelector over node labels
//     template:
//       metadata: {labels: {app: agent}}
//       spec:
//         containers: [{name: agent, image: "registry/agent:1.2", command: [...]}]
//         tolerations: [...]
//     updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 10%}}
//
// Thread safety: free functions without shared state.

#include <rapidjson/document.h>

#include <string>
#include <string_view>
#include <vector>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/table.h"
#include "storage/daemon_pods.h"
#include "storage/object_store.h"

namespace kole::apiserver {

inline constexpr std::string_view kEdsKind = "EdgeDaemonSet";

// EdgeDaemonSet names are DNS-1123 labels of at most this length, so that a
// pod's name "<name>-<node>" stays readable and within 253 characters for
// ordinary node names.
inline constexpr size_t kMaxEdsNameLength = 63;

// A pod template is published to devices in one MQTT message (1 MiB at most,
// docs/protocol.md); this leaves room for the envelope.
inline constexpr size_t kMaxTemplateBytes = 900 * 1024;

// Checks the shape of a request body (kind, apiVersion, types); 400 in
// `error` when it is not an EdgeDaemonSet at all. `unknown_fields` collects
// fields outside the schema (reported by fieldValidation).
bool CheckEdsBody(const rapidjson::Value& body, ApiError* error,
                  std::vector<std::string>* unknown_fields);

// The 422 causes for an object about to be stored: names, labels, the
// selector, the template (containers with names and images, no secrets),
// the update strategy.
std::vector<StatusCause> ValidateEds(const rapidjson::Value& object);

// Fills in what the server defaults: updateStrategy RollingUpdate with
// maxUnavailable 1, template restartPolicy Always, an empty nodeSelector,
// status {}.
void DefaultEds(rapidjson::Document& object);

// The pods' description, from a stored (validated) object.
absl::StatusOr<storage::WorkloadSpec> WorkloadFromEds(const rapidjson::Value& object);

// Replaces the object's status with `status`, counted for the spec of
// `observed_generation` (the generation the pods were derived from, which
// may be older than the object's). Returns true when it changed.
bool SetEdsStatus(rapidjson::Document& object, const storage::WorkloadStatus& status,
                  int64_t observed_generation);

// metadata.resourceVersion set from the stored object's version.
std::string RenderEds(const storage::StoredObject& stored);
void AppendEdsMetadataJson(const rapidjson::Value& object, uint64_t resource_version,
                           std::string& out);

// Table rendering with the columns of `kubectl get ds`.
void AppendEdsTableStart(std::string_view version, bool with_columns, std::string& out);
void AppendEdsTableRow(const rapidjson::Value& object, uint64_t resource_version, int64_t now,
                       IncludeObject include, std::string& out);

}  // namespace kole::apiserver
