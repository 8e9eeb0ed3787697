#pragma once

// The `pods` resource (namespaced, kind Pod): standalone pods with
// spec.nodeName, kept in a PodStore (storage/pod_store.h), with every verb
// the nodes resource serves and the columns of `kubectl get pods`.
//
// Reads go through the PodSource interface (storage/pod_source.h), so that
// pods derived from EdgeDaemonSets can join as a second source; writes go
// to the standalone store.
//
// Field ownership as for nodes: writes to the main resource keep status,
// /status writes keep everything but status.
//
// Pods of EdgeDaemonSets are derived: writes to them are refused (422), and
// deleting one restarts it on its device (a new UID, DELETED then ADDED).
// In a namespace being deleted, deleting them removes the pods of every
// EdgeDaemonSet of the namespace for good instead (PodStore::SuspendNamespace),
// so the namespace controller's deletecollection does not restart a fleet.
//
// Thread safety: Handle() may be called from many threads at once; the
// store is borrowed and must outlive this object and its streams.

#include <atomic>
#include <functional>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/namespace_lifecycle.h"
#include "apiserver-ext/nodes_resource.h"
#include "apiserver-ext/request_info.h"
#include "storage/pod_store.h"

namespace kole::apiserver {

class PodsResource {
 public:
  PodsResource(storage::PodStore* store, const std::atomic<bool>* stopping,
               WatchSettings watch = {}, NamespaceTerminatingFn namespace_terminating = {});

  HttpResponse Handle(const HttpRequest& request, const RequestInfo& info);

 private:
  HttpResponse Get(const HttpRequest& request, const RequestInfo& info);
  HttpResponse List(const HttpRequest& request, const RequestInfo& info);
  HttpResponse Watch(const HttpRequest& request, const RequestInfo& info);
  HttpResponse Create(const HttpRequest& request, const RequestInfo& info);
  HttpResponse Update(const HttpRequest& request, const RequestInfo& info, bool status);
  HttpResponse Patch(const HttpRequest& request, const RequestInfo& info, bool status);
  HttpResponse Delete(const HttpRequest& request, const RequestInfo& info);
  HttpResponse DeleteCollection(const HttpRequest& request, const RequestInfo& info);
  HttpResponse Write(const HttpRequest& request, const storage::Pod& desired, uint64_t expected_rv,
                     bool status, bool dry_run);

  storage::PodStore* store_;          // Writes.
  const storage::PodSource* source_;  // Reads: the standalone store today.
  const std::atomic<bool>* stopping_;
  WatchSettings watch_;
  NamespaceTerminatingFn namespace_terminating_;
};

}  // namespace kole::apiserver
