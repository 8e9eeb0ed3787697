// The API pipeline (ApiHandler) end to end without the transport: real
// store, real authenticator with a throw-away CA, real routing and
// rendering. One behaviour per test.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>

#include "apiserver-ext/api_handler.h"
#include "storage/clock.h"
#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

using testing::Request;

class CollectingSink : public ChunkSink {
 public:
  bool Write(std::string_view data) override {
    out += data;
    return true;
  }
  bool Alive() override { return true; }
  std::string out;
};

class NodesApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    options.change_log.retention_seconds = 60;
    store_ = std::move(*storage::NodeStore::Open(options));
    storage::PodStoreOptions pod_options;
    pod_options.clock = &clock_;
    pod_options.retention_seconds = 60;
    pods_ = std::move(*storage::PodStore::Open(pod_options));
    pki_ = std::make_unique<testing::TestPki>(dir_.path());
    admin_chain_ = pki_->Chain("admin", {"system:masters"});
    user_chain_ = pki_->Chain("alice", {"dev"});
    Authenticator::Options authn;
    authn.client_ca = *CertificateAuthority::FromFile(pki_->CaCert());
    authenticator_ = std::make_unique<Authenticator>(std::move(authn));
    authorizer_ = std::make_unique<WebhookAuthorizer>(
        [this](const std::string& body) -> absl::StatusOr<std::string> {
          last_review_ = body;
          return std::string(allow_ ? R"({"status":{"allowed":true}})"
                                    : R"({"status":{"allowed":false,"reason":"no RBAC"}})");
        },
        WebhookAuthorizer::Options{});
    ApiHandlerOptions handler_options;
    handler_options.watch.bookmark_interval_seconds = 3600;
    handler_ = std::make_unique<ApiHandler>(store_.get(), pods_.get(), authenticator_.get(),
                                            authorizer_.get(), &metrics_, &health_, &stopping_,
                                            handler_options);
  }

  HttpResponse Call(HttpRequest request, const std::vector<std::string>* chain = nullptr) {
    if (request.headers.find("Accept") == request.headers.end()) {
      request.headers.emplace("Accept", "application/json");
    }
    HttpResponse r = handler_->Handle(request, chain ? *chain : admin_chain_);
    if (r.stream) {
      CollectingSink sink;
      EXPECT_TRUE(r.stream(sink));
      r.body = sink.out;
    }
    return r;
  }

  HttpResponse Create(const std::string& name, const std::string& labels = "{}") {
    return Call(
        Request("POST", "/apis/edge.kole.io/v1alpha1/nodes",
                R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"Node","metadata":{"name":")" +
                    name + R"(","labels":)" + labels + "}}"));
  }

  HttpResponse Patch(const std::string& path, const std::string& type, const std::string& body) {
    HttpRequest r = Request("PATCH", path, body);
    r.headers.emplace("Content-Type", type);
    return Call(r);
  }

  static rapidjson::Document Json(const std::string& body) {
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    return doc;
  }

  static std::string Reason(const HttpResponse& r) {
    rapidjson::Document doc = Json(r.body);
    return doc.IsObject() && doc.HasMember("reason") ? doc["reason"].GetString() : "";
  }

  storage::ManualClock clock_;
  testing::TempDir dir_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<testing::TestPki> pki_;
  std::vector<std::string> admin_chain_;
  std::vector<std::string> user_chain_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<WebhookAuthorizer> authorizer_;
  bool allow_ = true;
  std::string last_review_;
  ApiMetrics metrics_;
  HealthChecks health_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<ApiHandler> handler_;
};

constexpr char kNodes[] = "/apis/edge.kole.io/v1alpha1/nodes";

TEST_F(NodesApiTest, AnonymousResourceRequestIs401) {
  std::vector<std::string> none;
  HttpResponse r = Call(Request("GET", kNodes), &none);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Reason(r), "Unauthorized");
}

TEST_F(NodesApiTest, AnonymousHealthzIsAllowed) {
  std::vector<std::string> none;
  HttpResponse r = Call(Request("GET", "/readyz?verbose"), &none);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("[+]ping ok"), std::string::npos);
  EXPECT_NE(r.body.find("readyz check passed"), std::string::npos);
}

TEST_F(NodesApiTest, CertificateFromAnotherCaIs401) {
  testing::TestPki other(dir_.path(), "other-ca");
  std::vector<std::string> chain = other.Chain("mallory", {"system:masters"});
  EXPECT_EQ(Call(Request("GET", kNodes), &chain).status, 401);
}

