#include "mqtt-bridge/protocol.h"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace kole::protocol {
namespace {

constexpr std::string_view kNodes = "nodes";
constexpr std::string_view kGateways = "gateways";

constexpr std::string_view kWorkloads = "workloads";

constexpr std::array<std::pair<Channel, std::string_view>, 7> kChannelNames = {{
    {Channel::kRegister, "register"},
    {Channel::kHeartbeat, "heartbeat"},
    {Channel::kWill, "will"},
    {Channel::kPodStatus, "podstatus"},
    {Channel::kAck, "ack"},
    {Channel::kControl, "control"},
    {Channel::kPods, "pods"},
}};

// --- DOM helpers for the messages that are not on the hot path ---------------

using Value = rapidjson::Value;

std::string_view View(const Value& value) {
  return std::string_view(value.GetString(), value.GetStringLength());
}

const Value* Member(const Value& object, std::string_view key) {
  auto it = object.FindMember(rapidjson::StringRef(key.data(), key.size()));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

DecodeError ReadString(const Value& object, std::string_view key, bool required, std::string* out) {
  const Value* value = Member(object, key);
  if (value == nullptr) return required ? DecodeError::kMissingField : DecodeError::kOk;
  if (!value->IsString()) return DecodeError::kWrongType;
  if (value->GetStringLength() > kMaxStringBytes) return DecodeError::kTooLarge;
  out->assign(View(*value));
  return DecodeError::kOk;
}

template <typename Int>
DecodeError ReadUint(const Value& object, std::string_view key, bool required, Int* out) {
  const Value* value = Member(object, key);
  if (value == nullptr) return required ? DecodeError::kMissingField : DecodeError::kOk;
  if (!value->IsUint64()) return DecodeError::kWrongType;
  uint64_t number = value->GetUint64();
  if (number > std::numeric_limits<Int>::max()) return DecodeError::kWrongType;
  *out = static_cast<Int>(number);
  return DecodeError::kOk;
}

// A JSON object of string values, read into sorted pairs.
DecodeError ReadStringMap(const Value& object, std::string_view key, StringPairs* out) {
  out->clear();
  const Value* value = Member(object, key);
  if (value == nullptr) return DecodeError::kOk;
  if (!value->IsObject()) return DecodeError::kWrongType;
  if (value->MemberCount() > kMaxRegistrationEntries) return DecodeError::kTooLarge;
  for (const auto& member : value->GetObject()) {
    if (!member.value.IsString()) return DecodeError::kWrongType;
    if (member.name.GetStringLength() > kMaxStringBytes ||
        member.value.GetStringLength() > kMaxStringBytes) {
      return DecodeError::kTooLarge;
    }
    out->emplace_back(View(member.name), View(member.value));
  }
  std::sort(out->begin(), out->end());
  return DecodeError::kOk;
}

// How every payload is parsed. Iterative, because the recursive parser
// recurses once per nesting level: a hostile payload of a million '['
// overflows the stack. Anything but whitespace after the object is an error.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag;

// Checks "v" and that the payload is an object. `document` receives the tree.
DecodeError ParseEnvelope(std::string_view payload, rapidjson::Document* document) {
  if (payload.size() > kMaxPayloadBytes) return DecodeError::kTooLarge;
  document->Parse<kParseFlags>(payload.data(), payload.size());
  if (document->HasParseError() || !document->IsObject()) return DecodeError::kMalformed;
  const Value* version = Member(*document, "v");
  if (version == nullptr || !version->IsInt() || version->GetInt() != kVersion) {
    return DecodeError::kUnsupportedVersion;
  }
  return DecodeError::kOk;
}

#define KOLE_RETURN_IF_DECODE_ERROR(expr)                                       \
  do {                                                                          \
    if (DecodeError _error = (expr); _error != DecodeError::kOk) return _error; \
  } while (false)

DecodeError ReadRegistration(const Value& entry, Registration* out) {
  if (!entry.IsObject()) return DecodeError::kWrongType;
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "node", /*required=*/false, &out->node));
  KOLE_RETURN_IF_DECODE_ERROR(ReadUint(entry, "epoch", /*required=*/false, &out->epoch));
  KOLE_RETURN_IF_DECODE_ERROR(ReadUint(entry, "seq", /*required=*/false, &out->sequence));
  KOLE_RETURN_IF_DECODE_ERROR(ReadStringMap(entry, "labels", &out->labels));
  KOLE_RETURN_IF_DECODE_ERROR(ReadStringMap(entry, "capacity", &out->capacity));
  KOLE_RETURN_IF_DECODE_ERROR(ReadStringMap(entry, "allocatable", &out->allocatable));

