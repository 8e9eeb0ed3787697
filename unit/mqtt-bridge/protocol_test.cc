// The edge protocol codec: topics, round trips of every message in both its
// node-topic (flat) and gateway (batch) form, and the reason each malformed
// or hostile payload is refused with.

#include "mqtt-bridge/protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::protocol {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr std::array<Channel, 5> kAllChannels = {Channel::kRegister, Channel::kHeartbeat,
                                                 Channel::kWill, Channel::kAck, Channel::kControl};

// Topics as the decoders see them. The ids are views into these literals.
Topic NodeTopic(std::string_view node = "edge-1") {
  return Topic{Sender::kNode, node, Channel::kRegister};
}
Topic GatewayTopic(std::string_view gateway = "gw-1") {
  return Topic{Sender::kGateway, gateway, Channel::kRegister};
}

// A payload of `size` bytes that is valid JSON apart from its size: the
// padding is an unknown member, which decoders otherwise skip.
std::string PaddedPayload(std::string_view body, size_t size) {
  std::string payload = "{\"v\":1,";
  payload += body;
  payload += ",\"pad\":\"";
  payload.append(size - payload.size() - 2, 'x');
  payload += "\"}";
  return payload;
}

// --- Topics ------------------------------------------------------------------

TEST(TopicScheme, BuildsNodeTopicUnderPrefix) {
  TopicScheme topics;
  EXPECT_EQ(topics.Build(Sender::kNode, "edge-1", Channel::kHeartbeat),
            "kole/v1/nodes/edge-1/heartbeat");
}

TEST(TopicScheme, BuildsGatewayTopicUnderCustomPrefix) {
  TopicScheme topics("fleet/eu");
  EXPECT_EQ(topics.Build(Sender::kGateway, "gw-7", Channel::kRegister),
            "fleet/eu/gateways/gw-7/register");
}

TEST(TopicScheme, EveryChannelOfBothSendersRoundTrips) {
  TopicScheme topics;
  for (Sender sender : {Sender::kNode, Sender::kGateway}) {
    for (Channel channel : kAllChannels) {
      std::string built = topics.Build(sender, "id-42", channel);
      std::optional<Topic> parsed = topics.Parse(built);
      ASSERT_TRUE(parsed.has_value()) << built;
      EXPECT_EQ(parsed->sender, sender) << built;
      EXPECT_EQ(parsed->id, "id-42") << built;
      EXPECT_EQ(parsed->channel, channel) << built;
    }
  }
}

TEST(TopicScheme, ChannelNamesAreTheTopicLevels) {
  std::vector<std::string_view> names;
  for (Channel channel : kAllChannels) names.push_back(ChannelName(channel));
  EXPECT_THAT(names, ElementsAre("register", "heartbeat", "will", "ack", "control"));
}

TEST(TopicScheme, ParseRejectsOtherPrefixes) {
  TopicScheme topics;
  for (std::string_view topic :
       {"kole/v2/nodes/n/heartbeat", "kole/v1x/nodes/n/heartbeat", "kole/nodes/n/heartbeat",
        "/kole/v1/nodes/n/heartbeat", "KOLE/v1/nodes/n/heartbeat", "", "kole/v1", "kole/v1/"}) {
    EXPECT_FALSE(topics.Parse(topic).has_value()) << topic;
  }
}

TEST(TopicScheme, ParseRejectsUnknownSenderKinds) {
  TopicScheme topics;
  for (std::string_view topic : {"kole/v1/devices/n/heartbeat", "kole/v1/node/n/heartbeat",
                                 "kole/v1//n/heartbeat", "kole/v1/nodes"}) {
    EXPECT_FALSE(topics.Parse(topic).has_value()) << topic;
  }
}

TEST(TopicScheme, ParseRejectsUnknownChannels) {
  TopicScheme topics;
  for (std::string_view topic : {"kole/v1/nodes/n/status", "kole/v1/nodes/n/Heartbeat",
                                 "kole/v1/nodes/n/", "kole/v1/nodes/n", "kole/v1/gateways/g/+"}) {
    EXPECT_FALSE(topics.Parse(topic).has_value()) << topic;
  }
}

TEST(TopicScheme, ParseRejectsEmptyId) {
  TopicScheme topics;
  EXPECT_FALSE(topics.Parse("kole/v1/nodes//heartbeat").has_value());
  EXPECT_FALSE(topics.Parse("kole/v1/gateways//register").has_value());
}

TEST(TopicScheme, ParseRejectsExtraLevels) {
  TopicScheme topics;
  for (std::string_view topic : {"kole/v1/nodes/n/heartbeat/x", "kole/v1/nodes/a/b/heartbeat",
                                 "kole/v1/nodes/n/heartbeat/"}) {
    EXPECT_FALSE(topics.Parse(topic).has_value()) << topic;
  }
}

TEST(TopicScheme, PrefixTrailingSlashesAreDropped) {
  TopicScheme topics("kole/v1//");
  EXPECT_EQ(topics.prefix(), "kole/v1");
  EXPECT_EQ(topics.Build(Sender::kNode, "n", Channel::kWill), "kole/v1/nodes/n/will");
  std::optional<Topic> parsed = topics.Parse("kole/v1/nodes/n/will");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->id, "n");
  EXPECT_EQ(parsed->channel, Channel::kWill);
}

TEST(TopicScheme, ParsedIdIsAViewIntoTheTopic) {
  TopicScheme topics;
  std::string topic = "kole/v1/gateways/gw-3/heartbeat";
  std::optional<Topic> parsed = topics.Parse(topic);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->id.data(), topic.data() + std::string_view("kole/v1/gateways/").size());
}

TEST(TopicScheme, CloudSubscribesToDeviceChannelsOfNodesAndGateways) {
  TopicScheme topics;
  EXPECT_THAT(topics.CloudSubscriptions(""),
              UnorderedElementsAre("kole/v1/nodes/+/register", "kole/v1/nodes/+/heartbeat",
                                   "kole/v1/nodes/+/will", "kole/v1/nodes/+/podstatus",
                                   "kole/v1/gateways/+/register", "kole/v1/gateways/+/heartbeat",
                                   "kole/v1/gateways/+/will", "kole/v1/gateways/+/podstatus"));
}

TEST(TopicScheme, CloudSubscriptionsWithShareGroupAreSharedSubscriptions) {
  TopicScheme topics("fleet");
  EXPECT_THAT(
      topics.CloudSubscriptions("bridges"),
      UnorderedElementsAre(
          "$share/bridges/fleet/nodes/+/register", "$share/bridges/fleet/nodes/+/heartbeat",
          "$share/bridges/fleet/nodes/+/will", "$share/bridges/fleet/nodes/+/podstatus",
          "$share/bridges/fleet/gateways/+/register", "$share/bridges/fleet/gateways/+/heartbeat",
          "$share/bridges/fleet/gateways/+/will", "$share/bridges/fleet/gateways/+/podstatus"));
}

// --- Names -------------------------------------------------------------------

TEST(ProtocolNames, DecodeErrorNamesAreStableMetricLabels) {
  EXPECT_EQ(DecodeErrorName(DecodeError::kOk), "ok");
  EXPECT_EQ(DecodeErrorName(DecodeError::kTooLarge), "too_large");
  EXPECT_EQ(DecodeErrorName(DecodeError::kMalformed), "malformed");
  EXPECT_EQ(DecodeErrorName(DecodeError::kUnsupportedVersion), "unsupported_version");
  EXPECT_EQ(DecodeErrorName(DecodeError::kWrongType), "wrong_type");
  EXPECT_EQ(DecodeErrorName(DecodeError::kMissingField), "missing_field");
  EXPECT_EQ(DecodeErrorName(DecodeError::kTopicMismatch), "topic_mismatch");
}

TEST(ProtocolNames, AckResultsAndControlActionsHaveWireNames) {
  EXPECT_EQ(AckResultName(AckResult::kAccepted), "Accepted");
  EXPECT_EQ(AckResultName(AckResult::kRejected), "Rejected");
  EXPECT_EQ(AckResultName(AckResult::kRetry), "Retry");
  EXPECT_EQ(ControlActionName(ControlAction::kResync), "Resync");
  EXPECT_EQ(ControlActionName(ControlAction::kDeregister), "Deregister");
}

