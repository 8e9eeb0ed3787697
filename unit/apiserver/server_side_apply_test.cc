// Server-side apply and managedFields bookkeeping (server_side_apply.h):
// ownership, merging by key, pruning, conflicts and the errors an apply
// request can get.

#include "apiserver-ext/server_side_apply.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <string>
#include <string_view>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"

namespace kole::apiserver {
namespace {

constexpr std::string_view kApiVersion = "edge.kole.io/v1alpha1";
constexpr int64_t kStart = 1700000000;  // 2023-11-14T22:13:20Z

rapidjson::Document Parse(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError()) << json;
  return doc;
}

// An EdgeDaemonSet "ds" apply configuration: `labels` (a JSON object or
// empty) and `rest`, the members after metadata.
std::string DaemonSet(std::string_view rest, std::string_view labels = "") {
  std::string out = R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet",)";
  out += R"("metadata":{"name":"ds")";
  if (!labels.empty()) out += std::string(R"(,"labels":)") + std::string(labels);
  out += "}";
  if (!rest.empty()) out += "," + std::string(rest);
  out += "}";
  return out;
}

// `"spec"` holding a pod template with the given containers (JSON items).
std::string Containers(std::string_view items) {
  return std::string(R"("spec":{"template":{"spec":{"containers":[)") + std::string(items) + "]}}}";
}

constexpr std::string_view kAppKey = R"(k:{\"name\":\"app\"})";
constexpr std::string_view kImageField = R"(.spec.template.spec.containers[name="app"].image)";

// Holds the object between requests, as the store would.
class ServerSideApplyTest : public ::testing::Test {
 protected:
  ServerSideApplyTest() { object_.SetObject(); }

  // Applies `config` as `manager`; an apply that goes through becomes the
  // stored state. Each request happens a minute after the previous one.
  ApplyOutcome Apply(const std::string& config, std::string_view manager, bool force = false) {
    rapidjson::Document doc = Parse(config);
    absl::StatusOr<ApplyOutcome> out = ServerSideApply(exists_ ? &object_ : nullptr, managed_, doc,
                                                       manager, force, kApiVersion, now_);
    now_ += 60;
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return ApplyOutcome{};
    if (out->conflicts.empty()) {
      object_.CopyFrom(out->object, object_.GetAllocator());
      managed_ = out->managed_fields_json;
      exists_ = true;
    }
    return std::move(*out);
  }

  absl::Status ApplyStatus(std::string_view config, std::string_view manager) {
    rapidjson::Document doc = Parse(config);
    return ServerSideApply(exists_ ? &object_ : nullptr, managed_, doc, manager, false, kApiVersion,
                           now_)
        .status();
  }

  // A non-apply write by `manager` that replaces the object with `after`.
  void Update(std::string_view after, std::string_view manager) {
    rapidjson::Document doc = Parse(after);
    managed_ =
        RecordUpdate(exists_ ? &object_ : nullptr, doc, managed_, manager, kApiVersion, now_);
    now_ += 60;
    object_.CopyFrom(doc, object_.GetAllocator());
    exists_ = true;
  }

  // The stored value at a JSON pointer, compact, or "absent".
  std::string At(const char* pointer) const {
    const rapidjson::Value* v = rapidjson::Pointer(pointer).Get(object_);
    return v == nullptr ? "absent" : JsonToString(*v);
  }

  // The fieldsV1 of the entry for (manager, operation), or "none".
  std::string Fields(std::string_view manager, std::string_view operation = "Apply") const {
    rapidjson::Document doc = Parse(managed_);
    for (const rapidjson::Value& e : doc.GetArray()) {
      if (AsView(e["manager"]) == manager && AsView(e["operation"]) == operation) {
        return JsonToString(e["fieldsV1"]);
      }
    }
    return "none";
  }