  out->addresses.clear();
  if (const Value* addresses = Member(entry, "addresses")) {
    if (!addresses->IsArray()) return DecodeError::kWrongType;
    if (addresses->Size() > kMaxRegistrationEntries) return DecodeError::kTooLarge;
    for (const Value& address : addresses->GetArray()) {
      if (!address.IsObject()) return DecodeError::kWrongType;
      Address& added = out->addresses.emplace_back();
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(address, "type", true, &added.type));
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(address, "address", true, &added.address));
    }
  }

  out->node_info = NodeInfo{};
  if (const Value* info = Member(entry, "nodeInfo")) {
    if (!info->IsObject()) return DecodeError::kWrongType;
    NodeInfo& n = out->node_info;
    for (auto [key, field] : std::initializer_list<std::pair<std::string_view, std::string*>>{
             {"machineID", &n.machine_id},
             {"systemUUID", &n.system_uuid},
             {"bootID", &n.boot_id},
             {"kernelVersion", &n.kernel_version},
             {"osImage", &n.os_image},
             {"containerRuntimeVersion", &n.container_runtime_version},
             {"kubeletVersion", &n.agent_version},
             {"operatingSystem", &n.operating_system},
             {"architecture", &n.architecture},
         }) {
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(*info, key, /*required=*/false, field));
    }
  }

  out->conditions.clear();
  if (const Value* conditions = Member(entry, "conditions")) {
    if (!conditions->IsArray()) return DecodeError::kWrongType;
    if (conditions->Size() > kMaxRegistrationEntries) return DecodeError::kTooLarge;
    for (const Value& condition : conditions->GetArray()) {
      if (!condition.IsObject()) return DecodeError::kWrongType;
      Condition& added = out->conditions.emplace_back();
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(condition, "type", true, &added.type));
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(condition, "status", true, &added.status));
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(condition, "reason", false, &added.reason));
      KOLE_RETURN_IF_DECODE_ERROR(ReadString(condition, "message", false, &added.message));
    }
  }
  return DecodeError::kOk;
}

// Reads a flat single-node body or a batch under `batch_key`, calling
// read(entry, index) for each. On a node topic the batch form is refused.
template <typename ReadEntry>
DecodeError ReadEntries(const Value& body, std::string_view batch_key, bool allow_batch,
                        ReadEntry read) {
  const Value* batch = Member(body, batch_key);
  if (batch == nullptr) return read(body);
  if (!allow_batch) return DecodeError::kTopicMismatch;
  if (!batch->IsArray()) return DecodeError::kWrongType;
  if (batch->Size() > kMaxBatchNodes) return DecodeError::kTooLarge;
  for (const Value& entry : batch->GetArray()) {
    KOLE_RETURN_IF_DECODE_ERROR(read(entry));
  }
  return DecodeError::kOk;
}

// Fills in or checks the node name of an entry that arrived on a node topic.
DecodeError MatchTopicNode(const Topic& topic, std::string* node) {
  if (topic.sender == Sender::kGateway) {
    return node->empty() ? DecodeError::kMissingField : DecodeError::kOk;
  }
  if (node->empty()) {
    node->assign(topic.id);
    return DecodeError::kOk;
  }
  return *node == topic.id ? DecodeError::kOk : DecodeError::kTopicMismatch;
}

// --- SAX decoding of heartbeats (the hot path) ---------------------------------

// Accepts {"v":1,"epoch":E,"seq":S,"podRev":R,"node":N} on a node topic and
// {"v":1,"beats":[{...},...]} on a gateway topic. Unknown members are skipped
// whole, at any depth. Strings are copied into `arena`; the caller turns the
// offsets into views once the arena stops growing.
class HeartbeatHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, HeartbeatHandler> {
 public:
  struct Pending {
    size_t node_offset = 0, node_size = 0;
    size_t rev_offset = 0, rev_size = 0;
    bool has_node = false, has_epoch = false, has_seq = false;
    uint32_t epoch = 0, sequence = 0;
  };

  HeartbeatHandler(bool gateway, std::string* arena, std::vector<Pending>* entries)
      : gateway_(gateway), arena_(arena), entries_(entries) {}

  DecodeError error() const { return error_; }
  bool saw_version() const { return saw_version_; }
  bool saw_beats() const { return saw_beats_; }

  bool StartObject() {
    if (Skipping()) return true;
    ++depth_;
    if (depth_ == 1) {
      entries_->emplace_back();  // The top level; the flat form's only entry.
      return true;
    }
    if (depth_ == 3 && in_beats_ && key_ == Key::kNone) {
      if (entries_->size() > kMaxBatchNodes) return Fail(DecodeError::kTooLarge);
      entries_->emplace_back();
      return true;
    }
    return Fail(WrongValue(key_));
  }
  bool EndObject(rapidjson::SizeType) { return EndContainer(); }

