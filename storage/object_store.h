#pragma once

// ObjectStore keeps a few namespaced API objects of one resource (the
// EdgeDaemonSets) as opaque JSON text, with resourceVersions, a history for
// watches, and durability by rewriting one file per write.
//
//   auto eds = ObjectStore::Open({.data_dir = "/var/lib/kole", .subdir = "edgedaemonsets"});
//   absl::StatusOr<StoredObject> created = (*eds)->Create({"default", "agent", 0, json});
//
// The store does not read the JSON: the API renders and parses it, and sets
// metadata.resourceVersion from StoredObject::resource_version when it serves
// an object. It is meant for tens to thousands of objects; every write
// rewrites the whole file (written to a temporary file, synced, renamed, the
// directory synced), so a crash leaves the old or the new state, never a mix.
//
// File format: the 8-byte header "KOLEOBJ1" (format version 1), then one
// record per object and a last record with the version watermark, each
// [u32 length][u32 crc32][payload], little endian. A file that fails its
// checks refuses to open (DataLoss); the previous file is never touched
// before the new one is complete.
//
// Errors: NotFound, AlreadyExists, Aborted (resourceVersion precondition),
// OutOfRange with IsExpired() (a watch or list version no longer retained),
// Unavailable (closed), and the file system's errors, after which the write
// is not visible and the store keeps serving reads.
//
// Thread safety: every method may be called from any thread; one mutex
// guards the state and is held across the file rewrite. Ownership: Open()
// returns the only owner; watchers borrow it and must be destroyed first.

#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/change_log.h"
#include "storage/clock.h"
#include "storage/file_system.h"

namespace kole::storage {

struct StoredObject {
  std::string namespace_;
  std::string name;
  uint64_t resource_version = 0;
  std::string json;  // The whole object as the API renders it.
  bool operator==(const StoredObject&) const = default;
};

struct ObjectStoreOptions {
  std::string data_dir;  // Empty: memory only.
  std::string subdir;    // The store's directory inside data_dir.
  FileSystem* file_system = nullptr;
  Clock* clock = nullptr;
  int64_t retention_seconds = 300;
  size_t max_history = 10000;
};

struct ObjectEvent {
  EventType type;
  StoredObject object;  // For kDeleted: the last state, with the deletion's version.
};

class ObjectStore;

// A watch from a version. One thread at a time; must not outlive the store.
class ObjectWatcher {
 public:
  // Waits for changes until `deadline`; OutOfRange (expired) when the
  // watcher fell behind the history, Cancelled once the store closed.
  absl::StatusOr<std::vector<ObjectEvent>> Next(size_t max_events, absl::Time deadline);
  uint64_t cursor() const { return cursor_; }

 private:
  friend class ObjectStore;
  ObjectWatcher(const ObjectStore* store, uint64_t cursor, std::string ns)
      : store_(store), cursor_(cursor), ns_(std::move(ns)) {}
  const ObjectStore* store_;
  uint64_t cursor_;
  std::string ns_;
};

class ObjectStore {
 public:
  static absl::StatusOr<std::unique_ptr<ObjectStore>> Open(ObjectStoreOptions options);
  ~ObjectStore();

  // Each write assigns the next version and is durable when it returns.
  absl::StatusOr<StoredObject> Create(StoredObject object);
  // `expected_rv` 0 skips the precondition. Identical JSON keeps the version.
  absl::StatusOr<StoredObject> Update(StoredObject object, uint64_t expected_rv);
  absl::StatusOr<StoredObject> Delete(std::string_view namespace_, std::string_view name,
                                      uint64_t expected_rv);

  absl::StatusOr<StoredObject> Get(std::string_view namespace_, std::string_view name) const;
  // Objects of `namespace_` (empty: all) in (namespace, name) order after
  // `after` (a "namespace/name" key; empty: from the start), at most `limit`
  // (0: all). `more` tells whether objects follow.
  std::vector<StoredObject> List(std::string_view namespace_, std::string_view after, size_t limit,
                                 bool* more, uint64_t* resource_version) const;
  absl::StatusOr<std::unique_ptr<ObjectWatcher>> Watch(uint64_t from_rv,
                                                       std::string namespace_) const;
  uint64_t resource_version() const;
  size_t size() const;
  void Close();

 private:
  friend class ObjectWatcher;
  using Key = std::pair<std::string, std::string>;
  struct Change {
    uint64_t rv;
    EventType type;
    StoredObject object;  // After the change; the last state for kDeleted.
    int64_t time;
  };

  explicit ObjectStore(ObjectStoreOptions options);
  absl::Status Load();
  absl::Status PersistLocked(const std::map<Key, StoredObject>& objects, uint64_t rv)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<StoredObject> CommitLocked(const Key& key, std::optional<StoredObject> after,
                                            EventType type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ObjectStoreOptions options_;
  std::string dir_;
  std::string path_;
  mutable absl::Mutex mu_;
  std::map<Key, StoredObject> objects_ ABSL_GUARDED_BY(mu_);
  std::deque<Change> history_ ABSL_GUARDED_BY(mu_);
  uint64_t rv_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;  // Changes up to here are not in history_.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kole::storage
