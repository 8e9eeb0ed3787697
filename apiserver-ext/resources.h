#pragma once

// The resources KOLE serves under edge.kole.io/v1alpha1 and what discovery
// says about them. The advertised verbs leave out "watch" for nodes and pods
// on purpose (docs/api.md, "Discovery verbs"): kube-controller-manager's
// garbage collector and quota controller mirror every resource advertising
// list, watch and delete, and a million virtual nodes must not be copied into
// it. Watches are served all the same; clients do not consult these verbs.
//
// Thread safety: immutable data.

#include <span>
#include <string_view>
#include <vector>

namespace kole::apiserver {

inline constexpr std::string_view kGroup = "edge.kole.io";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kGroupVersion = "edge.kole.io/v1alpha1";

struct ResourceDescriptor {
  std::string_view name;  // plural
  std::string_view singular;
  std::string_view kind;
  bool namespaced;
  std::vector<std::string_view> short_names;
  std::vector<std::string_view> verbs;  // advertised, sorted
  std::vector<std::string_view> status_verbs;
};

// Every served resource, in discovery order.
std::span<const ResourceDescriptor> ServedResources();

// The descriptor of `plural`, or null.
const ResourceDescriptor* FindResource(std::string_view plural);

}  // namespace kole::apiserver
