// The edgedaemonsets resource through the API pipeline (ApiHandler), as
// nodes_api_test drives nodes and pods: an in-memory ObjectStore, the real
// authenticator with a throw-away CA, real routing, validation, rendering
// and server-side apply. One behaviour per test.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <vector>

#include "apiserver-ext/api_handler.h"
#include "storage/clock.h"
#include "storage/object_store.h"
#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

using testing::Request;

constexpr char kEds[] = "/apis/edge.kole.io/v1alpha1/namespaces/fleet/edgedaemonsets";
constexpr char kAllEds[] = "/apis/edge.kole.io/v1alpha1/edgedaemonsets";
constexpr char kApply[] = "application/apply-patch+yaml";
constexpr char kMerge[] = "application/merge-patch+json";
constexpr char kTableAccept[] = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

constexpr char kSpec[] =
    R"({"nodeSelector":{"matchLabels":{"role":"sensor"}},)"
    R"("template":{"metadata":{"labels":{"app":"agent"}},)"
    R"("spec":{"containers":[{"name":"agent","image":"registry/agent:1.2"}]}}})";

// An EdgeDaemonSet as a client writes it: no defaults, no server fields.
std::string Manifest(const std::string& name, const std::string& spec = kSpec,
                     const std::string& labels = "{}") {
  return R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet","metadata":{"name":")" +
         name + R"(","labels":)" + labels + R"(},"spec":)" + spec + "}";
}

// The same object as YAML, the way kubectl sends an apply patch.
std::string ApplyYaml(const std::string& image) {
  return "apiVersion: edge.kole.io/v1alpha1\n"
         "kind: EdgeDaemonSet\n"
         "metadata:\n"
         "  name: agent\n"
         "spec:\n"
         "  nodeSelector:\n"
         "    matchLabels:\n"
         "      role: sensor\n"
         "  template:\n"
         "    metadata:\n"
         "      labels:\n"
         "        app: agent\n"
         "    spec:\n"
         "      containers:\n"
         "      - name: agent\n"
         "        image: " +
         image +
         "\n"
         "        args: [\"--port\", \"8080\"]\n"
         "  updateStrategy:\n"
         "    rollingUpdate:\n"
         "      maxUnavailable: 10%\n";
}

class CollectingSink : public ChunkSink {
 public:
  bool Write(std::string_view data) override {
    out += data;
    return true;
  }
  bool Alive() override { return true; }
  std::string out;
};

class EdsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.clock = &clock_;
    options.background_maintenance = false;
    store_ = std::move(*storage::NodeStore::Open(options));
    storage::PodStoreOptions pod_options;
    pod_options.clock = &clock_;
    pods_ = std::move(*storage::PodStore::Open(pod_options));
    workloads_ = std::move(*storage::ObjectStore::Open({.clock = &clock_}));
    pki_ = std::make_unique<testing::TestPki>(dir_.path());
    admin_chain_ = pki_->Chain("admin", {"system:masters"});
    Authenticator::Options authn;
    authn.client_ca = *CertificateAuthority::FromFile(pki_->CaCert());
    authenticator_ = std::make_unique<Authenticator>(std::move(authn));
    authorizer_ = std::make_unique<WebhookAuthorizer>(
        [](const std::string&) -> absl::StatusOr<std::string> {
          return std::string(R"({"status":{"allowed":true}})");
        },
        WebhookAuthorizer::Options{});
    ApiHandlerOptions handler_options;
    handler_options.watch.bookmark_interval_seconds = 3600;
    handler_options.workloads = workloads_.get();
    handler_ = std::make_unique<ApiHandler>(store_.get(), pods_.get(), authenticator_.get(),
                                            authorizer_.get(), &metrics_, &health_, &stopping_,
                                            handler_options);
  }

  HttpResponse Call(HttpRequest request) {
    if (request.headers.find("Accept") == request.headers.end()) {
      request.headers.emplace("Accept", "application/json");
    }
    HttpResponse r = handler_->Handle(request, admin_chain_);
    if (r.stream) {
      CollectingSink sink;
      EXPECT_TRUE(r.stream(sink));
      r.body = sink.out;
    }
    return r;
  }

  HttpResponse Create(const std::string& name, const std::string& spec = kSpec,
                      const std::string& labels = "{}") {
    return Call(Request("POST", kEds, Manifest(name, spec, labels)));
  }

  HttpResponse Patch(const std::string& path, const std::string& type, const std::string& body) {
    HttpRequest r = Request("PATCH", path, body);
    r.headers.emplace("Content-Type", type);
    return Call(r);
  }

  HttpResponse Apply(const std::string& query, const std::string& yaml) {
    return Patch(std::string(kEds) + "/agent" + query, kApply, yaml);
  }

  rapidjson::Document Get(const std::string& name) {
    HttpResponse r = Call(Request("GET", std::string(kEds) + "/" + name));
    EXPECT_EQ(r.status, 200) << r.body;
    return Json(r.body);
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

  static std::vector<std::string> Names(const rapidjson::Value& items) {
    std::vector<std::string> names;
    for (const auto& item : items.GetArray()) names.push_back(item["metadata"]["name"].GetString());
    return names;
  }

  // The image of the first container.
  static std::string Image(const rapidjson::Value& object) {
    return object["spec"]["template"]["spec"]["containers"][0]["image"].GetString();
  }

  storage::ManualClock clock_;
  testing::TempDir dir_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<storage::ObjectStore> workloads_;
  std::unique_ptr<testing::TestPki> pki_;
  std::vector<std::string> admin_chain_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<WebhookAuthorizer> authorizer_;
  ApiMetrics metrics_;
  HealthChecks health_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<ApiHandler> handler_;
};

// --- Create and read ------------------------------------------------------------------

