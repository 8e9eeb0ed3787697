#pragma once

// Content negotiation over the Accept header, as k8s-api-contract.md §5.1
// describes: the comma-separated media ranges are tried in order and the
// first one this server can produce wins. Plain JSON is always servable, so
// a list that names application/json anywhere never ends in 406.
//
// Thread safety: pure functions.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kole::apiserver {

struct MediaRange {
  std::string type;                           // "application", lower-cased
  std::string subtype;                        // "json"
  std::map<std::string, std::string> params;  // keys lower-cased

  std::string Param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  }
};

// Splits an Accept header into media ranges, skipping malformed ones and
// ranges with q=0. Order is kept (clients list preferences first).
std::vector<MediaRange> ParseAccept(std::string_view accept);

enum class Representation {
  kObject,                     // The resource's own JSON (Node, NodeList, ...).
  kTable,                      // meta.k8s.io Table.
  kPartialObjectMetadata,      // meta.k8s.io PartialObjectMetadata.
  kPartialObjectMetadataList,  // meta.k8s.io PartialObjectMetadataList.
};

struct Negotiated {
  Representation representation = Representation::kObject;
  std::string table_version = "v1";  // v1 or v1beta1, echoed in the Table's apiVersion.
};

// For a resource request: `list` says whether the URL names a collection
// (PartialObjectMetadataList applies there, PartialObjectMetadata to single
// objects and watch events). nullopt: nothing acceptable (406).
std::optional<Negotiated> NegotiateResource(std::string_view accept, bool list, bool watch);

enum class DiscoveryFormat { kLegacy, kAggregatedV2, kAggregatedV2Beta1 };

// For /api and /apis: aggregated discovery when asked for, legacy JSON when
// the list allows plain JSON. nullopt: 406.
std::optional<DiscoveryFormat> NegotiateDiscovery(std::string_view accept);

// Whether plain JSON is acceptable (no Accept, */*, application/*,
// application/json without an "as" parameter).
bool AcceptsPlainJson(std::string_view accept);

}  // namespace kole::apiserver