// --- Registration --------------------------------------------------------------

Registration FullRegistration(std::string node) {
  Registration r;
  r.node = std::move(node);
  r.epoch = 7;
  r.sequence = 3;
  r.labels = {{"edge.kole.io/site", "site-9"}, {"kubernetes.io/arch", "arm64"}, {"tier", "edge"}};
  r.capacity = {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}};
  r.allocatable = {{"cpu", "3500m"}, {"memory", "7Gi"}};
  r.addresses = {{"InternalIP", "10.0.0.7"}, {"Hostname", "edge-host"}};
  r.node_info = NodeInfo{"machine-1",        "uuid-1",         "boot-1", "6.1.0", "Debian 12",
                         "containerd://1.7", "kole-agent/0.1", "linux",  "arm64"};
  r.conditions = {{"DiskPressure", "False", "", ""},
                  {"MemoryPressure", "True", "LowMemory", "only 50 MiB \"free\"\n"}};
  return r;
}

RegisterMessage RoundTripRegister(const RegisterMessage& message, const Topic& topic) {
  std::string payload;
  EncodeRegister(message, topic.sender == Sender::kNode, payload);
  RegisterMessage decoded;
  EXPECT_EQ(DecodeRegister(topic, payload, &decoded), DecodeError::kOk) << payload;
  return decoded;
}

DecodeError DecodeRegisterOnNode(std::string_view payload) {
  RegisterMessage message;
  return DecodeRegister(NodeTopic(), payload, &message);
}

DecodeError DecodeRegisterOnGateway(std::string_view payload) {
  RegisterMessage message;
  return DecodeRegister(GatewayTopic(), payload, &message);
}

TEST(RegisterMessage, FullRegistrationRoundTripsOnNodeTopic) {
  RegisterMessage message{12, {FullRegistration("edge-1")}};
  EXPECT_EQ(RoundTripRegister(message, NodeTopic("edge-1")), message);
}

TEST(RegisterMessage, NodeTopicFormIsFlat) {
  std::string payload;
  EncodeRegister(RegisterMessage{1, {FullRegistration("edge-1")}}, /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, HasSubstr("\"v\":1"));
  EXPECT_THAT(payload, Not(HasSubstr("\"nodes\"")));
}

TEST(RegisterMessage, GatewayBatchRoundTrips) {
  Registration minimal;
  minimal.node = "edge-3";
  RegisterMessage message{std::numeric_limits<uint64_t>::max(),
                          {FullRegistration("edge-1"), FullRegistration("edge-2"), minimal}};
  std::string payload;
  EncodeRegister(message, /*on_node_topic=*/false, payload);
  EXPECT_THAT(payload, HasSubstr("\"nodes\":["));
  EXPECT_EQ(RoundTripRegister(message, GatewayTopic()), message);
}

TEST(RegisterMessage, MinimalRegistrationRoundTrips) {
  Registration minimal;
  minimal.node = "edge-1";
  RegisterMessage message{0, {minimal}};
  EXPECT_EQ(RoundTripRegister(message, NodeTopic("edge-1")), message);
}

TEST(RegisterMessage, EpochAndSequenceAcceptFullUint32) {
  Registration r = FullRegistration("edge-1");
  r.epoch = std::numeric_limits<uint32_t>::max();
  r.sequence = std::numeric_limits<uint32_t>::max();
  RegisterMessage message{1, {r}};
  EXPECT_EQ(RoundTripRegister(message, NodeTopic("edge-1")), message);
}

TEST(RegisterMessage, LabelsAreDecodedSortedByKey) {
  RegisterMessage message;
  ASSERT_EQ(DecodeRegister(NodeTopic(), R"({"v":1,"labels":{"z":"1","a":"2","m":"3"}})", &message),
            DecodeError::kOk);
  ASSERT_EQ(message.nodes.size(), 1u);
  EXPECT_THAT(message.nodes[0].labels, ElementsAre(std::pair<std::string, std::string>("a", "2"),
                                                   std::pair<std::string, std::string>("m", "3"),
                                                   std::pair<std::string, std::string>("z", "1")));
}

TEST(RegisterMessage, NodeDefaultsToTheTopicNode) {
  RegisterMessage message;
  ASSERT_EQ(DecodeRegister(NodeTopic("edge-9"), R"({"v":1,"id":5})", &message), DecodeError::kOk);
  ASSERT_EQ(message.nodes.size(), 1u);
  EXPECT_EQ(message.nodes[0].node, "edge-9");
  EXPECT_EQ(message.id, 5u);
}

TEST(RegisterMessage, MissingEpochAsksTheCloudToAssignOne) {
  RegisterMessage message;
  ASSERT_EQ(DecodeRegister(NodeTopic(), R"({"v":1,"node":"edge-1"})", &message), DecodeError::kOk);
  EXPECT_EQ(message.nodes[0].epoch, 0u);
  EXPECT_EQ(message.nodes[0].sequence, 0u);
}

TEST(RegisterMessage, DecodeReplacesWhatTheMessageHeld) {
  RegisterMessage message{9, {FullRegistration("a"), FullRegistration("b")}};
  ASSERT_EQ(DecodeRegister(NodeTopic("edge-1"), R"({"v":1})", &message), DecodeError::kOk);
  Registration expected;
  expected.node = "edge-1";
  EXPECT_EQ(message, (RegisterMessage{0, {expected}}));
}

TEST(RegisterMessage, PayloadNamingAnotherNodeIsATopicMismatch) {
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"node":"edge-2"})"), DecodeError::kTopicMismatch);
}

TEST(RegisterMessage, BatchOnNodeTopicIsATopicMismatch) {
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"nodes":[{"node":"edge-1"}]})"),
            DecodeError::kTopicMismatch);
}

TEST(RegisterMessage, GatewayEntryWithoutNodeIsMissingField) {
  EXPECT_EQ(DecodeRegisterOnGateway(R"({"v":1,"nodes":[{"node":"a"},{"epoch":1}]})"),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeRegisterOnGateway(R"({"v":1,"nodes":[{"node":""}]})"),
            DecodeError::kMissingField);
}

TEST(RegisterMessage, GatewayFlatFormWithoutNodeIsMissingField) {
  EXPECT_EQ(DecodeRegisterOnGateway(R"({"v":1,"epoch":1})"), DecodeError::kMissingField);
}

TEST(RegisterMessage, BatchAtTheNodeLimitDecodes) {
  std::string payload = R"({"v":1,"nodes":[)";
  for (size_t i = 0; i < kMaxBatchNodes; ++i) {
    payload += (i == 0 ? "" : ",");
    payload += "{\"node\":\"n" + std::to_string(i) + "\"}";
  }
  payload += "]}";
  RegisterMessage message;
  ASSERT_EQ(DecodeRegister(GatewayTopic(), payload, &message), DecodeError::kOk);
  EXPECT_EQ(message.nodes.size(), kMaxBatchNodes);
}

TEST(RegisterMessage, BatchOverTheNodeLimitIsTooLarge) {
  std::string payload = R"({"v":1,"nodes":[)";
  for (size_t i = 0; i <= kMaxBatchNodes; ++i) payload += (i == 0 ? "{}" : ",{}");
  payload += "]}";
  EXPECT_EQ(DecodeRegisterOnGateway(payload), DecodeError::kTooLarge);
}

TEST(RegisterMessage, MapOverTheEntryLimitIsTooLarge) {
  std::string labels;
  for (size_t i = 0; i <= kMaxRegistrationEntries; ++i) {
    labels += (i == 0 ? "" : ",");
    labels += "\"k" + std::to_string(i) + "\":\"v\"";
  }
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"labels":{)" + labels + "}}"), DecodeError::kTooLarge);
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"capacity":{)" + labels + "}}"), DecodeError::kTooLarge);
}

TEST(RegisterMessage, ListOverTheEntryLimitIsTooLarge) {
  std::string addresses, conditions;
  for (size_t i = 0; i <= kMaxRegistrationEntries; ++i) {
    addresses += (i == 0 ? "" : ",");
    addresses += R"({"type":"InternalIP","address":"10.0.0.1"})";
    conditions += (i == 0 ? "" : ",");
    conditions += R"({"type":"C","status":"False"})";
  }
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"addresses":[)" + addresses + "]}"),
            DecodeError::kTooLarge);
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"conditions":[)" + conditions + "]}"),
            DecodeError::kTooLarge);
}