  rapidjson::Document object_;
  std::string managed_;
  bool exists_ = false;
  int64_t now_ = kStart;
};

TEST_F(ServerSideApplyTest, ApplyCreatesTheObjectAndOwnsWhatItNames) {
  std::string config =
      DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})"), R"({"app":"web"})");
  ApplyOutcome out = Apply(config, "kubectl");

  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(JsonToString(out.object), config);
  // apiVersion, kind and metadata.name are merged but owned by nobody.
  EXPECT_EQ(out.managed_fields_json,
            R"([{"manager":"kubectl","operation":"Apply","apiVersion":"edge.kole.io/v1alpha1",)"
            R"("time":"2023-11-14T22:13:20Z","fieldsType":"FieldsV1","fieldsV1":{)"
            R"("f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:template":{"f:spec":{)"
            R"("f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}])");
}

TEST_F(ServerSideApplyTest, ReapplyingTheSameConfigChangesNothing) {
  std::string config =
      DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})"), R"({"app":"web"})");
  Apply(config, "kubectl");
  std::string object_before = JsonToString(object_);
  std::string managed_before = managed_;

  ApplyOutcome again = Apply(config, "kubectl");

  EXPECT_TRUE(again.conflicts.empty());
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(JsonToString(again.object), object_before);
  // Byte for byte, the time of the first apply included.
  EXPECT_EQ(again.managed_fields_json, managed_before);
}

TEST_F(ServerSideApplyTest, DifferentValueForAnotherManagersFieldConflicts) {
  Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "kubectl");
  std::string managed_before = managed_;

  ApplyOutcome out = Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:2"})")), "ci");

  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].manager, "kubectl");
  EXPECT_EQ(out.conflicts[0].operation, "Apply");
  EXPECT_EQ(out.conflicts[0].field, kImageField);
  EXPECT_FALSE(out.changed);
  EXPECT_EQ(At("/spec/template/spec/containers/0/image"), R"("nginx:1")");
  EXPECT_EQ(JsonToString(out.object), JsonToString(object_));
  EXPECT_EQ(out.managed_fields_json, managed_before);
  EXPECT_EQ(ApplyConflictMessage(out.conflicts),
            std::string(R"(Apply failed with 1 conflict: conflict with "kubectl": )") +
                std::string(kImageField));
}

TEST_F(ServerSideApplyTest, ForceMovesTheFieldToTheApplier) {
  Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "kubectl");

  ApplyOutcome out =
      Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:2"})")), "ci", /*force=*/true);

  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(At("/spec/template/spec/containers/0/image"), R"("nginx:2")");
  std::string prefix = R"({"f:spec":{"f:template":{"f:spec":{"f:containers":{")";
  EXPECT_EQ(Fields("ci"),
            prefix + std::string(kAppKey) + R"(":{".":{},"f:image":{},"f:name":{}}}}}}})");
  // kubectl keeps the item it also named, loses the image.
  EXPECT_EQ(Fields("kubectl"), prefix + std::string(kAppKey) + R"(":{".":{},"f:name":{}}}}}}})");
}

TEST_F(ServerSideApplyTest, SameValueSharesOwnershipUntilTheLastOwnerLetsGo) {
  Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "kubectl");

  ApplyOutcome shared = Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "ci");
  EXPECT_TRUE(shared.conflicts.empty());
  EXPECT_FALSE(shared.changed);
  EXPECT_NE(Fields("kubectl").find("f:image"), std::string::npos);
  EXPECT_NE(Fields("ci").find("f:image"), std::string::npos);

  // kubectl stops naming the image: ci still owns it, so it stays.
  Apply(DaemonSet(Containers(R"({"name":"app"})")), "kubectl");
  EXPECT_EQ(At("/spec/template/spec/containers/0/image"), R"("nginx:1")");
  EXPECT_EQ(Fields("kubectl").find("f:image"), std::string::npos);

  // ci stops naming anything: its entry goes, and the image with it; the item
  // kubectl still names stays.
  ApplyOutcome last = Apply(DaemonSet(""), "ci");
  EXPECT_TRUE(last.changed);
  EXPECT_EQ(Fields("ci"), "none");
  EXPECT_EQ(At("/spec/template/spec/containers"), R"([{"name":"app"}])");
}

