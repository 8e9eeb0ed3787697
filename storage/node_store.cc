#include "storage/node_store.h"

#include <absl/hash/hash.h>
#include <fmt/format.h>

#include <cstring>

#include "storage/store_persistence.h"
#include "storage/validation.h"

namespace kole::storage {
namespace {

// Versions are reserved in the log this many at a time, so the counter can
// never go backwards after a crash even when the newest changes were not yet
// synced: recovery resumes after the reserved range.
constexpr uint64_t kVersionReservation = 1 << 20;

constexpr std::string_view kReadyReason = "EdgeAgentReady";
constexpr std::string_view kReadyMessage = "edge agent is posting heartbeats";
constexpr std::string_view kUnknownReason = "NodeStatusUnknown";
constexpr std::string_view kUnknownMessage = "Edge agent stopped posting heartbeats.";
constexpr std::string_view kDisconnectedReason = "EdgeAgentDisconnected";
constexpr std::string_view kDisconnectedMessage = "The device's MQTT session ended.";

// Debian's Abseil has its own string_view type; heterogeneous lookups in its
// string-keyed maps take that one.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The labels an API write leaves: the user-owned labels of `desired` and the
// device-owned labels of `current`. InvalidArgument when `desired` changes or
// adds a device-owned label; leaving one out keeps the device's value.
absl::StatusOr<StringPairs> MergeUserLabels(const StringPairs& current,
                                            const StringPairs& desired) {
  StringPairs merged;
  for (const auto& [key, value] : desired) {
    if (!IsDeviceOwnedLabel(key)) {
      merged.emplace_back(key, value);
      continue;
    }
    // An init-capture: clang before 16 cannot capture a structured binding.
    auto it = std::find_if(current.begin(), current.end(),
                           [&key = key](const auto& pair) { return pair.first == key; });
    if (it == current.end() || it->second != value) {
      return absl::InvalidArgumentError(fmt::format(
          "label {:?} is owned by the device and cannot be changed through the API", key));
    }
  }
  for (const auto& pair : current) {
    if (IsDeviceOwnedLabel(pair.first)) merged.push_back(pair);
  }
  NormalizePairs(merged);
  return merged;
}

// Annotations in total, as kube-apiserver limits them.
constexpr size_t kMaxAnnotationBytes = 256 << 10;
// Everything else a node carries; far above any real node, far below what
// would strain a log record.
constexpr size_t kMaxNodeBytes = 512 << 10;

absl::Status Invalid(std::string_view what, std::string_view value, std::string_view problem) {
  return absl::InvalidArgumentError(fmt::format("{} {:?} is invalid: {}", what, value, problem));
}

absl::Status ValidateNode(const Node& node) {
  std::vector<std::string> problems = IsDns1123Subdomain(node.name);
  if (!problems.empty()) return Invalid("node name", node.name, problems.front());

  size_t bytes = 0;
  for (const auto& [key, value] : node.labels) {
    problems = IsQualifiedName(key);
    if (problems.empty()) problems = IsValidLabelValue(value);
    if (!problems.empty())
      return Invalid("label", fmt::format("{}={}", key, value), problems.front());
    bytes += key.size() + value.size();
  }
  size_t annotation_bytes = 0;
  for (const auto& [key, value] : node.annotations) {
    problems = IsQualifiedName(key);
    if (!problems.empty()) return Invalid("annotation key", key, problems.front());
    annotation_bytes += key.size() + value.size();
  }
  if (annotation_bytes > kMaxAnnotationBytes) {
    return absl::InvalidArgumentError(fmt::format("annotations take {} bytes; the limit is {}",
                                                  annotation_bytes, kMaxAnnotationBytes));
  }
  for (const Taint& taint : node.taints) {
    problems = IsQualifiedName(taint.key);
    if (problems.empty()) problems = IsValidLabelValue(taint.value);
    if (!problems.empty()) return Invalid("taint", taint.key, problems.front());
    if (taint.effect != "NoSchedule" && taint.effect != "PreferNoSchedule" &&
        taint.effect != "NoExecute") {
      return Invalid("taint effect", taint.effect,
                     "must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    bytes += taint.key.size() + taint.value.size();
  }
  for (const DeviceCondition& c : node.conditions) {
    bytes += c.type.size() + c.reason.size() + c.message.size();
  }
  for (const auto& pairs : {&node.capacity, &node.allocatable}) {
    for (const auto& [key, value] : *pairs) bytes += key.size() + value.size();
  }
  for (const NodeAddress& a : node.addresses) bytes += a.type.size() + a.address.size();
  bytes += node.ready_reason.size() + node.ready_message.size() + node.edge.gateway.size() +
           sizeof(NodeInfo) * 4;
  if (bytes > kMaxNodeBytes) {
    return absl::InvalidArgumentError(
        fmt::format("node {:?} takes {} bytes; the limit is {}", node.name, bytes, kMaxNodeBytes));
  }
  return absl::OkStatus();
}

}  // namespace

// --- Index helpers ---

NodeStore::NameKey NodeStore::SlotOrder::Key(uint32_t slot) const {
  return {store->names_.Get(store->records_[slot].name), slot};
}

size_t NodeStore::SlotHash::operator()(uint32_t slot) const {
  return absl::Hash<std::string_view>{}(store->names_.Get(store->records_[slot].name));
}

size_t NodeStore::SlotHash::operator()(std::string_view name) const {
  return absl::Hash<std::string_view>{}(name);
}

bool NodeStore::SlotEq::operator()(uint32_t a, std::string_view b) const {
  return store->names_.Get(store->records_[a].name) == b;
}

// --- Life cycle ---

NodeStore::NodeStore(StoreOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : DefaultClock()),
      by_name_(0, SlotHash{this}, SlotEq{this}),
      ordered_(SlotOrder{this}),
      change_log_(options_.change_log, 1) {}

absl::StatusOr<std::unique_ptr<NodeStore>> NodeStore::Open(StoreOptions options) {
  if (options.report_period_seconds <= 0) {
    return absl::InvalidArgumentError("the report period must be positive");
  }
  if (options.change_log.retention_seconds < 0) {
    return absl::InvalidArgumentError("the change log retention must not be negative");
  }
  if (options.snapshots_to_keep < 1) {
    return absl::InvalidArgumentError("at least one snapshot must be kept");
  }
  std::unique_ptr<NodeStore> store(new NodeStore(std::move(options)));

  if (!store->options_.data_dir.empty()) {
    absl::StatusOr<std::unique_ptr<StorePersistence>> persistence =
        StorePersistence::OpenAndRecover(store->options_, store.get());
    if (!persistence.ok()) return persistence.status();
    store->persistence_ = std::move(*persistence);
  }

  {
    absl::MutexLock lock(&store->mu_);
    store->RebuildIndexesLocked();
  }

  if (store->options_.background_maintenance && !store->options_.read_only) {
    store->maintenance_thread_ = std::thread([s = store.get()] { s->MaintenanceLoop(); });
  }
  return store;
}

NodeStore::~NodeStore() { Close(); }

void NodeStore::Close() {
  {
    absl::MutexLock lock(&maintenance_mu_);
    stop_maintenance_ = true;
  }
  if (maintenance_thread_.joinable()) maintenance_thread_.join();

  absl::MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  if (persistence_ != nullptr) {
    absl::Status synced = persistence_->Sync();
    if (!synced.ok()) KOLE_LOG(Error, "Final log sync failed", "err", synced);
  }
}

void NodeStore::RebuildIndexesLocked() {
  // Recovery fills records_ and by_name_; deleted records are never restored
  // into the history, so their slots are free at once. Snapshots store nodes
  // in name order, which makes most inserts into the name order an append.
  int64_t now = clock_->MonotonicSeconds();
  ordered_.clear();
  free_slots_.clear();
  live_nodes_ = 0;
  for (uint32_t slot = 0; slot < records_.size(); ++slot) {
    NodeRecord& record = records_[slot];
    if (record.flags & kDeleted) {
      free_slots_.push_back(slot);
      continue;
    }
    // Grace clocks restart at process start: a restart must not mark the
    // fleet NotReady.
    record.last_seen_s = static_cast<uint32_t>(now);
    record.live_sequence = record.published_sequence;
    ordered_.insert(ordered_.end(), slot);
    ++live_nodes_;
  }
  change_log_.Reset(rv_ + 1);
}

void NodeStore::MaintenanceLoop() {
  absl::MutexLock lock(&maintenance_mu_);
  while (!stop_maintenance_) {
    maintenance_mu_.AwaitWithTimeout(absl::Condition(&stop_maintenance_), absl::Milliseconds(100));
    if (stop_maintenance_) break;
    maintenance_mu_.Unlock();
    absl::Status status = Maintain();
    if (!status.ok()) KOLE_LOG_EVERY_N(Error, 100, "Store maintenance failed", "err", status);
    maintenance_mu_.Lock();
  }
}

absl::Status NodeStore::Maintain() {
  {
    absl::MutexLock lock(&mu_);
    TrimLocked();
  }
  if (persistence_ == nullptr) return absl::OkStatus();

  absl::Status synced = persistence_->Sync();
  if (!synced.ok()) return synced;
  if (persistence_->SnapshotDue()) return Snapshot();
  return absl::OkStatus();
}

absl::Status NodeStore::Snapshot() {
  if (persistence_ == nullptr) {
    return absl::FailedPreconditionError("the store has no data directory");
  }
  // One snapshot at a time: they share the history pin and the directory.
  absl::MutexLock lock(&snapshot_mu_);
  return persistence_->WriteSnapshot(this);
}

RecoveryReport NodeStore::recovery() const {
  return persistence_ != nullptr ? persistence_->recovery() : RecoveryReport{};
}

absl::Status NodeStore::WaitDurable(uint64_t token) {
  if (persistence_ == nullptr) return absl::OkStatus();
  return persistence_->WaitDurable(token);
}

// --- Write path ---

absl::Status NodeStore::CheckWritableLocked() const {
  if (closed_) return absl::UnavailableError("the store is closed");
  if (!write_failure_.ok()) return write_failure_;
  if (persistence_ != nullptr) return persistence_->health();
  return absl::OkStatus();
}

uint32_t NodeStore::FindLocked(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? kNoSlot : *it;
}

absl::StatusOr<uint64_t> NodeStore::ReserveVersionLocked() {
  // Returns the next version without taking it: CommitLocked takes it only
  // once the change is logged, so a failed append leaves no gap.
  if (rv_ + 1 > rv_reserved_) {
    if (rv_ > UINT64_MAX - kVersionReservation) {
      // Unreachable for a healthy store (recovery refuses such versions), and
      // wrapping would break every client's ordering.
      return absl::InternalError("the resourceVersion counter is exhausted");
    }
    uint64_t upto = rv_ + kVersionReservation;
    if (persistence_ != nullptr) {
      absl::StatusOr<uint64_t> token = persistence_->LogReserve(upto);
      if (!token.ok()) return token.status();
      // The reservation must be on disk before any version in it is seen.
      absl::Status durable = persistence_->WaitDurable(*token);
      if (!durable.ok()) return durable;
    }
    rv_reserved_ = upto;
  }
  return rv_ + 1;
}

absl::Status NodeStore::FailWritesLocked(absl::Status status) {
  // A record that did not reach the log may have left interned values that
  // the log never saw; any later write could refer to them. Refuse writes
  // until a restart recovers from the log.
  if (write_failure_.ok()) {
    write_failure_ = status;
    KOLE_LOG(Error, "Store write failed; refusing writes until restart", "err", status);
  }
  return status;
}

uint32_t NodeStore::AllocateSlotLocked(std::string_view name) {
  uint32_t name_ref = names_.Append(name);
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    NodeRecord empty;
    std::memset(&empty, 0, sizeof(empty));
    slot = static_cast<uint32_t>(records_.push_back(empty));
  }
  records_[slot].name = name_ref;
  return slot;
}

void NodeStore::FreeSlotLocked(uint32_t slot) {
  ordered_.erase(slot);
  free_slots_.push_back(slot);
}

absl::StatusOr<uint64_t> NodeStore::CommitLocked(uint32_t slot, std::string_view name,
                                                 NodeRecord record,
                                                 const std::vector<uint32_t>& new_blobs,
                                                 EventType type) {
  // Log first: a change that cannot be logged is not applied.
  uint64_t token = 0;
  absl::StatusOr<uint64_t> rv = ReserveVersionLocked();
  if (!rv.ok()) return FailWritesLocked(rv.status());
  record.resource_version = *rv;
  if (type == EventType::kAdded) record.created_rv = *rv;
  if (persistence_ != nullptr) {
    for (uint32_t id : new_blobs) {
      absl::StatusOr<uint64_t> logged = persistence_->LogBlob(id, blobs_.Get(id));
      if (!logged.ok()) return FailWritesLocked(logged.status());
    }
    absl::StatusOr<uint64_t> logged = type == EventType::kDeleted
                                          ? persistence_->LogDelete(*rv, name)
                                          : persistence_->LogPut(*rv, name, record);
    if (!logged.ok()) return FailWritesLocked(logged.status());
    token = *logged;
  }
  rv_ = *rv;

  int64_t now = clock_->WallSeconds();
  if (type == EventType::kAdded) {
    if (slot == kNoSlot) slot = AllocateSlotLocked(name);
    record.name = records_[slot].name;
    records_[slot] = record;
    by_name_.insert(slot);
    ordered_.insert(slot);
    ++live_nodes_;
    change_log_.Append(*rv, slot, type, nullptr, now);
  } else {
    NodeRecord before = records_[slot];
    record.name = before.name;
    records_[slot] = record;
    if (type == EventType::kDeleted) {
      by_name_.erase(slot);
      --live_nodes_;
    }
    change_log_.Append(*rv, slot, type, &before, now);
  }
  return token;
}

int64_t NodeStore::ReportPeriod(uint32_t slot) const {
  // Nodes registered in one burst would all publish in the same seconds one
  // period later, and again every period. Each node's period is shortened by
  // a fixed amount of up to a quarter, drawn from its slot, so the refreshes
  // spread out after the first round.
  int64_t period = options_.report_period_seconds;
  int64_t spread = period / 4;
  if (spread <= 0) return period;
  uint64_t h = (slot + 1) * 0x9E3779B97F4A7C15ull;
  return period - static_cast<int64_t>((h >> 32) % static_cast<uint64_t>(spread));
}

void NodeStore::PublishLocked(NodeRecord& record, int64_t now_s) {
  record.published_sequence = record.live_sequence;
  record.heartbeat_published_s = static_cast<uint32_t>(now_s);
}

absl::StatusOr<RegisterResult> NodeStore::Register(const Node& reported) {
  absl::Status valid = ValidateNode(reported);
  if (!valid.ok()) return valid;

  absl::MutexLock lock(&mu_);
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;
  if (tombstones_.contains(AbslView(reported.name))) {
    return absl::FailedPreconditionError(fmt::format(
        "node {:?} was deleted and may not re-register until it is re-admitted (create it "
        "through the API)",
        reported.name));
  }

  int64_t now = clock_->WallSeconds();
  int64_t monotonic = clock_->MonotonicSeconds();
  uint32_t slot = FindLocked(reported.name);
  Node merged = reported;
  RegisterResult result;
  if (slot == kNoSlot) {
    merged.uid = Uid{};  // Derived from the creating version.
    merged.creation_timestamp = now;
    merged.edge.epoch = reported.edge.epoch == 0 ? 1 : reported.edge.epoch;
    NormalizePairs(merged.labels);
    NormalizePairs(merged.annotations);
    result.created = true;
  } else {
    Node current = codec_.Decode(records_[slot]);
    // A node created through the API and never registered (epoch 0) is
    // claimed by whichever identity registers it first.
    if (!reported.edge.gateway.empty() && reported.edge.gateway != current.edge.gateway &&
        current.edge.epoch != 0) {
      return absl::PermissionDeniedError(fmt::format(
          "node {:?} is registered {}; gateway {:?} cannot take it over", reported.name,
          current.edge.gateway.empty() ? std::string("on its own connection")
                                       : fmt::format("through gateway {:?}", current.edge.gateway),
          reported.edge.gateway));
    }
    if (reported.edge.epoch != 0 && reported.edge.epoch < current.edge.epoch) {
      return absl::FailedPreconditionError(
          fmt::format("registration of {:?} carries epoch {}, older than the node's epoch {}",
                      reported.name, reported.edge.epoch, current.edge.epoch));
    }
    merged.uid = current.uid;
    merged.creation_timestamp = current.creation_timestamp;
    merged.annotations = current.annotations;
    merged.taints = current.taints;
    merged.unschedulable = current.unschedulable;
    // Device-owned labels come from the report, user-owned ones stay.
    merged.labels.clear();
    for (const auto& pair : current.labels) {
      if (!IsDeviceOwnedLabel(pair.first)) merged.labels.push_back(pair);
    }
    for (const auto& pair : reported.labels) {
      if (IsDeviceOwnedLabel(pair.first)) merged.labels.push_back(pair);
    }
    NormalizePairs(merged.labels);
    merged.edge.epoch = reported.edge.epoch == 0 ? current.edge.epoch + 1 : reported.edge.epoch;
    merged.ready = current.ready;
    merged.ready_reason = current.ready_reason;
    merged.ready_message = current.ready_message;
    merged.ready_transition_time = current.ready_transition_time;
    merged.conditions_transition_time = current.conditions_transition_time;
    if (merged.conditions != current.conditions) merged.conditions_transition_time = now;
    merged.last_heartbeat_time = current.last_heartbeat_time;
  }
  merged.edge.connected = true;
  merged.edge.sequence = 0;
  merged.edge.last_report_time = now;

  std::vector<uint32_t> new_blobs;
  NodeRecord record = codec_.Encode(merged, &new_blobs);
  record.last_seen_s = static_cast<uint32_t>(monotonic);
  codec_.SetReady(record, ConditionStatus::kTrue, kReadyReason, kReadyMessage, now, &new_blobs);
  if (result.created) {
    record.ready_transition_s = static_cast<uint32_t>(now);
    record.conditions_transition_s = static_cast<uint32_t>(now);
    record.heartbeat_published_s = static_cast<uint32_t>(now);
  }
  result.epoch = record.epoch;

  if (slot != kNoSlot) {
    const NodeRecord& current = records_[slot];
    record.heartbeat_published_s = current.heartbeat_published_s;
    if (current.epoch == record.epoch && SameVisibleContent(current, record)) {
      // A repeated registration (the device retried before our ack reached
      // it): nothing changes, and what it asked for is already logged.
      records_[slot].last_seen_s = record.last_seen_s;
      result.resource_version = current.resource_version;
      result.durable_token = persistence_ != nullptr ? persistence_->last_token() : 0;
      return result;
    }
    record.heartbeat_published_s = static_cast<uint32_t>(now);
  }

  absl::StatusOr<uint64_t> token =
      CommitLocked(slot, reported.name, record, new_blobs,
                   result.created ? EventType::kAdded : EventType::kModified);
  if (!token.ok()) return token.status();
  result.resource_version = rv_;
  result.durable_token = *token;
  return result;
}

absl::Status NodeStore::ApplyHeartbeats(std::span<const Heartbeat> heartbeats,
                                        std::span<HeartbeatOutcome> outcomes) {
  if (outcomes.size() < heartbeats.size()) {
    return absl::InvalidArgumentError("one outcome per heartbeat is needed");
  }
  int64_t now = clock_->WallSeconds();
  uint32_t monotonic = static_cast<uint32_t>(clock_->MonotonicSeconds());

  absl::MutexLock lock(&mu_);
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;

  std::vector<uint32_t> new_blobs;
  for (size_t i = 0; i < heartbeats.size(); ++i) {
    const Heartbeat& beat = heartbeats[i];
    uint32_t slot = FindLocked(beat.name);
    if (slot == kNoSlot) {
      outcomes[i] = HeartbeatOutcome::kUnknownNode;
      continue;
    }
    NodeRecord& record = records_[slot];
    if (!beat.gateway.empty() && codec_.Gateway(record) != beat.gateway) {
      outcomes[i] = HeartbeatOutcome::kWrongGateway;
      continue;
    }
    if (record.epoch == 0) {
      // Pre-created through the API and never registered: the device must
      // register first, which assigns its first epoch.
      outcomes[i] = HeartbeatOutcome::kUnknownEpoch;
      continue;
    }
    if (beat.epoch != record.epoch) {
      outcomes[i] = beat.epoch < record.epoch ? HeartbeatOutcome::kStaleEpoch
                                              : HeartbeatOutcome::kUnknownEpoch;
      continue;
    }
    if (beat.sequence <= record.live_sequence) {
      outcomes[i] = HeartbeatOutcome::kDuplicate;
      continue;
    }

    // The common case: liveness in place, no version, no log record.
    record.live_sequence = beat.sequence;
    record.last_seen_s = monotonic;
    bool revive = static_cast<ConditionStatus>(record.ready) != ConditionStatus::kTrue ||
                  !(record.flags & kConnected);
    bool due = now - static_cast<int64_t>(record.heartbeat_published_s) >= ReportPeriod(slot);
    if (!revive && !due) {
      outcomes[i] = HeartbeatOutcome::kApplied;
      continue;
    }

    NodeRecord updated = record;
    new_blobs.clear();
    if (revive) {
      updated.flags |= kConnected;
      codec_.SetReady(updated, ConditionStatus::kTrue, kReadyReason, kReadyMessage, now,
                      &new_blobs);
    }
    PublishLocked(updated, now);
    absl::StatusOr<uint64_t> token =
        CommitLocked(slot, beat.name, updated, new_blobs, EventType::kModified);
    if (!token.ok()) return token.status();
    outcomes[i] = HeartbeatOutcome::kPublished;
  }
  return absl::OkStatus();
}

int64_t NodeStore::MonotonicSeconds() const { return clock_->MonotonicSeconds(); }

absl::Status NodeStore::MarkDisconnected(std::string_view name, uint32_t epoch,
                                         int64_t heard_since) {
  absl::MutexLock lock(&mu_);
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;
  uint32_t slot = FindLocked(name);
  if (slot == kNoSlot) return absl::NotFoundError(fmt::format("node {:?} not found", name));
  if (epoch != 0 && records_[slot].epoch != epoch) return absl::OkStatus();
  if (static_cast<int64_t>(records_[slot].last_seen_s) >= heard_since) return absl::OkStatus();
  return MarkDisconnectedLocked(slot, clock_->WallSeconds());
}

absl::StatusOr<size_t> NodeStore::MarkGatewayDisconnected(std::string_view gateway,
                                                          int64_t heard_since) {
  if (gateway.empty()) return absl::InvalidArgumentError("a gateway name is needed");
  absl::MutexLock lock(&mu_);
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;
  int64_t now = clock_->WallSeconds();
  size_t changed = 0;
  for (uint32_t slot = 0; slot < records_.size(); ++slot) {
    const NodeRecord& record = records_[slot];
    if ((record.flags & kDeleted) || !(record.flags & kConnected)) continue;
    if (static_cast<int64_t>(record.last_seen_s) >= heard_since) continue;
    if (codec_.Gateway(record) != gateway) continue;
    absl::Status status = MarkDisconnectedLocked(slot, now);
    if (!status.ok()) return status;
    ++changed;
  }
  return changed;
}

absl::Status NodeStore::MarkDisconnectedLocked(uint32_t slot, int64_t now) {
  NodeRecord updated = records_[slot];
  std::vector<uint32_t> new_blobs;
  updated.flags &= ~kConnected;
  codec_.SetReady(updated, ConditionStatus::kUnknown, kDisconnectedReason, kDisconnectedMessage,
                  now, &new_blobs);
  if (SameVisibleContent(updated, records_[slot])) return absl::OkStatus();
  return CommitLocked(slot, names_.Get(records_[slot].name), updated, new_blobs,
                      EventType::kModified)
      .status();
}

size_t NodeStore::CountConnected() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t connected = 0;
  for (uint32_t slot = 0; slot < records_.size(); ++slot) {
    const NodeRecord& record = records_[slot];
    if (!(record.flags & kDeleted) && (record.flags & kConnected)) ++connected;
  }
  return connected;
}

size_t NodeStore::CountExpired(int64_t grace_seconds) const {
  int64_t now = clock_->MonotonicSeconds();
  absl::ReaderMutexLock lock(&mu_);
  size_t expired = 0;
  for (uint32_t slot = 0; slot < records_.size(); ++slot) {
    const NodeRecord& record = records_[slot];
    if ((record.flags & kDeleted) ||
        record.ready == static_cast<uint8_t>(ConditionStatus::kUnknown))
      continue;
    if (now - static_cast<int64_t>(record.last_seen_s) >= grace_seconds) ++expired;
  }
  return expired;
}

absl::StatusOr<size_t> NodeStore::ExpireHeartbeats(int64_t grace_seconds, size_t limit) {
  int64_t now = clock_->MonotonicSeconds();
  int64_t wall = clock_->WallSeconds();
  absl::MutexLock lock(&mu_);
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;

  size_t expired = 0;
  std::vector<uint32_t> new_blobs;
  for (uint32_t slot = 0; slot < records_.size() && expired < limit; ++slot) {
    const NodeRecord& record = records_[slot];
    if ((record.flags & kDeleted) ||
        record.ready == static_cast<uint8_t>(ConditionStatus::kUnknown))
      continue;
    if (now - static_cast<int64_t>(record.last_seen_s) < grace_seconds) continue;
    NodeRecord updated = record;
    new_blobs.clear();
    codec_.SetReady(updated, ConditionStatus::kUnknown, kUnknownReason, kUnknownMessage, wall,
                    &new_blobs);
    absl::StatusOr<uint64_t> token =
        CommitLocked(slot, names_.Get(record.name), updated, new_blobs, EventType::kModified);
    if (!token.ok()) return token.status();
    ++expired;
  }
  return expired;
}

void NodeStore::ResetLivenessClocks() {
  uint32_t now = static_cast<uint32_t>(clock_->MonotonicSeconds());
  absl::MutexLock lock(&mu_);
  for (uint32_t slot = 0; slot < records_.size(); ++slot) records_[slot].last_seen_s = now;
}

absl::StatusOr<Node> NodeStore::Create(const Node& node) {
  absl::Status valid = ValidateNode(node);
  if (!valid.ok()) return valid;

  uint64_t token = 0;
  Node created = node;
  {
    absl::MutexLock lock(&mu_);
    absl::Status writable = CheckWritableLocked();
    if (!writable.ok()) return writable;
    if (FindLocked(node.name) != kNoSlot) {
      return absl::AlreadyExistsError(fmt::format("nodes {:?} already exists", node.name));
    }
    if (tombstones_.erase(AbslView(node.name)) > 0 && persistence_ != nullptr) {
      absl::StatusOr<uint64_t> logged = persistence_->LogTombstone(node.name, false, 0);
      if (!logged.ok()) return FailWritesLocked(logged.status());
    }

    created.uid = Uid{};
    created.creation_timestamp = clock_->WallSeconds();
    created.resource_version = 0;
    created.edge = EdgeStatus{};
    NormalizePairs(created.labels);
    NormalizePairs(created.annotations);
    std::vector<uint32_t> new_blobs;
    NodeRecord record = codec_.Encode(created, &new_blobs);
    record.last_seen_s = static_cast<uint32_t>(clock_->MonotonicSeconds());
    absl::StatusOr<uint64_t> logged =
        CommitLocked(kNoSlot, node.name, record, new_blobs, EventType::kAdded);
    if (!logged.ok()) return logged.status();
    token = *logged;
    created = codec_.Decode(records_[FindLocked(node.name)]);
  }
  absl::Status durable = WaitDurable(token);
  if (!durable.ok()) return durable;
  return created;
}

absl::StatusOr<Node> NodeStore::UpdateLocked(const Node& desired, uint64_t expected_rv, bool status,
                                             uint64_t* token) {
  absl::Status writable = CheckWritableLocked();
  if (!writable.ok()) return writable;
  uint32_t slot = FindLocked(desired.name);
  if (slot == kNoSlot) {
    return absl::NotFoundError(fmt::format("nodes {:?} not found", desired.name));
  }
  const NodeRecord& current_record = records_[slot];
  if (expected_rv != 0 && expected_rv != current_record.resource_version) {
    return absl::AbortedError(fmt::format(
        "Operation cannot be fulfilled on nodes {:?}: the object has been modified; please "
        "apply your changes to the latest version and try again",
        desired.name));
  }

  Node current = codec_.Decode(current_record);
  Node merged = current;
  int64_t now = clock_->WallSeconds();
  if (status) {
    merged.capacity = desired.capacity;
    merged.allocatable = desired.allocatable;
    merged.addresses = desired.addresses;
    merged.node_info = desired.node_info;
    merged.conditions = desired.conditions;
    if (merged.conditions != current.conditions) merged.conditions_transition_time = now;
    merged.ready = desired.ready;
    merged.ready_reason = desired.ready_reason;
    merged.ready_message = desired.ready_message;
    if (merged.ready != current.ready) merged.ready_transition_time = now;
    NormalizePairs(merged.capacity);
    NormalizePairs(merged.allocatable);
  } else {
    absl::StatusOr<StringPairs> labels = MergeUserLabels(current.labels, desired.labels);
    if (!labels.ok()) return labels.status();
    merged.labels = std::move(*labels);
    merged.annotations = desired.annotations;
    NormalizePairs(merged.annotations);
    merged.taints = desired.taints;
    merged.unschedulable = desired.unschedulable;
  }
  absl::Status valid = ValidateNode(merged);
  if (!valid.ok()) return valid;

  std::vector<uint32_t> new_blobs;
  NodeRecord record = codec_.Encode(merged, &new_blobs);
  record.live_sequence = current_record.live_sequence;
  record.last_seen_s = current_record.last_seen_s;
  if (SameVisibleContent(record, current_record)) {
    *token = 0;
    return current;
  }
  absl::StatusOr<uint64_t> logged =
      CommitLocked(slot, desired.name, record, new_blobs, EventType::kModified);
  if (!logged.ok()) return logged.status();
  *token = *logged;
  return codec_.Decode(records_[slot]);
}

absl::StatusOr<Node> NodeStore::UpdateAndWait(const Node& desired, uint64_t expected_rv,
                                              bool status) {
  uint64_t token = 0;
  absl::StatusOr<Node> updated;
  {
    absl::MutexLock lock(&mu_);
    updated = UpdateLocked(desired, expected_rv, status, &token);
  }
  if (!updated.ok()) return updated;
  absl::Status durable = WaitDurable(token);
  if (!durable.ok()) return durable;
  return updated;
}

absl::StatusOr<Node> NodeStore::UpdateSpec(const Node& desired, uint64_t expected_rv) {
  return UpdateAndWait(desired, expected_rv, /*status=*/false);
}

absl::StatusOr<Node> NodeStore::UpdateStatus(const Node& desired, uint64_t expected_rv) {
  return UpdateAndWait(desired, expected_rv, /*status=*/true);
}

absl::StatusOr<Node> NodeStore::Delete(std::string_view name, uint64_t expected_rv,
                                       bool tombstone) {
  uint64_t token = 0;
  Node last;
  {
    absl::MutexLock lock(&mu_);
    absl::Status writable = CheckWritableLocked();
    if (!writable.ok()) return writable;
    uint32_t slot = FindLocked(name);
    if (slot == kNoSlot) return absl::NotFoundError(fmt::format("nodes {:?} not found", name));
    if (expected_rv != 0 && expected_rv != records_[slot].resource_version) {
      return absl::AbortedError(fmt::format(
          "Operation cannot be fulfilled on nodes {:?}: the object has been modified", name));
    }
    last = codec_.Decode(records_[slot]);

    if (tombstone) {
      int64_t now = clock_->WallSeconds();
      if (persistence_ != nullptr) {
        absl::StatusOr<uint64_t> logged = persistence_->LogTombstone(name, true, now);
        if (!logged.ok()) return FailWritesLocked(logged.status());
      }
      tombstones_[std::string(name)] = now;
    }
    NodeRecord record = records_[slot];
    record.flags |= kDeleted;
    absl::StatusOr<uint64_t> logged = CommitLocked(slot, name, record, {}, EventType::kDeleted);
    if (!logged.ok()) return logged.status();
    token = *logged;
    last.resource_version = rv_;
  }
  absl::Status durable = WaitDurable(token);
  if (!durable.ok()) return durable;
  return last;
}

absl::Status NodeStore::Readmit(std::string_view name) {
  uint64_t token = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::Status writable = CheckWritableLocked();
    if (!writable.ok()) return writable;
    auto it = tombstones_.find(AbslView(name));
    if (it == tombstones_.end()) return absl::OkStatus();
    if (persistence_ != nullptr) {
      absl::StatusOr<uint64_t> logged = persistence_->LogTombstone(name, false, 0);
      if (!logged.ok()) return FailWritesLocked(logged.status());
      token = *logged;
    }
    tombstones_.erase(it);
  }
  return WaitDurable(token);
}