  bool StartArray() {
    if (Skipping()) return true;
    ++depth_;
    if (depth_ == 2 && key_ == Key::kBeats) {
      if (!gateway_) return Fail(DecodeError::kTopicMismatch);
      in_beats_ = true;
      saw_beats_ = true;
      key_ = Key::kNone;
      return true;
    }
    return Fail(depth_ == 1 ? DecodeError::kMalformed : WrongValue(key_));
  }
  bool EndArray(rapidjson::SizeType) {
    if (skip_depth_ == 0 && depth_ == 2) in_beats_ = false;
    return EndContainer();
  }

  bool Key(const char* str, rapidjson::SizeType length, bool) {
    if (skip_depth_ != 0) return true;
    std::string_view key(str, length);
    bool entry_level = depth_ == 1 || (depth_ == 3 && in_beats_);
    key_ = Key::kUnknown;
    if (depth_ == 1 && key == "v") key_ = Key::kVersion;
    if (depth_ == 1 && key == "beats") key_ = Key::kBeats;
    if (entry_level && key == "node") key_ = Key::kNode;
    if (entry_level && key == "epoch") key_ = Key::kEpoch;
    if (entry_level && key == "seq") key_ = Key::kSeq;
    if (entry_level && key == "podRev") key_ = Key::kPodRev;
    return true;
  }

  bool Uint(unsigned value) { return Number(value, /*integral=*/true); }
  // Negative (Uint otherwise), but -0 is zero, as the DOM decoders read it.
  bool Int(int value) { return Number(0, /*integral=*/value == 0); }
  bool Uint64(uint64_t) { return Number(0, false); }  // Over 32 bits.
  bool Int64(int64_t) { return Number(0, false); }
  bool Double(double) { return Number(0, false); }
  bool Null() { return Other(); }
  bool Bool(bool) { return Other(); }

  bool String(const char* str, rapidjson::SizeType length, bool) {
    if (skip_depth_ != 0) return true;
    enum Key key = std::exchange(key_, Key::kNone);
    if (key == Key::kUnknown) return true;
    if (key != Key::kNode && key != Key::kPodRev) return Fail(WrongValue(key));
    if (length > kMaxStringBytes) return Fail(DecodeError::kTooLarge);
    Pending& entry = entries_->back();
    if (key == Key::kNode) {
      entry.node_offset = arena_->size();
      entry.node_size = length;
      entry.has_node = true;
    } else {
      entry.rev_offset = arena_->size();
      entry.rev_size = length;
    }
    arena_->append(str, length);
    return true;
  }

 private:
  enum class Key : uint8_t { kNone, kUnknown, kVersion, kBeats, kNode, kEpoch, kSeq, kPodRev };

  // An object or array that is the value of an unknown member, or nested in
  // one, is skipped whole.
  bool Skipping() {
    if (skip_depth_ != 0) {
      ++depth_;
      return true;
    }
    if (key_ != Key::kUnknown) return false;
    ++depth_;
    skip_depth_ = depth_;
    key_ = Key::kNone;
    return true;
  }

  bool EndContainer() {
    if (skip_depth_ == depth_) skip_depth_ = 0;
    --depth_;
    key_ = Key::kNone;
    return true;
  }

  DecodeError WrongValue(enum Key key) const {
    if (depth_ == 0) return DecodeError::kMalformed;
    return key == Key::kVersion ? DecodeError::kUnsupportedVersion : DecodeError::kWrongType;
  }

  bool Number(uint64_t value, bool integral) {
    if (skip_depth_ != 0) return true;
    enum Key key = std::exchange(key_, Key::kNone);
    if (key == Key::kUnknown) return true;
    if (key == Key::kVersion && integral && value == static_cast<uint64_t>(kVersion)) {
      saw_version_ = true;
      return true;
    }
    if (key == Key::kEpoch && integral) {
      entries_->back().epoch = static_cast<uint32_t>(value);
      entries_->back().has_epoch = true;
      return true;
    }
    if (key == Key::kSeq && integral) {
      entries_->back().sequence = static_cast<uint32_t>(value);
      entries_->back().has_seq = true;
      return true;
    }
    return Fail(WrongValue(key));
  }

  bool Other() {
    if (skip_depth_ != 0) return true;
    enum Key key = std::exchange(key_, Key::kNone);
    return key == Key::kUnknown || Fail(WrongValue(key));
  }

  bool Fail(DecodeError error) {
    error_ = error;
    return false;
  }

  bool gateway_;
  std::string* arena_;
  std::vector<Pending>* entries_;
  int depth_ = 0;
  int skip_depth_ = 0;  // Non-zero: inside a skipped value that opened at this depth.
  bool in_beats_ = false;
  bool saw_version_ = false;
  bool saw_beats_ = false;
  enum Key key_ = Key::kNone;
  DecodeError error_ = DecodeError::kOk;
};