TEST_F(ServerSideApplyTest, FieldLeftOutOfTheConfigIsRemoved) {
  Apply(DaemonSet(R"("spec":{"minReadySeconds":5,"revisionHistoryLimit":3})",
                  R"({"app":"web","tier":"edge"})"),
        "kubectl");

  ApplyOutcome out =
      Apply(DaemonSet(R"("spec":{"revisionHistoryLimit":3})", R"({"app":"web"})"), "kubectl");

  EXPECT_TRUE(out.changed);
  EXPECT_EQ(At("/metadata/labels"), R"({"app":"web"})");
  EXPECT_EQ(At("/spec"), R"({"revisionHistoryLimit":3})");
  EXPECT_EQ(Fields("kubectl"),
            R"({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:revisionHistoryLimit":{}}})");

  // Leaving out the last label removes the emptied labels map as well.
  Apply(DaemonSet(R"("spec":{"revisionHistoryLimit":3})"), "kubectl");
  EXPECT_EQ(At("/metadata"), R"({"name":"ds"})");
}

TEST_F(ServerSideApplyTest, ListItemsMergeByKeyAndEachManagerOwnsItsOwn) {
  Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "kubectl");
  ApplyOutcome sidecar =
      Apply(DaemonSet(Containers(R"({"name":"proxy","image":"envoy:1"})")), "injector");

  EXPECT_TRUE(sidecar.conflicts.empty());
  EXPECT_EQ(At("/spec/template/spec/containers"),
            R"([{"name":"app","image":"nginx:1"},{"name":"proxy","image":"envoy:1"}])");
  EXPECT_EQ(Fields("injector").find("app"), std::string::npos);
  EXPECT_NE(Fields("injector").find(R"(k:{\"name\":\"proxy\"})"), std::string::npos);

  // kubectl changes its own container; the sidecar is not its business.
  ApplyOutcome update =
      Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:2"})")), "kubectl");
  EXPECT_TRUE(update.conflicts.empty());
  EXPECT_EQ(At("/spec/template/spec/containers"),
            R"([{"name":"app","image":"nginx:2"},{"name":"proxy","image":"envoy:1"}])");

  // The injector withdraws: only its item goes.
  Apply(DaemonSet(""), "injector");
  EXPECT_EQ(At("/spec/template/spec/containers"), R"([{"name":"app","image":"nginx:2"}])");
}

TEST_F(ServerSideApplyTest, NestedListsMergeByTheirOwnKeys) {
  Apply(DaemonSet(Containers(R"({"name":"app","env":[{"name":"A","value":"1"}],)"
                             R"("ports":[{"containerPort":80}]})")),
        "kubectl");
  ApplyOutcome out =
      Apply(DaemonSet(Containers(R"({"name":"app","env":[{"name":"B","value":"2"}],)"
                                 R"("ports":[{"containerPort":80,"protocol":"UDP"}]})")),
            "tuner");

  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(At("/spec/template/spec/containers/0/env"),
            R"([{"name":"A","value":"1"},{"name":"B","value":"2"}])");
  // A port without protocol is keyed as TCP, so 80/UDP is a second item.
  EXPECT_EQ(At("/spec/template/spec/containers/0/ports"),
            R"([{"containerPort":80},{"containerPort":80,"protocol":"UDP"}])");
  EXPECT_NE(Fields("kubectl").find(R"(k:{\"containerPort\":80,\"protocol\":\"TCP\"})"),
            std::string::npos);
  EXPECT_NE(Fields("tuner").find(R"(k:{\"containerPort\":80,\"protocol\":\"UDP\"})"),
            std::string::npos);
}