TEST_F(NodesApiTest, DeniedBySubjectAccessReviewIs403WithUpstreamMessage) {
  allow_ = false;
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "/n1"), &user_chain_);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Reason(r), "Forbidden");
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["message"].GetString(),
               "nodes.edge.kole.io \"n1\" is forbidden: User \"alice\" cannot get resource "
               "\"nodes\" in API group \"edge.kole.io\" at the cluster scope: no RBAC");
  EXPECT_NE(last_review_.find(R"("user":"alice")"), std::string::npos);
  EXPECT_NE(last_review_.find(R"("groups":["dev","system:authenticated"])"), std::string::npos);
}

TEST_F(NodesApiTest, SystemMastersSkipTheSubjectAccessReview) {
  allow_ = false;
  EXPECT_EQ(Call(Request("GET", kNodes)).status, 200);
  EXPECT_TRUE(last_review_.empty());
}

TEST_F(NodesApiTest, PostToANamedNodeIs405) {
  HttpResponse r =
      Call(Request("POST", std::string(kNodes) + "/n1", R"({"metadata":{"name":"n1"}})"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Reason(r), "MethodNotAllowed");
}

TEST_F(NodesApiTest, DeleteOfStatusSubresourceIs405) {
  ASSERT_EQ(Create("n1").status, 201);
  EXPECT_EQ(Call(Request("DELETE", std::string(kNodes) + "/n1/status")).status, 405);
}

TEST_F(NodesApiTest, UnknownSubresourceIs404) {
  ASSERT_EQ(Create("n1").status, 201);
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/n1/proxy")).status, 404);
}

TEST_F(NodesApiTest, UnknownPathIs404Status) {
  HttpResponse r = Call(Request("GET", "/apis/edge.kole.io/v1alpha1/widgets"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Reason(r), "NotFound");
}

TEST_F(NodesApiTest, GetOfMissingNodeIs404NamingIt) {
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "/nx"));
  EXPECT_EQ(r.status, 404);
  EXPECT_STREQ(Json(r.body)["message"].GetString(), "nodes.edge.kole.io \"nx\" not found");
}

TEST_F(NodesApiTest, CreateReturns201AndTheNode) {
  HttpResponse r = Create("n1", R"({"region":"eu"})");
  ASSERT_EQ(r.status, 201) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["kind"].GetString(), "Node");
  EXPECT_STREQ(doc["metadata"]["labels"]["region"].GetString(), "eu");
  EXPECT_FALSE(std::string(doc["metadata"]["uid"].GetString()).empty());
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/n1")).status, 200);
}

TEST_F(NodesApiTest, CreateOfExistingNodeIs409AlreadyExists) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Create("n1");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "AlreadyExists");
}

TEST_F(NodesApiTest, InvalidNameIs422WithFieldCause) {
  HttpResponse r = Create("Bad_Name");
  ASSERT_EQ(r.status, 422);
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["reason"].GetString(), "Invalid");
  EXPECT_STREQ(doc["details"]["kind"].GetString(), "Node");
  EXPECT_STREQ(doc["details"]["causes"][0]["field"].GetString(), "metadata.name");
}

TEST_F(NodesApiTest, InvalidLabelValueIs422) {
  HttpResponse r = Create("n1", R"({"a":"not valid!"})");
  ASSERT_EQ(r.status, 422);
  EXPECT_STREQ(Json(r.body)["details"]["causes"][0]["field"].GetString(), "metadata.labels[a]");
}

TEST_F(NodesApiTest, CreateWithResourceVersionIs400) {
  HttpResponse r =
      Call(Request("POST", kNodes, R"({"metadata":{"name":"n1","resourceVersion":"5"}})"));
  EXPECT_EQ(r.status, 400);
}

TEST_F(NodesApiTest, StrictFieldValidationRejectsUnknownFields) {
  HttpResponse r = Call(Request("POST", std::string(kNodes) + "?fieldValidation=Strict",
                                R"({"metadata":{"name":"n1"},"spec":{"bogus":1}})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unknown field \\\"spec.bogus\\\""), std::string::npos) << r.body;
}

TEST_F(NodesApiTest, GenerateNameMakesAUniqueName) {
  HttpResponse r = Call(Request("POST", kNodes, R"({"metadata":{"generateName":"edge-"}})"));
  ASSERT_EQ(r.status, 201) << r.body;
  std::string name = Json(r.body)["metadata"]["name"].GetString();
  EXPECT_EQ(name.size(), 10u);
  EXPECT_EQ(name.substr(0, 5), "edge-");
}