// --- Writing -------------------------------------------------------------------

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteString(Writer& writer, std::string_view value) {
  writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void WriteKey(Writer& writer, std::string_view key) {
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void WriteMap(Writer& writer, std::string_view key, const StringPairs& pairs) {
  if (pairs.empty()) return;
  WriteKey(writer, key);
  writer.StartObject();
  for (const auto& [name, value] : pairs) {
    WriteKey(writer, name);
    WriteString(writer, value);
  }
  writer.EndObject();
}

void WriteOptional(Writer& writer, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  WriteKey(writer, key);
  WriteString(writer, value);
}

void WriteRegistrationFields(Writer& writer, const Registration& r) {
  WriteKey(writer, "node");
  WriteString(writer, r.node);
  WriteKey(writer, "epoch");
  writer.Uint(r.epoch);
  WriteKey(writer, "seq");
  writer.Uint(r.sequence);
  WriteMap(writer, "labels", r.labels);
  WriteMap(writer, "capacity", r.capacity);
  WriteMap(writer, "allocatable", r.allocatable);
  if (!r.addresses.empty()) {
    WriteKey(writer, "addresses");
    writer.StartArray();
    for (const Address& address : r.addresses) {
      writer.StartObject();
      WriteKey(writer, "type");
      WriteString(writer, address.type);
      WriteKey(writer, "address");
      WriteString(writer, address.address);
      writer.EndObject();
    }
    writer.EndArray();
  }
  const NodeInfo& n = r.node_info;
  WriteKey(writer, "nodeInfo");
  writer.StartObject();
  WriteOptional(writer, "machineID", n.machine_id);
  WriteOptional(writer, "systemUUID", n.system_uuid);
  WriteOptional(writer, "bootID", n.boot_id);
  WriteOptional(writer, "kernelVersion", n.kernel_version);
  WriteOptional(writer, "osImage", n.os_image);
  WriteOptional(writer, "containerRuntimeVersion", n.container_runtime_version);
  WriteOptional(writer, "kubeletVersion", n.agent_version);
  WriteOptional(writer, "operatingSystem", n.operating_system);
  WriteOptional(writer, "architecture", n.architecture);
  writer.EndObject();
  if (!r.conditions.empty()) {
    WriteKey(writer, "conditions");
    writer.StartArray();
    for (const Condition& c : r.conditions) {
      writer.StartObject();
      WriteKey(writer, "type");
      WriteString(writer, c.type);
      WriteKey(writer, "status");
      WriteString(writer, c.status);
      WriteOptional(writer, "reason", c.reason);
      WriteOptional(writer, "message", c.message);
      writer.EndObject();
    }
    writer.EndArray();
  }
}

void WriteHeartbeatFields(Writer& writer, const HeartbeatEntry& beat, bool with_node) {
  if (with_node) {
    WriteKey(writer, "node");
    WriteString(writer, beat.node);
  }
  WriteKey(writer, "epoch");
  writer.Uint(beat.epoch);
  WriteKey(writer, "seq");
  writer.Uint(beat.sequence);
  WriteOptional(writer, "podRev", beat.pod_revision);
}

void WriteAckFields(Writer& writer, const Ack& ack) {
  WriteKey(writer, "node");
  WriteString(writer, ack.node);
  WriteKey(writer, "result");
  WriteString(writer, AckResultName(ack.result));
  if (ack.result == AckResult::kAccepted) {
    WriteKey(writer, "epoch");
    writer.Uint(ack.epoch);
    WriteKey(writer, "resourceVersion");
    WriteString(writer, std::to_string(ack.resource_version));
  }
  WriteOptional(writer, "reason", ack.reason);
  WriteOptional(writer, "message", ack.message);
}

void StartEnvelope(Writer& writer) {
  writer.StartObject();
  WriteKey(writer, "v");
  writer.Int(kVersion);
}

// The enum value whose wire name (as `name_of` spells it) is `text`, so the
// decoders read exactly what the encoders write.
template <typename Enum>
bool ParseName(std::string_view text, std::initializer_list<Enum> values,
               std::string_view (*name_of)(Enum), Enum* out) {
  for (Enum value : values) {
    if (name_of(value) == text) {
      *out = value;
      return true;
    }
  }
  return false;
}

}  // namespace

// --- Names -----------------------------------------------------------------------

std::string_view ChannelName(Channel channel) {
  for (const auto& [value, name] : kChannelNames) {
    if (value == channel) return name;
  }
  return "unknown";
}

std::string_view AckResultName(AckResult result) {
  switch (result) {
    case AckResult::kAccepted:
      return "Accepted";
    case AckResult::kRejected:
      return "Rejected";
    case AckResult::kRetry:
      return "Retry";
  }
  return "Unknown";
}

std::string_view ControlActionName(ControlAction action) {
  switch (action) {
    case ControlAction::kResync:
      return "Resync";
    case ControlAction::kDeregister:
      return "Deregister";
  }
  return "Unknown";
}

std::string_view DecodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kOk:
      return "ok";
    case DecodeError::kTooLarge:
      return "too_large";
    case DecodeError::kMalformed:
      return "malformed";
    case DecodeError::kUnsupportedVersion:
      return "unsupported_version";
    case DecodeError::kWrongType:
      return "wrong_type";
    case DecodeError::kMissingField:
      return "missing_field";
    case DecodeError::kTopicMismatch:
      return "topic_mismatch";
  }
  return "unknown";
}

