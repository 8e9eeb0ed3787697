// The read side of NodeStore: get, consistent lists and watches.

#include <absl/cleanup/cleanup.h>
#include <absl/strings/escaping.h>
#include <fmt/format.h>

#include <charconv>

#include "storage/node_store.h"

namespace kole::storage {
namespace {

// A list copies at most this many records per lock hold.
constexpr size_t kListBatch = 1024;

// A watcher examines at most this many changes per lock hold.
constexpr size_t kWatchBatch = 4096;

constexpr std::string_view kContinuePrefix = "kole1:";

const absl::string_view kExpiredPayload = "kole.io/expired";

absl::Status Expired(std::string message) { return ExpiredError(std::move(message)); }

// A watch from `rv`, older than the oldest retained version; the wording is
// kube-apiserver's, which clients recognise.
absl::Status TooOldToWatch(uint64_t rv, uint64_t oldest) {
  return Expired(fmt::format("too old resource version: {} ({})", rv, oldest));
}

// Continue tokens: "kole1:" + base64url(rv ":" slot ":" name).
std::string EncodeContinue(uint64_t rv, uint32_t slot, std::string_view name) {
  return std::string(kContinuePrefix) +
         absl::WebSafeBase64Escape(fmt::format("{}:{}:{}", rv, slot, name));
}

bool DecodeContinue(std::string_view token, uint64_t* rv, uint32_t* slot, std::string* name) {
  if (!token.starts_with(kContinuePrefix)) return false;
  std::string raw;
  std::string_view encoded = token.substr(kContinuePrefix.size());
  if (!absl::WebSafeBase64Unescape(absl::string_view(encoded.data(), encoded.size()), &raw)) {
    return false;
  }
  size_t first = raw.find(':');
  size_t second = first == std::string::npos ? first : raw.find(':', first + 1);
  if (second == std::string::npos) return false;
  auto parse = [](std::string_view text, auto* out) {
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return error == std::errc() && end == text.data() + text.size();
  };
  *name = raw.substr(second + 1);
  return parse(std::string_view(raw).substr(0, first), rv) &&
         parse(std::string_view(raw).substr(first + 1, second - first - 1), slot);
}

}  // namespace

absl::Status ExpiredError(std::string message) {
  absl::Status status = absl::OutOfRangeError(std::move(message));
  status.SetPayload(kExpiredPayload, absl::Cord("1"));
  return status;
}

bool IsExpired(const absl::Status& status) {
  return absl::IsOutOfRange(status) && status.GetPayload(kExpiredPayload).has_value();
}

uint64_t NodeStore::resource_version() const {
  absl::ReaderMutexLock lock(&mu_);
  return rv_;
}

absl::StatusOr<Node> NodeStore::Get(std::string_view name) const {
  NodeRecord record;
  {
    absl::ReaderMutexLock lock(&mu_);
    uint32_t slot = FindLocked(name);
    if (slot == kNoSlot) return absl::NotFoundError(fmt::format("nodes {:?} not found", name));
    record = records_[slot];
  }
  return codec_.Decode(record);
}

bool NodeStore::MatchesLocked(const NodeRecord& record, const LabelSelector& labels,
                              const FieldSelector& fields, LabelMatchCache* cache) const {
  std::string_view name = names_.Get(record.name);
  if (!fields.Empty()) {
    bool matched = fields.Matches([&](std::string_view field) -> std::optional<std::string_view> {
      if (field == "metadata.name") return name;
      if (field == "spec.unschedulable") {
        return (record.flags & kUnschedulable) ? std::string_view("true") : "false";
      }
      return std::nullopt;
    });
    if (!matched) return false;
  }
  if (labels.Empty()) return true;
  auto evaluate = [&] {
    return labels.Matches([&](std::string_view key) { return codec_.LabelValue(record, key); });
  };
  // The hostname label is per node; any other selector has one answer per
  // interned label set, and a fleet has far fewer sets than nodes.
  if (cache == nullptr || labels.ReferencesKey("kubernetes.io/hostname")) return evaluate();
  auto [it, inserted] = cache->try_emplace(record.labels, false);
  if (inserted) it->second = evaluate();
  return it->second;
}

absl::StatusOr<ListResult> NodeStore::List(const ListOptions& options) const {
  ListResult result;
  absl::Status listed = ListEach(
      options, [&](const Node& node) { result.nodes.push_back(node); }, &result);
  if (!listed.ok()) return listed;
  return result;
}

absl::Status NodeStore::ListEach(const ListOptions& options,
                                 absl::FunctionRef<void(const Node&)> visit,
                                 ListResult* result) const {
  return ListEachView(
      options, [&](const NodeView& node) { visit(node.ToNode()); }, result);
}

absl::Status NodeStore::ListEachView(const ListOptions& options,
                                     absl::FunctionRef<void(const NodeView&)> visit,
                                     ListResult* result) const {
  absl::Status supported =
      options.field_selector.CheckSupported({"metadata.name", "spec.unschedulable"});
  if (!supported.ok()) return supported;

  size_t emitted = 0;
  uint64_t snapshot_rv = options.resource_version;
  NameKey start{"", 0};
  bool after_start = false;
  std::string start_name;
  if (!options.continue_token.empty()) {
    uint32_t slot = 0;
    if (!DecodeContinue(options.continue_token, &snapshot_rv, &slot, &start_name)) {
      return absl::InvalidArgumentError("the continue token is malformed");
    }
    start = {start_name, slot};
    after_start = true;
  }

  // A field selector on metadata.name is a lookup, not a scan.
  std::optional<std::string_view> exact_name =
      options.field_selector.RequiredValue("metadata.name");

  std::vector<NodeRecord> batch;
  LabelMatchCache label_cache;
  bool more = true;
  while (more) {
    batch.clear();
    {
      absl::ReaderMutexLock lock(&mu_);
      if (snapshot_rv == 0) snapshot_rv = rv_;
      if (snapshot_rv > rv_) {
        return absl::InvalidArgumentError(
            fmt::format("resourceVersion {} is newer than the store's {}", snapshot_rv, rv_));
      }
      bool historical = snapshot_rv < rv_;
      if (historical && !change_log_.Covers(snapshot_rv)) {
        return Expired(fmt::format(
            "The provided continue parameter or resourceVersion {} is too old: the store retains "
            "changes from {} on. To start a new list, omit the continue parameter",
            snapshot_rv, change_log_.first_rv() - 1));
      }

      auto it = after_start ? ordered_.upper_bound(start) : ordered_.begin();
      if (exact_name.has_value()) {
        NameKey first{*exact_name, 0};
        if (!after_start || SlotOrder::Less(start, first)) it = ordered_.lower_bound(first);
      }
      size_t visited = 0;
      for (; it != ordered_.end() && visited < kListBatch; ++it, ++visited) {
        uint32_t slot = *it;
        const NodeRecord& current = records_[slot];
        if (exact_name.has_value() && names_.Get(current.name) != *exact_name) {
          it = ordered_.end();
          break;
        }
        start = {names_.Get(current.name), slot};
        after_start = true;
        std::optional<NodeRecord> state = change_log_.StateAt(current, snapshot_rv);
        if (!state.has_value()) continue;
        if (!MatchesLocked(*state, options.label_selector, options.field_selector, &label_cache)) {
          continue;
        }
        batch.push_back(*state);
        if (options.limit != 0 && emitted + batch.size() == options.limit) {
          ++it;
          break;
        }
      }
      more = it != ordered_.end();
      if (after_start) {
        // Keep the resume point in our own string: it must survive the lock.
        start_name.assign(start.name);
        start.name = start_name;
      }
    }

    // Read outside the lock: the arena and the blob pool are append-only.
    for (const NodeRecord& record : batch) visit(NodeView(codec_, record));
    emitted += batch.size();
    if (options.limit != 0 && emitted >= options.limit) break;
  }

  result->resource_version = snapshot_rv;
  result->continue_token.clear();
  if (more) result->continue_token = EncodeContinue(snapshot_rv, start.slot, start.name);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NodeWatcher>> NodeStore::Watch(uint64_t from_rv,
                                                              LabelSelector label_selector,
                                                              FieldSelector field_selector) const {
  absl::Status supported = field_selector.CheckSupported({"metadata.name", "spec.unschedulable"});
  if (!supported.ok()) return supported;

  absl::ReaderMutexLock lock(&mu_);
  if (from_rv == 0) from_rv = rv_;
  if (from_rv > rv_) {
    return absl::InvalidArgumentError(
        fmt::format("resourceVersion {} is newer than the store's {}", from_rv, rv_));
  }
  if (from_rv < rv_ && !change_log_.Covers(from_rv)) {
    return TooOldToWatch(from_rv, change_log_.first_rv() - 1);
  }
  return std::unique_ptr<NodeWatcher>(
      new NodeWatcher(this, from_rv, std::move(label_selector), std::move(field_selector)));
}

absl::StatusOr<std::vector<WatchEvent>> NodeWatcher::Next(size_t max_events, absl::Time deadline) {
  struct Pending {
    EventType type;
    NodeRecord record;
  };
  std::vector<Pending> pending;
  const NodeStore& store = *store_;
  {
    auto ready = [this, &store]() ABSL_SHARED_LOCKS_REQUIRED(store.mu_) {
      return store.closed_ || store.rv_ > cursor_;
    };
    store.mu_.ReaderLockWhenWithDeadline(absl::Condition(&ready), deadline);
    absl::Cleanup unlock = [&store] { store.mu_.ReaderUnlock(); };
    if (store.closed_) return absl::CancelledError("the store is closed");
    if (store.rv_ <= cursor_) return std::vector<WatchEvent>();
    if (!store.change_log_.Covers(cursor_)) {
      return TooOldToWatch(cursor_, store.change_log_.first_rv() - 1);
    }

    auto current = [&store](uint32_t slot) -> const NodeRecord& { return store.records_[slot]; };
    uint64_t end = std::min(store.rv_, cursor_ + kWatchBatch);
    while (cursor_ < end && pending.size() < max_events) {
      ChangeLog::Change change = store.change_log_.At(cursor_ + 1, current);
      ++cursor_;
      bool was = change.before != nullptr && !(change.before->flags & kDeleted) &&
                 store.MatchesLocked(*change.before, labels_, fields_, &label_cache_);
      bool is = change.after != nullptr &&
                store.MatchesLocked(*change.after, labels_, fields_, &label_cache_);
      if (was && is) {
        pending.push_back({EventType::kModified, *change.after});
      } else if (is) {
        pending.push_back({EventType::kAdded, *change.after});
      } else if (was) {
        // Deleted, or moved out of the selection: the client sees it go.
        NodeRecord last = *change.before;
        last.resource_version = change.resource_version;
        pending.push_back({EventType::kDeleted, last});
      }
    }
  }

  std::vector<WatchEvent> events;
  events.reserve(pending.size());
  for (const Pending& p : pending) events.push_back({p.type, store.codec_.Decode(p.record)});
  return events;
}

}  // namespace kole::storage