TEST_F(EdsApiTest, CreateReturns201WithServerDefaults) {
  HttpResponse r = Create("agent");
  ASSERT_EQ(r.status, 201) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["kind"].GetString(), "EdgeDaemonSet");
  EXPECT_STREQ(doc["apiVersion"].GetString(), "edge.kole.io/v1alpha1");
  const rapidjson::Value& meta = doc["metadata"];
  EXPECT_STREQ(meta["namespace"].GetString(), "fleet");
  EXPECT_EQ(meta["generation"].GetInt64(), 1);
  EXPECT_EQ(std::string(meta["uid"].GetString()).size(), 36u);
  EXPECT_TRUE(meta["creationTimestamp"].IsString());
  EXPECT_EQ(meta["resourceVersion"].GetString(), std::to_string(workloads_->resource_version()));
  const rapidjson::Value& strategy = doc["spec"]["updateStrategy"];
  EXPECT_STREQ(strategy["type"].GetString(), "RollingUpdate");
  EXPECT_EQ(strategy["rollingUpdate"]["maxUnavailable"].GetInt(), 1);
  EXPECT_STREQ(doc["spec"]["template"]["spec"]["restartPolicy"].GetString(), "Always");
  EXPECT_TRUE(doc["status"].IsObject());
  EXPECT_EQ(workloads_->size(), 1u);
}

TEST_F(EdsApiTest, CreateRecordsTheFieldManagerInManagedFields) {
  HttpResponse r =
      Call(Request("POST", std::string(kEds) + "?fieldManager=fleet-tool", Manifest("agent")));
  ASSERT_EQ(r.status, 201) << r.body;
  const rapidjson::Value& managed = Json(r.body)["metadata"]["managedFields"];
  ASSERT_EQ(managed.Size(), 1u);
  EXPECT_STREQ(managed[0]["manager"].GetString(), "fleet-tool");
  EXPECT_STREQ(managed[0]["operation"].GetString(), "Update");
  EXPECT_STREQ(managed[0]["fieldsType"].GetString(), "FieldsV1");
}

TEST_F(EdsApiTest, CreateWithoutFieldManagerRecordsTheUserAgentProgram) {
  HttpRequest req = Request("POST", kEds, Manifest("agent"));
  req.headers.emplace("User-Agent", "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0");
  HttpResponse r = Call(req);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_STREQ(Json(r.body)["metadata"]["managedFields"][0]["manager"].GetString(), "kubectl");
}

TEST_F(EdsApiTest, CreateOfExistingNameIs409AlreadyExists) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Create("agent");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "AlreadyExists");
}

TEST_F(EdsApiTest, CreateInAnotherNamespaceThanTheBodyIs400) {
  std::string body = Manifest("agent");
  body.replace(body.find(R"("name":"agent")"), 14, R"("name":"agent","namespace":"other")");
  EXPECT_EQ(Call(Request("POST", kEds, body)).status, 400);
}

TEST_F(EdsApiTest, BodyOfAnotherKindIs400) {
  std::string body = Manifest("agent");
  body.replace(body.find("EdgeDaemonSet"), 13, "DaemonSet");
  EXPECT_EQ(Call(Request("POST", kEds, body)).status, 400);
}

TEST_F(EdsApiTest, GetReturnsTheStoredObjectAndMissingIs404) {
  ASSERT_EQ(Create("agent").status, 201);
  rapidjson::Document doc = Get("agent");
  EXPECT_STREQ(doc["metadata"]["name"].GetString(), "agent");
  EXPECT_EQ(Image(doc), "registry/agent:1.2");

  HttpResponse missing = Call(Request("GET", std::string(kEds) + "/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Reason(missing), "NotFound");
  EXPECT_NE(missing.body.find(R"(\"nope\" not found)"), std::string::npos) << missing.body;
}

TEST_F(EdsApiTest, ListIsPerNamespaceOrAcrossTheCluster) {
  ASSERT_EQ(Create("a").status, 201);
  ASSERT_EQ(Create("b").status, 201);
  ASSERT_EQ(Call(Request("POST", "/apis/edge.kole.io/v1alpha1/namespaces/lab/edgedaemonsets",
                         Manifest("c")))
                .status,
            201);

  HttpResponse fleet = Call(Request("GET", kEds));
  ASSERT_EQ(fleet.status, 200);
  rapidjson::Document doc = Json(fleet.body);
  EXPECT_STREQ(doc["kind"].GetString(), "EdgeDaemonSetList");
  EXPECT_EQ(Names(doc["items"]), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(doc["metadata"]["resourceVersion"].GetString(),
            std::to_string(workloads_->resource_version()));

  rapidjson::Document all = Json(Call(Request("GET", kAllEds)).body);
  EXPECT_EQ(all["items"].Size(), 3u);
}

TEST_F(EdsApiTest, TableListHasKubectlDaemonSetColumns) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpRequest req = Request("GET", kEds);
  req.headers.emplace("Accept", kTableAccept);
  HttpResponse r = Call(req);
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["kind"].GetString(), "Table");

  // kubectl upper-cases the names: NAME DESIRED CURRENT READY UP-TO-DATE
  // AVAILABLE NODE SELECTOR AGE, and with -o wide CONTAINERS IMAGES SELECTOR.
  std::vector<std::string> names, wide;
  for (const auto& c : doc["columnDefinitions"].GetArray()) {
    (c["priority"].GetInt() == 0 ? names : wide).push_back(c["name"].GetString());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"Name", "Desired", "Current", "Ready", "Up-to-date",
                                             "Available", "Node Selector", "Age"}));
  EXPECT_EQ(wide, (std::vector<std::string>{"Containers", "Images", "Selector"}));

  ASSERT_EQ(doc["rows"].Size(), 1u);
  const rapidjson::Value& cells = doc["rows"][0]["cells"];
  ASSERT_EQ(cells.Size(), 11u);
  EXPECT_STREQ(cells[0].GetString(), "agent");
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(cells[i].GetInt(), 0) << i;
  EXPECT_STREQ(cells[6].GetString(), "role=sensor");
  EXPECT_EQ(std::string(cells[7].GetString()).back(), 's');  // Seconds old.
  EXPECT_STREQ(cells[8].GetString(), "agent");
  EXPECT_STREQ(cells[9].GetString(), "registry/agent:1.2");
  EXPECT_STREQ(cells[10].GetString(), "app=agent");
  EXPECT_STREQ(doc["rows"][0]["object"]["kind"].GetString(), "PartialObjectMetadata");
}

