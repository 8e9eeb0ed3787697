// Fuzzes FieldSelector::Parse, which reads ?fieldSelector= on every list and
// watch request. A selector that parses must print a canonical form that
// parses back to an equal selector, its requirements must be sorted and
// unique as the header promises, and matching, RequiredValue() and
// CheckSupported() must agree with the requirements. The input is also used
// as a value: escaped with EscapeFieldValue() it must read back unchanged.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "storage/field_selector.h"

namespace kole::storage {
namespace {

[[noreturn]] void Fail(std::string_view what, std::string_view input, std::string_view detail) {
  fuzz::Abort("field_selector_fuzz", what, input, detail);
}

// The fields NodeStore serves, with the values of one node.
std::optional<std::string_view> NodeField(std::string_view field) {
  if (field == "metadata.name") return "edge-01";
  if (field == "spec.unschedulable") return "false";
  return std::nullopt;
}

bool Less(const FieldRequirement& a, const FieldRequirement& b) {
  if (a.field != b.field) return a.field < b.field;
  if (a.op != b.op) return a.op < b.op;
  return a.value < b.value;
}

void CheckSelector(std::string_view text) {
  std::optional<FieldSelector> selector = fuzz::ParseWithRoundTrip<FieldSelector>(text, Fail);
  if (!selector.has_value()) return;
  std::string canonical = selector->String();

  // Requirements: canonical order, no duplicates, no empty field.
  const std::vector<FieldRequirement>& requirements = selector->Requirements();
  bool supported = true;
  bool expected_match = true;
  for (size_t i = 0; i < requirements.size(); ++i) {
    const FieldRequirement& requirement = requirements[i];
    if (requirement.field.empty()) Fail("a requirement has an empty field", text, "");
    if (i > 0 && !Less(requirements[i - 1], requirement)) {
      Fail("requirements are not sorted and unique", text, canonical);
    }
    supported = supported &&
                (requirement.field == "metadata.name" || requirement.field == "spec.unschedulable");
    std::optional<std::string_view> value = NodeField(requirement.field);
    bool equal = value.has_value() && *value == requirement.value;
    expected_match = expected_match && equal == (requirement.op == FieldOperator::kEquals);

    // RequiredValue() names the first '=' requirement on the field.
    std::optional<std::string_view> required = selector->RequiredValue(requirement.field);
    if (requirement.op == FieldOperator::kEquals && !required.has_value()) {
      Fail("RequiredValue() misses an '=' requirement", text, requirement.field);
    }
    if (required.has_value()) {
      bool found = false;
      for (const FieldRequirement& other : requirements) {
        found = found || (other.field == requirement.field && other.op == FieldOperator::kEquals &&
                          other.value == *required);
      }
      if (!found) Fail("RequiredValue() returns a value no requirement has", text, "");
    }
  }
  if (selector->Matches(NodeField) != expected_match) Fail("Matches() disagrees", text, canonical);
  if (selector->CheckSupported({"metadata.name", "spec.unschedulable"}).ok() != supported) {
    Fail("CheckSupported() disagrees", text, canonical);
  }
}

// Any byte string is a value once escaped.
void CheckEscapedValue(std::string_view value) {
  std::string escaped = EscapeFieldValue(value);
  for (std::string_view op : {"=", "==", "!="}) {
    std::string text = "f" + std::string(op) + escaped;
    absl::StatusOr<FieldSelector> selector = FieldSelector::Parse(text);
    if (!selector.ok())
      Fail("an escaped value does not parse", value, selector.status().ToString());
    FieldOperator want = op == "!=" ? FieldOperator::kNotEquals : FieldOperator::kEquals;
    if (selector->Requirements().size() != 1 || selector->Requirements()[0].field != "f" ||
        selector->Requirements()[0].op != want || selector->Requirements()[0].value != value) {
      Fail("an escaped value reads back differently", value, selector->String());
    }
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  kole::storage::CheckSelector(input);
  kole::storage::CheckEscapedValue(input);
  return 0;
}