TEST_F(NodesApiTest, DryRunCreateDoesNotPersist) {
  HttpResponse r =
      Call(Request("POST", std::string(kNodes) + "?dryRun=All", R"({"metadata":{"name":"n1"}})"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/n1")).status, 404);
}

TEST_F(NodesApiTest, UpdateWithStaleResourceVersionIs409Conflict) {
  ASSERT_EQ(Create("n1").status, 201);
  std::string rv = std::to_string(store_->resource_version());
  ASSERT_EQ(Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                  R"({"metadata":{"labels":{"a":"b"}}})")
                .status,
            200);
  HttpResponse r = Call(Request("PUT", std::string(kNodes) + "/n1",
                                R"({"metadata":{"name":"n1","resourceVersion":")" + rv + R"("}})"));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "Conflict");
  EXPECT_NE(r.body.find("the object has been modified"), std::string::npos);
}

TEST_F(NodesApiTest, UpdateWithNameDifferentFromUrlIs400) {
  ASSERT_EQ(Create("n1").status, 201);
  EXPECT_EQ(
      Call(Request("PUT", std::string(kNodes) + "/n1", R"({"metadata":{"name":"n2"}})")).status,
      400);
}

TEST_F(NodesApiTest, MergePatchSetsAndRemovesLabels) {
  ASSERT_EQ(Create("n1", R"({"a":"1","b":"2"})").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                         R"({"metadata":{"labels":{"a":null,"c":"3"}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_FALSE(doc["metadata"]["labels"].HasMember("a"));
  EXPECT_STREQ(doc["metadata"]["labels"]["c"].GetString(), "3");
}

// Found by a newcomer's attack: a 400 KB body of 200,000 nested brackets ran
// the worker out of stack in the recursive parser and killed the server.
TEST_F(NodesApiTest, DeeplyNestedBodiesAre400NotACrash) {
  ASSERT_EQ(Create("n1").status, 201);
  std::string deep = std::string(200000, '[') + std::string(200000, ']');

  HttpResponse patch = Patch(std::string(kNodes) + "/n1", "application/json-patch+json", deep);
  EXPECT_EQ(patch.status, 400) << patch.body;
  EXPECT_NE(patch.body.find("nested deeper than 1000 levels"), std::string::npos) << patch.body;

  HttpRequest create = Request("POST", kNodes, R"({"metadata":{"labels":)" + deep + "}}");
  EXPECT_EQ(Call(create).status, 400);

  // Brackets inside strings are text, not nesting.
  std::string brackets(5000, '[');
  HttpResponse annotated = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                                 R"({"metadata":{"annotations":{"note":")" + brackets + R"("}}})");
  EXPECT_EQ(annotated.status, 200) << annotated.body;
}

TEST_F(NodesApiTest, MergePatchWithStaleResourceVersionIs409) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                         R"({"metadata":{"resourceVersion":"999","labels":{"a":"b"}}})");
  EXPECT_EQ(r.status, 409);
}

TEST_F(NodesApiTest, MergePatchThatRemovesResourceVersionHasNoPrecondition) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                         R"({"metadata":{"resourceVersion":null,"labels":{"a":"b"}}})");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(NodesApiTest, JsonPatchAddsATaint) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(
      std::string(kNodes) + "/n1", "application/json-patch+json",
      R"([{"op":"add","path":"/spec/taints","value":[{"key":"k","value":"v","effect":"NoSchedule"}]}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_STREQ(Json(r.body)["spec"]["taints"][0]["effect"].GetString(), "NoSchedule");
}

TEST_F(NodesApiTest, FailedJsonPatchTestIs422) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/json-patch+json",
                         R"([{"op":"test","path":"/metadata/name","value":"other"}])");
  EXPECT_EQ(r.status, 422);
}

TEST_F(NodesApiTest, StrategicMergePatchIs415WithAClearMessage) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/strategic-merge-patch+json",
                         R"({"spec":{"unschedulable":true}})");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(Reason(r), "UnsupportedMediaType");
  EXPECT_NE(r.body.find("strategic merge patch is not supported"), std::string::npos);
}

TEST_F(NodesApiTest, ApplyPatchIs415) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1?fieldManager=kubectl",
                         "application/apply-patch+yaml", R"({"metadata":{"name":"n1"}})");
  EXPECT_EQ(r.status, 415);
  EXPECT_NE(r.body.find("server-side apply is not supported"), std::string::npos);
}