TEST_F(EdsApiTest, TableShowsStatusCountsAndNoneForAnEmptySelector) {
  ASSERT_EQ(
      Create("agent", R"({"template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})").status,
      201);
  ASSERT_EQ(Patch(std::string(kEds) + "/agent/status", kMerge,
                  R"({"status":{"desiredNumberScheduled":7,"currentNumberScheduled":6,)"
                  R"("numberReady":5,"updatedNumberScheduled":4,"numberAvailable":3}})")
                .status,
            200);
  HttpRequest req = Request("GET", std::string(kEds) + "/agent");
  req.headers.emplace("Accept", kTableAccept);
  rapidjson::Document doc = Json(Call(req).body);
  const rapidjson::Value& cells = doc["rows"][0]["cells"];
  EXPECT_EQ(cells[1].GetInt(), 7);
  EXPECT_EQ(cells[2].GetInt(), 6);
  EXPECT_EQ(cells[3].GetInt(), 5);
  EXPECT_EQ(cells[4].GetInt(), 4);
  EXPECT_EQ(cells[5].GetInt(), 3);
  EXPECT_STREQ(cells[6].GetString(), "<none>");
  EXPECT_STREQ(cells[10].GetString(), "<none>");
}

TEST_F(EdsApiTest, PartialObjectMetadataListForMetadataClients) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpRequest req = Request("GET", kEds);
  req.headers.emplace("Accept",
                      "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
                      "application/json");
  rapidjson::Document doc = Json(Call(req).body);
  EXPECT_STREQ(doc["kind"].GetString(), "PartialObjectMetadataList");
  ASSERT_EQ(doc["items"].Size(), 1u);
  EXPECT_STREQ(doc["items"][0]["kind"].GetString(), "PartialObjectMetadata");
  EXPECT_STREQ(doc["items"][0]["metadata"]["name"].GetString(), "agent");
  EXPECT_TRUE(doc["items"][0]["metadata"]["resourceVersion"].IsString());
  EXPECT_FALSE(doc["items"][0].HasMember("spec"));
}

TEST_F(EdsApiTest, LabelSelectorFiltersTheList) {
  ASSERT_EQ(Create("a", kSpec, R"({"team":"ops"})").status, 201);
  ASSERT_EQ(Create("b", kSpec, R"({"team":"dev"})").status, 201);
  ASSERT_EQ(Create("c").status, 201);
  rapidjson::Document ops =
      Json(Call(Request("GET", std::string(kEds) + "?labelSelector=team=ops")).body);
  EXPECT_EQ(Names(ops["items"]), std::vector<std::string>{"a"});
  rapidjson::Document without =
      Json(Call(Request("GET", std::string(kEds) + "?labelSelector=!team")).body);
  EXPECT_EQ(Names(without["items"]), std::vector<std::string>{"c"});
}

TEST_F(EdsApiTest, FieldSelectorOnNameFiltersAndOtherFieldsAre400) {
  ASSERT_EQ(Create("a").status, 201);
  ASSERT_EQ(Create("b").status, 201);
  rapidjson::Document doc =
      Json(Call(Request("GET", std::string(kEds) + "?fieldSelector=metadata.name=b")).body);
  EXPECT_EQ(Names(doc["items"]), std::vector<std::string>{"b"});
  rapidjson::Document other =
      Json(Call(Request("GET", std::string(kEds) + "?fieldSelector=metadata.name!=b")).body);
  EXPECT_EQ(Names(other["items"]), std::vector<std::string>{"a"});
  EXPECT_EQ(Call(Request("GET", std::string(kEds) + "?fieldSelector=spec.foo=x")).status, 400);
}

