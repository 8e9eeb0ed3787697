// Request paths, JSON patches and table cells: the pure functions behind
// routing and rendering.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"
#include "apiserver-ext/request_info.h"
#include "apiserver-ext/table.h"

namespace kole::apiserver {
namespace {

TEST(RequestInfo, NamespacedWatchOfPods) {
  RequestInfo i = ParseRequestInfo("GET", "/apis/edge.kole.io/v1alpha1/namespaces/a/pods", "1", "");
  EXPECT_TRUE(i.is_resource_request);
  EXPECT_EQ(i.verb, "watch");
  EXPECT_EQ(i.namespace_, "a");
  EXPECT_EQ(i.resource, "pods");
  EXPECT_EQ(i.name, "");
}

TEST(RequestInfo, StatusSubresourceUpdate) {
  RequestInfo i = ParseRequestInfo("PUT", "/apis/edge.kole.io/v1alpha1/nodes/n1/status", "", "");
  EXPECT_EQ(i.verb, "update");
  EXPECT_EQ(i.name, "n1");
  EXPECT_EQ(i.subresource, "status");
}

TEST(RequestInfo, DeleteWithoutNameIsDeleteCollection) {
  EXPECT_EQ(ParseRequestInfo("DELETE", "/apis/edge.kole.io/v1alpha1/nodes", "", "").verb,
            "deletecollection");
}

TEST(RequestInfo, ListByNameFieldSelectorIsAuthorizedAsThatObject) {
  RequestInfo i =
      ParseRequestInfo("GET", "/apis/edge.kole.io/v1alpha1/nodes", "", "metadata.name=n1");
  EXPECT_EQ(i.verb, "list");
  EXPECT_EQ(i.name, "n1");
}

TEST(RequestInfo, DiscoveryPathsAreNonResourceRequests) {
  for (const char* path :
       {"/apis", "/apis/edge.kole.io", "/apis/edge.kole.io/v1alpha1", "/openapi/v3", "/healthz"}) {
    RequestInfo i = ParseRequestInfo("GET", path, "", "");
    EXPECT_FALSE(i.is_resource_request) << path;
    EXPECT_EQ(i.verb, "get");
  }
}

TEST(RequestInfo, ExtraSegmentsAreFlagged) {
  EXPECT_TRUE(ParseRequestInfo("GET", "/apis/edge.kole.io/v1alpha1/nodes/n1/status/x", "", "")
                  .extra_segments);
}

rapidjson::Document Doc(const char* json) {
  rapidjson::Document d;
  d.Parse(json);
  return d;
}

TEST(MergePatch, NullRemovesAndObjectsMerge) {
  rapidjson::Document target = Doc(R"({"a":{"b":1,"c":2},"d":[1,2]})");
  rapidjson::Document patch = Doc(R"({"a":{"b":null,"e":3},"d":[3]})");
  ApplyMergePatch(target, patch, target.GetAllocator());
  EXPECT_EQ(JsonToString(target), R"({"a":{"c":2,"e":3},"d":[3]})");
}

TEST(JsonPatch, AddReplaceRemoveMoveCopy) {
  rapidjson::Document target = Doc(R"({"a":[1,3],"b":{"x":1}})");
  rapidjson::Document patch = Doc(R"([
    {"op":"add","path":"/a/1","value":2},
    {"op":"add","path":"/a/-","value":4},
    {"op":"replace","path":"/b/x","value":9},
    {"op":"copy","from":"/b/x","path":"/c"},
    {"op":"move","from":"/c","path":"/d"},
    {"op":"remove","path":"/b"}])");
  ASSERT_TRUE(ApplyJsonPatch(target, patch).ok());
  EXPECT_EQ(JsonToString(target), R"({"a":[1,2,3,4],"d":9})");
}

TEST(JsonPatch, EscapedPointerTokens) {
  rapidjson::Document target = Doc(R"({"metadata":{"labels":{"kole.io/x":"1","a~b":"2"}}})");
  rapidjson::Document patch = Doc(R"([{"op":"remove","path":"/metadata/labels/kole.io~1x"},
                                      {"op":"replace","path":"/metadata/labels/a~0b","value":"3"}])");
  ASSERT_TRUE(ApplyJsonPatch(target, patch).ok());
  EXPECT_EQ(JsonToString(target), R"({"metadata":{"labels":{"a~b":"3"}}})");
}

