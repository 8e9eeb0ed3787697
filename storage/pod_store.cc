#include "storage/pod_store.h"

#include <absl/strings/cord.h>
#include <absl/strings/escaping.h>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <zlib.h>

#include <charconv>
#include <cstring>

#include "common/log.h"
#include "storage/data_dir.h"
#include "storage/node_store.h"

namespace kole::storage {
namespace {

constexpr std::string_view kHeader = "KOLEPOD1";
constexpr char kPut = 'P';
constexpr char kDelete = 'D';
constexpr char kWatermark = 'W';
constexpr std::string_view kContinuePrefix = "pod1:";
// Pages of derived pods: "pod2:" + base64("<version>:<position>").
constexpr std::string_view kDerivedContinuePrefix = "pod2:";
// Derived pods rendered per lock acquisition of a list.
constexpr size_t kDerivedListBatch = 1024;

absl::Status Expired(std::string message) { return ExpiredError(std::move(message)); }

// What the devices need of a standalone pod: it travels as a workload of one
// node (daemon_pods.h, WorkloadSpec::node_name).
WorkloadSpec StandaloneSpec(const Pod& pod) {
  WorkloadSpec spec;
  spec.namespace_ = pod.namespace_;
  spec.name = std::string(kStandalonePrefix) + pod.name;
  spec.uid = pod.uid;
  spec.node_name = pod.node_name;
  spec.pod_labels = pod.labels;
  spec.pod_annotations = pod.annotations;
  spec.pod_spec_json = pod.spec_json.empty() ? "{}" : pod.spec_json;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(spec.pod_spec_json.data(), spec.pod_spec_json.size());
  if (doc.IsObject()) {
    auto containers = doc.FindMember("containers");
    if (containers != doc.MemberEnd() && containers->value.IsArray()) {
      for (const rapidjson::Value& c : containers->value.GetArray()) {
        auto name = c.IsObject() ? c.FindMember("name") : c.MemberEnd();
        auto image = c.IsObject() ? c.FindMember("image") : c.MemberEnd();
        spec.container_names.emplace_back(c.IsObject() && name != c.MemberEnd() &&
                                                  name->value.IsString()
                                              ? name->value.GetString()
                                              : "");
        spec.container_images.emplace_back(c.IsObject() && image != c.MemberEnd() &&
                                                   image->value.IsString()
                                               ? image->value.GetString()
                                               : "");
      }
    }
    auto host = doc.FindMember("hostNetwork");
    spec.host_network = host != doc.MemberEnd() && host->value.IsBool() && host->value.GetBool();
  }
  return spec;
}

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
void PutPairs(std::string& out, const StringPairs& pairs) {
  PutU32(out, static_cast<uint32_t>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    PutString(out, k);
    PutString(out, v);
  }
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
  bool String(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || data_.size() < n) return false;
    s->assign(data_.substr(0, n));
    data_.remove_prefix(n);
    return true;
  }
  bool Pairs(StringPairs* pairs) {
    uint32_t n = 0;
    if (!U32(&n) || n > data_.size()) return false;
    pairs->resize(n);
    for (auto& [k, v] : *pairs) {
      if (!String(&k) || !String(&v)) return false;
    }
    return true;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

std::string EncodePod(char op, const Pod& p) {
  std::string out;
  out.push_back(op);
  PutU64(out, p.resource_version);
  PutString(out, p.namespace_);
  PutString(out, p.name);
  PutU64(out, p.uid.hi);
  PutU64(out, p.uid.lo);
  PutU64(out, static_cast<uint64_t>(p.creation_timestamp));
  PutPairs(out, p.labels);
  PutPairs(out, p.annotations);
  PutString(out, p.node_name);
  PutString(out, p.phase);
  PutString(out, p.spec_json);
  PutString(out, p.status_json);
  return out;
}

bool DecodePod(std::string_view payload, char* op, Pod* p) {
  if (payload.empty()) return false;
  *op = payload[0];
  Reader r(payload.substr(1));
  uint64_t created = 0;
  bool ok = r.U64(&p->resource_version);
  if (ok && *op == kWatermark) return r.empty();
  ok = ok && r.String(&p->namespace_) && r.String(&p->name) && r.U64(&p->uid.hi) &&
       r.U64(&p->uid.lo) && r.U64(&created) && r.Pairs(&p->labels) && r.Pairs(&p->annotations) &&
       r.String(&p->node_name) && r.String(&p->phase) && r.String(&p->spec_json) &&
       r.String(&p->status_json) && r.empty();
  p->creation_timestamp = static_cast<int64_t>(created);
  return ok;
}

std::string Frame(std::string_view payload) {
  std::string out;
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                          static_cast<uInt>(payload.size()))));
  out.append(payload);
  return out;
}

