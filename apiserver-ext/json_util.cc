#include "apiserver-ext/json_util.h"

namespace kole::apiserver {

void AppendJsonString(std::string_view value, std::string& out) {
  StringSink sink(out);
  JsonWriter w(sink);
  String(w, value);
}

void AppendEscapedJsonString(std::string_view value, std::string& out) {
  size_t plain = 0;
  while (plain < value.size()) {
    unsigned char c = static_cast<unsigned char>(value[plain]);
    if (c < 0x20 || c == '"' || c == '\\') break;
    ++plain;
  }
  out += '"';
  out.append(value.data(), plain);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (size_t i = plain; i < value.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
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