TEST_F(ServerSideApplyTest, AtomicListsAreOwnedAndReplacedWhole) {
  std::string kubectl_config =
      DaemonSet(R"("spec":{"template":{"spec":{"tolerations":[{"key":"a"},{"key":"b"}]}}})");
  Apply(kubectl_config, "kubectl");
  EXPECT_EQ(Fields("kubectl"), R"({"f:spec":{"f:template":{"f:spec":{"f:tolerations":{}}}}})");

  std::string ci_config =
      DaemonSet(R"("spec":{"template":{"spec":{"tolerations":[{"key":"c"}]}}})");
  ApplyOutcome conflict = Apply(ci_config, "ci");
  ASSERT_EQ(conflict.conflicts.size(), 1u);
  EXPECT_EQ(conflict.conflicts[0].field, ".spec.template.spec.tolerations");

  Apply(ci_config, "ci", /*force=*/true);
  EXPECT_EQ(At("/spec/template/spec/tolerations"), R"([{"key":"c"}])");
  EXPECT_EQ(Fields("kubectl"), "none");
}

TEST_F(ServerSideApplyTest, EditedFieldConflictsWithTheEditorOnTheNextApply) {
  std::string config =
      DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})"), R"({"app":"web"})");
  Apply(config, "kubectl");

  // kubectl edit changes the image with a merge patch (operation Update).
  Update(DaemonSet(Containers(R"({"name":"app","image":"nginx:9"})"), R"({"app":"web"})"),
         "kubectl-edit");
  EXPECT_EQ(Fields("kubectl-edit", "Update"),
            std::string(R"({"f:spec":{"f:template":{"f:spec":{"f:containers":{")") +
                std::string(kAppKey) + R"(":{"f:image":{}}}}}}})");
  EXPECT_EQ(Fields("kubectl").find("f:image"), std::string::npos);

  ApplyOutcome out = Apply(config, "kubectl");
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].manager, "kubectl-edit");
  EXPECT_EQ(out.conflicts[0].operation, "Update");
  EXPECT_EQ(out.conflicts[0].field, kImageField);
  EXPECT_EQ(ApplyConflictMessage(out.conflicts),
            std::string(R"(Apply failed with 1 conflict: conflict with "kubectl-edit" using )"
                        R"(edge.kole.io/v1alpha1: )") +
                std::string(kImageField));
  EXPECT_EQ(ApplyConflictCauseMessage(out.conflicts[0]),
            R"(conflict with "kubectl-edit" using edge.kole.io/v1alpha1)");
  EXPECT_EQ(At("/spec/template/spec/containers/0/image"), R"("nginx:9")");
}

TEST_F(ServerSideApplyTest, ConflictsWithSeveralOwnersAreGroupedByOwner) {
  Apply(DaemonSet(R"("spec":{"minReadySeconds":1,"revisionHistoryLimit":2})"), "alpha");
  Apply(DaemonSet(R"("spec":{"updateStrategy":{"type":"OnDelete"}})"), "beta");

  ApplyOutcome out = Apply(
      DaemonSet(
          R"("spec":{"minReadySeconds":3,"revisionHistoryLimit":4,"updateStrategy":{"type":"X"}})"),
      "gamma");

  ASSERT_EQ(out.conflicts.size(), 3u);
  EXPECT_EQ(ApplyConflictMessage(out.conflicts),
            "Apply failed with 3 conflicts: conflicts with \"alpha\":\n"
            "- .spec.minReadySeconds\n"
            "- .spec.revisionHistoryLimit\n"
            "conflicts with \"beta\":\n"
            "- .spec.updateStrategy.type");
}