std::string EncodeContinue(uint64_t rv, const std::string& ns, const std::string& name) {
  return std::string(kContinuePrefix) +
         absl::WebSafeBase64Escape(fmt::format("{}:{}/{}", rv, ns, name));
}

bool DecodeContinue(std::string_view token, uint64_t* rv,
                    std::pair<std::string, std::string>* key) {
  if (token.substr(0, kContinuePrefix.size()) != kContinuePrefix) return false;
  std::string raw;
  std::string_view enc = token.substr(kContinuePrefix.size());
  if (!absl::WebSafeBase64Unescape(absl::string_view(enc.data(), enc.size()), &raw)) return false;
  size_t colon = raw.find(':');
  size_t slash = colon == std::string::npos ? colon : raw.find('/', colon);
  if (slash == std::string::npos) return false;
  auto [end, err] = std::from_chars(raw.data(), raw.data() + colon, *rv);
  if (err != std::errc() || end != raw.data() + colon) return false;
  key->first = raw.substr(colon + 1, slash - colon - 1);
  key->second = raw.substr(slash + 1);
  return true;
}

}  // namespace

bool PodMatches(const Pod& pod, std::string_view ns, const LabelSelector& labels,
                const FieldSelector& fields) {
  if (!ns.empty() && pod.namespace_ != ns) return false;
  if (!fields.Empty()) {
    bool ok = fields.Matches([&](std::string_view f) -> std::optional<std::string_view> {
      if (f == "metadata.name") return pod.name;
      if (f == "metadata.namespace") return pod.namespace_;
      if (f == "spec.nodeName") return pod.node_name;
      if (f == "status.phase") return pod.phase;
      return std::nullopt;
    });
    if (!ok) return false;
  }
  return labels.Empty() || labels.Matches(pod.labels);
}

class PodStoreWatcher final : public PodWatcher {
 public:
  PodStoreWatcher(const PodStore* store, uint64_t cursor, std::string ns, LabelSelector labels,
                  FieldSelector fields)
      : store_(store),
        cursor_(cursor),
        ns_(std::move(ns)),
        labels_(std::move(labels)),
        fields_(std::move(fields)) {}