TEST_F(NodesApiTest, MainResourceWriteIgnoresStatus) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                         R"({"status":{"capacity":{"cpu":"4"}},"spec":{"unschedulable":true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_TRUE(doc["spec"]["unschedulable"].GetBool());
  EXPECT_FALSE(doc["status"].HasMember("capacity"));
}

TEST_F(NodesApiTest, StatusSubresourceWritesOnlyStatus) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1/status", "application/merge-patch+json",
                         R"({"status":{"capacity":{"cpu":"4"}},"spec":{"unschedulable":true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["status"]["capacity"]["cpu"].GetString(), "4");
  EXPECT_FALSE(doc["spec"].HasMember("unschedulable"));
}

TEST_F(NodesApiTest, ChangingADeviceOwnedLabelIs422) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r = Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                         R"({"metadata":{"labels":{"kubernetes.io/arch":"arm64"}}})");
  EXPECT_EQ(r.status, 422);
}

TEST_F(NodesApiTest, DeleteAcceptsDeleteOptionsUnderEveryApiVersion) {
  for (const char* api_version : {"v1", "meta.k8s.io/v1", "edge.kole.io/v1alpha1"}) {
    ASSERT_EQ(Create("n1").status, 201);
    HttpResponse r = Call(Request("DELETE", std::string(kNodes) + "/n1",
                                  std::string(R"({"kind":"DeleteOptions","apiVersion":")") +
                                      api_version + R"(","propagationPolicy":"Background"})"));
    ASSERT_EQ(r.status, 200) << api_version << ": " << r.body;
    EXPECT_STREQ(Json(r.body)["status"].GetString(), "Success");
    EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/n1")).status, 404);
  }
}

TEST_F(NodesApiTest, DeleteWithWrongUidPreconditionIs409) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpResponse r =
      Call(Request("DELETE", std::string(kNodes) + "/n1",
                   R"({"preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}})"));
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("Precondition failed: UID in precondition"), std::string::npos);
}

TEST_F(NodesApiTest, DeletedNodeIsTombstoned) {
  ASSERT_EQ(Create("n1").status, 201);
  ASSERT_EQ(Call(Request("DELETE", std::string(kNodes) + "/n1")).status, 200);
  EXPECT_TRUE(store_->IsTombstoned("n1"));
}

TEST_F(NodesApiTest, DeleteCollectionDeletesOnlyMatchingNodes) {
  ASSERT_EQ(Create("a1", R"({"tier":"x"})").status, 201);
  ASSERT_EQ(Create("a2", R"({"tier":"x"})").status, 201);
  ASSERT_EQ(Create("b1", R"({"tier":"y"})").status, 201);
  // Queries are given decoded, as the transport hands them over.
  HttpResponse r = Call(Request("DELETE", std::string(kNodes) + "?labelSelector=tier=x"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/a1")).status, 404);
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "/b1")).status, 200);
}

TEST_F(NodesApiTest, ListPagesWithLimitAndContinue) {
  for (const char* n : {"n1", "n2", "n3"}) ASSERT_EQ(Create(n).status, 201);
  HttpResponse first = Call(Request("GET", std::string(kNodes) + "?limit=2"));
  ASSERT_EQ(first.status, 200);
  rapidjson::Document doc = Json(first.body);
  EXPECT_STREQ(doc["kind"].GetString(), "NodeList");
  EXPECT_EQ(doc["items"].Size(), 2u);
  std::string token = doc["metadata"]["continue"].GetString();
  std::string rv = doc["metadata"]["resourceVersion"].GetString();

  ASSERT_EQ(Create("n0").status, 201);  // After the snapshot: not in page 2.
  HttpRequest next = Request("GET", std::string(kNodes) + "?limit=2");
  next.query.emplace("continue", token);
  HttpResponse second = Call(next);
  ASSERT_EQ(second.status, 200) << second.body;
  rapidjson::Document doc2 = Json(second.body);
  ASSERT_EQ(doc2["items"].Size(), 1u);
  EXPECT_STREQ(doc2["items"][0]["metadata"]["name"].GetString(), "n3");
  EXPECT_STREQ(doc2["metadata"]["resourceVersion"].GetString(), rv.c_str());
  EXPECT_FALSE(doc2["metadata"].HasMember("continue"));
}