// --- Topics ------------------------------------------------------------------------

TopicScheme::TopicScheme(std::string prefix) : prefix_(std::move(prefix)) {
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
}

std::string TopicScheme::Build(Sender sender, std::string_view id, Channel channel) const {
  std::string topic;
  topic.reserve(prefix_.size() + id.size() + 24);
  topic += prefix_;
  topic += '/';
  topic += sender == Sender::kNode ? kNodes : kGateways;
  topic += '/';
  topic += id;
  topic += '/';
  topic += ChannelName(channel);
  return topic;
}

std::optional<Topic> TopicScheme::Parse(std::string_view topic) const {
  if (topic.size() <= prefix_.size() + 1 || topic.substr(0, prefix_.size()) != prefix_ ||
      topic[prefix_.size()] != '/') {
    return std::nullopt;
  }
  std::string_view rest = topic.substr(prefix_.size() + 1);

  Topic parsed;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view kind = rest.substr(0, slash);
  if (kind == kNodes) {
    parsed.sender = Sender::kNode;
  } else if (kind == kGateways) {
    parsed.sender = Sender::kGateway;
  } else {
    return std::nullopt;
  }
  rest = rest.substr(slash + 1);

  slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  parsed.id = rest.substr(0, slash);
  std::string_view channel = rest.substr(slash + 1);
  for (const auto& [value, name] : kChannelNames) {
    if (name == channel) {
      parsed.channel = value;
      return parsed;
    }
  }
  return std::nullopt;
}

std::string TopicScheme::WorkloadTopic(std::string_view ns, std::string_view workload,
                                       std::string_view revision) const {
  std::string topic = prefix_;
  for (std::string_view part : {kWorkloads, ns, workload, revision}) {
    topic += '/';
    topic += part;
  }
  return topic;
}

std::string TopicScheme::WorkloadFilter() const {
  return prefix_ + "/" + std::string(kWorkloads) + "/#";
}

std::vector<std::string> TopicScheme::CloudSubscriptions(std::string_view share_group) const {
  std::vector<std::string> filters;
  for (std::string_view kind : {kNodes, kGateways}) {
    for (Channel channel :
         {Channel::kRegister, Channel::kHeartbeat, Channel::kWill, Channel::kPodStatus}) {
      std::string filter;
      if (!share_group.empty()) {
        filter += "$share/";
        filter += share_group;
        filter += '/';
      }
      filter += prefix_;
      filter += '/';
      filter += kind;
      filter += "/+/";
      filter += ChannelName(channel);
      filters.push_back(std::move(filter));
    }
  }
  return filters;
}

// --- Decoding ------------------------------------------------------------------------

DecodeError DecodeRegister(const Topic& topic, std::string_view payload, RegisterMessage* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  out->id = 0;
  out->nodes.clear();
  KOLE_RETURN_IF_DECODE_ERROR(ReadUint(document, "id", /*required=*/false, &out->id));
  return ReadEntries(document, "nodes", topic.sender == Sender::kGateway, [&](const Value& entry) {
    Registration& registration = out->nodes.emplace_back();
    KOLE_RETURN_IF_DECODE_ERROR(ReadRegistration(entry, &registration));
    return MatchTopicNode(topic, &registration.node);
  });
}

DecodeError DecodeRegisterEntries(const Topic& topic, std::string_view payload,
                                  RegisterMessage* out, std::vector<DecodeError>* entry_errors) {
  entry_errors->clear();
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  out->id = 0;
  out->nodes.clear();
  KOLE_RETURN_IF_DECODE_ERROR(ReadUint(document, "id", /*required=*/false, &out->id));
  return ReadEntries(document, "nodes", topic.sender == Sender::kGateway, [&](const Value& entry) {
    Registration& registration = out->nodes.emplace_back();
    DecodeError error = ReadRegistration(entry, &registration);
    if (error == DecodeError::kOk) error = MatchTopicNode(topic, &registration.node);
    if (error != DecodeError::kOk) {
      // Keep only the name, if it can be read, so the entry can be answered.
      std::string node;
      if (entry.IsObject() && ReadString(entry, "node", false, &node) != DecodeError::kOk) {
        node.clear();
      }
      registration = Registration{};
      registration.node = std::move(node);
    }
    entry_errors->push_back(error);
    return DecodeError::kOk;
  });
}

