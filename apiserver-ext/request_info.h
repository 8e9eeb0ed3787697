#pragma once

// RequestInfo: what a request path and method mean to Kubernetes, by
// upstream's RequestInfo rules (k8s-api-contract.md §2.5). Authorization
// sends these attributes in a SubjectAccessReview and the router dispatches
// on them.
//
//   /apis/edge.kole.io/v1alpha1/nodes/n1/status  PUT
//     -> resource request, verb update, resource nodes, name n1, sub status
//   /apis/edge.kole.io/v1alpha1/namespaces/a/pods?watch=1  GET
//     -> verb watch, resource pods, namespace a
//
// Thread safety: pure function over its arguments.

#include <string>
#include <string_view>

namespace kole::apiserver {

struct RequestInfo {
  bool is_resource_request = false;
  std::string path;
  std::string verb;  // create get list watch update patch delete deletecollection;
                     // for non-resource requests the lower-cased method.
  std::string api_group;
  std::string api_version;
  std::string namespace_;
  std::string resource;
  std::string subresource;
  std::string name;
  // Path segments past the subresource (always rejected by the router).
  bool extra_segments = false;
};

// Parses `path` (without the query) for `method`. `watch_param` is the value
// of ?watch= and `field_selector` of ?fieldSelector=, which turn a list into a
// watch and, for "metadata.name=x", name the object being authorized.
// Never fails: a path that is not a resource path is a non-resource request.
RequestInfo ParseRequestInfo(std::string_view method, std::string_view path,
                             std::string_view watch_param, std::string_view field_selector);

}  // namespace kole::apiserver
