#include "apiserver-ext/server_side_apply.h"

#include <absl/status/status.h>
#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"

namespace kole::apiserver {
namespace {

using rapidjson::Value;
using Allocator = rapidjson::Document::AllocatorType;

// ---------------------------------------------------------------------------
// Which lists merge by key. A list whose path is not here is atomic: applied
// and owned as one value. Paths are written from the object root, with "[*]"
// for "any item of the list"; key fields are sorted by name, the order the
// "k:" encoding uses. A key field with a default may be left out of an item.

struct KeyField {
  std::string_view name;
  std::string_view default_string;  // empty: the field is required
};

struct AssociativeList {
  std::string_view path;
  KeyField keys[2];
};

constexpr AssociativeList kAssociativeLists[] = {
    {".spec.template.spec.containers", {{"name", ""}}},
    {".spec.template.spec.containers[*].env", {{"name", ""}}},
    {".spec.template.spec.containers[*].ports", {{"containerPort", ""}, {"protocol", "TCP"}}},
    {".spec.template.spec.containers[*].volumeMounts", {{"mountPath", ""}}},
    {".spec.template.spec.initContainers", {{"name", ""}}},
    {".spec.template.spec.initContainers[*].env", {{"name", ""}}},
    {".spec.template.spec.initContainers[*].ports", {{"containerPort", ""}, {"protocol", "TCP"}}},
    {".spec.template.spec.initContainers[*].volumeMounts", {{"mountPath", ""}}},
    {".spec.template.spec.volumes", {{"name", ""}}},
};

const AssociativeList* FindAssociativeList(std::string_view schema_path) {
  for (const AssociativeList& list : kAssociativeLists) {
    if (list.path == schema_path) return &list;
  }
  return nullptr;
}

bool IsKeyField(const AssociativeList& list, std::string_view name) {
  for (const KeyField& key : list.keys) {
    if (!key.name.empty() && key.name == name) return true;
  }
  return false;
}

// Appends to a path string for the duration of a scope (walkers descend and
// come back up).
class PathScope {
 public:
  PathScope(std::string& path, std::string_view a, std::string_view b = {})
      : path_(path), size_(path.size()) {
    path_.append(a);
    path_.append(b);
  }
  ~PathScope() { path_.resize(size_); }
  PathScope(const PathScope&) = delete;
  PathScope& operator=(const PathScope&) = delete;