TEST_F(NodesApiTest, MalformedContinueTokenIs400) {
  HttpRequest r = Request("GET", std::string(kNodes) + "?limit=2");
  r.query.emplace("continue", "garbage");
  EXPECT_EQ(Call(r).status, 400);
}

TEST_F(NodesApiTest, ExpiredContinueTokenIs410) {
  for (const char* n : {"n1", "n2", "n3"}) ASSERT_EQ(Create(n).status, 201);
  rapidjson::Document doc = Json(Call(Request("GET", std::string(kNodes) + "?limit=1")).body);
  std::string token = doc["metadata"]["continue"].GetString();
  ASSERT_EQ(Call(Request("DELETE", std::string(kNodes) + "/n3")).status, 200);
  clock_.Advance(120);
  ASSERT_EQ(Create("n4").status, 201);
  ASSERT_TRUE(store_->Maintain().ok());
  HttpRequest r = Request("GET", std::string(kNodes) + "?limit=1");
  r.query.emplace("continue", token);
  HttpResponse expired = Call(r);
  EXPECT_EQ(expired.status, 410);
  EXPECT_EQ(Reason(expired), "Expired");
}

TEST_F(NodesApiTest, UnlimitedListIsStreamed) {
  for (const char* n : {"n1", "n2"}) ASSERT_EQ(Create(n).status, 201);
  HttpResponse r =
      handler_->Handle(*std::make_unique<HttpRequest>(Request("GET", kNodes)), admin_chain_);
  ASSERT_TRUE(static_cast<bool>(r.stream));
  CollectingSink sink;
  ASSERT_TRUE(r.stream(sink));
  EXPECT_EQ(Json(sink.out)["items"].Size(), 2u);
}

TEST_F(NodesApiTest, LabelSelectorFiltersAndBadSelectorIs400) {
  ASSERT_EQ(Create("n1", R"({"region":"eu"})").status, 201);
  ASSERT_EQ(Create("n2", R"({"region":"us"})").status, 201);
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?limit=10&labelSelector=region=eu"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json(r.body)["items"].Size(), 1u);
  EXPECT_EQ(Call(Request("GET", std::string(kNodes) + "?labelSelector=a in (")).status, 400);
}

TEST_F(NodesApiTest, UnsupportedFieldSelectorIs400) {
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?fieldSelector=spec.foo=x"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("field label not supported: spec.foo"), std::string::npos);
}

TEST_F(NodesApiTest, ResourceVersionMatchWithoutResourceVersionIs422) {
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?resourceVersionMatch=Exact"));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Reason(r), "Invalid");
}

TEST_F(NodesApiTest, ResourceVersionInTheFutureIs504) {
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?resourceVersion=99999"));
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(r.body.find("Too large resource version"), std::string::npos);
}

TEST_F(NodesApiTest, TableListHasKubectlNodeColumns) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpRequest req = Request("GET", std::string(kNodes) + "?limit=500");
  req.headers.emplace("Accept",
                      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v="
                      "v1beta1;g=meta.k8s.io,application/json");
  HttpResponse r = Call(req);
  ASSERT_EQ(r.status, 200);
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["kind"].GetString(), "Table");
  std::vector<std::string> names;
  for (const auto& c : doc["columnDefinitions"].GetArray()) names.push_back(c["name"].GetString());
  EXPECT_EQ(names, (std::vector<std::string>{"Name", "Status", "Roles", "Age", "Version",
                                             "Internal-IP", "External-IP", "OS-Image",
                                             "Kernel-Version", "Container-Runtime"}));
  EXPECT_STREQ(doc["columnDefinitions"][0]["format"].GetString(), "name");
  EXPECT_EQ(doc["columnDefinitions"][5]["priority"].GetInt(), 1);
  EXPECT_STREQ(doc["rows"][0]["cells"][1].GetString(), "NotReady");
  EXPECT_STREQ(doc["rows"][0]["object"]["kind"].GetString(), "PartialObjectMetadata");
}

TEST_F(NodesApiTest, PartialObjectMetadataListForMetadataClients) {
  ASSERT_EQ(Create("n1").status, 201);
  HttpRequest req = Request("GET", std::string(kNodes) + "?limit=10");
  req.headers.emplace("Accept",
                      "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta."
                      "k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v="
                      "v1,application/json");
  rapidjson::Document doc = Json(Call(req).body);
  EXPECT_STREQ(doc["kind"].GetString(), "PartialObjectMetadataList");
  EXPECT_STREQ(doc["items"][0]["kind"].GetString(), "PartialObjectMetadata");
  EXPECT_FALSE(doc["items"][0].HasMember("spec"));
}

