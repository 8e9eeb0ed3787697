#include "apiserver-ext/pod_json.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"
#include "storage/validation.h"

namespace kole::apiserver {
namespace {

void Pairs(JsonWriter& w, std::string_view key, const storage::StringPairs& pairs) {
  Key(w, key);
  w.StartObject();
  for (const auto& [k, v] : pairs) Field(w, k, v);
  w.EndObject();
}

void Metadata(JsonWriter& w, const storage::Pod& pod) {
  Key(w, "metadata");
  w.StartObject();
  Field(w, "name", pod.name);
  Field(w, "namespace", pod.namespace_);
  Field(w, "uid", pod.uid.ToString());
  Field(w, "resourceVersion", std::to_string(pod.resource_version));
  Field(w, "creationTimestamp", FormatTimestamp(pod.creation_timestamp));
  if (!pod.labels.empty()) Pairs(w, "labels", pod.labels);
  if (!pod.annotations.empty()) Pairs(w, "annotations", pod.annotations);
  if (!pod.owner_references_json.empty()) {
    Key(w, "ownerReferences");
    w.RawValue(pod.owner_references_json.data(), pod.owner_references_json.size(),
               rapidjson::kArrayType);
  }
  w.EndObject();
}

void Raw(JsonWriter& w, std::string_view key, const std::string& json) {
  Key(w, key);
  std::string_view text = json.empty() ? std::string_view("{}") : std::string_view(json);
  w.RawValue(text.data(), text.size(), rapidjson::kObjectType);
}

bool ReadPairs(const rapidjson::Value& v, storage::StringPairs* out, std::string* bad) {
  out->clear();
  if (v.IsNull()) return true;
  if (!v.IsObject()) return false;
  for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
    if (m->value.IsNull()) continue;
    if (!m->value.IsString()) {
      *bad = AsView(m->name);
      return false;
    }
    out->emplace_back(std::string(AsView(m->name)), std::string(AsView(m->value)));
  }
  return true;
}

}  // namespace

void AppendPodJson(const storage::Pod& pod, std::string& out) {
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "Pod");
  Field(w, "apiVersion", kEdgeApiVersion);
  Metadata(w, pod);
  Raw(w, "spec", pod.spec_json);
  Raw(w, "status", pod.status_json);
  w.EndObject();
}

void AppendPodMetadataJson(const storage::Pod& pod, std::string& out) {
  StringSink sink(out);
  JsonWriter w(sink);
  w.StartObject();
  Field(w, "kind", "PartialObjectMetadata");
  Field(w, "apiVersion", "meta.k8s.io/v1");
  Metadata(w, pod);
  w.EndObject();
}

bool ParsePod(const rapidjson::Value& body, ParsedPod* parsed, ApiError* error,
              std::vector<StatusCause>* causes) {
  storage::Pod& pod = parsed->pod;
  if (!body.IsObject()) {
    *error = BadRequest("the request body must be a JSON object");
    return false;
  }
  for (auto m = body.MemberBegin(); m != body.MemberEnd(); ++m) {
    std::string_view name = AsView(m->name);
    const rapidjson::Value& v = m->value;
    if (name == "kind") {
      if (!v.IsString() || AsView(v) != "Pod") {
        *error = BadRequest("the body must have kind Pod");
        return false;
      }
    } else if (name == "apiVersion") {
      if (!v.IsString() || AsView(v) != kEdgeApiVersion) {
        *error = BadRequest(fmt::format("the body must have apiVersion {}", kEdgeApiVersion));
        return false;
      }
    } else if (name == "metadata") {
      if (!v.IsObject()) {
        *error = BadRequest("metadata must be an object");
        return false;
      }
      for (auto f = v.MemberBegin(); f != v.MemberEnd(); ++f) {
        std::string_view field = AsView(f->name);
        const rapidjson::Value& x = f->value;
        std::string bad;
        auto str = [&](std::string* out) {
          if (x.IsNull()) return true;
          if (!x.IsString()) {
            *error = BadRequest(fmt::format("metadata.{} must be a string", field));
            return false;
          }
          out->assign(AsView(x));
          return true;
        };
        if (field == "name") {
          if (!str(&pod.name)) return false;
        } else if (field == "namespace") {
          if (!str(&pod.namespace_)) return false;
        } else if (field == "generateName") {
          if (!str(&parsed->generate_name)) return false;
        } else if (field == "labels" || field == "annotations") {
          if (!ReadPairs(x, field == "labels" ? &pod.labels : &pod.annotations, &bad)) {
            *error = BadRequest(fmt::format("metadata.{} must map strings to strings", field));
            return false;
          }
        } else if (field == "resourceVersion") {
          std::string rv;
          if (!str(&rv)) return false;
          if (!rv.empty()) {
            char* end = nullptr;
            errno = 0;
            parsed->resource_version = strtoull(rv.c_str(), &end, 10);
            if (errno != 0 || *end != '\0') {
              *error = BadRequest(fmt::format("invalid resourceVersion {:?}", rv));
              return false;
            }
            parsed->has_resource_version = true;
          }
        } else if (field != "uid" && field != "creationTimestamp" && field != "generation" &&
                   field != "managedFields" && field != "selfLink" && field != "finalizers" &&
                   field != "ownerReferences" && field != "deletionTimestamp" &&
                   field != "deletionGracePeriodSeconds") {
          parsed->unknown_fields.push_back(fmt::format("metadata.{}", field));
        }
      }
    } else if (name == "spec") {
      if (!v.IsObject()) {
        *error = BadRequest("spec must be an object");
        return false;
      }
      pod.spec_json = JsonToString(v);
      if (const rapidjson::Value* n = Member(v, "nodeName"); n != nullptr && n->IsString()) {
        pod.node_name = AsView(*n);
      }
    } else if (name == "status") {
      if (v.IsNull()) continue;
      if (!v.IsObject()) {
        *error = BadRequest("status must be an object");
        return false;
      }
      pod.status_json = JsonToString(v);
      if (const rapidjson::Value* p = Member(v, "phase"); p != nullptr && p->IsString()) {
        pod.phase = AsView(*p);
      }
    } else {
      parsed->unknown_fields.push_back(std::string(name));
    }
  }
  storage::NormalizePairs(pod.labels);
  storage::NormalizePairs(pod.annotations);
  if (pod.status_json.empty()) pod.status_json = "{}";
  *causes = ValidatePodFields(pod);
  return true;
}

