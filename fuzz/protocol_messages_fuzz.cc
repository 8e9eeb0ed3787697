// Fuzzes the smaller protocol parsers with one input: DecodeWill (the cloud
// reads it from the broker), DecodeAck and DecodeControl (devices read them
// from the cloud), and TopicScheme::Parse (every message's topic). What
// decodes must round-trip: encoding it and decoding that gives an equal
// message, in the flat and the batch form alike, and the encoding is stable.
// A topic that parses must build back to the same string.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "mqtt-bridge/protocol.h"

namespace kole::protocol {
namespace {

[[noreturn]] void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  fuzz::Abort("protocol_messages_fuzz", what, input, detail);
}

void CheckName(DecodeError error, std::string_view input) {
  if (DecodeErrorName(error) == "unknown") Fail("unnamed decode error", input, "");
}

void CheckWill(std::string_view input) {
  Will will;
  DecodeError error = DecodeWill(input, &will);
  CheckName(error, input);
  if (error != DecodeError::kOk) return;
  std::string encoded;
  EncodeWill(will, encoded);
  Will again{12345};
  if (DecodeWill(encoded, &again) != DecodeError::kOk)
    Fail("will: encoding does not decode", input, encoded);
  if (again.epoch != will.epoch) Fail("will: encoding decodes to another epoch", input, encoded);
}

// What an acknowledgement says once encoded: epoch and resourceVersion ride
// only on Accepted.
AckMessage Normalised(AckMessage message) {
  for (Ack& ack : message.acks) {
    if (ack.result != AckResult::kAccepted) {
      ack.epoch = 0;
      ack.resource_version = 0;
    }
  }
  return message;
}

void CheckAck(std::string_view input) {
  AckMessage message;
  DecodeError error = DecodeAck(input, &message);
  CheckName(error, input);
  if (error != DecodeError::kOk) return;
  if (message.acks.size() > kMaxBatchNodes) Fail("ack: batch over kMaxBatchNodes", input, "");
  for (const Ack& ack : message.acks) {
    if (ack.node.size() > kMaxStringBytes || ack.reason.size() > kMaxStringBytes ||
        ack.message.size() > kMaxStringBytes) {
      Fail("ack: string over kMaxStringBytes", input, "");
    }
  }

  AckMessage expected = Normalised(message);
  for (bool on_node_topic : {true, false}) {
    std::string encoded;
    EncodeAck(message, on_node_topic, encoded);
    AckMessage again;
    DecodeError again_error = DecodeAck(encoded, &again);
    if (again_error != DecodeError::kOk) {
      Fail("ack: encoding does not decode", input,
           std::string(DecodeErrorName(again_error)) + ": " + encoded);
    }
    if (!(again == expected)) Fail("ack: encoding decodes to another message", input, encoded);
    std::string reencoded;
    EncodeAck(again, on_node_topic, reencoded);
    if (reencoded != encoded)
      Fail("ack: encoding is not stable", input, encoded + " -> " + reencoded);
  }
}

void CheckControl(std::string_view input) {
  ControlMessage message;
  DecodeError error = DecodeControl(input, &message);
  CheckName(error, input);
  if (error != DecodeError::kOk) return;
  if (message.nodes.size() > kMaxBatchNodes) Fail("control: batch over kMaxBatchNodes", input, "");
  for (const std::string& node : message.nodes) {
    if (node.size() > kMaxStringBytes) Fail("control: node over kMaxStringBytes", input, node);
  }
  if (message.reason.size() > kMaxStringBytes)
    Fail("control: reason over kMaxStringBytes", input, "");

  for (bool on_node_topic : {true, false}) {
    std::string encoded;
    EncodeControl(message, on_node_topic, encoded);
    ControlMessage again;
    DecodeError again_error = DecodeControl(encoded, &again);
    if (again_error != DecodeError::kOk) {
      Fail("control: encoding does not decode", input,
           std::string(DecodeErrorName(again_error)) + ": " + encoded);
    }
    if (!(again == message)) Fail("control: encoding decodes to another message", input, encoded);
    std::string reencoded;
    EncodeControl(again, on_node_topic, reencoded);
    if (reencoded != encoded) {
      Fail("control: encoding is not stable", input, encoded + " -> " + reencoded);
    }
  }
}

void CheckTopic(std::string_view input) {
  // The default prefix, and one with a trailing slash that must be dropped.
  static const TopicScheme* schemes[] = {new TopicScheme(), new TopicScheme("fleet/a/")};
  for (const TopicScheme* scheme : schemes) {
    std::optional<Topic> topic = scheme->Parse(input);
    if (!topic.has_value()) continue;
    if (topic->id.empty()) Fail("topic: empty id", input, "");
    if (topic->id.find('/') != std::string_view::npos) Fail("topic: id spans levels", input, "");
    if (topic->id.data() < input.data() ||
        topic->id.data() + topic->id.size() > input.data() + input.size()) {
      Fail("topic: id is not a view into the topic", input, "");
    }
    std::string built = scheme->Build(topic->sender, topic->id, topic->channel);
    if (built != input) Fail("topic: parses but builds to another string", input, built);
  }

  // Any non-empty single level is a valid id: every topic built on it parses back.
  if (input.empty() || input.find('/') != std::string_view::npos) return;
  const TopicScheme& scheme = *schemes[0];
  for (Sender sender : {Sender::kNode, Sender::kGateway}) {
    for (Channel channel : {Channel::kRegister, Channel::kHeartbeat, Channel::kWill, Channel::kAck,
                            Channel::kControl}) {
      std::string built = scheme.Build(sender, input, channel);
      std::optional<Topic> parsed = scheme.Parse(built);
      if (!parsed.has_value() || parsed->sender != sender || parsed->channel != channel ||
          parsed->id != input) {
        Fail("topic: a built topic does not parse back", input, built);
      }
    }
  }
}

}  // namespace
}  // namespace kole::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  kole::protocol::CheckWill(input);
  kole::protocol::CheckAck(input);
  kole::protocol::CheckControl(input);
  kole::protocol::CheckTopic(input);
  return 0;
}
