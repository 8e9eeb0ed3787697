#include "apiserver-ext/resources.h"

namespace kole::apiserver {

std::span<const ResourceDescriptor> ServedResources() {
  // Verbs without "watch": see the header and docs/api.md.
  static const std::vector<ResourceDescriptor> kResources = {
      {"nodes",
       "node",
       "Node",
       false,
       {"en", "edgenode"},
       {"create", "delete", "deletecollection", "get", "list", "patch", "update"},
       {"get", "patch", "update"}},
      {"pods",
       "pod",
       "Pod",
       true,
       {"epod"},
       {"create", "delete", "deletecollection", "get", "list", "patch", "update"},
       {"get", "patch", "update"}},
      // Few objects: every verb is advertised, so the namespace controller
      // and the garbage collector may list and watch them.
      {"edgedaemonsets",
       "edgedaemonset",
       "EdgeDaemonSet",
       true,
       {"eds"},
       {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
       {"get", "patch", "update"}},
  };
  return kResources;
}

const ResourceDescriptor* FindResource(std::string_view plural) {
  for (const ResourceDescriptor& r : ServedResources()) {
    if (r.name == plural) return &r;
  }
  return nullptr;
}

}  // namespace kole::apiserver
