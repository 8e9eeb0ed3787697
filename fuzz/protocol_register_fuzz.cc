// Fuzzes DecodeRegister, which reads every registration a device or gateway
// publishes. The input is decoded as it would arrive on a node topic and on
// a gateway topic. A payload that decodes must respect the size limits and
// the topic's identity rule, and must survive a round trip: encoding it in
// the topic's form and decoding that gives an equal message, whose encoding
// is the same bytes again. A refusal must name a known reason.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "mqtt-bridge/protocol.h"

namespace kole::protocol {
namespace {

[[noreturn]] void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  fuzz::Abort("protocol_register_fuzz", what, input, detail);
}

bool Sorted(const StringPairs& pairs) {
  for (size_t i = 1; i < pairs.size(); ++i) {
    if (pairs[i] < pairs[i - 1]) return false;
  }
  return true;
}

void CheckLimits(const RegisterMessage& message, std::string_view input) {
  if (message.nodes.size() > kMaxBatchNodes) Fail("batch over kMaxBatchNodes", input, "");
  auto check_string = [&](const std::string& value) {
    if (value.size() > kMaxStringBytes) Fail("string over kMaxStringBytes", input, value);
  };
  auto check_map = [&](const StringPairs& pairs) {
    if (pairs.size() > kMaxRegistrationEntries) Fail("map over its limit", input, "");
    if (!Sorted(pairs)) Fail("map not sorted", input, "");
    for (const auto& [key, value] : pairs) {
      check_string(key);
      check_string(value);
    }
  };
  for (const Registration& r : message.nodes) {
    check_string(r.node);
    check_map(r.labels);
    check_map(r.capacity);
    check_map(r.allocatable);
    if (r.addresses.size() > kMaxRegistrationEntries ||
        r.conditions.size() > kMaxRegistrationEntries) {
      Fail("list over its limit", input, "");
    }
    for (const Address& a : r.addresses) {
      check_string(a.type);
      check_string(a.address);
    }
    const NodeInfo& n = r.node_info;
    for (const std::string* field :
         {&n.machine_id, &n.system_uuid, &n.boot_id, &n.kernel_version, &n.os_image,
          &n.container_runtime_version, &n.agent_version, &n.operating_system, &n.architecture}) {
      check_string(*field);
    }
    for (const Condition& c : r.conditions) {
      check_string(c.type);
      check_string(c.status);
      check_string(c.reason);
      check_string(c.message);
    }
  }
}

void CheckOnTopic(const Topic& topic, std::string_view input) {
  RegisterMessage message;
  DecodeError error = DecodeRegister(topic, input, &message);
  if (DecodeErrorName(error) == "unknown") Fail("unnamed decode error", input, "");

  // Decoding is a function of the input: a reused message gives the same.
  RegisterMessage reused{99, {Registration{}, Registration{}}};
  if (DecodeRegister(topic, input, &reused) != error)
    Fail("a reused message decodes differently", input, "");
  if (error != DecodeError::kOk) return;
  if (!(reused == message)) Fail("a reused message keeps old content", input, "");

  CheckLimits(message, input);
  bool on_node_topic = topic.sender == Sender::kNode;
  if (on_node_topic) {
    if (message.nodes.size() != 1) Fail("node topic decoded to other than one node", input, "");
    if (message.nodes[0].node != topic.id) Fail("node topic decoded another node", input, "");
  } else {
    for (const Registration& r : message.nodes) {
      if (r.node.empty()) Fail("gateway entry without a node", input, "");
    }
  }

  std::string encoded;
  EncodeRegister(message, on_node_topic, encoded);
  if (encoded.size() > kMaxPayloadBytes) return;  // Filled-in defaults can grow a huge input.
  RegisterMessage again;
  DecodeError again_error = DecodeRegister(topic, encoded, &again);
  if (again_error != DecodeError::kOk) {
    Fail("the encoding does not decode", input,
         std::string(DecodeErrorName(again_error)) + ": " + encoded);
  }
  if (!(again == message)) Fail("the encoding decodes to another message", input, encoded);
  std::string reencoded;
  EncodeRegister(again, on_node_topic, reencoded);
  if (reencoded != encoded) Fail("the encoding is not stable", input, encoded + " -> " + reencoded);
}

void Check(std::string_view input) {
  // The ids are views into these literals, as a parsed topic's are into the
  // topic string.
  CheckOnTopic(Topic{Sender::kNode, "edge-1", Channel::kRegister}, input);
  CheckOnTopic(Topic{Sender::kGateway, "gw-1", Channel::kRegister}, input);
}

}  // namespace
}  // namespace kole::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::protocol::Check(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