TEST_F(EdsApiTest, ListPagesWithLimitAndContinue) {
  for (const char* n : {"a", "b", "c"}) ASSERT_EQ(Create(n).status, 201);
  rapidjson::Document first = Json(Call(Request("GET", std::string(kEds) + "?limit=2")).body);
  EXPECT_EQ(Names(first["items"]), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(first["metadata"].HasMember("continue"));
  HttpRequest next = Request("GET", std::string(kEds) + "?limit=2");
  next.query.emplace("continue", first["metadata"]["continue"].GetString());
  rapidjson::Document second = Json(Call(next).body);
  EXPECT_EQ(Names(second["items"]), std::vector<std::string>{"c"});
  EXPECT_FALSE(second["metadata"].HasMember("continue"));
}

TEST_F(EdsApiTest, LimitCountsOnlySelectedObjects) {
  ASSERT_EQ(Create("a", kSpec, R"({"team":"ops"})").status, 201);
  ASSERT_EQ(Create("b").status, 201);
  ASSERT_EQ(Create("c", kSpec, R"({"team":"ops"})").status, 201);
  rapidjson::Document page =
      Json(Call(Request("GET", std::string(kEds) + "?limit=1&labelSelector=team=ops")).body);
  EXPECT_EQ(Names(page["items"]), std::vector<std::string>{"a"});
  HttpRequest next = Request("GET", std::string(kEds) + "?limit=1&labelSelector=team=ops");
  next.query.emplace("continue", page["metadata"]["continue"].GetString());
  rapidjson::Document rest = Json(Call(next).body);
  EXPECT_EQ(Names(rest["items"]), std::vector<std::string>{"c"});
  EXPECT_FALSE(rest["metadata"].HasMember("continue"));
}

TEST_F(EdsApiTest, MalformedContinueTokenIs400) {
  HttpRequest r = Request("GET", std::string(kEds) + "?limit=2");
  r.query.emplace("continue", "!!!");
  EXPECT_EQ(Call(r).status, 400);
}

// --- Watch ------------------------------------------------------------------------------

TEST_F(EdsApiTest, WatchWithoutVersionStartsWithTheCurrentObjects) {
  ASSERT_EQ(Create("a").status, 201);
  ASSERT_EQ(Create("b").status, 201);
  HttpResponse r = Call(Request("GET", std::string(kEds) + "?watch=1&timeoutSeconds=1"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find(R"({"type":"ADDED","object":{)"), 0u) << r.body;
  EXPECT_NE(r.body.find(R"("kind":"EdgeDaemonSet")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("name":"a")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("name":"b")"), std::string::npos);
}

TEST_F(EdsApiTest, WatchFromAVersionStreamsOnlyLaterChanges) {
  ASSERT_EQ(Create("a").status, 201);
  std::string rv = std::to_string(workloads_->resource_version());
  HttpResponse r = handler_->Handle(
      *std::make_unique<HttpRequest>(
          Request("GET", std::string(kEds) + "?watch=true&timeoutSeconds=1&resourceVersion=" + rv)),
      admin_chain_);
  ASSERT_TRUE(r.long_running);
  ASSERT_EQ(Patch(std::string(kEds) + "/a", kMerge, R"({"metadata":{"labels":{"x":"y"}}})").status,
            200);
  ASSERT_EQ(Call(Request("DELETE", std::string(kEds) + "/a")).status, 200);
  CollectingSink sink;
  ASSERT_TRUE(r.stream(sink));
  size_t modified = sink.out.find(R"({"type":"MODIFIED")");
  size_t deleted = sink.out.find(R"({"type":"DELETED")");
  EXPECT_EQ(modified, 0u) << sink.out;
  EXPECT_NE(deleted, std::string::npos) << sink.out;
  EXPECT_EQ(sink.out.find("ADDED"), std::string::npos);
}

TEST_F(EdsApiTest, WatchFromAFutureVersionIs504) {
  EXPECT_EQ(Call(Request("GET", std::string(kEds) + "?watch=1&resourceVersion=999")).status, 504);
}

// --- Update, status, patch --------------------------------------------------------------

TEST_F(EdsApiTest, UpdateWithTheSameSpecKeepsTheGeneration) {
  // A replace with the manifest as first written (without the fields the
  // server defaulted) does not change the spec.
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Call(Request("PUT", std::string(kEds) + "/agent", Manifest("agent")));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json(r.body)["metadata"]["generation"].GetInt64(), 1);
}

TEST_F(EdsApiTest, UpdateOfTheSpecBumpsTheGenerationAndKeepsStatus) {
  ASSERT_EQ(Create("agent").status, 201);
  ASSERT_EQ(Patch(std::string(kEds) + "/agent/status", kMerge,
                  R"({"status":{"desiredNumberScheduled":3}})")
                .status,
            200);
  std::string spec = kSpec;
  spec.replace(spec.find("agent:1.2"), 9, "agent:1.3");
  std::string body = Manifest("agent", spec);
  body.insert(body.find(R"("spec":)"), R"("status":{"desiredNumberScheduled":99},)");
  HttpResponse r = Call(Request("PUT", std::string(kEds) + "/agent", body));
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 2);
  EXPECT_EQ(Image(doc), "registry/agent:1.3");
  EXPECT_EQ(doc["status"]["desiredNumberScheduled"].GetInt(), 3);
}

TEST_F(EdsApiTest, UpdateKeepsUidAndCreationTimestamp) {
  rapidjson::Document created = Json(Create("agent").body);
  std::string body = Manifest("agent");
  body.replace(body.find(R"("name":"agent")"), 14,
               R"("name":"agent","uid":"00000000-0000-4000-8000-000000000000")");
  HttpResponse r = Call(Request("PUT", std::string(kEds) + "/agent", body));
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["metadata"]["uid"].GetString(), created["metadata"]["uid"].GetString());
  EXPECT_STREQ(doc["metadata"]["creationTimestamp"].GetString(),
               created["metadata"]["creationTimestamp"].GetString());
}

TEST_F(EdsApiTest, UpdateWithStaleResourceVersionIs409Conflict) {
  rapidjson::Document created = Json(Create("agent").body);
  std::string stale = created["metadata"]["resourceVersion"].GetString();
  ASSERT_EQ(
      Patch(std::string(kEds) + "/agent", kMerge, R"({"metadata":{"labels":{"a":"b"}}})").status,
      200);
  std::string body = Manifest("agent");
  body.replace(body.find(R"("name":"agent")"), 14,
               R"("name":"agent","resourceVersion":")" + stale + R"(")");
  HttpResponse r = Call(Request("PUT", std::string(kEds) + "/agent", body));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "Conflict");
}

TEST_F(EdsApiTest, UpdateWithNameDifferentFromTheUrlIs400) {
  ASSERT_EQ(Create("agent").status, 201);
  EXPECT_EQ(Call(Request("PUT", std::string(kEds) + "/agent", Manifest("other"))).status, 400);
}

TEST_F(EdsApiTest, UpdateOfMissingObjectIs404) {
  EXPECT_EQ(Call(Request("PUT", std::string(kEds) + "/agent", Manifest("agent"))).status, 404);
}

TEST_F(EdsApiTest, StatusSubresourceWritesOnlyStatus) {
  ASSERT_EQ(Create("agent").status, 201);
  std::string spec = kSpec;
  spec.replace(spec.find("agent:1.2"), 9, "agent:9.9");
  std::string body = Manifest("agent", spec, R"({"new":"label"})");
  body.insert(body.find(R"("spec":)"), R"("status":{"numberReady":2},)");
  HttpResponse r = Call(Request("PUT", std::string(kEds) + "/agent/status", body));
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Get("agent");
  EXPECT_EQ(doc["status"]["numberReady"].GetInt(), 2);
  EXPECT_EQ(Image(doc), "registry/agent:1.2");
  EXPECT_FALSE(doc["metadata"]["labels"].HasMember("new"));
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 1);
}