  absl::StatusOr<std::vector<PodWatchEvent>> Next(size_t max_events, absl::Time deadline) override {
    const PodStore& s = *store_;
    absl::MutexLock lock(&s.mu_);
    auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(s.mu_) { return s.closed_ || s.rv_ > cursor_; };
    s.mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    if (s.closed_) return absl::CancelledError("the pod store is closed");
    std::vector<PodWatchEvent> events;
    if (s.rv_ <= cursor_) return events;
    if (!s.CoversLocked(cursor_)) {
      return Expired(fmt::format("too old resource version: {} ({})", cursor_, s.FloorLocked()));
    }
    // Standalone changes and derived pod events share the version sequence;
    // deliver both in version order.
    const std::deque<DaemonPods::Event>& derived = s.daemon_->history();
    auto d = std::upper_bound(derived.begin(), derived.end(), cursor_,
                              [](uint64_t rv, const DaemonPods::Event& e) { return rv < e.rv; });
    auto c = s.history_.begin();
    while (c != s.history_.end() && c->rv <= cursor_) ++c;
    while (events.size() < max_events && (c != s.history_.end() || d != derived.end())) {
      if (d == derived.end() || (c != s.history_.end() && c->rv < d->rv)) {
        cursor_ = c->rv;
        bool was = c->before && PodMatches(*c->before, ns_, labels_, fields_);
        bool is = c->after && PodMatches(*c->after, ns_, labels_, fields_);
        if (was && is) {
          events.push_back({EventType::kModified, *c->after});
        } else if (is) {
          events.push_back({EventType::kAdded, *c->after});
        } else if (was) {
          Pod last = *c->before;
          last.resource_version = c->rv;
          events.push_back({EventType::kDeleted, std::move(last)});
        }
        ++c;
        continue;
      }
      const DaemonPods::Event& e = *d++;
      cursor_ = e.rv;
      bool was =
          e.type != EventType::kAdded && s.daemon_->MatchesEvent(e, false, ns_, labels_, fields_);
      bool is =
          e.type != EventType::kDeleted && s.daemon_->MatchesEvent(e, true, ns_, labels_, fields_);
      if (is) {
        events.push_back({was ? EventType::kModified : EventType::kAdded, s.daemon_->Render(e)});
      } else if (was) {
        DaemonPods::Event gone = e;
        gone.type = EventType::kDeleted;
        events.push_back({EventType::kDeleted, s.daemon_->Render(gone)});
      }
    }
    if (events.size() < max_events) cursor_ = std::max(cursor_, s.rv_);
    return events;
  }

  uint64_t cursor() const override { return cursor_; }

 private:
  const PodStore* store_;
  uint64_t cursor_;
  std::string ns_;
  LabelSelector labels_;
  FieldSelector fields_;
};

PodStore::PodStore(PodStoreOptions options) : options_(std::move(options)) {
  if (options_.file_system == nullptr) options_.file_system = DefaultFileSystem();
  if (options_.clock == nullptr) {
    static SystemClock clock;
    options_.clock = &clock;
  }
  Clock* clock = options_.clock;
  daemon_ = std::make_unique<DaemonPods>(
      DaemonPodsOptions{.retention_seconds = options_.retention_seconds,
                        .max_history_bytes = options_.max_derived_history_bytes},
      [this] { return NextDerivedVersion(); }, [clock] { return clock->WallSeconds(); });
}

uint64_t PodStore::NextDerivedVersion() {
  // Called by daemon_ under mu_. Derived events are not logged one by one:
  // a watermark record reserves a range of versions ahead, so that versions
  // never go backwards across a crash.
  mu_.AssertHeld();
  uint64_t rv = rv_ + 1;
  if (rv > reserved_) {
    reserved_ = rv + kDerivedVersionReservation;
    if (log_ != nullptr && write_failure_.ok()) {
      std::string wm;
      wm.push_back(kWatermark);
      PutU64(wm, reserved_);
      absl::Status s = log_->Append(Frame(wm));
      if (s.ok()) s = log_->Sync();
      if (!s.ok()) {
        KOLE_LOG(Error, "Could not reserve pod versions; pod writes fail from now on", "err",
                 s.ToString());
        write_failure_ = s;
      }
    }
  }
  rv_ = rv;
  return rv;
}

PodStore::~PodStore() { Close(); }

absl::StatusOr<std::unique_ptr<PodStore>> PodStore::Open(PodStoreOptions options) {
  std::unique_ptr<PodStore> store(new PodStore(std::move(options)));
  if (!store->options_.data_dir.empty()) {
    absl::Status recovered = store->Recover();
    if (!recovered.ok()) return recovered;
  }
  return store;
}

