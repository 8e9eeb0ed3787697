#include "apiserver-ext/eds_json.h"

#include <fmt/format.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <set>
#include <span>

#include "apiserver-ext/json_patch.h"
#include "apiserver-ext/json_util.h"
#include "apiserver-ext/node_json.h"
#include "storage/validation.h"

namespace kole::apiserver {
namespace {

using rapidjson::Value;

constexpr std::string_view kKnownMetadata[] = {"name",
                                               "namespace",
                                               "generateName",
                                               "uid",
                                               "labels",
                                               "annotations",
                                               "resourceVersion",
                                               "generation",
                                               "creationTimestamp",
                                               "managedFields",
                                               "selfLink",
                                               "finalizers",
                                               "ownerReferences",
                                               "deletionTimestamp",
                                               "deletionGracePeriodSeconds"};
constexpr std::string_view kKnownSpec[] = {"nodeSelector",         "template",
                                           "updateStrategy",       "minReadySeconds",
                                           "revisionHistoryLimit", "selector"};

bool Known(std::string_view name, std::span<const std::string_view> known) {
  for (std::string_view k : known) {
    if (k == name) return true;
  }
  return false;
}

void Cause(std::vector<StatusCause>& causes, std::string_view type, std::string message,
           std::string field) {
  causes.push_back({std::string(type), std::move(message), std::move(field)});
}

void CheckNames(std::vector<StatusCause>& causes, const std::string& field, std::string_view value,
                const std::vector<std::string>& errors) {
  for (const std::string& e : errors) {
    Cause(causes, "FieldValueInvalid", fmt::format("Invalid value: {:?}: {}", value, e), field);
  }
}

void CheckStringMap(std::vector<StatusCause>& causes, const Value* map, const std::string& field,
                    bool values_are_labels) {
  if (map == nullptr || map->IsNull()) return;
  if (!map->IsObject()) {
    Cause(causes, "FieldValueTypeInvalid", "must be an object of strings", field);
    return;
  }
  for (auto m = map->MemberBegin(); m != map->MemberEnd(); ++m) {
    std::string_view key = AsView(m->name);
    CheckNames(causes, field, key, storage::IsQualifiedName(key));
    if (!m->value.IsString()) {
      Cause(causes, "FieldValueTypeInvalid", "must be a string", fmt::format("{}[{}]", field, key));
    } else if (values_are_labels) {
      CheckNames(causes, fmt::format("{}[{}]", field, key), AsView(m->value),
                 storage::IsValidLabelValue(AsView(m->value)));
    }
  }
}

// metav1.LabelSelector -> requirements; causes for what is wrong.
std::optional<storage::LabelSelector> ParseNodeSelector(const Value* selector,
                                                        std::vector<StatusCause>& causes) {
  std::vector<storage::LabelRequirement> requirements;
  if (selector == nullptr || selector->IsNull()) return storage::LabelSelector::Everything();
  if (!selector->IsObject()) {
    Cause(causes, "FieldValueTypeInvalid", "must be a label selector", "spec.nodeSelector");
    return std::nullopt;
  }
  std::string text;
  auto add = [&](std::string part) {
    if (!text.empty()) text += ',';
    text += part;
  };
  if (const Value* ml = Member(*selector, "matchLabels"); ml && !ml->IsNull()) {
    CheckStringMap(causes, ml, "spec.nodeSelector.matchLabels", true);
    if (ml->IsObject()) {
      for (auto m = ml->MemberBegin(); m != ml->MemberEnd(); ++m) {
        if (m->value.IsString()) add(fmt::format("{}={}", AsView(m->name), AsView(m->value)));
      }
    }
  }
  if (const Value* me = Member(*selector, "matchExpressions"); me && !me->IsNull()) {
    if (!me->IsArray()) {
      Cause(causes, "FieldValueTypeInvalid", "must be a list",
            "spec.nodeSelector.matchExpressions");
    } else {
      for (rapidjson::SizeType i = 0; i < me->Size(); ++i) {
        const Value& e = (*me)[i];
        std::string field = fmt::format("spec.nodeSelector.matchExpressions[{}]", i);
        const Value* key = Member(e, "key");
        const Value* op = Member(e, "operator");
        const Value* values = Member(e, "values");
        if (key == nullptr || !key->IsString() || op == nullptr || !op->IsString()) {
          Cause(causes, "FieldValueRequired", "Required value: key and operator", field);
          continue;
        }
        std::vector<std::string> vals;
        if (values != nullptr && values->IsArray()) {
          for (const Value& v : values->GetArray()) {
            if (v.IsString()) vals.emplace_back(AsView(v));
          }
        }
        std::string_view o = AsView(*op);
        std::string joined = fmt::format("{}", fmt::join(vals, ","));
        if (o == "In" || o == "NotIn") {
          if (vals.empty()) {
            Cause(causes, "FieldValueRequired",
                  "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                  field + ".values");
            continue;
          }
          add(fmt::format("{} {} ({})", AsView(*key), o == "In" ? "in" : "notin", joined));
        } else if (o == "Exists" || o == "DoesNotExist") {
          if (!vals.empty()) {
            Cause(causes, "FieldValueForbidden",
                  "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                  field + ".values");
            continue;
          }
          add(fmt::format("{}{}", o == "Exists" ? "" : "!", AsView(*key)));
        } else {
          Cause(causes, "FieldValueNotSupported",
                fmt::format("Unsupported value: {:?}: supported values: \"In\", \"NotIn\", "
                            "\"Exists\", \"DoesNotExist\"",
                            o),
                field + ".operator");
        }
      }
    }
  }
  absl::StatusOr<storage::LabelSelector> parsed = storage::LabelSelector::Parse(text);
  if (!parsed.ok()) {
    Cause(causes, "FieldValueInvalid", std::string(parsed.status().message()), "spec.nodeSelector");
    return std::nullopt;
  }
  return *parsed;
}

// maxUnavailable: an integer or "<n>%".
bool ParseMaxUnavailable(const Value& v, uint32_t* value, bool* percent) {
  if (v.IsUint()) {
    *value = v.GetUint();
    *percent = false;
    return true;
  }
  if (!v.IsString()) return false;
  std::string_view s = AsView(v);
  *percent = !s.empty() && s.back() == '%';
  if (*percent) s.remove_suffix(1);
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), *value);
  return err == std::errc() && end == s.data() + s.size() && !s.empty() &&
         (!*percent || *value <= 100);
}

std::string SelectorText(const Value& object) {
  const Value* spec = Member(object, "spec");
  const Value* sel = spec ? Member(*spec, "nodeSelector") : nullptr;
  std::vector<StatusCause> ignored;
  std::optional<storage::LabelSelector> parsed = ParseNodeSelector(sel, ignored);
  if (!parsed || parsed->Empty()) return "<none>";
  return parsed->String();
}

uint64_t StatusCount(const Value& object, std::string_view field) {
  const Value* status = Member(object, "status");
  const Value* v = status ? Member(*status, field) : nullptr;
  return v != nullptr && v->IsUint64() ? v->GetUint64() : 0;
}

std::string WithResourceVersion(const Value& object, uint64_t rv) {
  rapidjson::Document doc;
  doc.CopyFrom(object, doc.GetAllocator());
  Value* meta = const_cast<Value*>(Member(doc, "metadata"));
  if (meta != nullptr && meta->IsObject()) {
    std::string text = std::to_string(rv);
    meta->RemoveMember("resourceVersion");
    meta->AddMember("resourceVersion", Value(text.c_str(), doc.GetAllocator()), doc.GetAllocator());
  }
  return JsonToString(doc);
}

}  // namespace

bool CheckEdsBody(const Value& body, ApiError* error, std::vector<std::string>* unknown) {
  if (!body.IsObject()) {
    *error = BadRequest("the request body must be a JSON object");
    return false;
  }
  for (auto m = body.MemberBegin(); m != body.MemberEnd(); ++m) {
    std::string_view name = AsView(m->name);
    const Value& v = m->value;
    if (name == "kind") {
      if (!v.IsString() || AsView(v) != kEdsKind) {
        *error = BadRequest("the body must have kind EdgeDaemonSet");
        return false;
      }
    } else if (name == "apiVersion") {
      if (!v.IsString() || AsView(v) != kEdgeApiVersion) {
        *error = BadRequest(fmt::format("the body must have apiVersion {}", kEdgeApiVersion));
        return false;
      }
    } else if (name == "metadata" || name == "spec" || name == "status") {
      if (!v.IsObject() && !(name == "status" && v.IsNull())) {
        *error = BadRequest(fmt::format("{} must be an object", name));
        return false;
      }
      if (!v.IsObject()) continue;
      for (auto f = v.MemberBegin(); f != v.MemberEnd(); ++f) {
        std::string_view field = AsView(f->name);
        if (name == "metadata") {
          if (!Known(field, kKnownMetadata)) unknown->push_back(fmt::format("metadata.{}", field));
          bool text = field == "name" || field == "namespace" || field == "generateName" ||
                      field == "resourceVersion" || field == "uid";
          if (text && !f->value.IsString() && !f->value.IsNull()) {
            *error = BadRequest(fmt::format("metadata.{} must be a string", field));
            return false;
          }
        } else if (name == "spec" && !Known(field, kKnownSpec)) {
          unknown->push_back(fmt::format("spec.{}", field));
        }
      }
    } else {
      unknown->push_back(std::string(name));
    }
  }
  return true;
}

std::vector<StatusCause> ValidateEds(const Value& object) {
  std::vector<StatusCause> causes;
  const Value* meta = Member(object, "metadata");
  const Value* name = meta ? Member(*meta, "name") : nullptr;
  const Value* ns = meta ? Member(*meta, "namespace") : nullptr;
  if (name == nullptr || !name->IsString() || name->GetStringLength() == 0) {
    Cause(causes, "FieldValueRequired", "Required value: name or generateName is required",
          "metadata.name");
  } else {
    std::vector<std::string> errors = storage::IsDns1123Label(AsView(*name));
    CheckNames(causes, "metadata.name", AsView(*name), errors);
  }
  if (ns != nullptr && ns->IsString()) {
    CheckNames(causes, "metadata.namespace", AsView(*ns), storage::IsDns1123Label(AsView(*ns)));
  }
  if (meta != nullptr) {
    CheckStringMap(causes, Member(*meta, "labels"), "metadata.labels", true);
    CheckStringMap(causes, Member(*meta, "annotations"), "metadata.annotations", false);
  }

  const Value* spec = Member(object, "spec");
  if (spec == nullptr || !spec->IsObject()) {
    Cause(causes, "FieldValueRequired", "Required value", "spec");
    return causes;
  }
  ParseNodeSelector(Member(*spec, "nodeSelector"), causes);

  const Value* strategy = Member(*spec, "updateStrategy");
  if (strategy != nullptr && strategy->IsObject()) {
    const Value* type = Member(*strategy, "type");
    if (type != nullptr &&
        (!type->IsString() || (AsView(*type) != "RollingUpdate" && AsView(*type) != "OnDelete"))) {
      Cause(causes, "FieldValueNotSupported",
            "Unsupported value: supported values: \"OnDelete\", \"RollingUpdate\"",
            "spec.updateStrategy.type");
    }
    const Value* rolling = Member(*strategy, "rollingUpdate");
    const Value* mu = rolling ? Member(*rolling, "maxUnavailable") : nullptr;
    uint32_t value = 0;
    bool percent = false;
    if (mu != nullptr && !mu->IsNull()) {
      if (!ParseMaxUnavailable(*mu, &value, &percent)) {
        Cause(causes, "FieldValueInvalid",
              "Invalid value: must be an integer or a percentage such as \"10%\"",
              "spec.updateStrategy.rollingUpdate.maxUnavailable");
      } else if (value == 0) {
        Cause(causes, "FieldValueInvalid", "Invalid value: 0: cannot be 0",
              "spec.updateStrategy.rollingUpdate.maxUnavailable");
      }
    }
  }

  const Value* tmpl = Member(*spec, "template");
  // The template travels to devices in one message of at most 1 MiB.
  if (tmpl != nullptr && JsonToString(*tmpl).size() > kMaxTemplateBytes) {
    Cause(causes, "FieldValueTooLong",
          fmt::format("Too long: the pod template must stay under {} bytes: devices receive it in "
                      "one message",
                      kMaxTemplateBytes),
          "spec.template");
  }
  const Value* tmeta = tmpl ? Member(*tmpl, "metadata") : nullptr;
  if (tmeta != nullptr) {
    CheckStringMap(causes, Member(*tmeta, "labels"), "spec.template.metadata.labels", true);
    CheckStringMap(causes, Member(*tmeta, "annotations"), "spec.template.metadata.annotations",
                   false);
  }
  const Value* pod = tmpl ? Member(*tmpl, "spec") : nullptr;
  const Value* containers = pod ? Member(*pod, "containers") : nullptr;
  if (containers == nullptr || !containers->IsArray() || containers->Empty()) {
    Cause(causes, "FieldValueRequired", "Required value", "spec.template.spec.containers");
    return causes;
  }
  std::set<std::string_view> names;
  for (rapidjson::SizeType i = 0; i < containers->Size(); ++i) {
    const Value& c = (*containers)[i];
    std::string base = fmt::format("spec.template.spec.containers[{}]", i);
    const Value* cname = Member(c, "name");
    const Value* image = Member(c, "image");
    if (cname == nullptr || !cname->IsString() || cname->GetStringLength() == 0) {
      Cause(causes, "FieldValueRequired", "Required value", base + ".name");
    } else {
      CheckNames(causes, base + ".name", AsView(*cname), storage::IsDns1123Label(AsView(*cname)));
      if (!names.insert(AsView(*cname)).second) {
        Cause(causes, "FieldValueDuplicate", fmt::format("Duplicate value: {:?}", AsView(*cname)),
              base + ".name");
      }
    }
    if (image == nullptr || !image->IsString() || image->GetStringLength() == 0) {
      Cause(causes, "FieldValueRequired", "Required value", base + ".image");
    }
    for (const char* list : {"command", "args"}) {
      const Value* v = Member(c, list);
      if (v == nullptr || v->IsNull()) continue;
      bool ok = v->IsArray();
      if (ok) {
        for (const Value& s : v->GetArray()) ok = ok && s.IsString();
      }
      if (!ok)
        Cause(causes, "FieldValueTypeInvalid", "must be a list of strings", base + "." + list);
    }
    if (const Value* env = Member(c, "env"); env != nullptr && env->IsArray()) {
      for (rapidjson::SizeType j = 0; j < env->Size(); ++j) {
        // Templates are published to every device allowed to read the
        // workload topics (docs/protocol.md): they must not carry secrets.
        if (Member((*env)[j], "valueFrom") != nullptr) {
          Cause(causes, "FieldValueForbidden",
                "Forbidden: templates are sent to every device in the fleet and may not refer "
                "to secrets or other objects; give the value or let the device read it locally",
                fmt::format("{}.env[{}].valueFrom", base, j));
        }
      }
    }
    if (Member(c, "envFrom") != nullptr) {
      Cause(causes, "FieldValueForbidden",
            "Forbidden: templates are sent to every device and may not refer to secrets or "
            "config maps",
            base + ".envFrom");
    }
  }
  if (const Value* policy = Member(*pod, "restartPolicy"); policy != nullptr) {
    std::string_view p = policy->IsString() ? AsView(*policy) : "";
    if (p != "Always" && p != "OnFailure" && p != "Never") {
      Cause(causes, "FieldValueNotSupported",
            "Unsupported value: supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.template.spec.restartPolicy");
    }
  }
  if (const Value* tol = Member(*pod, "tolerations"); tol != nullptr && !tol->IsNull()) {
    if (!tol->IsArray()) {
      Cause(causes, "FieldValueTypeInvalid", "must be a list", "spec.template.spec.tolerations");
    } else {
      for (rapidjson::SizeType i = 0; i < tol->Size(); ++i) {
        const Value* op = Member((*tol)[i], "operator");
        if (op != nullptr &&
            (!op->IsString() || (AsView(*op) != "Exists" && AsView(*op) != "Equal"))) {
          Cause(causes, "FieldValueNotSupported",
                "Unsupported value: supported values: \"Equal\", \"Exists\"",
                fmt::format("spec.template.spec.tolerations[{}].operator", i));
        }
      }
    }
  }
  if (const Value* vols = Member(*pod, "volumes"); vols != nullptr && vols->IsArray()) {
    for (rapidjson::SizeType i = 0; i < vols->Size(); ++i) {
      if (Member((*vols)[i], "secret") != nullptr || Member((*vols)[i], "configMap") != nullptr) {
        Cause(causes, "FieldValueForbidden",
              "Forbidden: templates are sent to every device and may not mount secrets or config "
              "maps",
              fmt::format("spec.template.spec.volumes[{}]", i));
      }
    }
  }
  return causes;
}

void DefaultEds(rapidjson::Document& object) {
  auto& a = object.GetAllocator();
  auto ensure = [&](Value& parent, const char* key, rapidjson::Type type) -> Value& {
    if (!parent.HasMember(key)) parent.AddMember(Value(key, a), Value(type), a);
    Value& v = parent[key];
    if (v.IsNull()) v.SetObject();
    return v;
  };
  Value& spec = ensure(object, "spec", rapidjson::kObjectType);
  if (!spec.IsObject()) return;
  Value& strategy = ensure(spec, "updateStrategy", rapidjson::kObjectType);
  if (strategy.IsObject()) {
    if (!strategy.HasMember("type")) strategy.AddMember("type", "RollingUpdate", a);
    if (strategy["type"].IsString() && AsView(strategy["type"]) == "RollingUpdate") {
      Value& rolling = ensure(strategy, "rollingUpdate", rapidjson::kObjectType);
      if (rolling.IsObject() && !rolling.HasMember("maxUnavailable")) {
        rolling.AddMember("maxUnavailable", 1, a);
      }
    }
  }
  if (spec.HasMember("template") && spec["template"].IsObject()) {
    Value& tmpl = spec["template"];
    if (tmpl.HasMember("spec") && tmpl["spec"].IsObject() &&
        !tmpl["spec"].HasMember("restartPolicy")) {
      tmpl["spec"].AddMember("restartPolicy", "Always", a);
    }
  }
  if (!object.HasMember("status") || !object["status"].IsObject()) {
    object.RemoveMember("status");
    object.AddMember("status", Value(rapidjson::kObjectType), a);
  }
}

absl::StatusOr<storage::WorkloadSpec> WorkloadFromEds(const Value& object) {
  storage::WorkloadSpec w;
  const Value* meta = Member(object, "metadata");
  const Value* spec = Member(object, "spec");
  if (meta == nullptr || spec == nullptr) return absl::InvalidArgumentError("no metadata or spec");
  if (const Value* v = Member(*meta, "name"); v && v->IsString()) w.name = AsView(*v);
  if (const Value* v = Member(*meta, "namespace"); v && v->IsString()) w.namespace_ = AsView(*v);
  if (const Value* v = Member(*meta, "uid"); v && v->IsString()) {
    std::string_view u = AsView(*v);
    std::string hex;
    for (char c : u) {
      if (c != '-') hex += c;
    }
    if (hex.size() == 32) {
      std::from_chars(hex.data(), hex.data() + 16, w.uid.hi, 16);
      std::from_chars(hex.data() + 16, hex.data() + 32, w.uid.lo, 16);
    }
  }
  std::vector<StatusCause> causes;
  std::optional<storage::LabelSelector> selector =
      ParseNodeSelector(Member(*spec, "nodeSelector"), causes);
  if (!selector) return absl::InvalidArgumentError("bad node selector");
  w.node_selector = *selector;

  if (const Value* strategy = Member(*spec, "updateStrategy")) {
    const Value* rolling = Member(*strategy, "rollingUpdate");
    const Value* mu = rolling ? Member(*rolling, "maxUnavailable") : nullptr;
    if (mu != nullptr) ParseMaxUnavailable(*mu, &w.max_unavailable, &w.max_unavailable_percent);
    const Value* type = Member(*strategy, "type");
    if (type != nullptr && type->IsString() && AsView(*type) == "OnDelete") {
      // Pods move to a new template only when deleted: no rollout budget.
      w.max_unavailable = 0;
    }
  }

  const Value* tmpl = Member(*spec, "template");
  if (tmpl == nullptr) return absl::InvalidArgumentError("no template");
  if (const Value* tmeta = Member(*tmpl, "metadata")) {
    for (const char* key : {"labels", "annotations"}) {
      const Value* map = Member(*tmeta, key);
      if (map == nullptr || !map->IsObject()) continue;
      storage::StringPairs& out = key[0] == 'l' ? w.pod_labels : w.pod_annotations;
      for (auto m = map->MemberBegin(); m != map->MemberEnd(); ++m) {
        if (m->value.IsString()) out.emplace_back(AsView(m->name), AsView(m->value));
      }
      std::sort(out.begin(), out.end());
    }
  }
  const Value* pod = Member(*tmpl, "spec");
  if (pod == nullptr) return absl::InvalidArgumentError("no template spec");
  w.pod_spec_json = JsonToString(*pod);
  if (const Value* cs = Member(*pod, "containers"); cs && cs->IsArray()) {
    for (const Value& c : cs->GetArray()) {
      const Value* n = Member(c, "name");
      const Value* i = Member(c, "image");
      w.container_names.emplace_back(n && n->IsString() ? AsView(*n) : "");
      w.container_images.emplace_back(i && i->IsString() ? AsView(*i) : "");
    }
  }
  if (const Value* hn = Member(*pod, "hostNetwork"); hn && hn->IsBool()) {
    w.host_network = hn->GetBool();
  }
  if (const Value* tol = Member(*pod, "tolerations"); tol && tol->IsArray()) {
    for (const Value& t : tol->GetArray()) {
      storage::Toleration out;
      auto str = [&](const char* key) {
        const Value* v = Member(t, key);
        return v && v->IsString() ? std::string(AsView(*v)) : std::string();
      };
      out.key = str("key");
      out.op = str("operator");
      out.value = str("value");
      out.effect = str("effect");
      w.tolerations.push_back(std::move(out));
    }
  }
  return w;
}

bool SetEdsStatus(rapidjson::Document& object, const storage::WorkloadStatus& s,
                  int64_t generation) {
  auto& a = object.GetAllocator();
  bool complete = s.updated == s.desired && s.available == s.desired;
  std::string text = fmt::format(
      R"({{"currentNumberScheduled":{},"desiredNumberScheduled":{},"numberAvailable":{},)"
      R"("numberMisscheduled":0,"numberReady":{},"numberUnavailable":{},"observedGeneration":{},)"
      R"("updatedNumberScheduled":{},"conditions":[{{"type":"RolloutComplete","status":"{}",)"
      R"("reason":"{}","message":"{} of {} pods updated and available"}}]}})",
      s.current, s.desired, s.available, s.ready, s.unavailable, generation, s.updated,
      complete ? "True" : "False", complete ? "PodsAvailable" : "RollingUpdate",
      std::min(s.updated, s.available), s.desired);
  rapidjson::Document status;
  status.Parse(text.c_str());
  if (object.HasMember("status") && object["status"] == status) return false;
  object.RemoveMember("status");
  object.AddMember("status", Value(status, a), a);
  return true;
}

std::string RenderEds(const storage::StoredObject& stored) {
  rapidjson::Document doc;
  doc.Parse(stored.json.data(), stored.json.size());
  if (doc.HasParseError()) return stored.json;
  return WithResourceVersion(doc, stored.resource_version);
}

void AppendEdsMetadataJson(const Value& object, uint64_t rv, std::string& out) {
  out += R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":)";
  const Value* meta = Member(object, "metadata");
  rapidjson::Document doc;
  if (meta != nullptr) doc.CopyFrom(*meta, doc.GetAllocator());
  if (!doc.IsObject()) doc.SetObject();
  doc.RemoveMember("resourceVersion");
  std::string text = std::to_string(rv);
  doc.AddMember("resourceVersion", Value(text.c_str(), doc.GetAllocator()), doc.GetAllocator());
  out += JsonToString(doc);
  out += '}';
}

namespace {

struct Column {
  std::string_view name;
  std::string_view type;
  std::string_view format;
  std::string_view description;
  int priority;
};

constexpr Column kEdsColumns[] = {
    {"Name", "string", "name", "Name must be unique within a namespace.", 0},
    {"Desired", "integer", "", "The number of nodes that should be running the pod.", 0},
    {"Current", "integer", "", "The number of nodes running at least one pod.", 0},
    {"Ready", "integer", "", "The number of nodes whose pod is running and ready.", 0},
    {"Up-to-date", "integer", "", "The number of nodes running the updated pod.", 0},
    {"Available", "integer", "", "The number of nodes whose pod is available.", 0},
    {"Node Selector", "string", "", "The label selector that picks the edge nodes.", 0},
    {"Age", "string", "", "CreationTimestamp of the object, as a duration.", 0},
    {"Containers", "string", "", "Names of each container in the template.", 1},
    {"Images", "string", "", "Images referenced by each container in the template.", 1},
    {"Selector", "string", "", "The label query over pods of this EdgeDaemonSet.", 1},
};

}  // namespace

void AppendEdsTableStart(std::string_view version, bool with_columns, std::string& out) {
  out += R"({"kind":"Table","apiVersion":"meta.k8s.io/)";
  out += version;
  out += R"(","columnDefinitions":[)";
  if (with_columns) {
    bool first = true;
    for (const Column& c : kEdsColumns) {
      if (!first) out += ',';
      first = false;
      out += fmt::format(R"({{"name":"{}","type":"{}","format":"{}","description":"{}",)"
                         R"("priority":{}}})",
                         c.name, c.type, c.format, c.description, c.priority);
    }
  }
  out += R"(],"rows":[)";
}