TEST(RegisterMessage, StringAtTheLimitDecodes) {
  std::string value(kMaxStringBytes, 'a');
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"labels":{"k":")" + value + "\"}}"), DecodeError::kOk);
}

TEST(RegisterMessage, StringOverTheLimitIsTooLarge) {
  std::string big(kMaxStringBytes + 1, 'a');
  for (const std::string& body : {
           R"("node":")" + big + "\"",
           R"("labels":{")" + big + R"(":"v"})",
           R"("labels":{"k":")" + big + "\"}",
           R"("addresses":[{"type":"InternalIP","address":")" + big + "\"}]",
           R"("nodeInfo":{"osImage":")" + big + "\"}",
           R"("conditions":[{"type":"A","status":"True","message":")" + big + "\"}]",
       }) {
    EXPECT_EQ(DecodeRegisterOnNode("{\"v\":1," + body + "}"), DecodeError::kTooLarge) << body;
  }
}

TEST(RegisterMessage, PayloadOverTheLimitIsTooLarge) {
  std::string at_limit = PaddedPayload(R"("node":"edge-1")", kMaxPayloadBytes);
  ASSERT_EQ(at_limit.size(), kMaxPayloadBytes);
  EXPECT_EQ(DecodeRegisterOnNode(at_limit), DecodeError::kOk);
  EXPECT_EQ(DecodeRegisterOnNode(PaddedPayload(R"("node":"edge-1")", kMaxPayloadBytes + 1)),
            DecodeError::kTooLarge);
}

TEST(RegisterMessage, WrongFieldTypesAreRefused) {
  for (std::string_view body : {
           R"("epoch":"1")",
           R"("epoch":-1)",
           R"("epoch":4294967296)",
           R"("epoch":1.5)",
           R"("epoch":1.0)",
           R"("epoch":null)",
           R"("seq":true)",
           R"("id":-3)",
           R"("node":7)",
           R"("labels":["a"])",
           R"("labels":{"a":1})",
           R"("capacity":"cpu")",
           R"("addresses":{})",
           R"("addresses":["10.0.0.1"])",
           R"("addresses":[{"type":1,"address":"x"}])",
           R"("nodeInfo":[])",
           R"("nodeInfo":{"bootID":5})",
           R"("conditions":{})",
           R"("conditions":[7])",
           R"("nodes":{})",
       }) {
    RegisterMessage message;
    Topic topic = body.starts_with(R"("nodes")") ? GatewayTopic() : NodeTopic();
    EXPECT_EQ(DecodeRegister(topic, "{\"v\":1," + std::string(body) + "}", &message),
              DecodeError::kWrongType)
        << body;
  }
}

TEST(RegisterMessage, BatchEntryThatIsNotAnObjectIsWrongType) {
  EXPECT_EQ(DecodeRegisterOnGateway(R"({"v":1,"nodes":["edge-1"]})"), DecodeError::kWrongType);
}

TEST(RegisterMessage, AddressAndConditionRequireTheirKeyFields) {
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"addresses":[{"address":"10.0.0.1"}]})"),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"addresses":[{"type":"InternalIP"}]})"),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"conditions":[{"type":"Ready"}]})"),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeRegisterOnNode(R"({"v":1,"conditions":[{"status":"True"}]})"),
            DecodeError::kMissingField);
}

TEST(RegisterMessage, UnknownMembersAreIgnoredAtEveryLevel) {
  // Each unknown value nests objects and arrays holding known key names.
  constexpr std::string_view kJunk = R"({"node":"x","epoch":"bad","nodes":[1,{"v":2}]})";
  std::string j(kJunk);
  std::string payload = "{\"v\":1,\"future\":" + j + ",\"id\":4,\"nodes\":[{\"node\":\"edge-1\"," +
                        "\"extra\":[" + j + ",[[]]],\"labels\":{\"a\":\"b\"}," +
                        "\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.1\"," +
                        "\"zone\":" + j + "}],\"nodeInfo\":{\"osImage\":\"Debian\",\"gpu\":" + j +
                        "},\"conditions\":[{\"type\":\"A\",\"status\":\"True\",\"since\":" + j +
                        "}]}],\"trailer\":[" + j + "]}";
  RegisterMessage message;
  ASSERT_EQ(DecodeRegister(GatewayTopic(), payload, &message), DecodeError::kOk) << payload;
  Registration expected;
  expected.node = "edge-1";
  expected.labels = {{"a", "b"}};
  expected.addresses = {{"InternalIP", "10.0.0.1"}};
  expected.node_info.os_image = "Debian";
  expected.conditions = {{"A", "True", "", ""}};
  EXPECT_EQ(message, (RegisterMessage{4, {expected}}));
}

// --- What every payload shares: JSON object, version, trailing bytes, nesting ---

// One decoder under a name, given a payload.
struct NamedDecoder {
  std::string_view name;
  std::function<DecodeError(std::string_view)> decode;
};

// Each decoder on a node topic. kSharedBody with "v":1 is valid for all.
std::vector<NamedDecoder> AllDecoders() {
  return {
      {"register", [](std::string_view p) { return DecodeRegisterOnNode(p); }},
      {"heartbeat",
       [](std::string_view p) {
         HeartbeatBatch batch;
         return DecodeHeartbeats(NodeTopic(), p, &batch);
       }},
      {"will",
       [](std::string_view p) {
         Will will;
         return DecodeWill(p, &will);
       }},
      {"ack",
       [](std::string_view p) {
         AckMessage ack;
         return DecodeAck(p, &ack);
       }},
      {"control",
       [](std::string_view p) {
         ControlMessage control;
         return DecodeControl(p, &control);
       }},
  };
}

std::string SharedBody(std::string_view version) {
  return "{\"v\":" + std::string(version) +
         R"(,"node":"edge-1","epoch":1,"seq":2,"result":"Accepted","action":"Resync"})";
}

TEST(ProtocolDecode, SharedBodyDecodesEverywhere) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(SharedBody("1")), DecodeError::kOk) << decoder.name;
  }
}

TEST(ProtocolDecode, VersionOtherThanIntegerOneIsUnsupported) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    for (std::string_view version : {"2", "0", "-1", "\"1\"", "1.0", "true", "null", "{}", "[1]"}) {
      EXPECT_EQ(decoder.decode(SharedBody(version)), DecodeError::kUnsupportedVersion)
          << decoder.name << " v=" << version;
    }
  }
}

TEST(ProtocolDecode, MissingVersionIsUnsupported) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(R"({"node":"edge-1","epoch":1,"seq":2,"action":"Resync"})"),
              DecodeError::kUnsupportedVersion)
        << decoder.name;
  }
}

TEST(ProtocolDecode, VersionInsideANestedObjectDoesNotCount) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(R"({"x":{"v":1},"node":"edge-1","epoch":1,"seq":2})"),
              DecodeError::kUnsupportedVersion)
        << decoder.name;
  }
}

TEST(ProtocolDecode, NotJsonIsMalformed) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    for (std::string_view payload :
         {"", "hello", "{", "{\"v\":1", "{\"v\":1,}", "{'v':1}", "{\"v\":1,\"node\":\"a\\x\"}"}) {
      EXPECT_EQ(decoder.decode(payload), DecodeError::kMalformed) << decoder.name << " " << payload;
    }
  }
}

TEST(ProtocolDecode, JsonThatIsNotAnObjectIsMalformed) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    for (std::string_view payload : {"[]", R"([{"v":1}])", "1", "\"v\"", "null", "true"}) {
      EXPECT_EQ(decoder.decode(payload), DecodeError::kMalformed) << decoder.name << " " << payload;
    }
  }
}

// A payload is exactly one JSON object: bytes after it are not silently
// dropped (a device that concatenates two messages must hear about it).
TEST(ProtocolDecode, TrailingBytesAfterTheObjectAreMalformed) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    for (const std::string& trailer :
         {std::string("x"), std::string("}"), std::string(","), SharedBody("2")}) {
      EXPECT_EQ(decoder.decode(SharedBody("1") + trailer), DecodeError::kMalformed)
          << decoder.name << " trailer " << trailer;
    }
  }
}