TEST_F(EdsApiTest, StatusPatchDoesNotValidateOrTouchTheSpec) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Patch(std::string(kEds) + "/agent/status", kMerge,
                         R"({"spec":{"template":null},"status":{"numberAvailable":4}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Get("agent");
  EXPECT_EQ(doc["status"]["numberAvailable"].GetInt(), 4);
  EXPECT_EQ(Image(doc), "registry/agent:1.2");
}

TEST_F(EdsApiTest, MainResourceWriteIgnoresStatus) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Patch(std::string(kEds) + "/agent", kMerge,
                         R"({"metadata":{"labels":{"a":"b"}},"status":{"numberReady":5}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_FALSE(doc["status"].HasMember("numberReady"));
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 1);  // Labels are not the spec.
}

TEST_F(EdsApiTest, MergePatchOfTheImageBumpsTheGeneration) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r =
      Patch(std::string(kEds) + "/agent", kMerge,
            R"({"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":"25%"}}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].GetString(), "25%");
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 2);
}

TEST_F(EdsApiTest, JsonPatchReplacesTheImage) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r =
      Patch(std::string(kEds) + "/agent", "application/json-patch+json",
            R"([{"op":"test","path":"/spec/template/spec/containers/0/name","value":"agent"},)"
            R"({"op":"replace","path":"/spec/template/spec/containers/0/image","value":"r/a:2"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Image(Get("agent")), "r/a:2");
  EXPECT_EQ(Get("agent")["metadata"]["generation"].GetInt64(), 2);
}

TEST_F(EdsApiTest, FailedJsonPatchTestIs422) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Patch(std::string(kEds) + "/agent", "application/json-patch+json",
                         R"([{"op":"test","path":"/spec/template/spec/containers/0/name",)"
                         R"("value":"other"}])");
  EXPECT_EQ(r.status, 422);
}

TEST_F(EdsApiTest, PatchThatBreaksValidationIs422AndChangesNothing) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Patch(std::string(kEds) + "/agent", kMerge,
                         R"({"spec":{"template":{"spec":{"containers":[]}}}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Image(Get("agent")), "registry/agent:1.2");
}

TEST_F(EdsApiTest, MergePatchWithStaleResourceVersionIs409) {
  std::string rv = Json(Create("agent").body)["metadata"]["resourceVersion"].GetString();
  ASSERT_EQ(
      Patch(std::string(kEds) + "/agent", kMerge, R"({"metadata":{"labels":{"a":"c"}}})").status,
      200);
  HttpResponse r = Patch(std::string(kEds) + "/agent", kMerge,
                         R"({"metadata":{"resourceVersion":")" + rv + R"(","labels":{"a":"d"}}})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "Conflict");
}

TEST_F(EdsApiTest, MergePatchThatRemovesResourceVersionHasNoPrecondition) {
  // As for nodes: a patch that drops metadata.resourceVersion asks for no
  // precondition, it does not conflict with every version.
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Patch(std::string(kEds) + "/agent", kMerge,
                         R"({"metadata":{"resourceVersion":null,"labels":{"a":"b"}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_STREQ(Get("agent")["metadata"]["labels"]["a"].GetString(), "b");
}

TEST_F(EdsApiTest, PatchOfMissingObjectIs404) {
  EXPECT_EQ(Patch(std::string(kEds) + "/agent", kMerge, "{}").status, 404);
}

TEST_F(EdsApiTest, StrategicMergePatchIs415) {
  ASSERT_EQ(Create("agent").status, 201);
  EXPECT_EQ(
      Patch(std::string(kEds) + "/agent", "application/strategic-merge-patch+json", "{}").status,
      415);
}

// --- Validation -------------------------------------------------------------------------

struct InvalidCase {
  const char* label;
  const char* name;
  const char* spec;
  const char* field;
  const char* reason;
};

class EdsValidationTest : public EdsApiTest, public ::testing::WithParamInterface<InvalidCase> {};

TEST_P(EdsValidationTest, CreateIs422WithTheFieldCause) {
  const InvalidCase& c = GetParam();
  HttpResponse r = Create(c.name, c.spec);
  ASSERT_EQ(r.status, 422) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["reason"].GetString(), "Invalid");
  EXPECT_STREQ(doc["details"]["kind"].GetString(), "EdgeDaemonSet");
  bool found = false;
  for (const auto& cause : doc["details"]["causes"].GetArray()) {
    found |= cause.HasMember("field") && cause["field"].GetString() == std::string(c.field) &&
             cause["reason"].GetString() == std::string(c.reason);
  }
  EXPECT_TRUE(found) << r.body;
  EXPECT_EQ(workloads_->size(), 0u);
}

#define KOLE_CONTAINER(extra) \
  R"({"template":{"spec":{"containers":[{"name":"a","image":"x")" extra R"(}]}}})"

INSTANTIATE_TEST_SUITE_P(
    Causes, EdsValidationTest,
    ::testing::Values(
        InvalidCase{"MissingContainers", "agent", R"({"template":{"spec":{}}})",
                    "spec.template.spec.containers", "FieldValueRequired"},
        InvalidCase{"EmptyContainers", "agent", R"({"template":{"spec":{"containers":[]}}})",
                    "spec.template.spec.containers", "FieldValueRequired"},
        InvalidCase{"MissingImage", "agent",
                    R"({"template":{"spec":{"containers":[{"name":"a"}]}}})",
                    "spec.template.spec.containers[0].image", "FieldValueRequired"},
        InvalidCase{"BadName", "Bad_Name", kSpec, "metadata.name", "FieldValueInvalid"},
        InvalidCase{"NameTooLong",
                    "a234567890123456789012345678901234567890123456789012345678901234", kSpec,
                    "metadata.name", "FieldValueInvalid"},
        InvalidCase{"DuplicateContainerNames", "agent",
                    R"({"template":{"spec":{"containers":[{"name":"a","image":"x"},)"
                    R"({"name":"a","image":"y"}]}}})",
                    "spec.template.spec.containers[1].name", "FieldValueDuplicate"},
        InvalidCase{"EnvFromSecretKeyRef", "agent",
                    KOLE_CONTAINER(R"(,"env":[{"name":"OK","value":"1"},{"name":"P","valueFrom":)"
                                   R"({"secretKeyRef":{"name":"s","key":"k"}}}])"),
                    "spec.template.spec.containers[0].env[1].valueFrom", "FieldValueForbidden"},
        InvalidCase{"EnvFrom", "agent",
                    KOLE_CONTAINER(R"(,"envFrom":[{"secretRef":{"name":"s"}}])"),
                    "spec.template.spec.containers[0].envFrom", "FieldValueForbidden"},
        InvalidCase{"SecretVolume", "agent",
                    R"({"template":{"spec":{"containers":[{"name":"a","image":"x"}],)"
                    R"("volumes":[{"name":"d","emptyDir":{}},{"name":"s","secret":)"
                    R"({"secretName":"s"}}]}}})",
                    "spec.template.spec.volumes[1]", "FieldValueForbidden"},
        InvalidCase{"MaxUnavailableZero", "agent",
                    R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":0}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"},
        InvalidCase{"MaxUnavailableZeroPercent", "agent",
                    R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"0%"}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"},
        InvalidCase{"MaxUnavailableNotANumber", "agent",
                    R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"abc"}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"},
        InvalidCase{"MaxUnavailableOver100Percent", "agent",
                    R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"101%"}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"},
        InvalidCase{"MaxUnavailableNegative", "agent",
                    R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":-1}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"},
        InvalidCase{"UnknownStrategyType", "agent",
                    R"({"updateStrategy":{"type":"Recreate"},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.updateStrategy.type", "FieldValueNotSupported"},
        InvalidCase{"BadSelectorOperator", "agent",
                    R"({"nodeSelector":{"matchExpressions":[{"key":"role","operator":"Near",)"
                    R"("values":["x"]}]},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.nodeSelector.matchExpressions[0].operator", "FieldValueNotSupported"},
        InvalidCase{"InWithoutValues", "agent",
                    R"({"nodeSelector":{"matchExpressions":[{"key":"role","operator":"In"}]},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.nodeSelector.matchExpressions[0].values", "FieldValueRequired"},
        InvalidCase{"BadSelectorLabelValue", "agent",
                    R"({"nodeSelector":{"matchLabels":{"role":"not valid!"}},)"
                    R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})",
                    "spec.nodeSelector.matchLabels[role]", "FieldValueInvalid"},
        InvalidCase{"BadRestartPolicy", "agent",
                    R"({"template":{"spec":{"restartPolicy":"Sometimes",)"
                    R"("containers":[{"name":"a","image":"x"}]}}})",
                    "spec.template.spec.restartPolicy", "FieldValueNotSupported"},
        InvalidCase{"BadTolerationOperator", "agent",
                    R"({"template":{"spec":{"tolerations":[{"key":"k","operator":"Maybe"}],)"
                    R"("containers":[{"name":"a","image":"x"}]}}})",
                    "spec.template.spec.tolerations[0].operator", "FieldValueNotSupported"}),
    [](const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.label; });