TEST_F(ServerSideApplyTest, RecordUpdateOnCreateOwnsEveryFieldButServerSetOnes) {
  Update(R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet",)"
         R"("metadata":{"name":"ds","uid":"u1","resourceVersion":"7","labels":{"a":"b"}},)"
         R"("spec":{"minReadySeconds":1},"status":{"numberReady":0}})",
         "kubectl-create");

  EXPECT_EQ(managed_, R"([{"manager":"kubectl-create","operation":"Update",)"
                      R"("apiVersion":"edge.kole.io/v1alpha1","time":"2023-11-14T22:13:20Z",)"
                      R"("fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:a":{}}},)"
                      R"("f:spec":{"f:minReadySeconds":{}}}}])");

  // A write that changes nothing leaves the entries as they were.
  std::string before = managed_;
  Update(JsonToString(object_), "kubectl-edit");
  EXPECT_EQ(managed_, before);
}

TEST_F(ServerSideApplyTest, ApplyToAnObjectWithoutManagedFieldsMeetsBeforeFirstApply) {
  object_ = Parse(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")));
  exists_ = true;

  ApplyOutcome conflict = Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:2"})")), "k");
  ASSERT_EQ(conflict.conflicts.size(), 1u);
  EXPECT_EQ(conflict.conflicts[0].manager, kBeforeFirstApplyManager);
  EXPECT_EQ(conflict.managed_fields_json, "");

  ApplyOutcome same = Apply(DaemonSet(Containers(R"({"name":"app","image":"nginx:1"})")), "k");
  EXPECT_TRUE(same.conflicts.empty());
  EXPECT_FALSE(same.changed);
  EXPECT_NE(Fields(kBeforeFirstApplyManager, "Update").find("f:image"), std::string::npos);
}

TEST_F(ServerSideApplyTest, NullRemovesTheFieldAndIsOwned) {
  Apply(DaemonSet(R"("spec":{"minReadySeconds":5,"revisionHistoryLimit":3})"), "kubectl");

  ApplyOutcome other = Apply(DaemonSet(R"("spec":{"minReadySeconds":null})"), "ci");
  ASSERT_EQ(other.conflicts.size(), 1u);
  EXPECT_EQ(other.conflicts[0].field, ".spec.minReadySeconds");

  Apply(DaemonSet(R"("spec":{"minReadySeconds":null,"revisionHistoryLimit":3})"), "kubectl");
  EXPECT_EQ(At("/spec"), R"({"revisionHistoryLimit":3})");
  EXPECT_EQ(Fields("kubectl"),
            R"({"f:spec":{"f:minReadySeconds":{},"f:revisionHistoryLimit":{}}})");
}

TEST_F(ServerSideApplyTest, StatusAndServerSetMetadataAreNeitherMergedNorOwned) {
  object_ = Parse(
      R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet","metadata":{"name":"ds",)"
      R"("uid":"u1","resourceVersion":"7","managedFields":[]},"status":{"numberReady":4}})");
  exists_ = true;
  managed_ = "[]";

  ApplyOutcome out = Apply(
      R"({"apiVersion":"edge.kole.io/v1alpha1","kind":"EdgeDaemonSet","metadata":{"name":"ds",)"
      R"("uid":"other","resourceVersion":"1","generation":9},"status":{"numberReady":0},)"
      R"("spec":{"minReadySeconds":1}})",
      "kubectl");

  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(At("/metadata"), R"({"name":"ds","uid":"u1","resourceVersion":"7"})");
  EXPECT_EQ(At("/status"), R"({"numberReady":4})");
  EXPECT_EQ(At("/spec"), R"({"minReadySeconds":1})");
  EXPECT_EQ(Fields("kubectl"), R"({"f:spec":{"f:minReadySeconds":{}}})");
}