TEST_F(NodesApiTest, OnlyProtobufAcceptedIs406) {
  HttpRequest req = Request("GET", kNodes);
  req.headers.emplace("Accept", "application/vnd.kubernetes.protobuf");
  HttpResponse r = Call(req);
  EXPECT_EQ(r.status, 406);
  EXPECT_EQ(Reason(r), "NotAcceptable");
}

TEST_F(NodesApiTest, WatchFromAVersionStreamsLaterChanges) {
  ASSERT_EQ(Create("n1").status, 201);
  std::string rv = std::to_string(store_->resource_version());
  HttpResponse r = handler_->Handle(
      *std::make_unique<HttpRequest>(Request(
          "GET", std::string(kNodes) + "?watch=true&timeoutSeconds=1&resourceVersion=" + rv)),
      admin_chain_);
  ASSERT_TRUE(r.long_running);
  ASSERT_EQ(Patch(std::string(kNodes) + "/n1", "application/merge-patch+json",
                  R"({"metadata":{"labels":{"a":"b"}}})")
                .status,
            200);
  CollectingSink sink;
  ASSERT_TRUE(r.stream(sink));
  EXPECT_EQ(sink.out.find(R"({"type":"MODIFIED","object":{"kind":"Node")"), 0u) << sink.out;
  EXPECT_EQ(sink.out.find("ADDED"), std::string::npos);
}

TEST_F(NodesApiTest, WatchFromTooOldVersionSendsExpiredErrorEvent) {
  ASSERT_EQ(Create("n1").status, 201);
  ASSERT_EQ(Create("n2").status, 201);
  ASSERT_EQ(Call(Request("DELETE", std::string(kNodes) + "/n1")).status, 200);
  clock_.Advance(120);
  ASSERT_EQ(Create("n3").status, 201);
  ASSERT_TRUE(store_->Maintain().ok());
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?watch=1&resourceVersion=1"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"({"type":"ERROR","object":{"kind":"Status")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("code":410)"), std::string::npos) << r.body;
}

TEST_F(NodesApiTest, WatchListEndsInitialEventsWithAnnotatedBookmark) {
  ASSERT_EQ(Create("n1").status, 201);
  ASSERT_EQ(Create("n2").status, 201);
  HttpResponse r =
      Call(Request("GET", std::string(kNodes) +
                              "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&"
                              "allowWatchBookmarks=true&timeoutSeconds=1"));
  ASSERT_EQ(r.status, 200);
  size_t a = r.body.find(R"("type":"ADDED")");
  size_t b = r.body.find(R"("type":"ADDED")", a + 1);
  size_t bookmark = r.body.find(R"("k8s.io/initial-events-end":"true")");
  EXPECT_NE(b, std::string::npos);
  EXPECT_NE(bookmark, std::string::npos);
  EXPECT_GT(bookmark, b);
}

TEST_F(NodesApiTest, SendInitialEventsWithoutNotOlderThanIs422) {
  HttpResponse r = Call(Request("GET", std::string(kNodes) + "?watch=1&sendInitialEvents=true"));
  EXPECT_EQ(r.status, 422);
}

TEST_F(NodesApiTest, WatchHonoursFieldSelector) {
  ASSERT_EQ(Create("n1").status, 201);
  ASSERT_EQ(Create("n2").status, 201);
  HttpResponse r = Call(Request(
      "GET", std::string(kNodes) + "?watch=1&fieldSelector=metadata.name=n2&timeoutSeconds=1"));
  EXPECT_NE(r.body.find(R"("name":"n2")"), std::string::npos);
  EXPECT_EQ(r.body.find(R"("name":"n1")"), std::string::npos);
}

TEST_F(NodesApiTest, TableWatchSendsColumnsOnlyInTheFirstEvent) {
  ASSERT_EQ(Create("n1").status, 201);
  ASSERT_EQ(Create("n2").status, 201);
  HttpRequest req = Request("GET", std::string(kNodes) + "?watch=1&timeoutSeconds=1");
  req.headers.emplace("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
  HttpResponse r = Call(req);
  size_t first = r.body.find(R"("columnDefinitions":[{)");
  EXPECT_NE(first, std::string::npos);
  EXPECT_EQ(r.body.find(R"("columnDefinitions":[{)", first + 1), std::string::npos);
  EXPECT_NE(r.body.find(R"("columnDefinitions":[])"), std::string::npos);
}

TEST_F(NodesApiTest, MetricsIncludeOtherComponentsSources) {
  metrics_.AddSource([] { return std::string("kole_bridge_messages_total 7\n"); });
  HttpResponse r = Call(Request("GET", "/metrics"));
  EXPECT_NE(r.body.find("kole_bridge_messages_total 7\n"), std::string::npos);
}

TEST_F(NodesApiTest, MetricsCountRequestsByUserAgent) {
  HttpRequest req = Request("GET", "/metrics");
  req.headers.emplace("User-Agent", "kube-controller-manager/v1.33.1 (linux/amd64)");
  HttpResponse r = Call(req);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("kole_apiserver_watches 0"), std::string::npos);
  metrics_.ObserveRequest("list", "nodes", "cluster", 200, "kube-controller-manager/v1.33.1", 0.01);
  EXPECT_EQ(
      metrics_.RequestCountForTest("list", "nodes", "cluster", 200, "kube-controller-manager"), 1u);
}

TEST_F(NodesApiTest, MetricScopeTellsOneObjectANamespaceAndTheCluster) {
  auto scope = [](std::string_view path) {
    return std::string(ApiHandler::MetricScope(ParseRequestInfo("GET", path, "", "")));
  };
  EXPECT_EQ(scope("/apis/edge.kole.io/v1alpha1/nodes"), "cluster");
  EXPECT_EQ(scope("/apis/edge.kole.io/v1alpha1/nodes/n1"), "resource");
  EXPECT_EQ(scope("/apis/edge.kole.io/v1alpha1/pods"), "cluster");
  EXPECT_EQ(scope("/apis/edge.kole.io/v1alpha1/namespaces/ns1/pods"), "namespace");
  EXPECT_EQ(scope("/apis/edge.kole.io/v1alpha1/namespaces/ns1/pods/p1"), "resource");
  EXPECT_EQ(scope("/healthz"), "");
}

constexpr char kPods[] = "/apis/edge.kole.io/v1alpha1/namespaces/default/pods";

std::string PodBody(const std::string& name, const std::string& node = "n1") {
  return R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"Pod","metadata":{"name":")" + name +
         R"(","labels":{"app":"demo"}},"spec":{"nodeName":")" + node +
         R"(","containers":[{"name":"c","image":"nginx"}]}})";
}

