#pragma once

// The `nodes` resource (cluster-scoped, kind Node) over NodeStore: get, list,
// watch, create, update, merge and JSON patch, delete, deletecollection and
// the `status` subresource, with Table and PartialObjectMetadata output.
//
// Field ownership (DESIGN §3): writes to the main resource change only the
// user-owned fields (labels other than device-owned ones, annotations,
// taints, unschedulable) and ignore status; writes to /status change only
// status. The store enforces the same split; the handler keeps responses
// and dry runs consistent with it.
//
// Thread safety: Handle() may be called from many threads at once. The
// store is borrowed and must outlive this object and every stream it
// returned. `stopping` is read by open watches so that shutdown ends them.

#include <atomic>
#include <functional>

#include "apiserver-ext/http_types.h"
#include "apiserver-ext/request_info.h"
#include "storage/node_store.h"

namespace kole::apiserver {

struct WatchSettings {
  // Upstream sends a bookmark about once a minute.
  int64_t bookmark_interval_seconds = 60;
  // Without timeoutSeconds a watch ends after this long (upstream picks
  // 30-60 minutes); clients re-watch from their last version.
  int64_t default_timeout_seconds = 1800;
};

class NodesResource {
 public:
  NodesResource(storage::NodeStore* store, const std::atomic<bool>* stopping,
                WatchSettings watch = {}, std::function<int64_t()> now = nullptr);

  HttpResponse Handle(const HttpRequest& request, const RequestInfo& info);

 private:
  HttpResponse Get(const HttpRequest& request, const RequestInfo& info);
  HttpResponse List(const HttpRequest& request);
  HttpResponse Watch(const HttpRequest& request);
  HttpResponse Create(const HttpRequest& request);
  HttpResponse Update(const HttpRequest& request, const RequestInfo& info, bool status);
  HttpResponse Patch(const HttpRequest& request, const RequestInfo& info, bool status);
  HttpResponse Delete(const HttpRequest& request, const RequestInfo& info);
  HttpResponse DeleteCollection(const HttpRequest& request);

  // Writes `desired` (already validated) through the store, or previews it
  // for a dry run.
  HttpResponse Write(const storage::Node& desired, uint64_t expected_rv, bool status, bool dry_run,
                     const storage::Node* current);

  storage::NodeStore* store_;
  const std::atomic<bool>* stopping_;
  WatchSettings watch_;
  std::function<int64_t()> now_;
};

}  // namespace kole::apiserver