void AppendEdsTableRow(const Value& object, uint64_t rv, int64_t now, IncludeObject include,
                       std::string& out) {
  const Value* meta = Member(object, "metadata");
  std::string name;
  int64_t created = now;
  if (meta != nullptr) {
    if (const Value* n = Member(*meta, "name"); n && n->IsString()) name = AsView(*n);
    if (const Value* c = Member(*meta, "creationTimestamp"); c && c->IsString()) {
      ParseTimestamp(AsView(*c), &created);
    }
  }
  std::vector<std::string> names, images;
  std::string pod_selector = "<none>";
  const Value* spec = Member(object, "spec");
  const Value* tmpl = spec ? Member(*spec, "template") : nullptr;
  if (const Value* pod = tmpl ? Member(*tmpl, "spec") : nullptr) {
    if (const Value* cs = Member(*pod, "containers"); cs && cs->IsArray()) {
      for (const Value& c : cs->GetArray()) {
        const Value* n = Member(c, "name");
        const Value* i = Member(c, "image");
        names.emplace_back(n && n->IsString() ? AsView(*n) : "");
        images.emplace_back(i && i->IsString() ? AsView(*i) : "");
      }
    }
  }
  if (const Value* tmeta = tmpl ? Member(*tmpl, "metadata") : nullptr) {
    if (const Value* labels = Member(*tmeta, "labels"); labels && labels->IsObject()) {
      std::vector<std::string> parts;
      for (auto m = labels->MemberBegin(); m != labels->MemberEnd(); ++m) {
        if (m->value.IsString())
          parts.push_back(fmt::format("{}={}", AsView(m->name), AsView(m->value)));
      }
      std::sort(parts.begin(), parts.end());
      if (!parts.empty()) pod_selector = fmt::format("{}", fmt::join(parts, ","));
    }
  }
  out += R"({"cells":[)";
  AppendJsonString(name, out);
  for (std::string_view f : {"desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                             "updatedNumberScheduled", "numberAvailable"}) {
    out += fmt::format(",{}", StatusCount(object, f));
  }
  out += ',';
  AppendJsonString(SelectorText(object), out);
  out += ',';
  AppendJsonString(HumanDuration(now - created), out);
  out += ',';
  AppendJsonString(fmt::format("{}", fmt::join(names, ",")), out);
  out += ',';
  AppendJsonString(fmt::format("{}", fmt::join(images, ",")), out);
  out += ',';
  AppendJsonString(pod_selector, out);
  out += ']';
  if (include == IncludeObject::kMetadata) {
    out += R"(,"object":)";
    AppendEdsMetadataJson(object, rv, out);
  } else if (include == IncludeObject::kObject) {
    out += R"(,"object":)";
    out += WithResourceVersion(object, rv);
  }
  out += '}';
}

}  // namespace kole::apiserver