#undef KOLE_CONTAINER

TEST_F(EdsApiTest, PercentMaxUnavailableAndOnDeleteAreAccepted) {
  ASSERT_EQ(Create("a", R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"100%"}},)"
                        R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})")
                .status,
            201);
  HttpResponse r = Create("b", R"({"updateStrategy":{"type":"OnDelete"},)"
                               R"("template":{"spec":{"containers":[{"name":"a","image":"x"}]}}})");
  ASSERT_EQ(r.status, 201) << r.body;
  // OnDelete has no rolling update to default.
  EXPECT_FALSE(Json(r.body)["spec"]["updateStrategy"].HasMember("rollingUpdate"));
}

// --- Delete -----------------------------------------------------------------------------

TEST_F(EdsApiTest, DeleteRemovesTheObject) {
  rapidjson::Document created = Json(Create("agent").body);
  HttpResponse r = Call(Request("DELETE", std::string(kEds) + "/agent"));
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["status"].GetString(), "Success");
  EXPECT_STREQ(doc["details"]["uid"].GetString(), created["metadata"]["uid"].GetString());
  EXPECT_EQ(Call(Request("GET", std::string(kEds) + "/agent")).status, 404);
  EXPECT_EQ(Call(Request("DELETE", std::string(kEds) + "/agent")).status, 404);
}

TEST_F(EdsApiTest, DeleteWithWrongUidPreconditionIs409) {
  ASSERT_EQ(Create("agent").status, 201);
  HttpResponse r = Call(Request("DELETE", std::string(kEds) + "/agent",
                                R"({"kind":"DeleteOptions","apiVersion":"v1",)"
                                R"("preconditions":{"uid":"not-the-uid"}})"));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "Conflict");
  EXPECT_EQ(workloads_->size(), 1u);
}

TEST_F(EdsApiTest, DeleteWithStaleResourceVersionPreconditionIs409) {
  std::string rv = Json(Create("agent").body)["metadata"]["resourceVersion"].GetString();
  ASSERT_EQ(
      Patch(std::string(kEds) + "/agent", kMerge, R"({"metadata":{"labels":{"a":"b"}}})").status,
      200);
  HttpResponse r = Call(Request("DELETE", std::string(kEds) + "/agent",
                                R"({"preconditions":{"resourceVersion":")" + rv + R"("}})"));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(workloads_->size(), 1u);
}

TEST_F(EdsApiTest, DeleteWithMatchingPreconditionsDeletes) {
  rapidjson::Document created = Json(Create("agent").body);
  std::string body = std::string(R"({"preconditions":{"uid":")") +
                     created["metadata"]["uid"].GetString() + R"(","resourceVersion":")" +
                     created["metadata"]["resourceVersion"].GetString() + R"("}})";
  ASSERT_EQ(Call(Request("DELETE", std::string(kEds) + "/agent", body)).status, 200);
  EXPECT_EQ(workloads_->size(), 0u);
}