TEST_F(NodesApiTest, PodCreateGetAndListAcrossNamespaces) {
  HttpResponse created = Call(Request("POST", kPods, PodBody("p1")));
  ASSERT_EQ(created.status, 201) << created.body;
  rapidjson::Document doc = Json(created.body);
  EXPECT_STREQ(doc["metadata"]["namespace"].GetString(), "default");
  EXPECT_STREQ(doc["spec"]["nodeName"].GetString(), "n1");
  EXPECT_EQ(Call(Request("GET", std::string(kPods) + "/p1")).status, 200);
  HttpResponse all = Call(Request("GET", "/apis/edge.kole.io/v1alpha1/pods"));
  ASSERT_EQ(all.status, 200);
  EXPECT_STREQ(Json(all.body)["kind"].GetString(), "PodList");
  EXPECT_EQ(Json(all.body)["items"].Size(), 1u);
}

TEST_F(NodesApiTest, PodWithoutNodeNameIs422) {
  HttpResponse r = Call(Request("POST", kPods, PodBody("p1", "")));
  ASSERT_EQ(r.status, 422);
  EXPECT_STREQ(Json(r.body)["details"]["causes"][0]["field"].GetString(), "spec.nodeName");
}

TEST_F(NodesApiTest, PodNamespaceMismatchIs400) {
  std::string body = PodBody("p1");
  body.replace(body.find(R"("name":"p1")"), 11, R"("name":"p1","namespace":"other")");
  EXPECT_EQ(Call(Request("POST", kPods, body)).status, 400);
}

TEST_F(NodesApiTest, PodFieldSelectorOnNodeNameAndPhase) {
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p1", "n1"))).status, 201);
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p2", "n2"))).status, 201);
  ASSERT_EQ(Patch(std::string(kPods) + "/p2/status", "application/merge-patch+json",
                  R"({"status":{"phase":"Running"}})")
                .status,
            200);
  HttpResponse by_node =
      Call(Request("GET", std::string(kPods) + "?fieldSelector=spec.nodeName=n1"));
  ASSERT_EQ(Json(by_node.body)["items"].Size(), 1u);
  EXPECT_STREQ(Json(by_node.body)["items"][0]["metadata"]["name"].GetString(), "p1");
  HttpResponse by_phase =
      Call(Request("GET", std::string(kPods) + "?fieldSelector=status.phase=Running"));
  ASSERT_EQ(Json(by_phase.body)["items"].Size(), 1u);
  EXPECT_STREQ(Json(by_phase.body)["items"][0]["metadata"]["name"].GetString(), "p2");
}

