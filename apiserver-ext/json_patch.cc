#include "apiserver-ext/json_patch.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>

#include <string>
#include <vector>

#include "apiserver-ext/json_util.h"

namespace kole::apiserver {
namespace {

using rapidjson::Value;

// Splits a JSON pointer (RFC 6901) into unescaped tokens. "" is the whole
// document.
absl::Status SplitPointer(std::string_view pointer, std::vector<std::string>& tokens) {
  tokens.clear();
  if (pointer.empty()) return absl::OkStatus();
  if (pointer[0] != '/') {
    return absl::InvalidArgumentError(fmt::format("invalid JSON pointer {:?}", pointer));
  }
  size_t i = 1;
  std::string token;
  while (true) {
    if (i >= pointer.size() || pointer[i] == '/') {
      tokens.push_back(token);
      token.clear();
      if (i >= pointer.size()) break;
      ++i;
      continue;
    }
    char c = pointer[i];
    if (c == '~') {
      if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) {
        return absl::InvalidArgumentError(
            fmt::format("invalid escape in JSON pointer {:?}", pointer));
      }
      token.push_back(pointer[i + 1] == '0' ? '~' : '/');
      i += 2;
      continue;
    }
    token.push_back(c);
    ++i;
  }
  return absl::OkStatus();
}

// Parses an array index token; "-" is the end (only where `allow_end`).
bool ArrayIndex(const std::string& token, size_t size, bool allow_end, size_t& index) {
  if (token == "-") {
    if (!allow_end) return false;
    index = size;
    return true;
  }
  if (token.empty() || token.size() > 9 || (token.size() > 1 && token[0] == '0')) return false;
  size_t n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (n > size || (n == size && !allow_end)) return false;
  index = n;
  return true;
}

Value* Resolve(Value& root, const std::vector<std::string>& tokens, size_t count) {
  Value* v = &root;
  for (size_t i = 0; i < count; ++i) {
    if (v->IsObject()) {
      auto it = v->FindMember(
          Value(tokens[i].c_str(), static_cast<rapidjson::SizeType>(tokens[i].size())));
      if (it == v->MemberEnd()) return nullptr;
      v = &it->value;
    } else if (v->IsArray()) {
      size_t index = 0;
      if (!ArrayIndex(tokens[i], v->Size(), false, index)) return nullptr;
      v = &(*v)[static_cast<rapidjson::SizeType>(index)];
    } else {
      return nullptr;
    }
  }
  return v;
}

absl::Status Missing(std::string_view path) {
  return absl::InvalidArgumentError(fmt::format("path {:?} does not exist", path));
}

// Removes the value at `tokens` and returns it in `out`.
absl::Status Remove(rapidjson::Document& doc, const std::vector<std::string>& tokens,
                    std::string_view path, Value* out) {
  if (tokens.empty()) return absl::InvalidArgumentError("cannot remove the whole document");
  Value* parent = Resolve(doc, tokens, tokens.size() - 1);
  if (parent == nullptr) return Missing(path);
  const std::string& last = tokens.back();
  if (parent->IsObject()) {
    auto it =
        parent->FindMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size())));
    if (it == parent->MemberEnd()) return Missing(path);
    if (out != nullptr) *out = std::move(it->value);
    parent->RemoveMember(it);
    return absl::OkStatus();
  }
  if (parent->IsArray()) {
    size_t index = 0;
    if (!ArrayIndex(last, parent->Size(), false, index)) return Missing(path);
    if (out != nullptr) *out = std::move((*parent)[static_cast<rapidjson::SizeType>(index)]);
    parent->Erase(parent->Begin() + index);
    return absl::OkStatus();
  }
  return Missing(path);
}

absl::Status Add(rapidjson::Document& doc, const std::vector<std::string>& tokens,
                 std::string_view path, Value value, bool replace) {
  auto& allocator = doc.GetAllocator();
  if (tokens.empty()) {
    doc.CopyFrom(value, allocator);
    return absl::OkStatus();
  }
  Value* parent = Resolve(doc, tokens, tokens.size() - 1);
  if (parent == nullptr) return Missing(path);
  const std::string& last = tokens.back();
  if (parent->IsObject()) {
    auto it =
        parent->FindMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size())));
    if (it != parent->MemberEnd()) {
      it->value = std::move(value);
      return absl::OkStatus();
    }
    if (replace) return Missing(path);
    parent->AddMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size()), allocator),
                      std::move(value), allocator);
    return absl::OkStatus();
  }
  if (parent->IsArray()) {
    size_t index = 0;
    if (!ArrayIndex(last, parent->Size(), !replace, index)) return Missing(path);
    if (replace) {
      (*parent)[static_cast<rapidjson::SizeType>(index)] = std::move(value);
      return absl::OkStatus();
    }
    parent->PushBack(Value(), allocator);
    for (size_t i = parent->Size() - 1; i > index; --i) {
      (*parent)[static_cast<rapidjson::SizeType>(i)] =
          std::move((*parent)[static_cast<rapidjson::SizeType>(i - 1)]);
    }
    (*parent)[static_cast<rapidjson::SizeType>(index)] = std::move(value);
    return absl::OkStatus();
  }
  return Missing(path);
}