TEST(ProtocolDecode, WhitespaceAroundTheObjectIsAccepted) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(" \n\t" + SharedBody("1") + "\r\n "), DecodeError::kOk)
        << decoder.name;
  }
}

// Regression: the heartbeat decoder refused a payload that starts with a
// UTF-8 byte order mark, which the others skip.
TEST(ProtocolDecode, LeadingByteOrderMarkIsSkippedByEveryDecoder) {
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode("\xEF\xBB\xBF" + SharedBody("1")), DecodeError::kOk) << decoder.name;
  }
}

// Regression: the recursive JSON parser overflowed the stack on a payload of
// a few hundred thousand '[' under an unknown member (a crash from one
// hostile message).
TEST(ProtocolDecode, DeeplyNestedUnknownMemberDoesNotOverflowTheStack) {
  size_t depth = (kMaxPayloadBytes - 200) / 2;
  std::string payload = R"({"v":1,"node":"edge-1","epoch":1,"seq":2,"action":"Resync",)";
  payload += R"("result":"Accepted","deep":)" + std::string(depth, '[') + std::string(depth, ']');
  payload += "}";
  ASSERT_LE(payload.size(), kMaxPayloadBytes);
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(payload), DecodeError::kOk) << decoder.name;
  }
}

TEST(ProtocolDecode, DeeplyNestedRootIsRefusedWithoutOverflow) {
  size_t depth = kMaxPayloadBytes / 2;
  std::string payload = std::string(depth, '[') + std::string(depth, ']');
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(payload), DecodeError::kMalformed) << decoder.name;
  }
}

TEST(ProtocolDecode, PayloadOverTheLimitIsTooLargeForEveryMessage) {
  std::string payload =
      PaddedPayload(R"("node":"edge-1","epoch":1,"seq":2,"result":"Accepted","action":"Resync")",
                    kMaxPayloadBytes + 1);
  for (const NamedDecoder& decoder : AllDecoders()) {
    EXPECT_EQ(decoder.decode(payload), DecodeError::kTooLarge) << decoder.name;
  }
}

// --- Heartbeats ------------------------------------------------------------------

DecodeError DecodeBeats(const Topic& topic, std::string_view payload) {
  HeartbeatBatch batch;
  return DecodeHeartbeats(topic, payload, &batch);
}

std::string BeatsPayload(size_t count) {
  std::string payload = R"({"v":1,"beats":[)";
  for (size_t i = 0; i < count; ++i) {
    payload += (i == 0 ? "" : ",");
    payload +=
        R"({"node":"n)" + std::to_string(i) + R"(","epoch":1,"seq":)" + std::to_string(i) + "}";
  }
  return payload + "]}";
}

TEST(Heartbeats, NodeTopicFormRoundTripsWithoutNode) {
  HeartbeatEntry beat{"edge-1", 5, 9, "rev-3"};
  std::string payload;
  EncodeHeartbeats({&beat, 1}, /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, Not(HasSubstr("node")));
  EXPECT_THAT(payload, Not(HasSubstr("beats")));

  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(NodeTopic("edge-1"), payload, &batch), DecodeError::kOk) << payload;
  ASSERT_EQ(batch.beats.size(), 1u);
  EXPECT_EQ(batch.beats[0].node, "edge-1");
  EXPECT_EQ(batch.beats[0].epoch, 5u);
  EXPECT_EQ(batch.beats[0].sequence, 9u);
  EXPECT_EQ(batch.beats[0].pod_revision, "rev-3");
}

TEST(Heartbeats, GatewayBatchRoundTrips) {
  std::vector<HeartbeatEntry> beats = {
      {"n-1", 1, 10, "rev-a"}, {"n-2", 4294967295u, 4294967295u, ""}, {"n-3", 0, 0, "rev-c"}};
  std::string payload;
  EncodeHeartbeats(beats, /*on_node_topic=*/false, payload);
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), payload, &batch), DecodeError::kOk) << payload;
  ASSERT_EQ(batch.beats.size(), beats.size());
  for (size_t i = 0; i < beats.size(); ++i) {
    EXPECT_EQ(batch.beats[i].node, beats[i].node) << i;
    EXPECT_EQ(batch.beats[i].epoch, beats[i].epoch) << i;
    EXPECT_EQ(batch.beats[i].sequence, beats[i].sequence) << i;
    EXPECT_EQ(batch.beats[i].pod_revision, beats[i].pod_revision) << i;
  }
}

TEST(Heartbeats, NodeTopicAcceptsItsOwnNodeName) {
  HeartbeatBatch batch;
  ASSERT_EQ(
      DecodeHeartbeats(NodeTopic("edge-1"), R"({"v":1,"node":"edge-1","epoch":1,"seq":1})", &batch),
      DecodeError::kOk);
  EXPECT_EQ(batch.beats[0].node, "edge-1");
}

TEST(Heartbeats, PayloadNamingAnotherNodeIsATopicMismatch) {
  EXPECT_EQ(DecodeBeats(NodeTopic("edge-1"), R"({"v":1,"node":"edge-2","epoch":1,"seq":1})"),
            DecodeError::kTopicMismatch);
}

TEST(Heartbeats, BatchOnNodeTopicIsATopicMismatch) {
  EXPECT_EQ(DecodeBeats(NodeTopic("n0"), BeatsPayload(1)), DecodeError::kTopicMismatch);
}

TEST(Heartbeats, GatewayEntryWithoutNodeIsMissingField) {
  EXPECT_EQ(DecodeBeats(GatewayTopic(), R"({"v":1,"beats":[{"epoch":1,"seq":1}]})"),
            DecodeError::kMissingField);
}

TEST(Heartbeats, GatewayPayloadWithoutBatchIsMissingField) {
  EXPECT_EQ(DecodeBeats(GatewayTopic(), R"({"v":1,"node":"n","epoch":1,"seq":1})"),
            DecodeError::kMissingField);
}

TEST(Heartbeats, EmptyGatewayBatchDecodesToNoBeats) {
  HeartbeatBatch batch;
  batch.beats.push_back({"stale", 1, 1, ""});
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), R"({"v":1,"beats":[]})", &batch), DecodeError::kOk);
  EXPECT_TRUE(batch.beats.empty());
}

TEST(Heartbeats, MissingEpochOrSequenceIsMissingField) {
  EXPECT_EQ(DecodeBeats(NodeTopic(), R"({"v":1,"seq":1})"), DecodeError::kMissingField);
  EXPECT_EQ(DecodeBeats(NodeTopic(), R"({"v":1,"epoch":1})"), DecodeError::kMissingField);
  EXPECT_EQ(DecodeBeats(GatewayTopic(), R"({"v":1,"beats":[{"node":"a","epoch":1}]})"),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeBeats(GatewayTopic(), R"({"v":1,"beats":[{"node":"a","seq":1}]})"),
            DecodeError::kMissingField);
}

TEST(Heartbeats, WrongFieldTypesAreRefused) {
  for (std::string_view field : {
           R"("epoch":"1")",
           R"("epoch":-1)",
           R"("epoch":4294967296)",
           R"("epoch":18446744073709551615)",
           R"("epoch":-4294967296)",
           R"("epoch":1.5)",
           R"("epoch":1.0)",
           R"("epoch":1e2)",
           R"("epoch":true)",
           R"("epoch":null)",
           R"("epoch":{})",
           R"("epoch":[])",
           R"("seq":"2")",
           R"("node":7)",
           R"("node":{})",
           R"("podRev":["r"])",
           R"("podRev":false)",
       }) {
    std::string flat = R"({"v":1,"epoch":1,"seq":2,)" + std::string(field) + "}";
    EXPECT_EQ(DecodeBeats(NodeTopic(), flat), DecodeError::kWrongType) << flat;
    std::string batch =
        R"({"v":1,"beats":[{"node":"a","epoch":1,"seq":2,)" + std::string(field) + "}]}";
    EXPECT_EQ(DecodeBeats(GatewayTopic(), batch), DecodeError::kWrongType) << batch;
  }
}

TEST(Heartbeats, BatchThatIsNotAListOfObjectsIsWrongType) {
  for (std::string_view beats : {R"({})", R"("x")", "7", R"([1])", R"(["a"])", R"([null])",
                                 R"([[]])", R"([{"node":"a","epoch":1,"seq":1},2])"}) {
    EXPECT_EQ(DecodeBeats(GatewayTopic(), R"({"v":1,"beats":)" + std::string(beats) + "}"),
              DecodeError::kWrongType)
        << beats;
  }
}

