#include "storage/object_store.h"

#include <fmt/format.h>
#include <zlib.h>

#include "storage/node_store.h"

namespace kole::storage {
namespace {

constexpr std::string_view kHeader = "KOLEOBJ1";
constexpr std::string_view kFileName = "objects";
constexpr char kObject = 'O';
constexpr char kWatermark = 'W';

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutString(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

uint32_t Crc(std::string_view data) {
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

void AppendRecord(std::string& out, std::string_view payload) {
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, Crc(payload));
  out.append(payload);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool U32(uint32_t* v) {
    if (data_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= uint32_t{static_cast<uint8_t>(data_[i])} << (8 * i);
    data_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (data_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>(data_[i])} << (8 * i);
    data_.remove_prefix(8);
    return true;
  }
  bool Bytes(size_t n, std::string_view* out) {
    if (data_.size() < n) return false;
    *out = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool String(std::string* s) {
    uint32_t n = 0;
    std::string_view bytes;
    if (!U32(&n) || !Bytes(n, &bytes)) return false;
    s->assign(bytes);
    return true;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

}  // namespace

absl::StatusOr<std::vector<ObjectEvent>> ObjectWatcher::Next(size_t max_events,
                                                             absl::Time deadline) {
  const ObjectStore& s = *store_;
  absl::MutexLock lock(&s.mu_);
  auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(s.mu_) { return s.closed_ || s.rv_ > cursor_; };
  s.mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  if (s.closed_) return absl::CancelledError("the store is closed");
  std::vector<ObjectEvent> events;
  if (s.rv_ <= cursor_) return events;
  if (cursor_ < s.floor_) {
    return ExpiredError(fmt::format("too old resource version: {} ({})", cursor_, s.floor_));
  }
  for (const ObjectStore::Change& c : s.history_) {
    if (c.rv <= cursor_) continue;
    if (events.size() >= max_events) return events;
    cursor_ = c.rv;
    if (!ns_.empty() && c.object.namespace_ != ns_) continue;
    events.push_back({c.type, c.object});
  }
  cursor_ = s.rv_;
  return events;
}

ObjectStore::ObjectStore(ObjectStoreOptions options) : options_(std::move(options)) {
  if (options_.file_system == nullptr) options_.file_system = DefaultFileSystem();
  if (options_.clock == nullptr) {
    static SystemClock clock;
    options_.clock = &clock;
  }
}

ObjectStore::~ObjectStore() { Close(); }

absl::StatusOr<std::unique_ptr<ObjectStore>> ObjectStore::Open(ObjectStoreOptions options) {
  std::unique_ptr<ObjectStore> store(new ObjectStore(std::move(options)));
  if (!store->options_.data_dir.empty()) {
    absl::Status loaded = store->Load();
    if (!loaded.ok()) return loaded;
  }
  return store;
}

absl::Status ObjectStore::Load() {
  FileSystem* fs = options_.file_system;
  dir_ = JoinPath(options_.data_dir, options_.subdir);
  path_ = JoinPath(dir_, kFileName);
  absl::Status made = fs->CreateDirIfMissing(options_.data_dir);
  if (made.ok()) made = fs->CreateDirIfMissing(dir_);
  if (!made.ok()) return made;

  absl::MutexLock lock(&mu_);
  if (!fs->FileExists(path_)) return absl::OkStatus();
  absl::StatusOr<std::string> data = fs->ReadFileToString(path_);
  if (!data.ok()) return data.status();
  std::string_view rest(*data);
  if (!rest.starts_with(kHeader)) {
    return absl::DataLossError(fmt::format("{}: not a KOLE object file (bad header)", path_));
  }
  rest.remove_prefix(kHeader.size());
  bool watermark = false;
  while (!rest.empty()) {
    Reader r(rest);
    uint32_t length = 0, crc = 0;
    std::string_view payload;
    if (!r.U32(&length) || !r.U32(&crc) || !r.Bytes(length, &payload) || Crc(payload) != crc ||
        payload.empty()) {
      return absl::DataLossError(
          fmt::format("{}: corrupt record at offset {}", path_, data->size() - rest.size()));
    }
    rest.remove_prefix(8 + length);
    Reader p(payload.substr(1));
    if (payload[0] == kWatermark) {
      if (!p.U64(&rv_) || !p.empty()) return absl::DataLossError(path_ + ": bad watermark");
      watermark = true;
      continue;
    }
    StoredObject o;
    if (payload[0] != kObject || !p.U64(&o.resource_version) || !p.String(&o.namespace_) ||
        !p.String(&o.name) || !p.String(&o.json) || !p.empty()) {
      return absl::DataLossError(fmt::format("{}: bad object record", path_));
    }
    rv_ = std::max(rv_, o.resource_version);
    Key key{o.namespace_, o.name};
    objects_[key] = std::move(o);
  }
  if (!watermark) return absl::DataLossError(path_ + ": truncated (no watermark)");
  floor_ = rv_;
  return absl::OkStatus();
}

absl::Status ObjectStore::PersistLocked(const std::map<Key, StoredObject>& objects, uint64_t rv) {
  if (options_.data_dir.empty()) return absl::OkStatus();
  FileSystem* fs = options_.file_system;
  std::string data(kHeader);
  for (const auto& [key, o] : objects) {
    std::string payload(1, kObject);
    PutU64(payload, o.resource_version);
    PutString(payload, o.namespace_);
    PutString(payload, o.name);
    PutString(payload, o.json);
    AppendRecord(data, payload);
  }
  std::string wm(1, kWatermark);
  PutU64(wm, rv);
  AppendRecord(data, wm);

  std::string tmp = path_ + ".tmp";
  absl::StatusOr<std::unique_ptr<WritableFile>> out = fs->NewWritableFile(tmp);
  if (!out.ok()) return out.status();
  absl::Status s = (*out)->Append(data);
  if (s.ok()) s = (*out)->Sync();
  if (s.ok()) s = (*out)->Close();
  if (s.ok()) s = fs->RenameFile(tmp, path_);
  if (s.ok()) s = fs->SyncDir(dir_);
  return s;
}

absl::StatusOr<StoredObject> ObjectStore::CommitLocked(const Key& key,
                                                       std::optional<StoredObject> after,
                                                       EventType type) {
  uint64_t rv = rv_ + 1;
  std::map<Key, StoredObject> next = objects_;
  StoredObject result;
  if (after) {
    after->resource_version = rv;
    next[key] = *after;
    result = *after;
  } else {
    result = next[key];
    result.resource_version = rv;
    next.erase(key);
  }
  absl::Status persisted = PersistLocked(next, rv);
  if (!persisted.ok()) return persisted;

  objects_ = std::move(next);
  rv_ = rv;
  int64_t now = options_.clock->WallSeconds();
  history_.push_back(Change{rv, type, result, now});
  int64_t horizon = now - options_.retention_seconds;
  while (!history_.empty() &&
         (history_.size() > options_.max_history || history_.front().time < horizon)) {
    floor_ = history_.front().rv;
    history_.pop_front();
  }
  return result;
}

absl::StatusOr<StoredObject> ObjectStore::Create(StoredObject object) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the store is closed");
  Key key{object.namespace_, object.name};
  if (objects_.contains(key)) {
    return absl::AlreadyExistsError(fmt::format("{:?} already exists", object.name));
  }
  return CommitLocked(key, std::move(object), EventType::kAdded);
}

absl::StatusOr<StoredObject> ObjectStore::Update(StoredObject object, uint64_t expected_rv) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the store is closed");
  Key key{object.namespace_, object.name};
  auto it = objects_.find(key);
  if (it == objects_.end()) return absl::NotFoundError(fmt::format("{:?} not found", object.name));
  if (expected_rv != 0 && expected_rv != it->second.resource_version) {
    return absl::AbortedError("the object has been modified");
  }
  if (it->second.json == object.json) return it->second;
  return CommitLocked(key, std::move(object), EventType::kModified);
}

absl::StatusOr<StoredObject> ObjectStore::Delete(std::string_view ns, std::string_view name,
                                                 uint64_t expected_rv) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the store is closed");
  Key key{std::string(ns), std::string(name)};
  auto it = objects_.find(key);
  if (it == objects_.end()) return absl::NotFoundError(fmt::format("{:?} not found", name));
  if (expected_rv != 0 && expected_rv != it->second.resource_version) {
    return absl::AbortedError("the object has been modified");
  }
  return CommitLocked(key, std::nullopt, EventType::kDeleted);
}

absl::StatusOr<StoredObject> ObjectStore::Get(std::string_view ns, std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{std::string(ns), std::string(name)});
  if (it == objects_.end()) return absl::NotFoundError(fmt::format("{:?} not found", name));
  return it->second;
}

std::vector<StoredObject> ObjectStore::List(std::string_view ns, std::string_view after,
                                            size_t limit, bool* more,
                                            uint64_t* resource_version) const {
  absl::MutexLock lock(&mu_);
  *resource_version = rv_;
  *more = false;
  auto it = objects_.begin();
  if (!after.empty()) {
    size_t slash = after.find('/');
    Key key{std::string(after.substr(0, slash)),
            slash == std::string_view::npos ? "" : std::string(after.substr(slash + 1))};
    it = objects_.upper_bound(key);
  } else if (!ns.empty()) {
    it = objects_.lower_bound(Key{std::string(ns), ""});
  }
  std::vector<StoredObject> out;
  for (; it != objects_.end(); ++it) {
    if (!ns.empty() && it->first.first != ns) {
      if (it->first.first > ns) break;
      continue;
    }
    if (limit != 0 && out.size() == limit) {
      *more = true;
      break;
    }
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ObjectWatcher>> ObjectStore::Watch(uint64_t from_rv,
                                                                  std::string ns) const {
  absl::MutexLock lock(&mu_);
  if (from_rv == 0) from_rv = rv_;
  if (from_rv > rv_) {
    return absl::InvalidArgumentError(
        fmt::format("resourceVersion {} is newer than the store's {}", from_rv, rv_));
  }
  if (from_rv < floor_) {
    return ExpiredError(fmt::format("too old resource version: {} ({})", from_rv, floor_));
  }
  return std::unique_ptr<ObjectWatcher>(new ObjectWatcher(this, from_rv, std::move(ns)));
}

uint64_t ObjectStore::resource_version() const {
  absl::MutexLock lock(&mu_);
  return rv_;
}

size_t ObjectStore::size() const {
  absl::MutexLock lock(&mu_);
  return objects_.size();
}

void ObjectStore::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

}  // namespace kole::storage
