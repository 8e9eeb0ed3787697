// Fuzzes LabelSelector::Parse, which reads ?labelSelector= on every list and
// watch request. Not crashing is the least of it: a selector that parses must
// print a canonical form that parses back to an equal selector and prints the
// same again, since the watch cache and continue tokens compare selectors by
// that form. Its requirements must also survive LabelRequirement::Create(),
// the path a metav1.LabelSelector in an EdgeDaemonSet takes, and matching must
// agree with the requirements one by one.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "storage/label_selector.h"

namespace kole::storage {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Label sets to match against: a typical node, one whose values make '>' and
// '<' and empty values reachable, and none at all.
const std::vector<Labels>& LabelSets() {
  static const auto* sets = new std::vector<Labels>{
      {{"kubernetes.io/arch", "arm64"},
       {"kubernetes.io/hostname", "edge-01"},
       {"edge.kole.io/site", "site-7"},
       {"tier", "edge"}},
      {{"a", "5"}, {"b", ""}, {"c", "-3"}, {"tier", "core"}, {"in", "notin"}},
      {},
  };
  return *sets;
}

[[noreturn]] void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  fuzz::Abort("label_selector_fuzz", what, input, detail);
}

std::optional<std::string_view> Find(const Labels& labels, std::string_view key) {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void CheckSelector(std::string_view text) {
  std::optional<LabelSelector> selector = fuzz::ParseWithRoundTrip<LabelSelector>(text, Fail);
  if (!selector.has_value()) return;
  std::string canonical = selector->String();
  // The round trip checked that this parses.
  absl::StatusOr<LabelSelector> again = LabelSelector::Parse(canonical);

  // The requirements rebuilt from their parts are the same requirements.
  std::vector<LabelRequirement> rebuilt;
  for (const LabelRequirement& requirement : selector->Requirements()) {
    absl::StatusOr<LabelRequirement> created =
        LabelRequirement::Create(requirement.key(), requirement.op(), requirement.values());
    if (!created.ok()) {
      Fail("a parsed requirement fails Create()", text, created.status().ToString());
    }
    if (!(*created == requirement)) Fail("Create() normalises differently", text, "");
    if (!selector->ReferencesKey(requirement.key())) {
      Fail("ReferencesKey() misses a key", text, requirement.key());
    }
    rebuilt.push_back(*std::move(created));
  }
  if (!(LabelSelector::FromRequirements(std::move(rebuilt)) == *selector)) {
    Fail("FromRequirements() builds another selector", text, canonical);
  }

  // Matching is the conjunction of the requirements, whichever form is used.
  for (const Labels& labels : LabelSets()) {
    bool expected = true;
    for (const LabelRequirement& requirement : selector->Requirements()) {
      expected = expected && requirement.Matches(Find(labels, requirement.key()));
    }
    if (selector->Matches(labels) != expected) Fail("Matches(labels) disagrees", text, "");
    int calls = 0;
    bool by_lookup = selector->Matches([&](std::string_view key) {
      ++calls;
      return Find(labels, key);
    });
    if (by_lookup != expected) Fail("Matches(lookup) disagrees", text, "");
    if (calls > static_cast<int>(selector->Requirements().size())) {
      Fail("Matches(lookup) looked up more than once per requirement", text, "");
    }
    if (again->Matches(labels) != expected)
      Fail("the canonical form matches differently", text, "");
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckSelector(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