absl::Status PodStore::Recover() {
  FileSystem* fs = options_.file_system;
  std::string dir = JoinPath(options_.data_dir, kDataDirPodsName);
  log_path_ = JoinPath(dir, kPodLogName);
  if (!options_.read_only) {
    absl::Status made = fs->CreateDirIfMissing(options_.data_dir);
    if (made.ok()) made = fs->CreateDirIfMissing(dir);
    if (!made.ok()) return made;
  }

  absl::MutexLock lock(&mu_);
  if (fs->FileExists(log_path_)) {
    absl::StatusOr<std::string> data = fs->ReadFileToString(log_path_);
    if (!data.ok()) return data.status();
    std::string_view rest(*data);
    if (rest.size() < kHeader.size() || rest.substr(0, kHeader.size()) != kHeader) {
      return absl::DataLossError(fmt::format("{}: not a KOLE pod log (bad header)", log_path_));
    }
    rest.remove_prefix(kHeader.size());
    uint64_t good = kHeader.size();
    while (!rest.empty()) {
      Reader r(rest);
      uint32_t length = 0, crc = 0;
      bool framed = r.U32(&length) && r.U32(&crc) && rest.size() >= 8 + uint64_t{length};
      std::string_view payload = framed ? rest.substr(8, length) : std::string_view();
      bool valid = framed && crc == static_cast<uint32_t>(
                                        crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                              static_cast<uInt>(payload.size())));
      Pod pod;
      char op = 0;
      valid = valid && DecodePod(payload, &op, &pod);
      if (!valid) {
        // The last record may be torn by a crash; anything after a bad
        // record means the middle of the log is damaged.
        bool last = !framed || rest.size() == 8 + uint64_t{length};
        if (!last) {
          return absl::DataLossError(
              fmt::format("{}: corrupt record at offset {}", log_path_, good));
        }
        torn_tail_bytes_ = data->size() - good;
        if (options_.read_only) break;
        absl::Status truncated = fs->TruncateFile(log_path_, good);
        if (!truncated.ok()) return truncated;
        break;
      }
      rv_ = std::max(rv_, pod.resource_version);
      Key key{pod.namespace_, pod.name};
      if (op == kPut) {
        pods_[key] = std::move(pod);
      } else if (op == kDelete) {
        pods_.erase(key);
      }
      rest.remove_prefix(8 + length);
      good += 8 + length;
    }
  }
  if (options_.read_only) {
    write_failure_ = absl::FailedPreconditionError("the pod store is open read-only");
    return absl::OkStatus();
  }
  // The history of changes before the restart is gone.
  floor_ = rv_;
  reserved_ = rv_;
  for (const auto& [key, pod] : pods_) daemon_->SetWorkload(StandaloneSpec(pod), {});
  daemon_->TakeStandaloneChanges();  // Nothing is known of their devices yet.
  return CompactLocked();
}