TEST(Heartbeats, EpochAndSequenceAcceptFullUint32) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(NodeTopic(), R"({"v":1,"epoch":4294967295,"seq":0})", &batch),
            DecodeError::kOk);
  EXPECT_EQ(batch.beats[0].epoch, 4294967295u);
  EXPECT_EQ(batch.beats[0].sequence, 0u);
}

// Regression: the heartbeat decoder refused an epoch of -0 as negative while
// every other decoder reads it as 0.
TEST(Heartbeats, NegativeZeroIsZeroAsInTheOtherDecoders) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(NodeTopic(), R"({"v":1,"epoch":-0,"seq":-0})", &batch),
            DecodeError::kOk);
  EXPECT_EQ(batch.beats[0].epoch, 0u);
  Will will{5};
  ASSERT_EQ(DecodeWill(R"({"v":1,"epoch":-0})", &will), DecodeError::kOk);
  EXPECT_EQ(will.epoch, 0u);
}

TEST(Heartbeats, BatchAtTheNodeLimitDecodes) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), BeatsPayload(kMaxBatchNodes), &batch),
            DecodeError::kOk);
  ASSERT_EQ(batch.beats.size(), kMaxBatchNodes);
  EXPECT_EQ(batch.beats.back().node, "n999");
  EXPECT_EQ(batch.beats.back().sequence, 999u);
}

TEST(Heartbeats, BatchOverTheNodeLimitIsTooLarge) {
  EXPECT_EQ(DecodeBeats(GatewayTopic(), BeatsPayload(kMaxBatchNodes + 1)), DecodeError::kTooLarge);
}

TEST(Heartbeats, StringOverTheLimitIsTooLarge) {
  std::string at_limit(kMaxStringBytes, 'r');
  std::string big(kMaxStringBytes + 1, 'r');
  EXPECT_EQ(DecodeBeats(NodeTopic(), R"({"v":1,"epoch":1,"seq":1,"podRev":")" + at_limit + "\"}"),
            DecodeError::kOk);
  EXPECT_EQ(DecodeBeats(NodeTopic(), R"({"v":1,"epoch":1,"seq":1,"podRev":")" + big + "\"}"),
            DecodeError::kTooLarge);
  EXPECT_EQ(
      DecodeBeats(GatewayTopic(), R"({"v":1,"beats":[{"epoch":1,"seq":1,"node":")" + big + "\"}]}"),
      DecodeError::kTooLarge);
}

TEST(Heartbeats, UnknownMembersAreIgnoredAtEveryLevel) {
  // Unknown values nest objects and arrays that hold the names of known keys
  // with values of the wrong type, and a "beats" list.
  std::string junk = R"({"node":1,"epoch":"x","beats":[{"seq":"y"}],"v":2,"deep":[[{"a":[]}]]})";
  std::string payload = R"({"future":)" + junk + R"(,"v":1,"list":[)" + junk +
                        R"(,1,"s",null],"beats":[{"node":"a","extra":)" + junk +
                        R"(,"epoch":3,"tags":[)" + junk + R"(],"seq":4,"ok":true,"n":null},)" +
                        R"({"node":"b","epoch":5,"seq":6,"podRev":"r","more":)" + junk + "}]," +
                        R"("after":)" + junk + "}";
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), payload, &batch), DecodeError::kOk) << payload;
  ASSERT_EQ(batch.beats.size(), 2u);
  EXPECT_EQ(batch.beats[0].node, "a");
  EXPECT_EQ(batch.beats[0].epoch, 3u);
  EXPECT_EQ(batch.beats[0].sequence, 4u);
  EXPECT_EQ(batch.beats[0].pod_revision, "");
  EXPECT_EQ(batch.beats[1].node, "b");
  EXPECT_EQ(batch.beats[1].epoch, 5u);
  EXPECT_EQ(batch.beats[1].sequence, 6u);
  EXPECT_EQ(batch.beats[1].pod_revision, "r");
}

TEST(Heartbeats, UnknownMembersAreIgnoredInTheFlatForm) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(NodeTopic(),
                             R"({"x":{"epoch":"s","seq":[1]},"v":1,"epoch":2,"y":[{"z":{}}],)"
                             R"("seq":3,"podRev":"p","w":-1.5})",
                             &batch),
            DecodeError::kOk);
  ASSERT_EQ(batch.beats.size(), 1u);
  EXPECT_EQ(batch.beats[0].epoch, 2u);
  EXPECT_EQ(batch.beats[0].sequence, 3u);
  EXPECT_EQ(batch.beats[0].pod_revision, "p");
}

TEST(Heartbeats, EscapedStringsAreDecoded) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(),
                             R"({"v":1,"beats":[{"node":"a\u0062c","epoch":1,"seq":1,)"
                             R"("podRev":"r\"1\\"}]})",
                             &batch),
            DecodeError::kOk);
  EXPECT_EQ(batch.beats[0].node, "abc");
  EXPECT_EQ(batch.beats[0].pod_revision, "r\"1\\");
}

// Regression: the decoded names lived in thread-local storage shared by all
// batches, so decoding a second batch rewrote the first one's names.
TEST(Heartbeats, ViewsSurviveDecodingIntoAnotherBatch) {
  HeartbeatBatch first, second;
  ASSERT_EQ(DecodeHeartbeats(
                GatewayTopic(),
                R"({"v":1,"beats":[{"node":"alpha","epoch":1,"seq":1,"podRev":"r1"}]})", &first),
            DecodeError::kOk);
  ASSERT_EQ(DecodeHeartbeats(
                GatewayTopic(),
                R"({"v":1,"beats":[{"node":"omega","epoch":1,"seq":1,"podRev":"r2"}]})", &second),
            DecodeError::kOk);
  EXPECT_EQ(first.beats[0].node, "alpha");
  EXPECT_EQ(first.beats[0].pod_revision, "r1");
  EXPECT_EQ(second.beats[0].node, "omega");
}

TEST(Heartbeats, ReusedBatchHoldsOnlyTheLatestMessage) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), BeatsPayload(5), &batch), DecodeError::kOk);
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), BeatsPayload(2), &batch), DecodeError::kOk);
  ASSERT_EQ(batch.beats.size(), 2u);
  EXPECT_EQ(batch.beats[1].node, "n1");
}

TEST(Heartbeats, MalformedPayloadClearsThePreviousBeats) {
  HeartbeatBatch batch;
  ASSERT_EQ(DecodeHeartbeats(GatewayTopic(), BeatsPayload(3), &batch), DecodeError::kOk);
  EXPECT_EQ(DecodeHeartbeats(GatewayTopic(), "nope", &batch), DecodeError::kMalformed);
  EXPECT_TRUE(batch.beats.empty());
}

// --- Will ----------------------------------------------------------------------------

TEST(Will, EpochRoundTrips) {
  std::string payload;
  EncodeWill(Will{42}, payload);
  Will will;
  ASSERT_EQ(DecodeWill(payload, &will), DecodeError::kOk) << payload;
  EXPECT_EQ(will.epoch, 42u);
}

TEST(Will, UnknownEpochIsOmittedAndDecodesAsZero) {
  std::string payload;
  EncodeWill(Will{}, payload);
  EXPECT_EQ(payload, R"({"v":1})");
  Will will{9};
  ASSERT_EQ(DecodeWill(payload, &will), DecodeError::kOk);
  EXPECT_EQ(will.epoch, 0u);
}

TEST(Will, EncodeAppendsToTheBuffer) {
  std::string payload = "prefix:";
  EncodeWill(Will{1}, payload);
  EXPECT_EQ(payload, R"(prefix:{"v":1,"epoch":1})");
}

TEST(Will, WrongEpochTypeIsRefused) {
  for (std::string_view epoch : {R"("1")", "-1", "4294967296", "0.5", "[]"}) {
    Will will;
    EXPECT_EQ(DecodeWill(R"({"v":1,"epoch":)" + std::string(epoch) + "}", &will),
              DecodeError::kWrongType)
        << epoch;
  }
}

// --- Acknowledgements ------------------------------------------------------------------