bool NodeStore::IsTombstoned(std::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  return tombstones_.contains(AbslView(name));
}

void NodeStore::TrimLocked() {
  int64_t now = clock_->WallSeconds();
  size_t capped =
      change_log_.Trim(now, snapshot_pin_rv_, [this](uint32_t slot) { FreeSlotLocked(slot); });
  if (capped > 0) {
    // Watches and continue tokens now expire sooner than promised.
    change_log_capped_ += capped;
    KOLE_LOG_EVERY_N(Warning, 100,
                     "Change log reached its memory cap; history is shorter than the retention "
                     "period",
                     "retainedSeconds", change_log_.oldest_age_seconds(now), "retentionSeconds",
                     options_.change_log.retention_seconds, "maxBytes",
                     options_.change_log.max_bytes);
  }
}

StoreStats NodeStore::Stats() const {
  absl::ReaderMutexLock lock(&mu_);
  StoreStats stats;
  stats.nodes = live_nodes_;
  stats.tombstones = tombstones_.size();
  stats.resource_version = rv_;
  stats.change_log_entries = change_log_.size();
  stats.change_log_bytes = change_log_.memory_bytes();
  stats.change_log_capped = change_log_capped_;
  stats.blobs = blobs_.size();
  stats.blob_bytes = blobs_.memory_bytes();
  stats.name_bytes = names_.used_bytes();
  stats.record_bytes = records_.size() * sizeof(NodeRecord);
  if (persistence_ != nullptr) stats.wal_durable_sequence = persistence_->durable_token();
  return stats;
}

}  // namespace kole::storage