DecodeError DecodeHeartbeats(const Topic& topic, std::string_view payload, HeartbeatBatch* out) {
  out->beats.clear();
  if (payload.size() > kMaxPayloadBytes) return DecodeError::kTooLarge;

  // Thread-local scratch and the reused batch keep the hot path free of
  // allocation once warm. The strings live in the batch, which the views
  // point into.
  thread_local std::vector<HeartbeatHandler::Pending> entries;
  std::string& arena = out->arena;
  entries.clear();
  arena.clear();
  bool gateway = topic.sender == Sender::kGateway;
  HeartbeatHandler handler(gateway, &arena, &entries);
  rapidjson::Reader reader;
  rapidjson::MemoryStream memory(payload.data(), payload.size());
  // As Document::Parse reads the other messages, so that every decoder skips
  // a leading UTF-8 byte order mark alike.
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
  rapidjson::ParseResult parsed = reader.Parse<kParseFlags>(stream, handler);
  if (!parsed) {
    return handler.error() != DecodeError::kOk ? handler.error() : DecodeError::kMalformed;
  }
  if (entries.empty()) return DecodeError::kMalformed;
  if (!handler.saw_version()) return DecodeError::kUnsupportedVersion;

  // entries[0] is the top-level object; on a gateway topic the batch follows it.
  std::span<const HeartbeatHandler::Pending> beats(entries);
  if (gateway) {
    if (!handler.saw_beats()) return DecodeError::kMissingField;
    beats = beats.subspan(1);
  }
  out->beats.reserve(beats.size());
  for (const HeartbeatHandler::Pending& entry : beats) {
    if (!entry.has_epoch || !entry.has_seq) return DecodeError::kMissingField;
    HeartbeatEntry& beat = out->beats.emplace_back();
    beat.epoch = entry.epoch;
    beat.sequence = entry.sequence;
    beat.pod_revision = std::string_view(arena).substr(entry.rev_offset, entry.rev_size);
    if (entry.has_node) {
      beat.node = std::string_view(arena).substr(entry.node_offset, entry.node_size);
      if (!gateway && beat.node != topic.id) return DecodeError::kTopicMismatch;
    } else if (gateway) {
      return DecodeError::kMissingField;
    } else {
      beat.node = topic.id;
    }
  }
  return DecodeError::kOk;
}

DecodeError DecodeWill(std::string_view payload, Will* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  *out = Will{};
  return ReadUint(document, "epoch", /*required=*/false, &out->epoch);
}

DecodeError DecodeAck(std::string_view payload, AckMessage* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  out->id = 0;
  out->acks.clear();
  KOLE_RETURN_IF_DECODE_ERROR(ReadUint(document, "id", /*required=*/false, &out->id));
  return ReadEntries(document, "acks", /*allow_batch=*/true, [&](const Value& entry) {
    if (!entry.IsObject()) return DecodeError::kWrongType;
    Ack& ack = out->acks.emplace_back();
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "node", true, &ack.node));
    std::string result;
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "result", true, &result));
    if (!ParseName(result, {AckResult::kAccepted, AckResult::kRejected, AckResult::kRetry},
                   AckResultName, &ack.result)) {
      return DecodeError::kWrongType;
    }
    KOLE_RETURN_IF_DECODE_ERROR(ReadUint(entry, "epoch", false, &ack.epoch));
    std::string version;
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "resourceVersion", false, &version));
    if (!version.empty()) {
      auto [end, error] =
          std::from_chars(version.data(), version.data() + version.size(), ack.resource_version);
      if (error != std::errc() || end != version.data() + version.size()) {
        return DecodeError::kWrongType;
      }
    }
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "reason", false, &ack.reason));
    return ReadString(entry, "message", false, &ack.message);
  });
}

DecodeError DecodeControl(std::string_view payload, ControlMessage* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  *out = ControlMessage{};
  std::string action;
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "action", true, &action));
  if (!ParseName(action, {ControlAction::kResync, ControlAction::kDeregister}, ControlActionName,
                 &out->action)) {
    return DecodeError::kWrongType;
  }
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "reason", false, &out->reason));
  if (const Value* nodes = Member(document, "nodes")) {
    if (!nodes->IsArray()) return DecodeError::kWrongType;
    if (nodes->Size() > kMaxBatchNodes) return DecodeError::kTooLarge;
    for (const Value& node : nodes->GetArray()) {
      if (!node.IsString()) return DecodeError::kWrongType;
      if (node.GetStringLength() > kMaxStringBytes) return DecodeError::kTooLarge;
      out->nodes.emplace_back(View(node));
    }
    return DecodeError::kOk;
  }
  std::string node;
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "node", true, &node));
  out->nodes.push_back(std::move(node));
  return DecodeError::kOk;
}