TEST_F(EdsApiTest, DeleteCollectionDeletesOnlyMatchingObjects) {
  ASSERT_EQ(Create("a", kSpec, R"({"team":"ops"})").status, 201);
  ASSERT_EQ(Create("b", kSpec, R"({"team":"dev"})").status, 201);
  ASSERT_EQ(Create("c", kSpec, R"({"team":"ops"})").status, 201);
  HttpResponse r = Call(Request("DELETE", std::string(kEds) + "?labelSelector=team=ops"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Names(Json(r.body)["items"]), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Names(Json(Call(Request("GET", kEds)).body)["items"]), std::vector<std::string>{"b"});
}

TEST_F(EdsApiTest, DeleteCollectionStaysInItsNamespace) {
  ASSERT_EQ(Create("a").status, 201);
  ASSERT_EQ(Call(Request("POST", "/apis/edge.kole.io/v1alpha1/namespaces/lab/edgedaemonsets",
                         Manifest("b")))
                .status,
            201);
  ASSERT_EQ(Call(Request("DELETE", kEds)).status, 200);
  EXPECT_EQ(workloads_->size(), 1u);
  EXPECT_TRUE(workloads_->Get("lab", "b").ok());
}

// --- Dry run ----------------------------------------------------------------------------

TEST_F(EdsApiTest, DryRunWritesNothing) {
  HttpResponse created = Call(Request("POST", std::string(kEds) + "?dryRun=All", Manifest("a")));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_STREQ(Json(created.body)["spec"]["updateStrategy"]["type"].GetString(), "RollingUpdate");
  EXPECT_EQ(workloads_->size(), 0u);

  ASSERT_EQ(Create("a").status, 201);
  uint64_t rv = workloads_->resource_version();
  HttpResponse patched =
      Patch(std::string(kEds) + "/a?dryRun=All", kMerge, R"({"metadata":{"labels":{"x":"y"}}})");
  ASSERT_EQ(patched.status, 200);
  EXPECT_STREQ(Json(patched.body)["metadata"]["labels"]["x"].GetString(), "y");
  EXPECT_EQ(Call(Request("PUT", std::string(kEds) + "/a?dryRun=All",
                         Manifest("a", kSpec, R"({"z":"1"})")))
                .status,
            200);
  ASSERT_EQ(Call(Request("DELETE", std::string(kEds) + "/a?dryRun=All")).status, 200);
  EXPECT_EQ(Call(Request("DELETE", std::string(kEds) + "?dryRun=All")).status, 200);
  EXPECT_EQ(workloads_->resource_version(), rv);
  EXPECT_FALSE(Get("a")["metadata"]["labels"].HasMember("x"));
}

TEST_F(EdsApiTest, DryRunCreateOfExistingNameIs409) {
  ASSERT_EQ(Create("a").status, 201);
  HttpResponse r = Call(Request("POST", std::string(kEds) + "?dryRun=All", Manifest("a")));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Reason(r), "AlreadyExists");
}

// --- Server-side apply ------------------------------------------------------------------

