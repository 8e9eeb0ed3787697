#include "edge/pod_template.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

namespace kole::edge {
namespace {

using Value = rapidjson::Value;

absl::Status WrongType(std::string_view field, std::string_view want) {
  return absl::InvalidArgumentError(fmt::format("pod template: {} must be {}", field, want));
}

const Value* Member(const Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

absl::Status ReadString(const Value& object, const char* name, std::string_view field,
                        std::string* out) {
  const Value* v = Member(object, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->IsString()) return WrongType(field, "a string");
  out->assign(v->GetString(), v->GetStringLength());
  return absl::OkStatus();
}

absl::Status ReadStrings(const Value& object, const char* name, std::string_view field,
                         std::vector<std::string>* out) {
  const Value* v = Member(object, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->IsArray()) return WrongType(field, "a list of strings");
  for (const Value& item : v->GetArray()) {
    if (!item.IsString()) return WrongType(field, "a list of strings");
    out->emplace_back(item.GetString(), item.GetStringLength());
  }
  return absl::OkStatus();
}

absl::Status ReadStringMap(const Value& object, const char* name, std::string_view field,
                           std::vector<std::pair<std::string, std::string>>* out) {
  const Value* v = Member(object, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->IsObject()) return WrongType(field, "a map of strings");
  for (const auto& m : v->GetObject()) {
    if (!m.value.IsString()) return WrongType(field, "a map of strings");
    out->emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                      std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return absl::OkStatus();
}

// The fieldRef paths FieldValue() answers.
constexpr std::string_view kLabelsPath = "metadata.labels['";
constexpr std::string_view kAnnotationsPath = "metadata.annotations['";

bool KnownFieldPath(std::string_view path) {
  if (path == "metadata.name" || path == "metadata.namespace" || path == "spec.nodeName") {
    return true;
  }
  return (path.starts_with(kLabelsPath) || path.starts_with(kAnnotationsPath)) &&
         path.ends_with("']");
}

absl::Status ReadEnv(const Value& container, std::string_view field, TemplateContainer* out,
                     std::vector<std::string>* ignored) {
  const Value* env = Member(container, "env");
  if (env == nullptr) return absl::OkStatus();
  if (!env->IsArray()) return WrongType(field, "a list");
  for (const Value& item : env->GetArray()) {
    if (!item.IsObject()) return WrongType(field, "a list of objects");
    TemplateEnvVar var;
    if (absl::Status s = ReadString(item, "name", fmt::format("{}[].name", field), &var.name);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ReadString(item, "value", fmt::format("{}[].value", field), &var.value);
        !s.ok()) {
      return s;
    }
    if (const Value* from = Member(item, "valueFrom")) {
      if (!from->IsObject()) return WrongType(fmt::format("{}[].valueFrom", field), "an object");
      const Value* ref = Member(*from, "fieldRef");
      if (ref == nullptr) {
        // secretKeyRef, configMapKeyRef, resourceFieldRef: not on a device.
        std::string kind = from->MemberCount() > 0 ? from->MemberBegin()->name.GetString() : "";
        ignored->push_back(fmt::format("env {}: {}", var.name, kind));
        continue;
      }
      if (!ref->IsObject()) {
        return WrongType(fmt::format("{}[].valueFrom.fieldRef", field), "an object");
      }
      if (absl::Status s =
              ReadString(*ref, "fieldPath", fmt::format("{}[].valueFrom.fieldRef.fieldPath", field),
                         &var.field_path);
          !s.ok()) {
        return s;
      }
      if (!KnownFieldPath(var.field_path)) {
        ignored->push_back(fmt::format("env {}: fieldRef {}", var.name, var.field_path));
        continue;
      }
    }
    out->env.push_back(std::move(var));
  }
  return absl::OkStatus();
}

// The value of a fieldRef whose path KnownFieldPath() accepts.
std::string FieldValue(std::string_view path, const PodTemplate& t, const PodIdentity& pod) {
  if (path == "metadata.name") return pod.name;
  if (path == "metadata.namespace") return pod.namespace_;
  if (path == "spec.nodeName") return pod.node;
  bool labels = path.starts_with(kLabelsPath);
  std::string_view prefix = labels ? kLabelsPath : kAnnotationsPath;
  std::string_view key = path.substr(prefix.size(), path.size() - prefix.size() - 2);
  for (const auto& [k, v] : labels ? t.labels : t.annotations) {
    if (k == key) return v;
  }
  return "";  // Kubernetes gives an absent label as the empty string.
}

}  // namespace

absl::StatusOr<PodTemplate> ParsePodTemplate(std::string_view template_json) {
  rapidjson::Document document;
  document.Parse(template_json.data(), template_json.size());
  if (document.HasParseError() || !document.IsObject()) {
    return absl::InvalidArgumentError("pod template: not a JSON object");
  }
  PodTemplate t;
  if (const Value* metadata = Member(document, "metadata")) {
    if (!metadata->IsObject()) return WrongType("metadata", "an object");
    if (absl::Status s = ReadStringMap(*metadata, "labels", "metadata.labels", &t.labels);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            ReadStringMap(*metadata, "annotations", "metadata.annotations", &t.annotations);
        !s.ok()) {
      return s;
    }
  }
  const Value* spec = Member(document, "spec");
  if (spec == nullptr || !spec->IsObject()) return WrongType("spec", "an object");
  if (absl::Status s = ReadString(*spec, "restartPolicy", "spec.restartPolicy", &t.restart_policy);
      !s.ok()) {
    return s;
  }
  if (t.restart_policy.empty()) t.restart_policy = "Always";
  if (const Value* init = Member(*spec, "initContainers");
      init != nullptr && init->IsArray() && !init->Empty()) {
    t.ignored.push_back("initContainers");
  }

  const Value* containers = Member(*spec, "containers");
  if (containers == nullptr) return t;  // The runtime reports "no containers".
  if (!containers->IsArray()) return WrongType("spec.containers", "a list");
  for (rapidjson::SizeType i = 0; i < containers->Size(); ++i) {
    const Value& c = (*containers)[i];
    std::string field = fmt::format("spec.containers[{}]", i);
    if (!c.IsObject()) return WrongType(field, "an object");
    TemplateContainer container;
    for (absl::Status s : {ReadString(c, "name", field + ".name", &container.name),
                           ReadStrings(c, "command", field + ".command", &container.command),
                           ReadStrings(c, "args", field + ".args", &container.args),
                           ReadEnv(c, field + ".env", &container, &t.ignored)}) {
      if (!s.ok()) return s;
    }
    if (Member(c, "envFrom") != nullptr) {
      t.ignored.push_back(fmt::format("container {}: envFrom", container.name));
    }
    t.containers.push_back(std::move(container));
  }
  return t;
}

std::string ExpandVars(std::string_view text,
                       const std::vector<std::pair<std::string, std::string>>& vars) {
  auto lookup = [&](std::string_view name) -> const std::string* {
    for (auto it = vars.rbegin(); it != vars.rend(); ++it) {
      if (it->first == name) return &it->second;
    }
    return nullptr;
  };
  // The rules of Kubernetes' third_party/forked/golang/expansion: "$$" is
  // "$", "$(NAME)" the variable or, if undefined, itself; any other "$"
  // stays as it is.
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$' || i + 1 == text.size()) {
      out += text[i++];
      continue;
    }
    char next = text[i + 1];
    if (next == '$') {
      out += '$';
      i += 2;
    } else if (next == '(') {
      size_t close = text.find(')', i + 2);
      if (close == std::string_view::npos) {
        out += "$(";
        i += 2;
        continue;
      }
      std::string_view name = text.substr(i + 2, close - i - 2);
      if (const std::string* value = lookup(name)) {
        out += *value;
      } else {
        out.append(text.substr(i, close - i + 1));
      }
      i = close + 1;
    } else {
      out += '$';
      out += next;
      i += 2;
    }
  }
  return out;
}

PodSpec BuildPodSpec(const PodTemplate& pod_template, const PodIdentity& pod, std::string key,
                     std::string revision) {
  PodSpec spec{.key = std::move(key),
               .revision = std::move(revision),
               .restart_policy = pod_template.restart_policy};
  for (const TemplateContainer& c : pod_template.containers) {
    ContainerSpec container{.name = c.name};
    // Each value may refer to the variables defined before it.
    for (const TemplateEnvVar& var : c.env) {
      if (var.field_path.empty()) {
        container.env.emplace_back(var.name, ExpandVars(var.value, container.env));
      } else {
        container.env.emplace_back(var.name, FieldValue(var.field_path, pod_template, pod));
      }
    }
    for (const std::string& arg : c.command) {
      container.command.push_back(ExpandVars(arg, container.env));
    }
    for (const std::string& arg : c.args) container.args.push_back(ExpandVars(arg, container.env));
    spec.containers.push_back(std::move(container));
  }
  return spec;
}

}  // namespace kole::edge
