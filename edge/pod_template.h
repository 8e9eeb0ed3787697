#pragma once

// The pod template of a workload revision, as kole-agent's process runtime
// reads it: ParsePodTemplate() reads the "template" object of a retained
// workload message (protocol::WorkloadTemplate::template_json,
// {"metadata":{...},"spec":{<core/v1 PodSpec>}}) once when it arrives;
// BuildPodSpec() turns it into the ProcessRuntime PodSpec of one pod on this
// node.
//
// Fields used, with their Kubernetes meaning:
//   metadata.labels, metadata.annotations   only for env fieldRefs
//   spec.restartPolicy                      Always (default), OnFailure, Never
//   spec.containers[].name
//   spec.containers[].command, .args        command + args is argv; no shell,
//                                           no image entrypoint
//   spec.containers[].env[].name with .value, or with .valueFrom.fieldRef
//       .fieldPath one of metadata.name, metadata.namespace, spec.nodeName,
//       metadata.labels['<key>'], metadata.annotations['<key>']
// $(VAR) references in env values, command and args are expanded as kubelet
// does: from the variables defined before (env) or by the container (command
// and args); $$ is a literal $; an undefined reference stays as written.
//
// Everything else is ignored: image, workingDir, ports, resources, volumes and
// volumeMounts, probes, securityContext, initContainers, envFrom, and env
// entries taken from secrets, config maps or resource fields (those are listed
// in PodTemplate::ignored so that the agent can say so).
//
//   absl::StatusOr<PodTemplate> t = ParsePodTemplate(message.template_json);
//   PodSpec spec = BuildPodSpec(*t, {.namespace_ = "edge", .name = "agent-x-n1",
//                                    .node = "n1"}, "edge/agent-x", "8c1e2f0a");
//
// Thread safety: free functions; a PodTemplate is immutable once parsed.

#include <absl/status/statusor.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edge/process_runtime.h"

namespace kole::edge {

struct TemplateEnvVar {
  std::string name;
  std::string value;
  // valueFrom.fieldRef.fieldPath; when set, `value` is unused.
  std::string field_path;
};

struct TemplateContainer {
  std::string name;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<TemplateEnvVar> env;
};

struct PodTemplate {
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::pair<std::string, std::string>> annotations;
  std::string restart_policy = "Always";
  std::vector<TemplateContainer> containers;
  // Parts of the template that mean something to Kubernetes but are not
  // done here, worded for a log line ("initContainers", "env FOO: secretKeyRef").
  std::vector<std::string> ignored;
};

// Reads the template object. InvalidArgument when it is not a JSON object
// with a "spec" object, or a used field has the wrong JSON type; the message
// names the field.
absl::StatusOr<PodTemplate> ParsePodTemplate(std::string_view template_json);

// Who the pod is, for fieldRefs.
struct PodIdentity {
  std::string namespace_;
  std::string name;
  std::string node;
};

// The runtime spec of one pod: env resolved (fieldRefs, $(VAR)), command and
// args expanded. A fieldRef this reader does not know leaves the variable
// unset. Validation (names, commands) is the runtime's.
PodSpec BuildPodSpec(const PodTemplate& pod_template, const PodIdentity& pod, std::string key,
                     std::string revision);

// Kubernetes' $(VAR) expansion of one string with `vars` (later entries win).
std::string ExpandVars(std::string_view text,
                       const std::vector<std::pair<std::string, std::string>>& vars);

}  // namespace kole::edge
