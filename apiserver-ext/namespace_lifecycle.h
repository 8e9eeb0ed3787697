#pragma once

// Whether a namespace is being deleted, as kube-apiserver knows it. The pods
// resource asks before it restarts a derived pod that is being deleted: in a
// Terminating namespace the namespace controller is emptying it, and the
// pods of its EdgeDaemonSets must go for good instead of coming back with a
// new UID (docs/api.md, "EdgeDaemonSets").
//
// The answer comes from GET /api/v1/namespaces/<name> (the chart grants
// `get namespaces`) and is cached for a few seconds per namespace. A
// namespace that no longer exists counts as terminating; when kube-apiserver
// cannot be asked (standalone mode, an error), the answer is "no", so a
// delete restarts the pod as usual.
//
// Thread safety: the returned function may be called from many threads.

#include <absl/time/time.h>

#include <functional>
#include <memory>
#include <string_view>

namespace kole::apiserver {

class KubeClient;

using NamespaceTerminatingFn = std::function<bool(std::string_view namespace_)>;

NamespaceTerminatingFn NamespaceTerminatingChecker(std::shared_ptr<KubeClient> client,
                                                   absl::Duration cache_ttl = absl::Seconds(5));

}  // namespace kole::apiserver