AckMessage RoundTripAck(const AckMessage& message, bool on_node_topic) {
  std::string payload;
  EncodeAck(message, on_node_topic, payload);
  AckMessage decoded;
  EXPECT_EQ(DecodeAck(payload, &decoded), DecodeError::kOk) << payload;
  return decoded;
}

DecodeError DecodeAckPayload(std::string_view payload) {
  AckMessage message;
  return DecodeAck(payload, &message);
}

TEST(Ack, AcceptedRoundTripsWithEpochAndResourceVersion) {
  AckMessage message{77, {{"edge-1", AckResult::kAccepted, 3, 123456789012345ull, "", ""}}};
  EXPECT_EQ(RoundTripAck(message, /*on_node_topic=*/true), message);
}

TEST(Ack, ResourceVersionIsAStringOnTheWire) {
  std::string payload;
  EncodeAck(AckMessage{1, {{"edge-1", AckResult::kAccepted, 3, 18446744073709551615ull, "", ""}}},
            /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, HasSubstr(R"("resourceVersion":"18446744073709551615")"));
  EXPECT_THAT(payload, Not(HasSubstr("\"acks\"")));
}

TEST(Ack, RejectedRoundTripsWithReasonAndMessage) {
  AckMessage message{
      5, {{"edge-1", AckResult::kRejected, 0, 0, "Tombstoned", "node was deleted; re-admit it"}}};
  EXPECT_EQ(RoundTripAck(message, /*on_node_topic=*/true), message);
}

TEST(Ack, RejectedAckCarriesNoEpochOrResourceVersion) {
  std::string payload;
  EncodeAck(AckMessage{5, {{"edge-1", AckResult::kRejected, 9, 9, "Invalid", ""}}},
            /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, Not(HasSubstr("epoch")));
  EXPECT_THAT(payload, Not(HasSubstr("resourceVersion")));
}

TEST(Ack, GatewayBatchRoundTrips) {
  AckMessage message{9,
                     {{"n-1", AckResult::kAccepted, 1, 10, "", ""},
                      {"n-2", AckResult::kRejected, 0, 0, "InvalidName", "bad name"},
                      {"n-3", AckResult::kRetry, 0, 0, "DiskFull", ""}}};
  std::string payload;
  EncodeAck(message, /*on_node_topic=*/false, payload);
  EXPECT_THAT(payload, HasSubstr("\"acks\":["));
  EXPECT_EQ(RoundTripAck(message, /*on_node_topic=*/false), message);
}

TEST(Ack, UnknownResultIsWrongType) {
  EXPECT_EQ(DecodeAckPayload(R"({"v":1,"node":"a","result":"Maybe"})"), DecodeError::kWrongType);
  EXPECT_EQ(DecodeAckPayload(R"({"v":1,"node":"a","result":"accepted"})"), DecodeError::kWrongType);
}

TEST(Ack, NodeAndResultAreRequired) {
  EXPECT_EQ(DecodeAckPayload(R"({"v":1,"result":"Accepted"})"), DecodeError::kMissingField);
  EXPECT_EQ(DecodeAckPayload(R"({"v":1,"node":"a"})"), DecodeError::kMissingField);
  EXPECT_EQ(DecodeAckPayload(R"({"v":1,"acks":[{"node":"a","result":"Accepted"},{"node":"b"}]})"),
            DecodeError::kMissingField);
}

TEST(Ack, ResourceVersionMustBeADecimalString) {
  for (std::string_view version : {R"("12a")", R"("-1")", R"("+1")", R"(" 1")", R"("1 ")",
                                   R"("0x10")", R"("18446744073709551616")", "12"}) {
    EXPECT_EQ(DecodeAckPayload(R"({"v":1,"node":"a","result":"Accepted","resourceVersion":)" +
                               std::string(version) + "}"),
              DecodeError::kWrongType)
        << version;
  }
}

TEST(Ack, BatchOverTheNodeLimitIsTooLarge) {
  std::string payload = R"({"v":1,"acks":[)";
  for (size_t i = 0; i <= kMaxBatchNodes; ++i) {
    payload += (i == 0 ? "" : ",");
    payload += R"({"node":"n","result":"Retry"})";
  }
  EXPECT_EQ(DecodeAckPayload(payload + "]}"), DecodeError::kTooLarge);
}

TEST(Ack, UnknownMembersAreIgnored) {
  AckMessage message;
  ASSERT_EQ(DecodeAck(R"({"v":1,"id":3,"x":{"acks":1},"acks":[{"node":"a","result":"Retry",)"
                      R"("later":[{"result":"Bad"}]}]})",
                      &message),
            DecodeError::kOk);
  EXPECT_EQ(message, (AckMessage{3, {{"a", AckResult::kRetry, 0, 0, "", ""}}}));
}

// --- Control ---------------------------------------------------------------------------

ControlMessage RoundTripControl(const ControlMessage& message, bool on_node_topic) {
  std::string payload;
  EncodeControl(message, on_node_topic, payload);
  ControlMessage decoded;
  EXPECT_EQ(DecodeControl(payload, &decoded), DecodeError::kOk) << payload;
  return decoded;
}

DecodeError DecodeControlPayload(std::string_view payload) {
  ControlMessage message;
  return DecodeControl(payload, &message);
}

TEST(Control, NodeTopicFormRoundTrips) {
  ControlMessage message{ControlAction::kDeregister, {"edge-1"}, "NodeDeleted"};
  std::string payload;
  EncodeControl(message, /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, HasSubstr(R"("node":"edge-1")"));
  EXPECT_THAT(payload, Not(HasSubstr("\"nodes\"")));
  EXPECT_EQ(RoundTripControl(message, /*on_node_topic=*/true), message);
}

TEST(Control, GatewayBatchRoundTrips) {
  ControlMessage message{ControlAction::kResync, {"n-1", "n-2", "n-3"}, ""};
  std::string payload;
  EncodeControl(message, /*on_node_topic=*/false, payload);
  EXPECT_THAT(payload, HasSubstr(R"("nodes":["n-1","n-2","n-3"])"));
  EXPECT_THAT(payload, Not(HasSubstr("reason")));
  EXPECT_EQ(RoundTripControl(message, /*on_node_topic=*/false), message);
}

TEST(Control, UnknownActionIsWrongType) {
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Reboot","node":"a"})"),
            DecodeError::kWrongType);
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":1,"node":"a"})"), DecodeError::kWrongType);
}

TEST(Control, ActionAndNodeAreRequired) {
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"node":"a"})"), DecodeError::kMissingField);
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Resync"})"), DecodeError::kMissingField);
}

TEST(Control, NodesMustBeAListOfStrings) {
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Resync","nodes":"a"})"),
            DecodeError::kWrongType);
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Resync","nodes":["a",1]})"),
            DecodeError::kWrongType);
}

TEST(Control, NodesOverTheBatchLimitAreTooLarge) {
  std::string payload = R"({"v":1,"action":"Resync","nodes":[)";
  for (size_t i = 0; i <= kMaxBatchNodes; ++i) payload += (i == 0 ? "\"n\"" : ",\"n\"");
  EXPECT_EQ(DecodeControlPayload(payload + "]}"), DecodeError::kTooLarge);
}

// Regression: names in the "nodes" list escaped the per-string limit that the
// flat "node" member has.
TEST(Control, NodeNameOverTheStringLimitIsTooLargeInEitherForm) {
  std::string big(kMaxStringBytes + 1, 'n');
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Resync","node":")" + big + "\"}"),
            DecodeError::kTooLarge);
  EXPECT_EQ(DecodeControlPayload(R"({"v":1,"action":"Resync","nodes":["a",")" + big + "\"]}"),
            DecodeError::kTooLarge);
}

}  // namespace
}  // namespace kole::protocol

