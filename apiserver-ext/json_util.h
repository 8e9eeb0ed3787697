#pragma once

// Small helpers around RapidJSON shared by the renderers and parsers of this
// folder: a writer that appends to a std::string, and typed lookups into a
// parsed document.
//
// Thread safety: free functions and value types without shared state.

#include <rapidjson/document.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace kole::apiserver {

// rapidjson's output stream over a caller's std::string, without an
// intermediate buffer.
class StringSink {
 public:
  using Ch = char;
  explicit StringSink(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}

 private:
  std::string& out_;
};

using JsonWriter = rapidjson::Writer<StringSink>;

template <typename W>
inline void Key(W& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}
template <typename W>
inline void String(W& w, std::string_view value) {
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}
template <typename W>
inline void Field(W& w, std::string_view key, std::string_view value) {
  Key(w, key);
  String(w, value);
}

// Appends `value` as a JSON string literal (quoted and escaped).
void AppendJsonString(std::string_view value, std::string& out);

// The same, without a JSON writer: values with nothing to escape (nearly
// all of them) are copied whole. Escapes exactly what RapidJSON's writer
// does: '"', '\\' and control characters; other bytes pass through.
void AppendEscapedJsonString(std::string_view value, std::string& out);

// Serialises a parsed value compactly.
std::string JsonToString(const rapidjson::Value& value);

// The member `name` of an object, or null when `value` is not an object or
// lacks it.
const rapidjson::Value* Member(const rapidjson::Value& value, std::string_view name);

inline std::string_view AsView(const rapidjson::Value& value) {
  return std::string_view(value.GetString(), value.GetStringLength());
}

}  // namespace kole::apiserver
