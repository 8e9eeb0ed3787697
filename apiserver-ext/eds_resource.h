#pragma once

// The `edgedaemonsets` resource (namespaced, kind EdgeDaemonSet, short name
// eds): every verb, the `status` subresource, the columns of `kubectl get
// ds`, and server-side apply with managedFields (server_side_apply.h).
//
// Objects are kept as JSON in an ObjectStore (storage/object_store.h); the
// workload controller (workload_controller.h) watches that store, derives
// the pods and writes status back through UpdateStatus().
//
// Field ownership: writes to the main resource keep status and bump
// metadata.generation when the spec changes; /status writes keep everything
// but status.
//
// Thread safety: Handle() may be called from many threads at once; the
// store is borrowed and must outlive this object and its streams.

#include <atomic>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/nodes_resource.h"
#include "apiserver-ext/request_info.h"
#include "storage/object_store.h"

namespace kole::apiserver {

class EdgeDaemonSetsResource {
 public:
  EdgeDaemonSetsResource(storage::ObjectStore* store, const std::atomic<bool>* stopping,
                         WatchSettings watch = {});

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

  storage::ObjectStore* store_;
  const std::atomic<bool>* stopping_;
  WatchSettings watch_;
};

}  // namespace kole::apiserver