namespace kole::protocol {
namespace {

TEST(RegisterMessage, EntriesDecodeOneByOneForTheCloud) {
  Topic gateway{.sender = Sender::kGateway, .id = "gw-1", .channel = Channel::kRegister};
  RegisterMessage message;
  std::vector<DecodeError> errors;
  ASSERT_EQ(
      DecodeRegisterEntries(
          gateway, R"({"v":1,"id":2,"nodes":[{"node":"a","epoch":1},{"node":"b","labels":[]},7]})",
          &message, &errors),
      DecodeError::kOk);
  ASSERT_EQ(message.nodes.size(), 3u);
  EXPECT_EQ(errors, (std::vector<DecodeError>{DecodeError::kOk, DecodeError::kWrongType,
                                              DecodeError::kWrongType}));
  EXPECT_EQ(message.nodes[0].node, "a");
  EXPECT_EQ(message.nodes[1], Registration{.node = "b"});  // Only the name is kept.
  EXPECT_EQ(message.nodes[2].node, "");

  // The envelope is still all or nothing.
  EXPECT_EQ(DecodeRegisterEntries(gateway, R"({"v":1,"nodes":{}})", &message, &errors),
            DecodeError::kWrongType);
}

// --- Pods, pod status and workload templates -----------------------------------

Topic PodsTopic(Sender sender, std::string_view id) {
  return Topic{.sender = sender, .id = id, .channel = Channel::kPods};
}

NodePods SampleNodePods(std::string node, size_t pods = 2) {
  NodePods set{.node = std::move(node), .pod_revision = "0badf00d"};
  for (size_t i = 0; i < pods; ++i) {
    set.pods.push_back(PodRef{.namespace_ = "fleet",
                              .name = "w" + std::to_string(i) + "-" + set.node,
                              .workload = "w" + std::to_string(i),
                              .revision = "1234abcd",
                              .restart = static_cast<uint32_t>(i)});
  }
  return set;
}

// A pods payload of one node with `pods` entries, in the node topic's form.
std::string PodsPayload(size_t pods) {
  std::string payload = R"({"v":1,"podRev":"0badf00d","pods":[)";
  for (size_t i = 0; i < pods; ++i) {
    payload += (i == 0 ? "" : ",");
    payload += R"({"namespace":"fleet","name":"p)" + std::to_string(i) +
               R"(","workload":"w","rev":"1234abcd"})";
  }
  return payload + "]}";
}

TEST(TopicScheme, PodChannelsRoundTrip) {
  TopicScheme topics;
  EXPECT_EQ(ChannelName(Channel::kPods), "pods");
  EXPECT_EQ(ChannelName(Channel::kPodStatus), "podstatus");
  EXPECT_EQ(topics.Build(Sender::kGateway, "gw-1", Channel::kPods), "kole/v1/gateways/gw-1/pods");
  for (Sender sender : {Sender::kNode, Sender::kGateway}) {
    for (Channel channel : {Channel::kPods, Channel::kPodStatus}) {
      std::string built = topics.Build(sender, "id-7", channel);
      std::optional<Topic> parsed = topics.Parse(built);
      ASSERT_TRUE(parsed.has_value()) << built;
      EXPECT_EQ(parsed->sender, sender);
      EXPECT_EQ(parsed->id, "id-7");
      EXPECT_EQ(parsed->channel, channel);
    }
  }
  std::optional<Topic> status = topics.Parse("kole/v1/nodes/edge-1/podstatus");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->channel, Channel::kPodStatus);
  EXPECT_FALSE(topics.Parse("kole/v1/nodes/edge-1/pods/x").has_value());
  EXPECT_FALSE(topics.Parse("kole/v1/nodes/edge-1/PodStatus").has_value());
}

TEST(TopicScheme, WorkloadTopicsLiveBesideTheSenderTopics) {
  TopicScheme topics("fleet/eu/");
  EXPECT_EQ(topics.WorkloadTopic("default", "agent", "0badf00d"),
            "fleet/eu/workloads/default/agent/0badf00d");
  EXPECT_EQ(topics.WorkloadFilter(), "fleet/eu/workloads/#");
  // Not a device-to-cloud topic: the bridge never takes it for one.
  EXPECT_FALSE(topics.Parse(topics.WorkloadTopic("default", "agent", "0badf00d")).has_value());
  EXPECT_FALSE(TopicScheme().Parse("kole/v1/workloads/default/agent").has_value());
}

TEST(Pods, NodeTopicFormRoundTrips) {
  PodsMessage message{.nodes = {SampleNodePods("edge-1")}};
  std::string payload;
  EncodePods(message, /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, Not(HasSubstr("\"nodes\"")));
  EXPECT_THAT(payload, HasSubstr(R"("podRev":"0badf00d")"));
  // A zero restart count is left out.
  EXPECT_THAT(payload, HasSubstr(R"("rev":"1234abcd"},)"));
  PodsMessage decoded;
  ASSERT_EQ(DecodePods(PodsTopic(Sender::kNode, "edge-1"), payload, &decoded), DecodeError::kOk)
      << payload;
  EXPECT_EQ(decoded, message);
}

TEST(Pods, NodeTopicPayloadMayOmitTheNode) {
  PodsMessage decoded;
  ASSERT_EQ(DecodePods(PodsTopic(Sender::kNode, "edge-1"), PodsPayload(1), &decoded),
            DecodeError::kOk);
  ASSERT_EQ(decoded.nodes.size(), 1u);
  EXPECT_EQ(decoded.nodes[0].node, "edge-1");
  EXPECT_EQ(decoded.nodes[0].pod_revision, "0badf00d");
  EXPECT_EQ(decoded.nodes[0].pods[0].restart, 0u);
}

TEST(Pods, GatewayBatchRoundTrips) {
  PodsMessage message{
      .nodes = {SampleNodePods("n-1"), SampleNodePods("n-2", 0), SampleNodePods("n-3", 3)}};
  message.nodes[1].pod_revision = "";  // The empty set.
  std::string payload;
  EncodePods(message, /*on_node_topic=*/false, payload);
  EXPECT_THAT(payload, HasSubstr(R"("nodes":[{"node":"n-1")"));
  PodsMessage decoded;
  ASSERT_EQ(DecodePods(PodsTopic(Sender::kGateway, "gw-1"), payload, &decoded), DecodeError::kOk)
      << payload;
  EXPECT_EQ(decoded, message);
}

TEST(Pods, NodeTopicPayloadNamingAnotherNodeIsATopicMismatch) {
  std::string payload;
  EncodePods(PodsMessage{.nodes = {SampleNodePods("edge-2")}}, /*on_node_topic=*/true, payload);
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(PodsTopic(Sender::kNode, "edge-1"), payload, &decoded),
            DecodeError::kTopicMismatch);
}

TEST(Pods, BatchOnANodeTopicIsATopicMismatch) {
  std::string payload;
  EncodePods(PodsMessage{.nodes = {SampleNodePods("edge-1")}}, /*on_node_topic=*/false, payload);
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(PodsTopic(Sender::kNode, "edge-1"), payload, &decoded),
            DecodeError::kTopicMismatch);
}

TEST(Pods, GatewayEntryWithoutItsNodeIsMissingAField) {
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(PodsTopic(Sender::kGateway, "gw-1"),
                       R"({"v":1,"nodes":[{"podRev":"0badf00d","pods":[]}]})", &decoded),
            DecodeError::kMissingField);
}

TEST(Pods, PodListAtTheLimitDecodesAndOverItIsTooLarge) {
  PodsMessage decoded;
  Topic topic = PodsTopic(Sender::kNode, "edge-1");
  ASSERT_EQ(DecodePods(topic, PodsPayload(kMaxPodsPerNode), &decoded), DecodeError::kOk);
  EXPECT_EQ(decoded.nodes[0].pods.size(), kMaxPodsPerNode);
  EXPECT_EQ(DecodePods(topic, PodsPayload(kMaxPodsPerNode + 1), &decoded), DecodeError::kTooLarge);
}

TEST(Pods, BatchOverTheNodeLimitIsTooLarge) {
  std::string payload = R"({"v":1,"nodes":[)";
  for (size_t i = 0; i <= kMaxBatchNodes; ++i) {
    payload += (i == 0 ? "" : ",");
    payload += R"({"node":"n)" + std::to_string(i) + R"(","pods":[]})";
  }
  payload += "]}";
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(PodsTopic(Sender::kGateway, "gw-1"), payload, &decoded),
            DecodeError::kTooLarge);
}