namespace {

DecodeError ReadPodRefs(const Value& entry, NodePods* out) {
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "podRev", false, &out->pod_revision));
  const Value* pods = Member(entry, "pods");
  if (pods == nullptr) return DecodeError::kMissingField;
  if (!pods->IsArray()) return DecodeError::kWrongType;
  if (pods->Size() > kMaxPodsPerNode) return DecodeError::kTooLarge;
  for (const Value& p : pods->GetArray()) {
    if (!p.IsObject()) return DecodeError::kWrongType;
    PodRef ref;
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "namespace", true, &ref.namespace_));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "name", true, &ref.name));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "workload", true, &ref.workload));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "rev", true, &ref.revision));
    KOLE_RETURN_IF_DECODE_ERROR(ReadUint(p, "restart", false, &ref.restart));
    out->pods.push_back(std::move(ref));
  }
  return DecodeError::kOk;
}

DecodeError ReadPodStatuses(const Value& entry, NodePodStatus* out) {
  const Value* pods = Member(entry, "pods");
  if (pods == nullptr) return DecodeError::kMissingField;
  if (!pods->IsArray()) return DecodeError::kWrongType;
  if (pods->Size() > kMaxPodsPerNode) return DecodeError::kTooLarge;
  for (const Value& p : pods->GetArray()) {
    if (!p.IsObject()) return DecodeError::kWrongType;
    PodStatus status;
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "namespace", true, &status.namespace_));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "workload", true, &status.workload));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "rev", true, &status.revision));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "phase", true, &status.phase));
    KOLE_RETURN_IF_DECODE_ERROR(ReadUint(p, "ready", false, &status.ready));
    KOLE_RETURN_IF_DECODE_ERROR(ReadUint(p, "restarts", false, &status.restarts));
    KOLE_RETURN_IF_DECODE_ERROR(ReadUint(p, "lastRestart", false, &status.last_restart));
    KOLE_RETURN_IF_DECODE_ERROR(ReadString(p, "reason", false, &status.reason));
    out->pods.push_back(std::move(status));
  }
  return DecodeError::kOk;
}

}  // namespace

DecodeError DecodePods(const Topic& topic, std::string_view payload, PodsMessage* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  out->nodes.clear();
  return ReadEntries(document, "nodes", topic.sender == Sender::kGateway,
                     [&](const Value& entry) -> DecodeError {
                       if (!entry.IsObject()) return DecodeError::kWrongType;
                       NodePods node;
                       KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "node", false, &node.node));
                       KOLE_RETURN_IF_DECODE_ERROR(MatchTopicNode(topic, &node.node));
                       KOLE_RETURN_IF_DECODE_ERROR(ReadPodRefs(entry, &node));
                       out->nodes.push_back(std::move(node));
                       return DecodeError::kOk;
                     });
}

DecodeError DecodePodStatus(const Topic& topic, std::string_view payload, PodStatusMessage* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  out->nodes.clear();
  return ReadEntries(document, "nodes", topic.sender == Sender::kGateway,
                     [&](const Value& entry) -> DecodeError {
                       if (!entry.IsObject()) return DecodeError::kWrongType;
                       NodePodStatus node;
                       KOLE_RETURN_IF_DECODE_ERROR(ReadString(entry, "node", false, &node.node));
                       KOLE_RETURN_IF_DECODE_ERROR(MatchTopicNode(topic, &node.node));
                       KOLE_RETURN_IF_DECODE_ERROR(ReadPodStatuses(entry, &node));
                       out->nodes.push_back(std::move(node));
                       return DecodeError::kOk;
                     });
}

DecodeError DecodeWorkloadTemplate(std::string_view payload, WorkloadTemplate* out) {
  rapidjson::Document document;
  KOLE_RETURN_IF_DECODE_ERROR(ParseEnvelope(payload, &document));
  *out = WorkloadTemplate{};
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "namespace", true, &out->namespace_));
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "workload", true, &out->workload));
  KOLE_RETURN_IF_DECODE_ERROR(ReadString(document, "rev", true, &out->revision));
  const Value* tmpl = Member(document, "template");
  if (tmpl == nullptr) return DecodeError::kMissingField;
  if (!tmpl->IsObject()) return DecodeError::kWrongType;
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  tmpl->Accept(writer);
  out->template_json.assign(buffer.GetString(), buffer.GetSize());
  return DecodeError::kOk;
}

// --- Encoding ------------------------------------------------------------------------

