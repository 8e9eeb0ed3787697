#pragma once

// PodSource is what the API's `pods` resource reads from. Today one source
// serves: PodStore, the standalone pods created with spec.nodeName. The
// pods derived from EdgeDaemonSets (one per matching node, never stored one
// object each) plug in as a second source with the workload issue; the API
// then merges sources by key. What a source must provide:
//
//   Ordered iteration  ListEach() visits pods in (namespace, name) order,
//                      starting after a continue token, so that pages from
//                      several sources merge by key and tokens stay valid
//                      across inserts and deletes.
//   Versions           Every visible change gets a resourceVersion that
//                      never goes backwards; ListEach() serves the state at
//                      one version for every page of a list (OutOfRange,
//                      IsExpired(), once that version is no longer
//                      retained); Watch() delivers every change after a
//                      version in version order.
//   Selectors          ListEach() and Watch() filter by label selector and
//                      by the field selector fields metadata.name,
//                      metadata.namespace, spec.nodeName and status.phase;
//                      a watch reports a pod moving into the selection as
//                      ADDED and out of it as DELETED.
//
// Known limitation (issue 4 report, docs/known-issues.md): PodStore's
// versions are its own sequence, not the node store's; sources are expected
// to share the node store's sequence once derived pods exist.
//
// Thread safety: every method may be called from any thread. A PodWatcher
// is used by one thread at a time and must not outlive its source.

#include <absl/functional/function_ref.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/change_log.h"
#include "storage/field_selector.h"
#include "storage/label_selector.h"
#include "storage/pod.h"

namespace kole::storage {

struct PodListOptions {
  std::string namespace_;  // Empty: every namespace.
  LabelSelector label_selector;
  FieldSelector field_selector;
  size_t limit = 0;  // 0: all.
  std::string continue_token;
  uint64_t resource_version = 0;  // 0: newest; otherwise exactly this one.
};

struct PodListResult {
  uint64_t resource_version = 0;
  std::string continue_token;  // Empty on the last page.
};

struct PodWatchEvent {
  EventType type;
  Pod pod;  // For kDeleted: the last state, with the deletion's version.
};

// Whether `pod` is in the selection: namespace (empty: all), labels, and the
// fields metadata.name, metadata.namespace, spec.nodeName and status.phase.
bool PodMatches(const Pod& pod, std::string_view namespace_, const LabelSelector& labels,
                const FieldSelector& fields);

class PodWatcher {
 public:
  virtual ~PodWatcher() = default;
  // Waits until there are changes or `deadline` passes; OutOfRange when the
  // watcher fell behind the retained history, Cancelled once the source
  // closed.
  virtual absl::StatusOr<std::vector<PodWatchEvent>> Next(size_t max_events,
                                                          absl::Time deadline) = 0;
  // Every change up to this version was delivered or filtered out.
  virtual uint64_t cursor() const = 0;
};

class PodSource {
 public:
  virtual ~PodSource() = default;

  virtual uint64_t resource_version() const = 0;
  virtual absl::StatusOr<Pod> Get(std::string_view namespace_, std::string_view name) const = 0;
  virtual absl::Status ListEach(const PodListOptions& options,
                                absl::FunctionRef<void(const Pod&)> visit,
                                PodListResult* result) const = 0;
  // Changes after `from_rv` (0: from now) in `namespace_` (empty: all).
  virtual absl::StatusOr<std::unique_ptr<PodWatcher>> Watch(uint64_t from_rv,
                                                            std::string namespace_,
                                                            LabelSelector labels,
                                                            FieldSelector fields) const = 0;
};

}  // namespace kole::storage