TEST(Pods, MissingAndMistypedFieldsAreRefused) {
  Topic topic = PodsTopic(Sender::kNode, "edge-1");
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(topic, R"({"v":1,"podRev":"r"})", &decoded), DecodeError::kMissingField);
  EXPECT_EQ(DecodePods(topic, R"({"v":1,"pods":{}})", &decoded), DecodeError::kWrongType);
  EXPECT_EQ(DecodePods(topic, R"({"v":1,"pods":[7]})", &decoded), DecodeError::kWrongType);
  for (std::string_view pod : {R"({"name":"p","workload":"w","rev":"1234abcd"})",
                               R"({"namespace":"fleet","workload":"w","rev":"1234abcd"})",
                               R"({"namespace":"fleet","name":"p","rev":"1234abcd"})",
                               R"({"namespace":"fleet","name":"p","workload":"w"})"}) {
    EXPECT_EQ(DecodePods(topic, R"({"v":1,"pods":[)" + std::string(pod) + "]}", &decoded),
              DecodeError::kMissingField)
        << pod;
  }
  EXPECT_EQ(DecodePods(topic,
                       R"({"v":1,"pods":[{"namespace":"fleet","name":"p","workload":"w",)"
                       R"("rev":"1234abcd","restart":-1}]})",
                       &decoded),
            DecodeError::kWrongType);
  EXPECT_EQ(DecodePods(topic, R"({"v":1,"podRev":5,"pods":[]})", &decoded),
            DecodeError::kWrongType);
  EXPECT_EQ(DecodePods(topic, R"({"v":2,"pods":[]})", &decoded), DecodeError::kUnsupportedVersion);
  EXPECT_EQ(DecodePods(topic, "[]", &decoded), DecodeError::kMalformed);
}

TEST(Pods, OverlongStringIsTooLarge) {
  std::string name(kMaxStringBytes + 1, 'p');
  PodsMessage decoded;
  EXPECT_EQ(DecodePods(PodsTopic(Sender::kNode, "edge-1"),
                       R"({"v":1,"pods":[{"namespace":"fleet","name":")" + name +
                           R"(","workload":"w","rev":"1234abcd"}]})",
                       &decoded),
            DecodeError::kTooLarge);
}

TEST(Pods, RedecodingReplacesTheNodes) {
  PodsMessage decoded;
  Topic topic = PodsTopic(Sender::kNode, "edge-1");
  ASSERT_EQ(DecodePods(topic, PodsPayload(3), &decoded), DecodeError::kOk);
  ASSERT_EQ(DecodePods(topic, PodsPayload(1), &decoded), DecodeError::kOk);
  ASSERT_EQ(decoded.nodes.size(), 1u);
  EXPECT_EQ(decoded.nodes[0].pods.size(), 1u);
}

PodStatusMessage SampleStatus(std::string node) {
  return PodStatusMessage{.nodes = {NodePodStatus{.node = std::move(node),
                                                  .pods = {PodStatus{.namespace_ = "fleet",
                                                                     .workload = "agent",
                                                                     .revision = "1234abcd",
                                                                     .phase = "Running",
                                                                     .ready = 0,
                                                                     .restarts = 7,
                                                                     .last_restart = 1'700'000'123,
                                                                     .reason = "CrashLoopBackOff"},
                                                           PodStatus{.namespace_ = "fleet",
                                                                     .workload = "other",
                                                                     .revision = "0badf00d",
                                                                     .phase = "Pending"}}}}};
}

TEST(PodStatus, NodeTopicFormRoundTrips) {
  PodStatusMessage message = SampleStatus("edge-1");
  std::string payload;
  EncodePodStatus(message, /*on_node_topic=*/true, payload);
  EXPECT_THAT(payload, Not(HasSubstr("\"nodes\"")));
  PodStatusMessage decoded;
  Topic topic{.sender = Sender::kNode, .id = "edge-1", .channel = Channel::kPodStatus};
  ASSERT_EQ(DecodePodStatus(topic, payload, &decoded), DecodeError::kOk) << payload;
  EXPECT_EQ(decoded, message);
}

TEST(PodStatus, GatewayBatchRoundTrips) {
  PodStatusMessage message = SampleStatus("n-1");
  message.nodes.push_back(SampleStatus("n-2").nodes[0]);
  message.nodes[1].pods.pop_back();
  std::string payload;
  EncodePodStatus(message, /*on_node_topic=*/false, payload);
  PodStatusMessage decoded;
  Topic topic{.sender = Sender::kGateway, .id = "gw-1", .channel = Channel::kPodStatus};
  ASSERT_EQ(DecodePodStatus(topic, payload, &decoded), DecodeError::kOk) << payload;
  EXPECT_EQ(decoded, message);
}

TEST(PodStatus, NodeTopicPayloadNamingAnotherNodeIsATopicMismatch) {
  std::string payload;
  EncodePodStatus(SampleStatus("edge-2"), /*on_node_topic=*/true, payload);
  PodStatusMessage decoded;
  Topic topic{.sender = Sender::kNode, .id = "edge-1", .channel = Channel::kPodStatus};
  EXPECT_EQ(DecodePodStatus(topic, payload, &decoded), DecodeError::kTopicMismatch);
}

TEST(PodStatus, RequiredFieldsAndLimits) {
  Topic topic{.sender = Sender::kNode, .id = "edge-1", .channel = Channel::kPodStatus};
  PodStatusMessage decoded;
  EXPECT_EQ(DecodePodStatus(topic, R"({"v":1})", &decoded), DecodeError::kMissingField);
  EXPECT_EQ(
      DecodePodStatus(topic, R"({"v":1,"pods":[{"namespace":"fleet","workload":"w","rev":"r"}]})",
                      &decoded),
      DecodeError::kMissingField);  // No phase.
  EXPECT_EQ(DecodePodStatus(topic,
                            R"({"v":1,"pods":[{"namespace":"fleet","workload":"w","rev":"r",)"
                            R"("phase":"Running","restarts":"7"}]})",
                            &decoded),
            DecodeError::kWrongType);
  std::string many = R"({"v":1,"pods":[)";
  for (size_t i = 0; i <= kMaxPodsPerNode; ++i) {
    many += (i == 0 ? "" : ",");
    many += R"({"namespace":"fleet","workload":"w","rev":"r","phase":"Running"})";
  }
  many += "]}";
  EXPECT_EQ(DecodePodStatus(topic, many, &decoded), DecodeError::kTooLarge);
}

TEST(WorkloadTemplate, RoundTripsWithTheTemplateAsAnObject) {
  WorkloadTemplate t{.namespace_ = "fleet",
                     .workload = "agent",
                     .revision = "1234abcd",
                     .template_json = R"({"metadata":{"labels":{"app":"agent"},"annotations":{}},)"
                                      R"("spec":{"containers":[{"name":"a","image":"x"}]}})"};
  std::string payload;
  EncodeWorkloadTemplate(t, payload);
  EXPECT_THAT(payload, HasSubstr(R"("template":{"metadata")"));
  WorkloadTemplate decoded;
  ASSERT_EQ(DecodeWorkloadTemplate(payload, &decoded), DecodeError::kOk) << payload;
  EXPECT_EQ(decoded, t);
}

TEST(WorkloadTemplate, EmptyTemplateIsAnEmptyObject) {
  std::string payload;
  EncodeWorkloadTemplate({.namespace_ = "n", .workload = "w", .revision = "r"}, payload);
  WorkloadTemplate decoded;
  ASSERT_EQ(DecodeWorkloadTemplate(payload, &decoded), DecodeError::kOk) << payload;
  EXPECT_EQ(decoded.template_json, "{}");
}

TEST(WorkloadTemplate, MissingOrMistypedFieldsAreRefused) {
  WorkloadTemplate decoded;
  EXPECT_EQ(DecodeWorkloadTemplate(R"({"v":1,"namespace":"n","workload":"w","rev":"r"})", &decoded),
            DecodeError::kMissingField);
  EXPECT_EQ(DecodeWorkloadTemplate(
                R"({"v":1,"namespace":"n","workload":"w","rev":"r","template":"{}"})", &decoded),
            DecodeError::kWrongType);
  EXPECT_EQ(DecodeWorkloadTemplate(R"({"v":1,"workload":"w","rev":"r","template":{}})", &decoded),
            DecodeError::kMissingField);
  // An empty retained payload is how the cloud clears a template.
  EXPECT_EQ(DecodeWorkloadTemplate("", &decoded), DecodeError::kMalformed);
}

}  // namespace
}  // namespace kole::protocol
