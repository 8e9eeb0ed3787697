#include "apiserver-ext/json_util.h"

namespace kole::apiserver {

void AppendJsonString(std::string_view value, std::string& out) {
  StringSink sink(out);
  JsonWriter w(sink);
  String(w, value);
}

std::string JsonToString(const rapidjson::Value& value) {
  std::string out;
  StringSink sink(out);
  JsonWriter w(sink);
  value.Accept(w);
  return out;
}

const rapidjson::Value* Member(const rapidjson::Value& value, std::string_view name) {
  if (!value.IsObject()) return nullptr;
  auto it = value.FindMember(rapidjson::Value(
      rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  if (it == value.MemberEnd()) return nullptr;
  return &it->value;
}

}  // namespace kole::apiserver
