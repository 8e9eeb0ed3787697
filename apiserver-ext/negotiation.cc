#include "apiserver-ext/negotiation.h"

#include <cctype>

namespace kole::apiserver {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsPlainJson(const MediaRange& m) {
  if (m.type == "*" && m.subtype == "*") return true;
  if (m.type == "application" && m.subtype == "*") return true;
  return m.type == "application" && m.subtype == "json" && m.Param("as").empty();
}

bool IsJson(const MediaRange& m) { return m.type == "application" && m.subtype == "json"; }

}  // namespace

std::vector<MediaRange> ParseAccept(std::string_view accept) {
  std::vector<MediaRange> out;
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view item = Trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    if (item.empty()) continue;

    size_t semi = item.find(';');
    std::string_view type = Trim(item.substr(0, semi));
    size_t slash = type.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size()) continue;
    MediaRange range;
    range.type = Lower(type.substr(0, slash));
    range.subtype = Lower(type.substr(slash + 1));
    bool skip = false;
    std::string_view rest =
        semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
    while (!rest.empty()) {
      size_t next = rest.find(';');
      std::string_view param = Trim(rest.substr(0, next));
      rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
      size_t eq = param.find('=');
      if (eq == std::string_view::npos) continue;
      std::string key = Lower(Trim(param.substr(0, eq)));
      std::string_view value = Trim(param.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (key == "q" && (value == "0" || value == "0.0" || value == "0.00" || value == "0.000")) {
        skip = true;
      }
      range.params[key] = std::string(value);
    }
    if (!skip) out.push_back(std::move(range));
  }
  return out;
}

std::optional<Negotiated> NegotiateResource(std::string_view accept, bool list, bool watch) {
  if (Trim(accept).empty()) return Negotiated{};
  for (const MediaRange& m : ParseAccept(accept)) {
    if (IsPlainJson(m)) return Negotiated{};
    if (!IsJson(m)) continue;
    std::string as = m.Param("as");
    std::string g = m.Param("g");
    std::string v = m.Param("v");
    if (g != "meta.k8s.io") continue;
    if (as == "Table" && (v == "v1" || v == "v1beta1")) {
      Negotiated n;
      n.representation = Representation::kTable;
      n.table_version = v;
      return n;
    }
    if (v != "v1") continue;
    // A watch streams single objects; a list URL answers a list.
    if (as == "PartialObjectMetadata" && (!list || watch)) {
      return Negotiated{Representation::kPartialObjectMetadata, "v1"};
    }
    if (as == "PartialObjectMetadataList" && list && !watch) {
      return Negotiated{Representation::kPartialObjectMetadataList, "v1"};
    }
  }
  return std::nullopt;
}

std::optional<DiscoveryFormat> NegotiateDiscovery(std::string_view accept) {
  if (Trim(accept).empty()) return DiscoveryFormat::kLegacy;
  for (const MediaRange& m : ParseAccept(accept)) {
    if (IsPlainJson(m)) return DiscoveryFormat::kLegacy;
    if (!IsJson(m) || m.Param("g") != "apidiscovery.k8s.io" ||
        m.Param("as") != "APIGroupDiscoveryList") {
      continue;
    }
    if (m.Param("v") == "v2") return DiscoveryFormat::kAggregatedV2;
    if (m.Param("v") == "v2beta1") return DiscoveryFormat::kAggregatedV2Beta1;
  }
  return std::nullopt;
}

bool AcceptsPlainJson(std::string_view accept) {
  if (Trim(accept).empty()) return true;
  for (const MediaRange& m : ParseAccept(accept)) {
    if (IsPlainJson(m)) return true;
  }
  return false;
}

}  // namespace kole::apiserver
