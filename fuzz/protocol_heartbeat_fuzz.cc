// Fuzzes DecodeHeartbeats, the hot-path SAX decoder that reads every
// heartbeat a device or gateway publishes, on a node topic and on a gateway
// topic. Three properties beyond not crashing:
//   - it agrees with a plain DOM reading of the rules in protocol.h (below):
//     the same payloads are accepted, with the same beats;
//   - accepted beats respect the limits and the topic's identity rule;
//   - re-encoding the beats in the topic's form decodes to the same beats.
// A refusal must name a known reason.

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "mqtt-bridge/protocol.h"

namespace kole::protocol {
namespace {

[[noreturn]] void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  fuzz::Abort("protocol_heartbeat_fuzz", what, input, detail);
}

using Beat = std::tuple<std::string, uint32_t, uint32_t, std::string>;  // node, epoch, seq, rev

std::vector<Beat> Beats(const HeartbeatBatch& batch) {
  std::vector<Beat> beats;
  for (const HeartbeatEntry& b : batch.beats) {
    beats.emplace_back(std::string(b.node), b.epoch, b.sequence, std::string(b.pod_revision));
  }
  return beats;
}

// --- The reference: the rules read off a DOM ---------------------------------

// What the reference makes of a payload: refused, accepted with these beats,
// or outside what it models (duplicate member names, where "first" and
// "last" readings legitimately differ).
struct Reference {
  bool skip = false;
  std::optional<std::vector<Beat>> beats;
};

bool HasDuplicateNames(const rapidjson::Value& object) {
  std::set<std::string_view> names;
  for (const auto& member : object.GetObject()) {
    if (!names.emplace(member.name.GetString(), member.name.GetStringLength()).second) return true;
  }
  return false;
}

// Reads the fields of one entry (or of the top level, where they are checked
// too). False when a known field has the wrong type or size.
bool ReadFields(const rapidjson::Value& object, Beat* beat, bool* has_node, bool* has_epoch,
                bool* has_seq) {
  for (const auto& member : object.GetObject()) {
    std::string_view key(member.name.GetString(), member.name.GetStringLength());
    const rapidjson::Value& value = member.value;
    if (key == "node" || key == "podRev") {
      if (!value.IsString() || value.GetStringLength() > kMaxStringBytes) return false;
      std::string text(value.GetString(), value.GetStringLength());
      if (key == "node") {
        std::get<0>(*beat) = text;
        *has_node = true;
      } else {
        std::get<3>(*beat) = text;
      }
    } else if (key == "epoch" || key == "seq") {
      if (!value.IsUint()) return false;
      (key == "epoch" ? std::get<1>(*beat) : std::get<2>(*beat)) = value.GetUint();
      (key == "epoch" ? *has_epoch : *has_seq) = true;
    }
  }
  return true;
}

Reference ReadReference(const Topic& topic, std::string_view input) {
  Reference reference;
  if (input.size() > kMaxPayloadBytes) return reference;
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag>(input.data(), input.size());
  if (document.HasParseError() || !document.IsObject()) return reference;
  if (HasDuplicateNames(document)) {
    reference.skip = true;
    return reference;
  }
  auto version = document.FindMember("v");
  if (version == document.MemberEnd() || !version->value.IsInt() || version->value.GetInt() != 1) {
    return reference;
  }

  Beat top;
  bool has_node = false, has_epoch = false, has_seq = false;
  if (!ReadFields(document, &top, &has_node, &has_epoch, &has_seq)) return reference;
  auto batch = document.FindMember("beats");
  std::vector<Beat> beats;
  if (topic.sender == Sender::kNode) {
    if (batch != document.MemberEnd()) return reference;
    if (!has_epoch || !has_seq) return reference;
    if (has_node && std::get<0>(top) != topic.id) return reference;
    std::get<0>(top) = std::string(topic.id);
    beats.push_back(top);
  } else {
    if (batch == document.MemberEnd() || !batch->value.IsArray()) return reference;
    if (batch->value.Size() > kMaxBatchNodes) return reference;
    for (const rapidjson::Value& entry : batch->value.GetArray()) {
      if (!entry.IsObject()) return reference;
      if (HasDuplicateNames(entry)) {
        reference.skip = true;
        return reference;
      }
      Beat beat;
      bool node = false, epoch = false, seq = false;
      if (!ReadFields(entry, &beat, &node, &epoch, &seq) || !node || !epoch || !seq) {
        return reference;
      }
      beats.push_back(beat);
    }
  }
  reference.beats = std::move(beats);
  return reference;
}

// --- The checks -------------------------------------------------------------

void CheckOnTopic(const Topic& topic, std::string_view input) {
  HeartbeatBatch batch;
  DecodeError error = DecodeHeartbeats(topic, input, &batch);
  if (DecodeErrorName(error) == "unknown") Fail("unnamed decode error", input, "");

  Reference reference = ReadReference(topic, input);
  if (!reference.skip && reference.beats.has_value() != (error == DecodeError::kOk)) {
    Fail(error == DecodeError::kOk ? "accepted what the reference refuses"
                                   : "refused what the reference accepts",
         input, DecodeErrorName(error));
  }
  if (error != DecodeError::kOk) return;
  std::vector<Beat> beats = Beats(batch);
  if (!reference.skip && beats != *reference.beats) {
    Fail("decoded other beats than the reference", input, "");
  }

  bool on_node_topic = topic.sender == Sender::kNode;
  if (beats.size() > kMaxBatchNodes) Fail("batch over kMaxBatchNodes", input, "");
  if (on_node_topic && (beats.size() != 1 || std::get<0>(beats[0]) != topic.id)) {
    Fail("node topic decoded to other than its one node", input, "");
  }
  for (const Beat& beat : beats) {
    if (std::get<0>(beat).size() > kMaxStringBytes || std::get<3>(beat).size() > kMaxStringBytes) {
      Fail("string over kMaxStringBytes", input, "");
    }
  }

  std::string encoded;
  EncodeHeartbeats(batch.beats, on_node_topic, encoded);
  HeartbeatBatch again;
  DecodeError again_error = DecodeHeartbeats(topic, encoded, &again);
  if (again_error != DecodeError::kOk) {
    Fail("the encoding does not decode", input,
         std::string(DecodeErrorName(again_error)) + ": " + encoded);
  }
  if (Beats(again) != beats) Fail("the encoding decodes to other beats", input, encoded);
  // The first batch's views must still hold after decoding into another.
  if (Beats(batch) != beats) Fail("decoding another batch changed this one", input, "");
}

void Check(std::string_view input) {
  CheckOnTopic(Topic{Sender::kNode, "edge-1", Channel::kHeartbeat}, input);
  CheckOnTopic(Topic{Sender::kGateway, "gw-1", Channel::kHeartbeat}, input);
}

}  // namespace
}  // namespace kole::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::protocol::Check(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