std::vector<StatusCause> ValidatePodFields(const storage::Pod& pod) {
  std::vector<StatusCause> causes;
  auto add = [&](std::string field, std::string_view value, const std::vector<std::string>& errs) {
    for (const std::string& e : errs) {
      causes.push_back(
          {"FieldValueInvalid", fmt::format("Invalid value: {:?}: {}", value, e), field});
    }
  };
  if (pod.name.empty()) {
    causes.push_back({"FieldValueRequired", "Required value: name or generateName is required",
                      "metadata.name"});
  } else {
    add("metadata.name", pod.name, storage::IsDns1123Subdomain(pod.name));
  }
  add("metadata.namespace", pod.namespace_, storage::IsDns1123Label(pod.namespace_));
  for (const auto& [k, v] : pod.labels) {
    add("metadata.labels", k, storage::IsQualifiedName(k));
    add(fmt::format("metadata.labels[{}]", k), v, storage::IsValidLabelValue(v));
  }
  for (const auto& [k, v] : pod.annotations) {
    add("metadata.annotations", k, storage::IsQualifiedName(k));
  }
  if (pod.node_name.empty()) {
    causes.push_back({"FieldValueRequired",
                      "Required value: standalone pods name their node in spec.nodeName",
                      "spec.nodeName"});
  } else {
    add("spec.nodeName", pod.node_name, storage::IsDns1123Subdomain(pod.node_name));
  }
  rapidjson::Document spec;
  spec.Parse<rapidjson::kParseIterativeFlag>(pod.spec_json.data(), pod.spec_json.size());
  const rapidjson::Value* containers = spec.HasParseError() ? nullptr : Member(spec, "containers");
  if (containers == nullptr || !containers->IsArray() || containers->Empty()) {
    causes.push_back({"FieldValueRequired", "Required value", "spec.containers"});
  } else {
    for (rapidjson::SizeType i = 0; i < containers->Size(); ++i) {
      const rapidjson::Value& c = (*containers)[i];
      const rapidjson::Value* name = Member(c, "name");
      const rapidjson::Value* image = Member(c, "image");
      if (name == nullptr || !name->IsString() || name->GetStringLength() == 0) {
        causes.push_back(
            {"FieldValueRequired", "Required value", fmt::format("spec.containers[{}].name", i)});
      } else {
        add(fmt::format("spec.containers[{}].name", i), AsView(*name),
            storage::IsDns1123Label(AsView(*name)));
      }
      if (image == nullptr || !image->IsString() || image->GetStringLength() == 0) {
        causes.push_back(
            {"FieldValueRequired", "Required value", fmt::format("spec.containers[{}].image", i)});
      }
    }
  }
  return causes;
}