absl::Status PodStore::CompactLocked() {
  FileSystem* fs = options_.file_system;
  std::string tmp = log_path_ + ".tmp";
  if (log_ != nullptr) {
    log_->Close().IgnoreError();
    log_.reset();
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> out = fs->NewWritableFile(tmp);
  if (!out.ok()) return out.status();
  std::string data(kHeader);
  std::string wm;
  wm.push_back(kWatermark);
  PutU64(wm, std::max(rv_, reserved_));
  data += Frame(wm);
  for (const auto& [key, pod] : pods_) data += Frame(EncodePod(kPut, pod));
  absl::Status s = (*out)->Append(data);
  if (s.ok()) s = (*out)->Sync();
  if (s.ok()) s = (*out)->Close();
  if (s.ok()) s = fs->RenameFile(tmp, log_path_);
  if (s.ok()) s = fs->SyncDir(JoinPath(options_.data_dir, kDataDirPodsName));
  if (!s.ok()) return s;
  absl::StatusOr<std::unique_ptr<WritableFile>> appendable = fs->NewAppendableFile(log_path_);
  if (!appendable.ok()) return appendable.status();
  log_ = std::move(*appendable);
  return absl::OkStatus();
}

absl::Status PodStore::LogLocked(char op, const Pod& pod) {
  if (!write_failure_.ok()) return write_failure_;
  if (log_ == nullptr) return absl::OkStatus();  // Memory only.
  absl::Status s = log_->Append(Frame(EncodePod(op, pod)));
  if (s.ok()) s = log_->Sync();
  if (!s.ok()) {
    write_failure_ = s;
    return s;
  }
  if (log_->Size() > options_.compact_after_bytes) {
    absl::Status compacted = CompactLocked();
    if (!compacted.ok()) write_failure_ = compacted;
  }
  return absl::OkStatus();
}

uint64_t PodStore::FloorLocked() const { return std::max(floor_, daemon_->trimmed_upto()); }

bool PodStore::CoversLocked(uint64_t rv) const {
  if (rv >= rv_) return true;
  return rv >= FloorLocked();
}

absl::StatusOr<Pod> PodStore::Commit(const Key& key, std::optional<Pod> after, EventType type) {
  Change change;
  change.rv = rv_ + 1;
  change.type = type;
  change.key = key;
  auto it = pods_.find(key);
  if (it != pods_.end()) change.before = it->second;
  Pod logged = after ? *after : *change.before;
  logged.resource_version = change.rv;
  absl::Status s = LogLocked(after ? kPut : kDelete, logged);
  if (!s.ok()) return s;
  rv_ = change.rv;
  if (after) {
    after->resource_version = rv_;
    pods_[key] = *after;
    change.after = *after;
  } else {
    pods_.erase(key);
  }
  change.time = options_.clock->WallSeconds();
  // The device of a standalone pod learns of it the way EdgeDaemonSets'
  // pods travel; status writes (the device's own, mostly) change nothing there.
  if (!after) {
    daemon_->RemoveWorkload(key.first, std::string(kStandalonePrefix) + key.second);
  } else if (!change.before || change.before->spec_json != after->spec_json ||
             change.before->labels != after->labels ||
             change.before->annotations != after->annotations) {
    daemon_->SetWorkload(StandaloneSpec(*after), {});
  }
  history_.push_back(std::move(change));
  int64_t horizon = options_.clock->WallSeconds() - options_.retention_seconds;
  while (!history_.empty() &&
         (history_.size() > options_.max_history || history_.front().time < horizon)) {
    floor_ = std::max(floor_, history_.front().rv);
    history_.pop_front();
  }
  return logged;
}

absl::StatusOr<Pod> PodStore::Create(const Pod& pod) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the pod store is closed");
  Key key{pod.namespace_, pod.name};
  if (pods_.contains(key)) {
    return absl::AlreadyExistsError(
        fmt::format("pods {:?} already exists", pod.namespace_ + "/" + pod.name));
  }
  Pod created = pod;
  created.uid = Uid::Random();
  created.creation_timestamp = options_.clock->WallSeconds();
  if (created.status_json.empty()) created.status_json = "{}";
  absl::StatusOr<Pod> result = Commit(key, created, EventType::kAdded);
  if (result.ok()) {
    // Pending (ContainerCreating) once its node is known, as devices see it.
    RecordStandaloneChangesLocked();
    if (auto it = pods_.find(key); it != pods_.end()) result = it->second;
  }
  return result;
}

absl::StatusOr<Pod> PodStore::WriteLocked(const Pod& desired, uint64_t expected_rv, bool status) {
  if (closed_) return absl::UnavailableError("the pod store is closed");
  Key key{desired.namespace_, desired.name};
  auto it = pods_.find(key);
  if (it == pods_.end())
    return absl::NotFoundError(fmt::format("pods {:?} not found", desired.name));
  if (expected_rv != 0 && expected_rv != it->second.resource_version) {
    return absl::AbortedError("the object has been modified");
  }
  Pod next = it->second;
  if (status) {
    next.status_json = desired.status_json.empty() ? "{}" : desired.status_json;
    next.phase = desired.phase;
  } else {
    next.labels = desired.labels;
    next.annotations = desired.annotations;
    next.spec_json = desired.spec_json;
    next.node_name = desired.node_name;
  }
  if (next == it->second) return next;
  absl::StatusOr<Pod> result = Commit(key, next, EventType::kModified);
  if (result.ok() && !status) {
    RecordStandaloneChangesLocked();
    if (auto found = pods_.find(key); found != pods_.end()) result = found->second;
  }
  return result;
}

absl::StatusOr<Pod> PodStore::Update(const Pod& desired, uint64_t expected_rv) {
  absl::MutexLock lock(&mu_);
  return WriteLocked(desired, expected_rv, false);
}

absl::StatusOr<Pod> PodStore::UpdateStatus(const Pod& desired, uint64_t expected_rv) {
  absl::MutexLock lock(&mu_);
  return WriteLocked(desired, expected_rv, true);
}