void EncodeRegister(const RegisterMessage& message, bool on_node_topic, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  WriteKey(writer, "id");
  writer.Uint64(message.id);
  if (on_node_topic && message.nodes.size() == 1) {
    WriteRegistrationFields(writer, message.nodes.front());
  } else {
    WriteKey(writer, "nodes");
    writer.StartArray();
    for (const Registration& registration : message.nodes) {
      writer.StartObject();
      WriteRegistrationFields(writer, registration);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

void EncodeHeartbeats(std::span<const HeartbeatEntry> beats, bool on_node_topic, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  if (on_node_topic && beats.size() == 1) {
    WriteHeartbeatFields(writer, beats.front(), /*with_node=*/false);
  } else {
    WriteKey(writer, "beats");
    writer.StartArray();
    for (const HeartbeatEntry& beat : beats) {
      writer.StartObject();
      WriteHeartbeatFields(writer, beat, /*with_node=*/true);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

void EncodeWill(const Will& will, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  if (will.epoch != 0) {
    WriteKey(writer, "epoch");
    writer.Uint(will.epoch);
  }
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

void EncodeAck(const AckMessage& message, bool on_node_topic, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  WriteKey(writer, "id");
  writer.Uint64(message.id);
  if (on_node_topic && message.acks.size() == 1) {
    WriteAckFields(writer, message.acks.front());
  } else {
    WriteKey(writer, "acks");
    writer.StartArray();
    for (const Ack& ack : message.acks) {
      writer.StartObject();
      WriteAckFields(writer, ack);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

void EncodeControl(const ControlMessage& message, bool on_node_topic, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  WriteKey(writer, "action");
  WriteString(writer, ControlActionName(message.action));
  if (on_node_topic && message.nodes.size() == 1) {
    WriteKey(writer, "node");
    WriteString(writer, message.nodes.front());
  } else {
    WriteKey(writer, "nodes");
    writer.StartArray();
    for (const std::string& node : message.nodes) WriteString(writer, node);
    writer.EndArray();
  }
  WriteOptional(writer, "reason", message.reason);
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

namespace {

void WritePodRefs(Writer& writer, const NodePods& node) {
  WriteOptional(writer, "podRev", node.pod_revision);
  WriteKey(writer, "pods");
  writer.StartArray();
  for (const PodRef& ref : node.pods) {
    writer.StartObject();
    WriteKey(writer, "namespace");
    WriteString(writer, ref.namespace_);
    WriteKey(writer, "name");
    WriteString(writer, ref.name);
    WriteKey(writer, "workload");
    WriteString(writer, ref.workload);
    WriteKey(writer, "rev");
    WriteString(writer, ref.revision);
    if (ref.restart != 0) {
      WriteKey(writer, "restart");
      writer.Uint(ref.restart);
    }
    writer.EndObject();
  }
  writer.EndArray();
}

void WritePodStatuses(Writer& writer, const NodePodStatus& node) {
  WriteKey(writer, "pods");
  writer.StartArray();
  for (const PodStatus& p : node.pods) {
    writer.StartObject();
    WriteKey(writer, "namespace");
    WriteString(writer, p.namespace_);
    WriteKey(writer, "workload");
    WriteString(writer, p.workload);
    WriteKey(writer, "rev");
    WriteString(writer, p.revision);
    WriteKey(writer, "phase");
    WriteString(writer, p.phase);
    WriteKey(writer, "ready");
    writer.Uint(p.ready);
    WriteKey(writer, "restarts");
    writer.Uint(p.restarts);
    if (p.last_restart != 0) {
      WriteKey(writer, "lastRestart");
      writer.Uint64(p.last_restart);
    }
    WriteOptional(writer, "reason", p.reason);
    writer.EndObject();
  }
  writer.EndArray();
}

// A flat single-node body on a node topic, else {"nodes":[...]}.
template <typename Entry, typename WriteFields>
void EncodeNodeEntries(const std::vector<Entry>& nodes, bool on_node_topic, WriteFields fields,
                       std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  if (on_node_topic && nodes.size() == 1) {
    WriteKey(writer, "node");
    WriteString(writer, nodes.front().node);
    fields(writer, nodes.front());
  } else {
    WriteKey(writer, "nodes");
    writer.StartArray();
    for (const Entry& node : nodes) {
      writer.StartObject();
      WriteKey(writer, "node");
      WriteString(writer, node.node);
      fields(writer, node);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

}  // namespace

void EncodePods(const PodsMessage& message, bool on_node_topic, std::string& out) {
  EncodeNodeEntries(message.nodes, on_node_topic, WritePodRefs, out);
}

void EncodePodStatus(const PodStatusMessage& message, bool on_node_topic, std::string& out) {
  EncodeNodeEntries(message.nodes, on_node_topic, WritePodStatuses, out);
}

void EncodeWorkloadTemplate(const WorkloadTemplate& workload, std::string& out) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  StartEnvelope(writer);
  WriteKey(writer, "namespace");
  WriteString(writer, workload.namespace_);
  WriteKey(writer, "workload");
  WriteString(writer, workload.workload);
  WriteKey(writer, "rev");
  WriteString(writer, workload.revision);
  WriteKey(writer, "template");
  std::string_view t = workload.template_json.empty() ? std::string_view("{}")
                                                      : std::string_view(workload.template_json);
  writer.RawValue(t.data(), t.size(), rapidjson::kObjectType);
  writer.EndObject();
  out.append(buffer.GetString(), buffer.GetSize());
}

}  // namespace kole::protocol