TEST_F(ServerSideApplyTest, MalformedManagedFieldsEntriesAreDropped) {
  object_ = Parse(DaemonSet(R"("spec":{"minReadySeconds":1,"revisionHistoryLimit":2})"));
  exists_ = true;
  managed_ = R"([{"manager":"broken"},"junk",{"manager":"kubectl","operation":"Apply",)"
             R"("fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:minReadySeconds":{},)"
             R"("f:revisionHistoryLimit":{}}}}])";

  // The valid entry is read: leaving a field out prunes it.
  ApplyOutcome out = Apply(DaemonSet(R"("spec":{"revisionHistoryLimit":2})"), "kubectl");
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(At("/spec"), R"({"revisionHistoryLimit":2})");
  EXPECT_EQ(out.managed_fields_json.find("broken"), std::string::npos);
  EXPECT_EQ(Fields("kubectl"), R"({"f:spec":{"f:revisionHistoryLimit":{}}})");
}

TEST_F(ServerSideApplyTest, StoredListWithRepeatedKeysIsTreatedAsAtomic) {
  object_ = Parse(DaemonSet(Containers(R"({"name":"a","image":"1"},{"name":"a","image":"2"})")));
  exists_ = true;
  std::string config = DaemonSet(Containers(R"({"name":"a","image":"3"})"));

  ApplyOutcome conflict = Apply(config, "kubectl");
  ASSERT_EQ(conflict.conflicts.size(), 1u);
  EXPECT_EQ(conflict.conflicts[0].field, ".spec.template.spec.containers");

  Apply(config, "kubectl", /*force=*/true);
  EXPECT_EQ(At("/spec/template/spec/containers"), R"([{"name":"a","image":"3"}])");
}

TEST_F(ServerSideApplyTest, ConfigNestedTooDeepIsRejected) {
  std::string deep;
  for (int i = 0; i < kMaxJsonDepth + 10; ++i) deep += R"({"a":)";
  deep += "1";
  deep += std::string(kMaxJsonDepth + 10, '}');
  absl::Status status = ApplyStatus(DaemonSet(R"("spec":)" + deep), "kubectl");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST_F(ServerSideApplyTest, ConfigThatIsNotAnObjectIsRejected) {
  absl::Status status = ApplyStatus("[]", "kubectl");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerSideApplyTest, MissingOrOverlongFieldManagerIsRejected) {
  std::string config = DaemonSet(R"("spec":{"minReadySeconds":1})");
  EXPECT_EQ(ApplyStatus(config, "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyStatus(config, std::string(kMaxFieldManagerLength + 1, 'm')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ApplyStatus(config, std::string(kMaxFieldManagerLength, 'm')).ok());
}

TEST_F(ServerSideApplyTest, ListItemWithoutItsKeyIsRejected) {
  absl::Status status =
      ApplyStatus(DaemonSet(Containers(R"({"name":"app"},{"image":"nginx:1"})")), "kubectl");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(".spec.template.spec.containers[1]"), std::string_view::npos)
      << status;
  EXPECT_NE(status.message().find("\"name\""), std::string_view::npos) << status;

  // A port's protocol has a default, its containerPort does not.
  std::string port = Containers(R"({"name":"app","ports":[{"protocol":"UDP"}]})");
  EXPECT_EQ(ApplyStatus(DaemonSet(port), "kubectl").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerSideApplyTest, DuplicateKeysAreRejected) {
  absl::Status status =
      ApplyStatus(DaemonSet(Containers(R"({"name":"app"},{"name":"app","image":"x"})")), "kubectl");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(R"(duplicate entries for key [name="app"])"),
            std::string_view::npos)
      << status;

  // 80 and 80/TCP are the same port.
  std::string ports = Containers(R"({"name":"app","ports":[{"containerPort":80},)"
                                 R"({"containerPort":80,"protocol":"TCP"}]})");
  EXPECT_EQ(ApplyStatus(DaemonSet(ports), "kubectl").code(), absl::StatusCode::kInvalidArgument);

  // Atomic lists may repeat anything.
  EXPECT_TRUE(ApplyStatus(DaemonSet(R"("spec":{"template":{"spec":{"tolerations":)"
                                    R"([{"key":"a"},{"key":"a"}]}}})"),
                          "kubectl")
                  .ok());
}

}  // namespace
}  // namespace kole::apiserver