absl::StatusOr<Pod> PodStore::Delete(std::string_view ns, std::string_view name,
                                     uint64_t expected_rv) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the pod store is closed");
  Key key{std::string(ns), std::string(name)};
  auto it = pods_.find(key);
  if (it == pods_.end()) {
    // A pod of an EdgeDaemonSet: deleting it restarts it on the device.
    std::optional<Pod> current = daemon_->Get(ns, name);
    if (!current) return absl::NotFoundError(fmt::format("pods {:?} not found", name));
    if (expected_rv != 0 && expected_rv != current->resource_version) {
      return absl::AbortedError("the object has been modified");
    }
    return daemon_->Restart(ns, name)->first;
  }
  if (expected_rv != 0 && expected_rv != it->second.resource_version) {
    return absl::AbortedError("the object has been modified");
  }
  return Commit(key, std::nullopt, EventType::kDeleted);
}

void PodStore::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  if (log_ != nullptr) {
    log_->Close().IgnoreError();
    log_.reset();
  }
}

size_t PodStore::size() const {
  absl::MutexLock lock(&mu_);
  return pods_.size();
}

uint64_t PodStore::resource_version() const {
  absl::MutexLock lock(&mu_);
  return rv_;
}

absl::StatusOr<Pod> PodStore::Get(std::string_view ns, std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = pods_.find(Key{std::string(ns), std::string(name)});
  if (it != pods_.end()) return it->second;
  std::optional<Pod> derived = daemon_->Get(ns, name);
  if (!derived) return absl::NotFoundError(fmt::format("pods {:?} not found", name));
  return *std::move(derived);
}