namespace {

struct Column {
  std::string_view name;
  std::string_view format;
  std::string_view description;
  int priority;
};

constexpr Column kPodColumns[] = {
    {"Name", "name", "Name must be unique within a namespace.", 0},
    {"Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0},
    {"Status", "", "The aggregate status of the containers in this pod.", 0},
    {"Restarts", "", "The number of times the containers in this pod have been restarted.", 0},
    {"Age", "", "CreationTimestamp of the object, as a duration.", 0},
    {"IP", "", "The IP address assigned to the pod.", 1},
    {"Node", "", "The name of the node the pod runs on.", 1},
    {"Nominated Node", "", "The node this pod is nominated for.", 1},
    {"Readiness Gates", "", "The readiness gates of this pod.", 1},
};

}  // namespace

void AppendPodTableStart(std::string_view version, bool with_columns, std::string& out) {
  out += R"({"kind":"Table","apiVersion":"meta.k8s.io/)";
  out += version;
  out += R"(","columnDefinitions":[)";
  if (with_columns) {
    bool first = true;
    for (const Column& c : kPodColumns) {
      if (!first) out += ',';
      first = false;
      StringSink sink(out);
      JsonWriter w(sink);
      w.StartObject();
      Field(w, "name", c.name);
      Field(w, "type", "string");
      Field(w, "format", c.format);
      Field(w, "description", c.description);
      Key(w, "priority");
      w.Int(c.priority);
      w.EndObject();
    }
  }
  out += R"(],"rows":[)";
}

void AppendPodTableRow(const storage::Pod& pod, int64_t now, IncludeObject include,
                       std::string& out) {
  rapidjson::Document spec, status;
  spec.Parse<rapidjson::kParseIterativeFlag>(pod.spec_json.data(), pod.spec_json.size());
  status.Parse<rapidjson::kParseIterativeFlag>(pod.status_json.data(), pod.status_json.size());
  size_t total = 0, ready = 0;
  int64_t restarts = 0;
  if (const rapidjson::Value* c = spec.HasParseError() ? nullptr : Member(spec, "containers");
      c && c->IsArray()) {
    total = c->Size();
  }
  std::string reason;
  if (const rapidjson::Value* cs =
          status.HasParseError() ? nullptr : Member(status, "containerStatuses");
      cs && cs->IsArray()) {
    for (const rapidjson::Value& s : cs->GetArray()) {
      if (const rapidjson::Value* r = Member(s, "ready"); r && r->IsBool() && r->GetBool()) ++ready;
      if (const rapidjson::Value* r = Member(s, "restartCount"); r && r->IsInt64()) {
        restarts += r->GetInt64();
      }
      // A waiting or terminated container's reason wins over the phase.
      if (const rapidjson::Value* st = Member(s, "state")) {
        for (const char* k : {"waiting", "terminated"}) {
          if (const rapidjson::Value* x = Member(*st, k)) {
            if (const rapidjson::Value* r = Member(*x, "reason"); r && r->IsString()) {
              reason = AsView(*r);
            }
          }
        }
      }
    }
  }
  std::string phase = pod.phase.empty() ? "Pending" : pod.phase;
  if (const rapidjson::Value* r = status.HasParseError() ? nullptr : Member(status, "reason");
      r && r->IsString() && reason.empty()) {
    reason = AsView(*r);
  }
  std::string ip = "<none>";
  if (const rapidjson::Value* p = status.HasParseError() ? nullptr : Member(status, "podIP");
      p && p->IsString() && p->GetStringLength() > 0) {
    ip = AsView(*p);
  }
  std::string cells[] = {pod.name,
                         fmt::format("{}/{}", ready, total),
                         reason.empty() ? phase : reason,
                         std::to_string(restarts),
                         HumanDuration(now - pod.creation_timestamp),
                         ip,
                         pod.node_name.empty() ? "<none>" : pod.node_name,
                         "<none>",
                         "<none>"};
  out += R"({"cells":[)";
  bool first = true;
  for (size_t i = 0; i < std::size(cells); ++i) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(cells[i], out);
  }
  out += ']';
  if (phase == "Succeeded" || phase == "Failed") {
    out += R"(,"conditions":[{"type":"Completed","status":"True"}])";
  }
  if (include == IncludeObject::kMetadata) {
    out += R"(,"object":)";
    AppendPodMetadataJson(pod, out);
  } else if (include == IncludeObject::kObject) {
    out += R"(,"object":)";
    AppendPodJson(pod, out);
  }
  out += '}';
}

}  // namespace kole::apiserver
