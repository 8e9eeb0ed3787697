// Discovery, OpenAPI and content negotiation, as k8s-api-contract.md §3-§5
// specify them.

#include "apiserver-ext/discovery.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "apiserver-ext/negotiation.h"
#include "apiserver-ext/openapi.h"
#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

using testing::Request;

constexpr char kV2[] = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
constexpr char kV2Beta1[] =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

HttpRequest WithAccept(std::string path, std::string accept) {
  HttpRequest r = Request("GET", std::move(path));
  if (!accept.empty()) r.headers.emplace("Accept", std::move(accept));
  return r;
}

TEST(Discovery, KubectlAcceptGetsAggregatedV2) {
  Discovery d;
  HttpResponse r =
      d.Apis(WithAccept("/apis", std::string(kV2) + "," + kV2Beta1 + ",application/json"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kV2);
  EXPECT_NE(r.body.find(R"("apiVersion":"apidiscovery.k8s.io/v2")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("responseKind":{"group":"edge.kole.io")"), std::string::npos);
  EXPECT_EQ(r.headers.count("ETag"), 1u);
}

TEST(Discovery, OldAggregatorGetsV2Beta1) {
  Discovery d;
  HttpResponse r = d.Apis(WithAccept("/apis", kV2Beta1));
  EXPECT_EQ(r.content_type, kV2Beta1);
  EXPECT_NE(r.body.find(R"("apiVersion":"apidiscovery.k8s.io/v2beta1")"), std::string::npos);
}

TEST(Discovery, MatchingIfNoneMatchIs304) {
  Discovery d;
  HttpResponse first = d.Apis(WithAccept("/apis", kV2));
  HttpRequest again = WithAccept("/apis", kV2);
  again.headers.emplace("If-None-Match", first.headers.find("ETag")->second);
  HttpResponse r = d.Apis(again);
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
}

TEST(Discovery, PlainJsonGetsLegacyGroupList) {
  Discovery d;
  HttpResponse r = d.Apis(WithAccept("/apis", "application/json, */*"));
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_NE(r.body.find(R"("kind":"APIGroupList")"), std::string::npos);
}

TEST(Discovery, NothingServableIs406) {
  Discovery d;
  EXPECT_EQ(d.Apis(WithAccept("/apis", "application/vnd.kubernetes.protobuf")).status, 406);
}

TEST(Discovery, ApiListsNoLegacyVersions) {
  Discovery d;
  HttpResponse r = d.Api(WithAccept("/api", "application/json"));
  EXPECT_NE(r.body.find(R"("versions":[])"), std::string::npos);
}

TEST(Discovery, ResourceListHasStatusSubresources) {
  Discovery d;
  rapidjson::Document doc;
  std::string body = d.GroupVersion().body;
  doc.Parse(body.data(), body.size());
  std::vector<std::string> names;
  for (const auto& r : doc["resources"].GetArray()) names.push_back(r["name"].GetString());
  EXPECT_EQ(names, (std::vector<std::string>{"nodes", "nodes/status", "pods", "pods/status",
                                             "edgedaemonsets", "edgedaemonsets/status"}));
}

TEST(OpenApi, V2IsRefusedWhenOnlyProtobufIsAccepted) {
  OpenApi o;
  EXPECT_EQ(
      o.V2(WithAccept("/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"))
          .status,
      406);
  EXPECT_EQ(o.V2(WithAccept("/openapi/v2", "application/json")).status, 200);
}

TEST(OpenApi, V3RootPointsAtTheHashedGroupDocument) {
  OpenApi o;
  HttpResponse r = o.V3Root(WithAccept("/openapi/v3", ""));
  EXPECT_NE(r.body.find("/openapi/v3/apis/edge.kole.io/v1alpha1?hash=" + o.v3_hash()),
            std::string::npos);
}

TEST(OpenApi, StaleHashRedirects) {
  OpenApi o;
  HttpResponse r = o.V3GroupVersion(
      WithAccept("/openapi/v3/apis/edge.kole.io/v1alpha1?hash=OLD", "application/json"));
  EXPECT_EQ(r.status, 301);
  HttpResponse current = o.V3GroupVersion(
      WithAccept("/openapi/v3/apis/edge.kole.io/v1alpha1?hash=" + o.v3_hash(), "application/json"));
  EXPECT_EQ(current.status, 200);
  EXPECT_EQ(current.headers.find("Cache-Control")->second, "public, immutable");
}

TEST(OpenApi, V3DocumentIsValidJsonWithPatchFieldValidationAndNoStrategicMerge) {
  OpenApi o;
  rapidjson::Document doc;
  doc.Parse(o.v3_document().data(), o.v3_document().size());
  ASSERT_FALSE(doc.HasParseError());
  const auto& patch = doc["paths"]["/apis/edge.kole.io/v1alpha1/nodes/{name}"]["patch"];
  bool field_validation = false;
  for (const auto& p : patch["parameters"].GetArray()) {
    field_validation |= std::string(p["name"].GetString()) == "fieldValidation";
  }
  EXPECT_TRUE(field_validation);
  EXPECT_FALSE(patch["requestBody"]["content"].HasMember("application/strategic-merge-patch+json"));
  EXPECT_STREQ(patch["x-kubernetes-group-version-kind"]["kind"].GetString(), "Node");
  EXPECT_TRUE(
      doc["components"]["schemas"]["io.kole.edge.v1alpha1.Pod"]["x-kubernetes-group-version-kind"]
          .IsArray());
  rapidjson::Document v2;
  v2.Parse(o.v2_document().data(), o.v2_document().size());
  EXPECT_FALSE(v2.HasParseError());
}

TEST(Negotiation, TableIsChosenFromKubectlAccept) {
  auto n = NegotiateResource(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta."
      "k8s.io,application/json",
      true, false);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->representation, Representation::kTable);
  EXPECT_EQ(n->table_version, "v1");
}

TEST(Negotiation, PartialObjectMetadataOnAListUrlFallsBackToJson) {
  auto n = NegotiateResource(
      "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json", true, false);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->representation, Representation::kObject);
  EXPECT_FALSE(
      NegotiateResource("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", true, false)
          .has_value());
}

TEST(Negotiation, WatchTakesPartialObjectMetadataEvents) {
  auto n = NegotiateResource(
      "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
      "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
      true, true);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->representation, Representation::kPartialObjectMetadata);
}

TEST(Negotiation, ZeroQualityIsSkipped) {
  EXPECT_FALSE(NegotiateResource("application/json;q=0", false, false).has_value());
  EXPECT_TRUE(NegotiateResource("", false, false).has_value());
}

}  // namespace
}  // namespace kole::apiserver