absl::Status PodStore::ListEach(const PodListOptions& options,
                                absl::FunctionRef<void(const Pod&)> visit,
                                PodListResult* result) const {
  absl::Status supported = options.field_selector.CheckSupported(
      {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"});
  if (!supported.ok()) return supported;
  uint64_t snapshot = options.resource_version;
  std::optional<Key> after;
  if (options.continue_token.substr(0, kDerivedContinuePrefix.size()) == kDerivedContinuePrefix) {
    std::string raw;
    std::string_view enc =
        std::string_view(options.continue_token).substr(kDerivedContinuePrefix.size());
    size_t colon = std::string::npos;
    if (absl::WebSafeBase64Unescape(absl::string_view(enc.data(), enc.size()), &raw)) {
      colon = raw.find(':');
    }
    if (colon == std::string::npos ||
        std::from_chars(raw.data(), raw.data() + colon, snapshot).ptr != raw.data() + colon) {
      return absl::InvalidArgumentError("the continue token is malformed");
    }
    result->resource_version = snapshot;
    return ListDerived(options, raw.substr(colon + 1), options.limit, visit, result);
  }
  if (!options.continue_token.empty()) {
    Key key;
    if (!DecodeContinue(options.continue_token, &snapshot, &key)) {
      return absl::InvalidArgumentError("the continue token is malformed");
    }
    after = std::move(key);
  }

  std::vector<Pod> page;
  bool more = false;
  Key last;
  {
    absl::MutexLock lock(&mu_);
    if (snapshot == 0) snapshot = rv_;
    if (snapshot > rv_) {
      return absl::InvalidArgumentError(
          fmt::format("resourceVersion {} is newer than the store's {}", snapshot, rv_));
    }
    if (!CoversLocked(snapshot)) {
      return Expired(fmt::format(
          "The provided continue parameter or resourceVersion {} is too old. To start a new "
          "list, omit the continue parameter",
          snapshot));
    }
    // The state at `snapshot`: the current map with every later change
    // undone (the earliest later change of a key holds its state then).
    std::map<Key, std::optional<Pod>> undone;
    for (const Change& c : history_) {
      if (c.rv > snapshot && !undone.contains(c.key)) undone[c.key] = c.before;
    }
    std::map<Key, const Pod*> state;
    for (const auto& [key, pod] : pods_) state[key] = &pod;
    for (const auto& [key, pod] : undone) {
      if (pod) {
        state[key] = &*pod;
      } else {
        state.erase(key);
      }
    }
    auto it = after ? state.upper_bound(*after) : state.begin();
    if (!options.namespace_.empty() && !after) {
      it = state.lower_bound(Key{options.namespace_, ""});
    }
    for (; it != state.end(); ++it) {
      if (!options.namespace_.empty() && it->first.first != options.namespace_) {
        if (it->first.first > options.namespace_) break;
        continue;
      }
      if (!PodMatches(*it->second, options.namespace_, options.label_selector,
                      options.field_selector)) {
        continue;
      }
      if (options.limit != 0 && page.size() == options.limit) {
        more = true;
        break;
      }
      page.push_back(*it->second);
      last = it->first;
    }
  }
  for (const Pod& pod : page) visit(pod);
  result->resource_version = snapshot;
  result->continue_token = more ? EncodeContinue(snapshot, last.first, last.second) : "";
  if (more) return absl::OkStatus();
  size_t left = options.limit == 0 ? 0 : options.limit - page.size();
  if (options.limit != 0 && left == 0) {
    // The page is full: the derived pods start the next one.
    result->continue_token = std::string(kDerivedContinuePrefix) +
                             absl::WebSafeBase64Escape(fmt::format("{}:", snapshot));
    return absl::OkStatus();
  }
  return ListDerived(options, "", left, visit, result);
}

absl::Status PodStore::ListDerived(const PodListOptions& options, std::string position,
                                   size_t limit, absl::FunctionRef<void(const Pod&)> visit,
                                   PodListResult* result) const {
  // Derived pods are served as they are now, not as of the list's version:
  // rebuilding a million pods at an old version is what the history does not
  // keep (docs/known-issues.md). A watch from the list's version still misses
  // nothing, as every later event is retained.
  size_t served = 0;
  std::vector<Pod> batch;
  while (true) {
    size_t want = kDerivedListBatch;
    if (limit != 0) want = std::min(want, limit - served);
    batch.clear();
    std::string next;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return absl::UnavailableError("the pod store is closed");
      next = daemon_->ListEach(options.namespace_, options.label_selector, options.field_selector,
                               position, want, [&](Pod pod) { batch.push_back(std::move(pod)); });
    }
    for (const Pod& pod : batch) visit(pod);
    served += batch.size();
    if (next.empty()) {
      result->continue_token.clear();
      return absl::OkStatus();
    }
    position = std::move(next);
    if (limit != 0 && served >= limit) {
      result->continue_token =
          std::string(kDerivedContinuePrefix) +
          absl::WebSafeBase64Escape(fmt::format("{}:{}", result->resource_version, position));
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<std::unique_ptr<PodWatcher>> PodStore::Watch(uint64_t from_rv, std::string ns,
                                                            LabelSelector labels,
                                                            FieldSelector fields) const {
  absl::Status supported = fields.CheckSupported(
      {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"});
  if (!supported.ok()) return supported;
  absl::MutexLock lock(&mu_);
  if (from_rv == 0) from_rv = rv_;
  if (from_rv > rv_) {
    return absl::InvalidArgumentError(
        fmt::format("resourceVersion {} is newer than the store's {}", from_rv, rv_));
  }
  if (!CoversLocked(from_rv)) {
    return Expired(fmt::format("too old resource version: {} ({})", from_rv, FloorLocked()));
  }
  return std::unique_ptr<PodWatcher>(
      new PodStoreWatcher(this, from_rv, std::move(ns), std::move(labels), std::move(fields)));
}

}  // namespace kole::storage

namespace kole::storage {

void PodStore::SetWorkload(const WorkloadSpec& spec, const std::vector<DaemonNodeFacts>& selected) {
  absl::MutexLock lock(&mu_);
  daemon_->SetWorkload(spec, selected);
}

void PodStore::RemoveWorkload(std::string_view ns, std::string_view name) {
  absl::MutexLock lock(&mu_);
  daemon_->RemoveWorkload(ns, name);
}

WorkloadStatus PodStore::GetWorkloadStatus(std::string_view ns, std::string_view name) const {
  absl::MutexLock lock(&mu_);
  return daemon_->Status(ns, name);
}

void PodStore::SuspendNamespace(std::string_view ns) {
  absl::MutexLock lock(&mu_);
  daemon_->SuspendNamespace(ns);
}

void PodStore::ResumeNamespace(std::string_view ns) {
  absl::MutexLock lock(&mu_);
  daemon_->ResumeNamespace(ns);
}

void PodStore::RecordStandaloneChangesLocked() {
  for (DaemonPods::StandaloneChange& change : daemon_->TakeStandaloneChanges()) {
    Key key{change.namespace_, change.name};
    auto it = pods_.find(key);
    if (it == pods_.end()) continue;
    Pod next = it->second;
    next.status_json = std::move(change.status_json);
    next.phase = std::move(change.phase);
    if (next == it->second) continue;
    absl::StatusOr<Pod> written = Commit(key, std::move(next), EventType::kModified);
    if (!written.ok()) {
      KOLE_LOG_EVERY_N(Error, 100, "Cannot record a standalone pod's status", "pod",
                       key.first + "/" + key.second, "err", written.status());
    }
  }
}

void PodStore::SetNodes(const std::vector<DaemonNodeFacts>& nodes) {
  absl::MutexLock lock(&mu_);
  for (const DaemonNodeFacts& facts : nodes) daemon_->SetNode(facts);
  RecordStandaloneChangesLocked();
}

void PodStore::RemoveNodes(const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  for (const std::string& name : names) daemon_->RemoveNode(name);
  RecordStandaloneChangesLocked();
}

size_t PodStore::ApplyPodRevisions(
    std::span<const std::pair<std::string_view, std::string_view>> revisions,
    int64_t resend_after_s) {
  absl::MutexLock lock(&mu_);
  size_t resend = 0;
  for (const auto& [node, revision] : revisions) {
    resend += daemon_->ApplyPodRevision(node, revision, resend_after_s) ? 1 : 0;
  }
  RecordStandaloneChangesLocked();
  return resend;
}

void PodStore::ApplyPodReports(std::string_view node, const std::vector<DaemonPodReport>& reports) {
  absl::MutexLock lock(&mu_);
  daemon_->ApplyReports(node, reports);
  RecordStandaloneChangesLocked();
}

size_t PodStore::Rollout() {
  absl::MutexLock lock(&mu_);
  size_t moved = daemon_->Rollout();
  daemon_->Trim();
  return moved;
}

std::vector<NodePodSet> PodStore::TakeDirtyNodes(size_t max) {
  absl::MutexLock lock(&mu_);
  return daemon_->TakeDirtyNodes(max);
}

void PodStore::MarkAllNodesDirty() {
  absl::MutexLock lock(&mu_);
  daemon_->MarkAllDirty();
}

void PodStore::MarkNodesDirty(const std::vector<std::string>& nodes) {
  absl::MutexLock lock(&mu_);
  daemon_->MarkDirty(nodes);
}

std::vector<WorkloadTemplateInfo> PodStore::WorkloadTemplates() const {
  absl::MutexLock lock(&mu_);
  return daemon_->Templates();
}

std::optional<NodePodSet> PodStore::DesiredPodSet(std::string_view node) const {
  absl::MutexLock lock(&mu_);
  return daemon_->DesiredSet(node);
}

PodStore::DerivedStats PodStore::derived_stats() const {
  absl::MutexLock lock(&mu_);
  return DerivedStats{.pods = daemon_->pod_count(),
                      .nodes = daemon_->node_count(),
                      .dirty_nodes = daemon_->dirty_nodes(),
                      .history_events = daemon_->history().size(),
                      .history_bytes = daemon_->history_bytes(),
                      .memory_bytes = daemon_->memory_bytes()};
}

bool PodStore::IsDerived(std::string_view ns, std::string_view name) const {
  absl::MutexLock lock(&mu_);
  return !pods_.contains(Key{std::string(ns), std::string(name)}) &&
         daemon_->Get(ns, name).has_value();
}

}  // namespace kole::storage