const Value* StringMember(const Value& op, std::string_view name) {
  const Value* v = Member(op, name);
  return v != nullptr && v->IsString() ? v : nullptr;
}

}  // namespace

void ApplyMergePatch(Value& target, const Value& patch,
                     rapidjson::Document::AllocatorType& allocator) {
  if (!patch.IsObject()) {
    target.CopyFrom(patch, allocator);
    return;
  }
  if (!target.IsObject()) target.SetObject();
  for (auto m = patch.MemberBegin(); m != patch.MemberEnd(); ++m) {
    auto it = target.FindMember(m->name);
    if (m->value.IsNull()) {
      if (it != target.MemberEnd()) target.RemoveMember(it);
      continue;
    }
    if (it == target.MemberEnd()) {
      Value name(m->name, allocator);
      Value value;
      ApplyMergePatch(value, m->value, allocator);
      target.AddMember(name, value, allocator);
    } else {
      ApplyMergePatch(it->value, m->value, allocator);
    }
  }
}

absl::Status ApplyJsonPatch(rapidjson::Document& doc, const Value& patch) {
  if (!patch.IsArray()) return absl::InvalidArgumentError("a JSON patch must be an array");
  if (patch.Size() > kMaxJsonPatchOperations) {
    return absl::InvalidArgumentError(
        fmt::format("the JSON patch has {} operations; the limit is {}", patch.Size(),
                    kMaxJsonPatchOperations));
  }
  auto& allocator = doc.GetAllocator();
  std::vector<std::string> tokens;
  std::vector<std::string> from_tokens;
  for (rapidjson::SizeType i = 0; i < patch.Size(); ++i) {
    const Value& op = patch[i];
    const Value* name = StringMember(op, "op");
    const Value* path = StringMember(op, "path");
    if (name == nullptr || path == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("operation {} of the JSON patch lacks \"op\" or \"path\"", i));
    }
    std::string_view verb = AsView(*name);
    std::string_view where = AsView(*path);
    absl::Status split = SplitPointer(where, tokens);
    if (!split.ok()) return split;
    const Value* value = Member(op, "value");

    if (verb == "add" || verb == "replace" || verb == "test") {
      if (value == nullptr) {
        return absl::InvalidArgumentError(
            fmt::format("operation {} ({}) of the JSON patch lacks \"value\"", i, verb));
      }
      if (verb == "test") {
        Value* current = Resolve(doc, tokens, tokens.size());
        if (current == nullptr || *current != *value) {
          return absl::InvalidArgumentError(
              fmt::format("test operation {} failed at path {:?}", i, where));
        }
        continue;
      }
      Value copy(*value, allocator);
      absl::Status s = Add(doc, tokens, where, std::move(copy), verb == "replace");
      if (!s.ok()) return s;
    } else if (verb == "remove") {
      absl::Status s = Remove(doc, tokens, where, nullptr);
      if (!s.ok()) return s;
    } else if (verb == "move" || verb == "copy") {
      const Value* from = StringMember(op, "from");
      if (from == nullptr) {
        return absl::InvalidArgumentError(
            fmt::format("operation {} ({}) of the JSON patch lacks \"from\"", i, verb));
      }
      absl::Status fs = SplitPointer(AsView(*from), from_tokens);
      if (!fs.ok()) return fs;
      Value moved;
      if (verb == "move") {
        // A location cannot be moved into one of its own children.
        std::string_view f = AsView(*from);
        if (where.size() > f.size() && where.substr(0, f.size()) == f && where[f.size()] == '/') {
          return absl::InvalidArgumentError(
              fmt::format("operation {} moves {:?} into its own child", i, f));
        }
        absl::Status s = Remove(doc, from_tokens, f, &moved);
        if (!s.ok()) return s;
      } else {
        Value* source = Resolve(doc, from_tokens, from_tokens.size());
        if (source == nullptr) return Missing(AsView(*from));
        moved.CopyFrom(*source, allocator);
      }
      absl::Status s = Add(doc, tokens, where, std::move(moved), false);
      if (!s.ok()) return s;
    } else {
      return absl::InvalidArgumentError(
          fmt::format("operation {} of the JSON patch has unknown op {:?}", i, verb));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseJson(std::string_view text, rapidjson::Document& doc) {
  // Bodies are walked recursively after parsing (patches, rendering), and a
  // body of 200,000 nested brackets, far below the size limit, once ran a
  // worker out of stack: refuse deep nesting before anything recurses, and
  // parse iteratively.
  if (absl::Status depth = CheckJsonDepth(text, kMaxJsonDepth); !depth.ok()) return depth;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid JSON at offset {}: {}", doc.GetErrorOffset(),
                    rapidjson::GetParseError_En(doc.GetParseError())));
  }
  return absl::OkStatus();
}

absl::Status CheckJsonDepth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(
            fmt::format("invalid JSON at offset {}: nested deeper than {} levels", i, max_depth));
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return absl::OkStatus();
}

}  // namespace kole::apiserver