TEST(JsonPatch, ReplaceOfMissingPathFails) {
  rapidjson::Document target = Doc(R"({"a":1})");
  EXPECT_FALSE(ApplyJsonPatch(target, Doc(R"([{"op":"replace","path":"/b","value":2}])")).ok());
  EXPECT_FALSE(ApplyJsonPatch(target, Doc(R"([{"op":"frobnicate","path":"/a"}])")).ok());
  EXPECT_FALSE(ApplyJsonPatch(target, Doc(R"({"op":"add"})")).ok());
}

TEST(JsonPatch, MoveIntoOwnChildFails) {
  rapidjson::Document target = Doc(R"({"a":{"b":{}}})");
  EXPECT_FALSE(ApplyJsonPatch(target, Doc(R"([{"op":"move","from":"/a","path":"/a/b/c"}])")).ok());
}

TEST(NodeJson, RenderedNodeParsesBackWithEscapedValues) {
  storage::Node node;
  node.name = "n1";
  node.labels = {{"a", "b"}};
  node.annotations = {{"note", "quote \" backslash \\ newline \n tab \t bell \x07 ü"}};
  node.taints = {{"k", "", "NoSchedule"}};
  node.unschedulable = true;
  node.capacity = {{"cpu", "4"}};
  node.addresses = {{"InternalIP", "10.0.0.1"}};
  node.conditions = {{"DiskPressure", storage::ConditionStatus::kFalse, "ok", "fine"}};
  node.ready = storage::ConditionStatus::kTrue;
  node.last_heartbeat_time = 1;
  node.edge.gateway = "gw";
  std::string out;
  AppendNodeJson(node, out);
  rapidjson::Document doc;
  doc.Parse(out.data(), out.size());
  ASSERT_FALSE(doc.HasParseError()) << out;
  EXPECT_EQ(std::string(doc["metadata"]["annotations"]["note"].GetString()),
            node.annotations[0].second);
  EXPECT_TRUE(doc["spec"]["unschedulable"].GetBool());
  EXPECT_FALSE(doc["spec"]["taints"][0].HasMember("value"));
  EXPECT_STREQ(doc["status"]["conditions"][1]["type"].GetString(), "Ready");
  EXPECT_STREQ(doc["status"]["conditions"][0]["lastHeartbeatTime"].GetString(),
               "1970-01-01T00:00:01Z");
  EXPECT_TRUE(doc["status"]["conditions"][0]["lastTransitionTime"].IsNull());
  EXPECT_STREQ(doc["status"]["edge"]["gateway"].GetString(), "gw");
}

TEST(NodeJson, EscapingMatchesRapidJson) {
  std::string tricky = std::string("a\"b\\c\x01\x1f\x7f/\xc3\xa9", 11);
  std::string mine, theirs;
  AppendEscapedJsonString(tricky, mine);
  AppendJsonString(tricky, theirs);
  EXPECT_EQ(mine, theirs);
}

TEST(Table, HumanDurationLikeKubectl) {
  EXPECT_EQ(HumanDuration(45), "45s");
  EXPECT_EQ(HumanDuration(119), "119s");
  EXPECT_EQ(HumanDuration(310), "5m10s");
  EXPECT_EQ(HumanDuration(3 * 3600 + 60), "3h1m");
  EXPECT_EQ(HumanDuration(10 * 3600), "10h");
  EXPECT_EQ(HumanDuration(3 * 86400 + 4 * 3600), "3d4h");
  EXPECT_EQ(HumanDuration(30 * 86400), "30d");
  EXPECT_EQ(HumanDuration(-5), "<invalid>");
}

TEST(Table, NodeRolesFromRoleLabels) {
  storage::Node node;
  node.labels = {{"kubernetes.io/role", "edge"}, {"node-role.kubernetes.io/gateway", ""}};
  EXPECT_EQ(NodeRolesCell(node), "edge,gateway");
  node.labels.clear();
  EXPECT_EQ(NodeRolesCell(node), "<none>");
}

TEST(Table, NodeStatusShowsSchedulingDisabled) {
  storage::Node node;
  node.ready = storage::ConditionStatus::kTrue;
  node.unschedulable = true;
  EXPECT_EQ(NodeStatusCell(node), "Ready,SchedulingDisabled");
  node.ready = storage::ConditionStatus::kFalse;
  node.unschedulable = false;
  EXPECT_EQ(NodeStatusCell(node), "NotReady");
}

TEST(Table, NodeWithReadyUnknownIsNotReadyAsKubectlPrintsIt) {
  storage::Node node;
  node.ready = storage::ConditionStatus::kUnknown;
  EXPECT_EQ(NodeStatusCell(node), "NotReady");
}

}  // namespace
}  // namespace kole::apiserver