 private:
  std::string& path_;
  size_t size_;
};

// The "k:{...}" path element of an associative-list item, or nullopt when a
// key field is missing, null or not a scalar; `*missing` then names it.
std::optional<std::string> ItemKey(const Value& item, const AssociativeList& list,
                                   std::string_view* missing) {
  std::string out = "k:{";
  bool first = true;
  for (const KeyField& key : list.keys) {
    if (key.name.empty()) continue;
    const Value* v = item.IsObject() ? Member(item, key.name) : nullptr;
    bool present = v != nullptr && !v->IsNull();
    if ((present && (v->IsObject() || v->IsArray())) || (!present && key.default_string.empty())) {
      if (missing != nullptr) *missing = key.name;
      return std::nullopt;
    }
    if (!first) out += ',';
    first = false;
    AppendJsonString(key.name, out);
    out += ':';
    if (present) {
      out += JsonToString(*v);
    } else {
      AppendJsonString(key.default_string, out);
    }
  }
  out += '}';
  return out;
}

// The key of every item of `array`, or nullopt when one lacks its key or two
// share one.
std::optional<std::vector<std::string>> ListKeys(const Value& array, const AssociativeList& list) {
  std::vector<std::string> keys;
  keys.reserve(array.Size());
  for (const Value& item : array.GetArray()) {
    std::optional<std::string> key = ItemKey(item, list, nullptr);
    if (!key) return std::nullopt;
    keys.push_back(std::move(*key));
  }
  std::vector<std::string_view> sorted(keys.begin(), keys.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return std::nullopt;
  return keys;
}

// The associative-list table entry for an array at `schema_path` together
// with its item keys; null when the array is atomic there (not in the table,
// or, in a stored object, items whose keys are missing or repeat).
struct KeyedList {
  const AssociativeList* list = nullptr;
  std::vector<std::string> keys;
};

KeyedList KeysOf(const Value& array, std::string_view schema_path) {
  KeyedList out;
  const AssociativeList* list = FindAssociativeList(schema_path);
  if (list == nullptr) return out;
  std::optional<std::vector<std::string>> keys = ListKeys(array, *list);
  if (!keys) return out;
  out.list = list;
  out.keys = std::move(*keys);
  return out;
}

std::string FieldElement(std::string_view name) {
  std::string out = "f:";
  out.append(name);
  return out;
}

// ---------------------------------------------------------------------------
// A set of field paths in the shape of FieldsV1: each node is one path
// element ("f:name", "k:{...}"); `member` says the path ending there is in the
// set (the "." entry, implied for a node without children).

struct FieldSet {
  bool member = false;
  std::map<std::string, FieldSet, std::less<>> children;

  bool Empty() const { return !member && children.empty(); }
  bool operator==(const FieldSet& other) const {
    return member == other.member && children == other.children;
  }
  bool operator!=(const FieldSet& other) const { return !(*this == other); }
};

void Union(FieldSet& into, const FieldSet& other) {
  into.member = into.member || other.member;
  for (const auto& [element, child] : other.children) Union(into.children[element], child);
}

// Removes from `from` every path of `other`; a path's descendants stay.
void Subtract(FieldSet& from, const FieldSet& other) {
  if (other.member) from.member = false;
  for (auto it = from.children.begin(); it != from.children.end();) {
    auto match = other.children.find(it->first);
    if (match != other.children.end()) Subtract(it->second, match->second);
    if (it->second.Empty()) {
      it = from.children.erase(it);
    } else {
      ++it;
    }
  }
}

FieldSet Intersect(const FieldSet& a, const FieldSet& b) {
  FieldSet out;
  out.member = a.member && b.member;
  for (const auto& [element, child] : a.children) {
    auto match = b.children.find(element);
    if (match == b.children.end()) continue;
    FieldSet both = Intersect(child, match->second);
    if (!both.Empty()) out.children.emplace(element, std::move(both));
  }
  return out;
}

const FieldSet* ChildOf(const FieldSet* set, std::string_view element) {
  if (set == nullptr) return nullptr;
  auto it = set->children.find(element);
  return it == set->children.end() ? nullptr : &it->second;
}

// Erases `element` from `parent` when the walk below left it empty.
void DropIfEmpty(FieldSet& parent, const std::string& element) {
  auto it = parent.children.find(element);
  if (it != parent.children.end() && it->second.Empty()) parent.children.erase(it);
}

// FieldsV1 object -> FieldSet. Values that are not objects are skipped.
void ParseFieldsV1(const Value& json, FieldSet& out) {
  if (json.MemberCount() == 0) {
    out.member = true;
    return;
  }
  for (const auto& m : json.GetObject()) {
    std::string_view element = AsView(m.name);
    if (element == ".") {
      out.member = true;
    } else if (m.value.IsObject()) {
      FieldSet& child = out.children[std::string(element)];
      ParseFieldsV1(m.value, child);
    }
  }
}

void WriteFieldsV1(const FieldSet& set, JsonWriter& w) {
  w.StartObject();
  if (set.member && !set.children.empty()) {
    Key(w, ".");
    w.StartObject();
    w.EndObject();
  }
  for (const auto& [element, child] : set.children) {
    Key(w, element);
    WriteFieldsV1(child, w);
  }
  w.EndObject();
}

// One path element the way upstream prints paths: .name, [key=value,...].
void AppendReadableElement(std::string_view element, std::string& out) {
  std::string_view body = element.size() >= 2 ? element.substr(2) : element;
  if (element.substr(0, 2) == "f:") {
    fmt::format_to(std::back_inserter(out), ".{}", body);
    return;
  }
  if (element.substr(0, 2) == "k:") {
    rapidjson::Document key;
    if (ParseJson(body, key).ok() && key.IsObject()) {
      out += '[';
      bool first = true;
      for (const auto& m : key.GetObject()) {
        if (!first) out += ',';
        first = false;
        fmt::format_to(std::back_inserter(out), "{}={}", AsView(m.name), JsonToString(m.value));
      }
      out += ']';
      return;
    }
  }
  if (element.substr(0, 2) == "v:") {
    fmt::format_to(std::back_inserter(out), "[={}]", body);
    return;
  }
  if (element.substr(0, 2) == "i:") {
    fmt::format_to(std::back_inserter(out), "[{}]", body);
    return;
  }
  fmt::format_to(std::back_inserter(out), ".{}", element);
}

// Calls `visit` with the readable form of every path in `set`, in order.
template <typename Visit>
void ForEachPath(const FieldSet& set, std::string& path, const Visit& visit) {
  if (set.member) visit(path);
  for (const auto& [element, child] : set.children) {
    size_t size = path.size();
    AppendReadableElement(element, path);
    ForEachPath(child, path, visit);
    path.resize(size);
  }
}

// ---------------------------------------------------------------------------
// Paths of a value, and what differs between two values.

// Adds the paths in `value` (which sits at `schema_path`) to `node`, the node
// of its own path: a leaf (scalar, null, empty object, atomic list) is a
// member; an object's members and a keyed list's items are children, and an
// item is a member too. An empty keyed list adds nothing, as upstream.
void CollectFields(const Value& value, std::string& schema_path, FieldSet& node) {
  if (value.IsObject() && value.MemberCount() > 0) {
    for (const auto& m : value.GetObject()) {
      std::string_view name = AsView(m.name);
      std::string element = FieldElement(name);
      PathScope scope(schema_path, ".", name);
      CollectFields(m.value, schema_path, node.children[element]);
      DropIfEmpty(node, element);
    }
    return;
  }
  if (value.IsArray()) {
    KeyedList keyed = KeysOf(value, schema_path);
    if (keyed.list != nullptr) {
      PathScope scope(schema_path, "[*]");
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        FieldSet& item = node.children[keyed.keys[i]];
        item.member = true;
        CollectFields(value[i], schema_path, item);
      }
      return;
    }
  }
  node.member = true;
}

// Adds to `node` the leaves present in both `a` and `b` whose values differ
// (upstream's "modified"; what appeared or vanished is a set difference).
void CollectModified(const Value& a, const Value& b, std::string& schema_path, FieldSet& node) {
  if (a.IsObject() && b.IsObject()) {
    for (const auto& m : a.GetObject()) {
      auto other = b.FindMember(m.name);
      if (other == b.MemberEnd()) continue;
      std::string_view name = AsView(m.name);
      std::string element = FieldElement(name);
      PathScope scope(schema_path, ".", name);
      CollectModified(m.value, other->value, schema_path, node.children[element]);
      DropIfEmpty(node, element);
    }
    return;
  }
  if (a.IsArray() && b.IsArray()) {
    KeyedList keyed_a = KeysOf(a, schema_path);
    KeyedList keyed_b = KeysOf(b, schema_path);
    if (keyed_a.list != nullptr && keyed_b.list != nullptr) {
      std::unordered_map<std::string_view, rapidjson::SizeType> index_b;
      for (rapidjson::SizeType i = 0; i < b.Size(); ++i) index_b.emplace(keyed_b.keys[i], i);
      PathScope scope(schema_path, "[*]");
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        auto match = index_b.find(keyed_a.keys[i]);
        if (match == index_b.end()) continue;
        CollectModified(a[i], b[match->second], schema_path, node.children[keyed_a.keys[i]]);
        DropIfEmpty(node, keyed_a.keys[i]);
      }
      return;
    }
  }
  if (a != b) node.member = true;
}

FieldSet FieldsOf(const Value& value) {
  FieldSet set;
  std::string schema_path;
  CollectFields(value, schema_path, set);
  set.member = false;  // the root is not a field
  return set;
}

// What a write did, field by field.
struct Changes {
  FieldSet modified_or_added;
  FieldSet removed;
  FieldSet all;  // the union of both
};

Changes Compare(const Value& before, const Value& after) {
  Changes out;
  FieldSet before_set = FieldsOf(before);
  FieldSet after_set = FieldsOf(after);
  std::string schema_path;
  CollectModified(before, after, schema_path, out.modified_or_added);
  out.modified_or_added.member = false;

  FieldSet added = after_set;
  Subtract(added, before_set);
  Union(out.modified_or_added, added);
  out.removed = std::move(before_set);
  Subtract(out.removed, after_set);

  out.all = out.modified_or_added;
  Union(out.all, out.removed);
  return out;
}

// ---------------------------------------------------------------------------
// Fields nobody owns.

// Set by the server; an apply neither merges nor owns them.
constexpr std::string_view kServerMetadata[] = {
    "creationTimestamp", "generation", "managedFields", "resourceVersion", "selfLink", "uid",
};
// Identify the object; an apply merges them (a create needs them) but does
// not own them.
constexpr std::string_view kIdentityMetadata[] = {"name", "namespace"};
// Kept beside the object, never inside what this library returns.
constexpr std::string_view kManagedFieldsMetadata[] = {"managedFields"};

void EraseMember(Value& object, std::string_view name) {
  if (!object.IsObject()) return;
  auto it = object.FindMember(Value(rapidjson::StringRef(name.data(), name.size())));
  if (it != object.MemberEnd()) object.EraseMember(it);
}

template <size_t N>
void EraseMetadata(Value& object, const std::string_view (&names)[N]) {
  if (!object.IsObject()) return;
  auto metadata = object.FindMember("metadata");
  if (metadata == object.MemberEnd() || !metadata->value.IsObject()) return;
  if (metadata->value.MemberCount() == 0) return;
  for (std::string_view name : names) EraseMember(metadata->value, name);
  // A metadata that held only these would otherwise read as an owned "{}".
  if (metadata->value.MemberCount() == 0) object.EraseMember(metadata);
}

void DropServerFields(Value& object) {
  EraseMember(object, "status");
  EraseMetadata(object, kServerMetadata);
}

// A copy of `object` holding only the fields ownership is tracked for; an
// empty object for nullptr.
rapidjson::Document OwnableCopy(const Value* object) {
  rapidjson::Document out;
  if (object == nullptr || !object->IsObject()) {
    out.SetObject();
    return out;
  }
  out.CopyFrom(*object, out.GetAllocator());
  DropServerFields(out);
  EraseMember(out, "apiVersion");
  EraseMember(out, "kind");
  EraseMetadata(out, kIdentityMetadata);
  return out;
}

// ---------------------------------------------------------------------------
// Checking, merging and pruning the object.

absl::Status ValidateConfig(const Value& value, std::string& schema_path, std::string& path,
                            int depth) {
  if (depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        fmt::format("apply configuration nests deeper than {} levels", kMaxJsonDepth));
  }
  if (value.IsObject()) {
    for (const auto& m : value.GetObject()) {
      std::string_view name = AsView(m.name);
      PathScope schema_scope(schema_path, ".", name);
      PathScope path_scope(path, ".", name);
      absl::Status status = ValidateConfig(m.value, schema_path, path, depth + 1);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (!value.IsArray()) return absl::OkStatus();
  const AssociativeList* list = FindAssociativeList(schema_path);
  if (list == nullptr) return absl::OkStatus();  // atomic: any content goes

  std::unordered_map<std::string, rapidjson::SizeType> seen;
  PathScope schema_scope(schema_path, "[*]");
  for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
    std::string_view missing;
    std::optional<std::string> key = ItemKey(value[i], *list, &missing);
    if (!key) {
      return absl::InvalidArgumentError(fmt::format(
          "{}[{}]: associative list item must be an object with a scalar key field \"{}\"", path, i,
          missing));
    }
    auto [it, inserted] = seen.emplace(*key, i);
    if (!inserted) {
      std::string readable;
      AppendReadableElement(*key, readable);
      return absl::InvalidArgumentError(fmt::format(
          "{}: duplicate entries for key {} (items {} and {})", path, readable, it->second, i));
    }
    PathScope path_scope(path, fmt::format("[{}]", i));
    absl::Status status = ValidateConfig(value[i], schema_path, path, depth + 1);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Merges `config` into `target` (both at `schema_path`): objects member by
// member, keyed lists item by item, anything else replaced; null members of
// the configuration remove the target's member. `config` was validated.
void MergeInto(Value& target, const Value& config, std::string& schema_path, Allocator& allocator) {
  if (config.IsObject()) {
    if (!target.IsObject()) target.SetObject();
    for (const auto& m : config.GetObject()) {
      auto it = target.FindMember(m.name);
      if (m.value.IsNull()) {
        if (it != target.MemberEnd()) target.EraseMember(it);
        continue;
      }
      if (it == target.MemberEnd()) {
        target.AddMember(Value(m.name, allocator), Value(), allocator);
        it = target.MemberEnd() - 1;
      }
      std::string_view name = AsView(m.name);
      PathScope scope(schema_path, ".", name);
      MergeInto(it->value, m.value, schema_path, allocator);
    }
    return;
  }

  const AssociativeList* list = config.IsArray() ? FindAssociativeList(schema_path) : nullptr;
  if (list == nullptr) {
    target.CopyFrom(config, allocator);
    return;
  }

  // A keyed list: items of the live list that cannot be keyed are dropped
  // with it, as an atomic list would be replaced.
  KeyedList live = target.IsArray() ? KeysOf(target, schema_path) : KeyedList{};
  if (live.list == nullptr) {
    target.SetArray();
    live.keys.clear();
  }
  std::unordered_map<std::string, rapidjson::SizeType> index;
  for (rapidjson::SizeType i = 0; i < target.Size(); ++i) index.emplace(live.keys[i], i);
  PathScope scope(schema_path, "[*]");
  for (const Value& item : config.GetArray()) {
    std::string key = *ItemKey(item, *list, nullptr);
    auto match = index.find(key);
    if (match == index.end()) {
      target.PushBack(Value(), allocator);
      MergeInto(target[target.Size() - 1], item, schema_path, allocator);
      index.emplace(std::move(key), target.Size() - 1);
    } else {
      MergeInto(target[match->second], item, schema_path, allocator);
    }
  }
}

bool IsNonEmptyContainer(const Value& v) {
  return (v.IsObject() && v.MemberCount() > 0) || (v.IsArray() && !v.Empty());
}
bool IsEmptyContainer(const Value& v) {
  return (v.IsObject() && v.MemberCount() == 0) || (v.IsArray() && v.Empty());
}

// Removes from `value` (at `schema_path`) the paths in `released` that no
// manager owns, at or below, in `owned`. `item_of` is the list `value` is an
// item of: its key fields stay while the item does.
void Prune(Value& value, const FieldSet& released, const FieldSet* owned, std::string& schema_path,
           const AssociativeList* item_of) {
  if (value.IsObject()) {
    for (const auto& [element, released_child] : released.children) {
      if (element.substr(0, 2) != "f:") continue;
      std::string_view name = std::string_view(element).substr(2);
      if (item_of != nullptr && IsKeyField(*item_of, name)) continue;
      auto it = value.FindMember(Value(rapidjson::StringRef(name.data(), name.size())));
      if (it == value.MemberEnd()) continue;
      const FieldSet* owned_child = ChildOf(owned, element);
      bool still_owned = owned_child != nullptr && !owned_child->Empty();
      if (released_child.member && !still_owned) {
        value.EraseMember(it);
        continue;
      }
      bool had_content = IsNonEmptyContainer(it->value);
      PathScope scope(schema_path, ".", name);
      Prune(it->value, released_child, owned_child, schema_path, nullptr);
      // An object or list emptied here was only there for what was pruned.
      if (had_content && IsEmptyContainer(it->value) &&
          !(owned_child != nullptr && owned_child->member)) {
        value.EraseMember(it);
      }
    }
    return;
  }
  if (!value.IsArray()) return;
  KeyedList keyed = KeysOf(value, schema_path);
  if (keyed.list == nullptr) return;
  PathScope scope(schema_path, "[*]");
  // Backwards, so that erasing an item leaves the indices still to visit.
  for (rapidjson::SizeType i = value.Size(); i-- > 0;) {
    const FieldSet* released_item = ChildOf(&released, keyed.keys[i]);
    if (released_item == nullptr) continue;
    const FieldSet* owned_item = ChildOf(owned, keyed.keys[i]);
    if (released_item->member && (owned_item == nullptr || owned_item->Empty())) {
      value.Erase(value.Begin() + i);
      continue;
    }
    Prune(value[i], *released_item, owned_item, schema_path, keyed.list);
  }
}

// ---------------------------------------------------------------------------
// managedFields entries.

constexpr std::string_view kApply = "Apply";
constexpr std::string_view kUpdate = "Update";

struct ManagerEntry {
  std::string manager;
  std::string operation;
  std::string api_version;
  std::string time;
  std::string subresource;
  FieldSet fields;
};

std::string StringMember(const Value& object, std::string_view name) {
  const Value* v = Member(object, name);
  return v != nullptr && v->IsString() ? std::string(AsView(*v)) : std::string();
}

std::vector<ManagerEntry> ParseManagedFields(std::string_view json) {
  std::vector<ManagerEntry> entries;
  if (json.empty()) return entries;
  rapidjson::Document doc;
  if (!ParseJson(json, doc).ok() || !doc.IsArray()) return entries;
  for (const Value& item : doc.GetArray()) {
    if (!item.IsObject()) continue;
    ManagerEntry entry;
    entry.manager = StringMember(item, "manager");
    entry.operation = StringMember(item, "operation");
    const Value* fields = Member(item, "fieldsV1");
    std::string fields_type = StringMember(item, "fieldsType");
    if (entry.manager.empty() || (entry.operation != kApply && entry.operation != kUpdate) ||
        fields == nullptr || !fields->IsObject() ||
        (!fields_type.empty() && fields_type != "FieldsV1")) {
      continue;
    }
    entry.api_version = StringMember(item, "apiVersion");
    entry.time = StringMember(item, "time");
    entry.subresource = StringMember(item, "subresource");
    if (fields->MemberCount() > 0) ParseFieldsV1(*fields, entry.fields);
    entry.fields.member = false;  // the root is not a field
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string SerializeManagedFields(const std::vector<ManagerEntry>& entries) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartArray();
  for (const ManagerEntry& entry : entries) {
    if (entry.fields.Empty()) continue;
    w.StartObject();
    Field(w, "manager", entry.manager);
    Field(w, "operation", entry.operation);
    if (!entry.api_version.empty()) Field(w, "apiVersion", entry.api_version);
    if (!entry.time.empty()) Field(w, "time", entry.time);
    Field(w, "fieldsType", "FieldsV1");
    Key(w, "fieldsV1");
    WriteFieldsV1(entry.fields, w);
    if (!entry.subresource.empty()) Field(w, "subresource", entry.subresource);
    w.EndObject();
  }
  w.EndArray();
  return out;
}

// The index of the main-resource entry for (manager, operation), or -1.
int FindEntry(const std::vector<ManagerEntry>& entries, std::string_view manager,
              std::string_view operation) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const ManagerEntry& e = entries[i];
    if (e.manager == manager && e.operation == operation && e.subresource.empty()) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

// Gives `fields` to the (manager, operation) entry, creating it at the end;
// its apiVersion and time are refreshed when its fields or the object changed.
void SetEntry(std::vector<ManagerEntry>& entries, std::string_view manager,
              std::string_view operation, FieldSet fields, bool object_changed,
              std::string_view api_version, int64_t now) {
  int index = FindEntry(entries, manager, operation);
  if (index < 0) {
    if (fields.Empty()) return;
    entries.push_back(ManagerEntry{std::string(manager), std::string(operation), "", "", "", {}});
    index = static_cast<int>(entries.size()) - 1;
  }
  ManagerEntry& entry = entries[index];
  if (entry.fields != fields || object_changed || entry.time.empty()) {
    entry.api_version = std::string(api_version);
    entry.time = FormatTimestamp(now);
  }
  entry.fields = std::move(fields);
}

void AppendConflicts(const ManagerEntry& owner, const FieldSet& fields,
                     std::vector<ApplyConflict>& out) {
  std::string path;
  ForEachPath(fields, path, [&](const std::string& field) {
    out.push_back(ApplyConflict{owner.manager, owner.operation, owner.api_version, field});
  });
}

// How upstream names the owner of a conflicting field: the quoted manager,
// and for an Update entry the apiVersion it wrote with.
std::string OwnerText(const ApplyConflict& conflict) {
  std::string out;
  AppendJsonString(conflict.manager, out);
  if (conflict.operation == kUpdate) out += " using " + conflict.api_version;
  return out;
}

}  // namespace

absl::StatusOr<ApplyOutcome> ServerSideApply(const rapidjson::Value* live,
                                             std::string_view managed_fields_json,
                                             const rapidjson::Value& config,
                                             std::string_view manager, bool force,
                                             std::string_view api_version, int64_t now) {
  if (manager.empty()) {
    return absl::InvalidArgumentError("fieldManager is required for apply requests");
  }
  if (manager.size() > kMaxFieldManagerLength) {
    return absl::InvalidArgumentError(
        fmt::format("fieldManager may not be longer than {} bytes", kMaxFieldManagerLength));
  }
  if (!config.IsObject()) {
    return absl::InvalidArgumentError("apply configuration must be a JSON object");
  }
  if (live != nullptr && !live->IsObject()) {
    return absl::InternalError("live object is not a JSON object");
  }
  std::string schema_path;
  std::string path;
  if (absl::Status status = ValidateConfig(config, schema_path, path, 1); !status.ok()) {
    return status;
  }

  // What the manager says now, and what it said at its previous apply.
  rapidjson::Document applied;
  applied.CopyFrom(config, applied.GetAllocator());
  DropServerFields(applied);
  FieldSet applied_fields = FieldsOf(OwnableCopy(&config));

  std::vector<ManagerEntry> entries = ParseManagedFields(managed_fields_json);
  if (live != nullptr && entries.empty()) {
    rapidjson::Document ownable = OwnableCopy(live);
    SetEntry(entries, kBeforeFirstApplyManager, kUpdate, FieldsOf(ownable), true, api_version, now);
  }
  int mine = FindEntry(entries, manager, kApply);
  FieldSet last_fields = mine >= 0 ? entries[mine].fields : FieldSet{};

  // Merge into a copy of the live object.
  ApplyOutcome out;
  Allocator& allocator = out.object.GetAllocator();
  rapidjson::Document original;
  if (live != nullptr) {
    original.CopyFrom(*live, original.GetAllocator());
    EraseMetadata(original, kManagedFieldsMetadata);
    out.object.CopyFrom(original, allocator);
  } else {
    original.SetObject();
    out.object.SetObject();
  }
  MergeInto(out.object, applied, schema_path, allocator);

  // Remove what the manager gave up and nobody else holds.
  FieldSet released = last_fields;
  Subtract(released, applied_fields);
  if (!released.Empty()) {
    FieldSet owned = applied_fields;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (static_cast<int>(i) != mine) Union(owned, entries[i].fields);
    }
    Prune(out.object, released, &owned, schema_path, nullptr);
  }

  // Every field the result changes must be free, shared at the same value,
  // or taken by force.
  Changes changes = Compare(OwnableCopy(live), OwnableCopy(&out.object));
  for (size_t i = 0; i < entries.size(); ++i) {
    if (static_cast<int>(i) == mine) continue;
    FieldSet taken = Intersect(entries[i].fields, changes.all);
    if (!force) AppendConflicts(entries[i], taken, out.conflicts);
    Subtract(entries[i].fields, changes.all);
  }
  if (!out.conflicts.empty()) {
    out.object.CopyFrom(original, allocator);
    out.managed_fields_json = std::string(managed_fields_json);
    out.changed = false;
    return out;
  }

  out.changed = live == nullptr || out.object != original;
  SetEntry(entries, manager, kApply, std::move(applied_fields), out.changed, api_version, now);
  out.managed_fields_json = SerializeManagedFields(entries);
  return out;
}

std::string RecordUpdate(const rapidjson::Value* before, const rapidjson::Value& after,
                         std::string_view managed_fields_json, std::string_view manager,
                         std::string_view api_version, int64_t now) {
  if (!after.IsObject()) return std::string(managed_fields_json);
  if (manager.empty()) manager = "unknown";

  std::vector<ManagerEntry> entries = ParseManagedFields(managed_fields_json);
  Changes changes = Compare(OwnableCopy(before), OwnableCopy(&after));

  // What changed now belongs to this manager's Update entry alone; what
  // vanished belongs to nobody.
  int mine = FindEntry(entries, manager, kUpdate);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (static_cast<int>(i) != mine) Subtract(entries[i].fields, changes.all);
  }
  FieldSet fields = mine >= 0 ? entries[mine].fields : FieldSet{};
  Union(fields, changes.modified_or_added);
  Subtract(fields, changes.removed);
  SetEntry(entries, manager, kUpdate, std::move(fields), !changes.all.Empty(), api_version, now);
  return SerializeManagedFields(entries);
}

std::string ApplyConflictCauseMessage(const ApplyConflict& conflict) {
  return "conflict with " + OwnerText(conflict);
}

std::string ApplyConflictMessage(const std::vector<ApplyConflict>& conflicts) {
  if (conflicts.size() == 1) {
    return fmt::format("Apply failed with 1 conflict: {}: {}",
                       ApplyConflictCauseMessage(conflicts[0]), conflicts[0].field);
  }

  // One block per owner, owners sorted, fields in the order found.
  std::map<std::string, std::vector<const ApplyConflict*>> by_owner;
  for (const ApplyConflict& c : conflicts) by_owner[OwnerText(c)].push_back(&c);
  std::string out = fmt::format("Apply failed with {} conflicts: ", conflicts.size());
  bool first = true;
  for (const auto& [owner, fields] : by_owner) {
    if (!first) out += '\n';
    first = false;
    out += "conflicts with " + owner + ":";
    for (const ApplyConflict* c : fields) out += "\n- " + c->field;
  }
  return out;
}

}  // namespace kole::apiserver