TEST_F(NodesApiTest, PodTableHasKubectlPodColumns) {
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p1"))).status, 201);
  HttpRequest req = Request("GET", std::string(kPods) + "?limit=500");
  req.headers.emplace("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
  rapidjson::Document doc = Json(Call(req).body);
  std::vector<std::string> names;
  for (const auto& c : doc["columnDefinitions"].GetArray()) names.push_back(c["name"].GetString());
  EXPECT_EQ(names, (std::vector<std::string>{"Name", "Ready", "Status", "Restarts", "Age", "IP",
                                             "Node", "Nominated Node", "Readiness Gates"}));
  EXPECT_STREQ(doc["rows"][0]["cells"][1].GetString(), "0/1");
  EXPECT_STREQ(doc["rows"][0]["cells"][2].GetString(), "Pending");
  EXPECT_STREQ(doc["rows"][0]["cells"][6].GetString(), "n1");
  EXPECT_STREQ(doc["rows"][0]["object"]["metadata"]["namespace"].GetString(), "default");
}

TEST_F(NodesApiTest, PodMainResourceWriteKeepsStatus) {
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p1"))).status, 201);
  ASSERT_EQ(Patch(std::string(kPods) + "/p1/status", "application/merge-patch+json",
                  R"({"status":{"phase":"Running"}})")
                .status,
            200);
  HttpResponse r = Patch(std::string(kPods) + "/p1", "application/merge-patch+json",
                         R"({"metadata":{"labels":{"x":"y"}},"status":{"phase":"Failed"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_STREQ(Json(r.body)["status"]["phase"].GetString(), "Running");
  EXPECT_STREQ(Json(r.body)["metadata"]["labels"]["x"].GetString(), "y");
}

TEST_F(NodesApiTest, PodDeleteCollectionInANamespace) {
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p1"))).status, 201);
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p2"))).status, 201);
  HttpResponse r = Call(Request("DELETE", kPods,
                                R"({"kind":"DeleteOptions","apiVersion":"v1",)"
                                R"("propagationPolicy":"Background"})"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json(Call(Request("GET", kPods)).body)["items"].Size(), 0u);
}

TEST_F(NodesApiTest, PodWatchSeesStatusChange) {
  ASSERT_EQ(Call(Request("POST", kPods, PodBody("p1"))).status, 201);
  std::string rv = std::to_string(pods_->resource_version());
  HttpResponse r = handler_->Handle(
      *std::make_unique<HttpRequest>(
          Request("GET", std::string(kPods) + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv)),
      admin_chain_);
  ASSERT_EQ(Patch(std::string(kPods) + "/p1/status", "application/merge-patch+json",
                  R"({"status":{"phase":"Running"}})")
                .status,
            200);
  CollectingSink sink;
  ASSERT_TRUE(r.stream(sink));
  EXPECT_EQ(sink.out.find(R"({"type":"MODIFIED","object":{"kind":"Pod")"), 0u) << sink.out;
}

TEST_F(NodesApiTest, DiscoveryAdvertisesNoWatchForNodesAndPods) {
  HttpResponse r = Call(Request("GET", "/apis/edge.kole.io/v1alpha1"));
  rapidjson::Document doc = Json(r.body);
  size_t checked = 0;
  for (const auto& res : doc["resources"].GetArray()) {
    std::string_view name = res["name"].GetString();
    bool fleet_sized = name.starts_with("nodes") || name.starts_with("pods");
    bool watch = false;
    for (const auto& verb : res["verbs"].GetArray())
      watch |= verb.GetString() == std::string_view("watch");
    // EdgeDaemonSets are few: the namespace and garbage collectors may watch them.
    if (fleet_sized) {
      EXPECT_FALSE(watch) << name;
      ++checked;
    } else if (name == "edgedaemonsets") {
      EXPECT_TRUE(watch);
    }
  }
  EXPECT_EQ(checked, 4u);  // nodes, nodes/status, pods, pods/status
}

}  // namespace
}  // namespace kole::apiserver