TEST_F(EdsApiTest, ApplyOfYamlCreatesTheObject) {
  HttpResponse r = Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2"));
  ASSERT_EQ(r.status, 201) << r.body;
  rapidjson::Document doc = Get("agent");
  EXPECT_EQ(Image(doc), "registry/agent:1.2");
  // Quoted YAML scalars stay strings; "10%" is a string, not a number.
  const rapidjson::Value& args = doc["spec"]["template"]["spec"]["containers"][0]["args"];
  ASSERT_EQ(args.Size(), 2u);
  EXPECT_STREQ(args[1].GetString(), "8080");
  EXPECT_STREQ(doc["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].GetString(), "10%");
  EXPECT_STREQ(doc["spec"]["updateStrategy"]["type"].GetString(), "RollingUpdate");
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 1);
  const rapidjson::Value& managed = doc["metadata"]["managedFields"];
  ASSERT_EQ(managed.Size(), 1u);
  EXPECT_STREQ(managed[0]["manager"].GetString(), "ops");
  EXPECT_STREQ(managed[0]["operation"].GetString(), "Apply");
}

TEST_F(EdsApiTest, ApplyOfJsonCreatesTheObject) {
  HttpResponse r = Apply("?fieldManager=ops", Manifest("agent"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Image(Get("agent")), "registry/agent:1.2");
}

TEST_F(EdsApiTest, ReapplyingTheSameConfigurationChangesNothing) {
  ASSERT_EQ(Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2")).status, 201);
  uint64_t rv = workloads_->resource_version();
  std::string before = workloads_->Get("fleet", "agent")->json;
  HttpResponse r = Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(workloads_->resource_version(), rv);
  EXPECT_EQ(workloads_->Get("fleet", "agent")->json, before);
  EXPECT_EQ(Json(r.body)["metadata"]["resourceVersion"].GetString(), std::to_string(rv));
}

TEST_F(EdsApiTest, ApplyThatChangesTheImageBumpsTheGeneration) {
  ASSERT_EQ(Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2")).status, 201);
  HttpResponse r = Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.3"));
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document doc = Get("agent");
  EXPECT_EQ(Image(doc), "registry/agent:1.3");
  EXPECT_EQ(doc["metadata"]["generation"].GetInt64(), 2);
}

TEST_F(EdsApiTest, ApplyOverAnotherManagersFieldIs409WithFieldManagerConflicts) {
  ASSERT_EQ(Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2")).status, 201);
  HttpResponse r = Apply("?fieldManager=other", ApplyYaml("registry/agent:1.3"));
  ASSERT_EQ(r.status, 409) << r.body;
  rapidjson::Document doc = Json(r.body);
  EXPECT_STREQ(doc["reason"].GetString(), "Conflict");
  EXPECT_NE(std::string(doc["message"].GetString()).find("conflict with \"ops\""),
            std::string::npos)
      << r.body;
  const rapidjson::Value& causes = doc["details"]["causes"];
  ASSERT_EQ(causes.Size(), 1u) << r.body;
  EXPECT_STREQ(causes[0]["reason"].GetString(), "FieldManagerConflict");
  EXPECT_STREQ(causes[0]["field"].GetString(),
               R"(.spec.template.spec.containers[name="agent"].image)");
  EXPECT_EQ(Image(Get("agent")), "registry/agent:1.2");
}

TEST_F(EdsApiTest, ApplyWithForceTakesTheFieldOver) {
  ASSERT_EQ(Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2")).status, 201);
  HttpResponse r = Apply("?fieldManager=other&force=true", ApplyYaml("registry/agent:1.3"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Image(Get("agent")), "registry/agent:1.3");
  // The image is other's now: ops' old value conflicts with it.
  HttpResponse back = Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2"));
  EXPECT_EQ(back.status, 409);
  EXPECT_NE(back.body.find("conflict with \\\"other\\\""), std::string::npos) << back.body;
}

TEST_F(EdsApiTest, ApplyOverAnUpdatersFieldConflictsWithTheUpdater) {
  ASSERT_EQ(Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.2")).status, 201);
  ASSERT_EQ(
      Patch(std::string(kEds) + "/agent?fieldManager=kubectl-edit", "application/json-patch+json",
            R"([{"op":"replace","path":"/spec/template/spec/containers/0/image",)"
            R"("value":"registry/agent:hotfix"}])")
          .status,
      200);
  HttpResponse r = Apply("?fieldManager=ops", ApplyYaml("registry/agent:1.3"));
  ASSERT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("conflict with \\\"kubectl-edit\\\""), std::string::npos) << r.body;
}

TEST_F(EdsApiTest, ApplyWithoutFieldManagerIs422) {
  HttpResponse r = Apply("", ApplyYaml("registry/agent:1.2"));
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_STREQ(Json(r.body)["details"]["causes"][0]["field"].GetString(), "fieldManager");
  EXPECT_EQ(workloads_->size(), 0u);
}

TEST_F(EdsApiTest, ApplyWithEmptyFieldManagerIs422) {
  // Upstream requires a non-empty fieldManager for apply; the User-Agent is
  // not a substitute.
  HttpRequest req =
      Request("PATCH", std::string(kEds) + "/agent?fieldManager=", ApplyYaml("registry/agent:1.2"));
  req.headers.emplace("Content-Type", kApply);
  req.headers.emplace("User-Agent", "kubectl/v1.33.1");
  HttpResponse r = Call(req);
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(workloads_->size(), 0u);
}

TEST_F(EdsApiTest, ApplyWithAnotherNameThanTheUrlIs400) {
  HttpResponse r =
      Patch(std::string(kEds) + "/other?fieldManager=ops", kApply, ApplyYaml("registry/a:1"));
  EXPECT_EQ(r.status, 400);
}

TEST_F(EdsApiTest, ApplyThatIsNeitherYamlNorJsonIs400) {
  EXPECT_EQ(Apply("?fieldManager=ops", "kind: [unclosed").status, 400);
}

TEST_F(EdsApiTest, ApplyOfAnInvalidObjectIs422) {
  std::string yaml = ApplyYaml("registry/agent:1.2");
  yaml.replace(yaml.find("10%"), 3, "0");
  HttpResponse r = Apply("?fieldManager=ops", yaml);
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(workloads_->size(), 0u);
}

TEST_F(EdsApiTest, ApplyWithExponentialYamlAliasesIs400) {
  // A "billion laughs" body: a few hundred bytes whose aliases expand to a
  // million values (three more lines make it a billion and exhaust the
  // memory). It must be refused, not expanded.
  std::string yaml =
      "apiVersion: edge.kole.io/v1alpha1\nkind: EdgeDaemonSet\nmetadata: {name: agent}\n"
      "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 5; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", " : "") + prev;
    yaml += "]\n";
  }
  absl::Time start = absl::Now();
  HttpResponse r = Apply("?fieldManager=ops", yaml);
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(workloads_->size(), 0u);
}

TEST_F(EdsApiTest, NodesAndPodsStillAnswer415ToApply) {
  HttpResponse node = Patch("/apis/edge.kole.io/v1alpha1/nodes/n1?fieldManager=ops", kApply,
                            "metadata: {name: n1}\n");
  EXPECT_EQ(node.status, 415);
  EXPECT_NE(node.body.find("server-side apply is not supported"), std::string::npos);
  HttpResponse pod = Patch("/apis/edge.kole.io/v1alpha1/namespaces/fleet/pods/p1?fieldManager=ops",
                           kApply, "metadata: {name: p1}\n");
  EXPECT_EQ(pod.status, 415);
}

// --- Routing ----------------------------------------------------------------------------

TEST_F(EdsApiTest, UnknownSubresourceIs404AndDeleteOfStatusIs405) {
  ASSERT_EQ(Create("agent").status, 201);
  EXPECT_EQ(Call(Request("GET", std::string(kEds) + "/agent/scale")).status, 404);
  EXPECT_EQ(Call(Request("DELETE", std::string(kEds) + "/agent/status")).status, 405);
}

TEST_F(EdsApiTest, WithoutAWorkloadStoreTheResourceIs404) {
  ApiHandler plain(store_.get(), pods_.get(), authenticator_.get(), authorizer_.get(), &metrics_,
                   &health_, &stopping_);
  HttpRequest req = Request("GET", kEds);
  req.headers.emplace("Accept", "application/json");
  EXPECT_EQ(plain.Handle(req, admin_chain_).status, 404);
}

}  // namespace
}  // namespace kole::apiserver

namespace kole::apiserver {
namespace {

TEST_F(EdsApiTest, TemplateTooLargeForOneDeviceMessageIs422) {
  std::string big(1 << 20, 'x');
  std::string spec = R"({"template":{"metadata":{"annotations":{"blob":")" + big +
                     R"("}},"spec":{"containers":[{"name":"c","image":"i"}]}}})";
  HttpResponse r = Create("agent", spec);
  EXPECT_EQ(r.status, 422) << r.body.substr(0, 300);
  EXPECT_NE(r.body.find("spec.template"), std::string::npos);
}

}  // namespace
}  // namespace kole::apiserver
