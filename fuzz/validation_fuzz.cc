// Fuzzes the name and label checks of storage/validation.h, which see every
// object name, label key and value a client or a device sends. Each check is
// compared with a reference written here from upstream's regular expressions
// (k8s.io/apimachinery/pkg/util/validation), as a one-pass automaton rather
// than the split-and-check loops of validation.cc, so a mistake would have to
// be made twice the same way to go unnoticed. The implications between the
// checks (a label is a subdomain, a label value and a qualified name) are
// asserted too, and every problem must be a non-empty message.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "storage/validation.h"

namespace kole::storage {
namespace {

[[noreturn]] void Fail(std::string_view what, std::string_view input) {
  fuzz::Abort("validation_fuzz", what, input, "");
}

bool LowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool Alnum(char c) { return LowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// Runs the automaton for "a run of `inner` characters that starts and ends
// with an `edge` character", optionally repeated with `separator` between
// runs: state 0 expects an edge character, state 1 has just read one, state 2
// has read an inner character that is not an edge one.
template <typename Edge, typename Inner>
bool MatchRuns(std::string_view s, Edge edge, Inner inner, char separator) {
  int state = 0;
  for (char c : s) {
    if (separator != '\0' && c == separator) {
      if (state != 1) return false;
      state = 0;
    } else if (edge(c)) {
      state = 1;
    } else if (inner(c)) {
      if (state == 0) return false;
      state = 2;
    } else {
      return false;
    }
  }
  return state == 1;
}

// ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, at most 63.
bool ReferenceLabel(std::string_view s) {
  return s.size() <= 63 && MatchRuns(
                               s, LowerAlnum, [](char c) { return c == '-'; }, '\0');
}

// The label pattern, then any number of ("." label), at most 253 in all.
bool ReferenceSubdomain(std::string_view s) {
  return s.size() <= 253 && MatchRuns(
                                s, LowerAlnum, [](char c) { return c == '-'; }, '.');
}

// ^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$
bool ReferenceName(std::string_view s) {
  return MatchRuns(
      s, Alnum, [](char c) { return c == '-' || c == '_' || c == '.'; }, '\0');
}

// [prefix "/"] name: a non-empty subdomain prefix, a name of at most 63.
bool ReferenceQualifiedName(std::string_view s) {
  std::string_view name = s;
  size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (prefix.empty() || !ReferenceSubdomain(prefix)) return false;
  }
  return name.size() <= 63 && ReferenceName(name);
}

// Empty, or a name of at most 63.
bool ReferenceLabelValue(std::string_view s) {
  return s.empty() || (s.size() <= 63 && ReferenceName(s));
}

bool Valid(std::string_view check, std::string_view input, const std::vector<std::string>& list) {
  for (const std::string& problem : list) {
    if (problem.empty()) Fail(std::string(check) + " returned an empty problem", input);
  }
  return list.empty();
}

void CheckAll(std::string_view input) {
  bool label = Valid("IsDns1123Label", input, IsDns1123Label(input));
  bool subdomain = Valid("IsDns1123Subdomain", input, IsDns1123Subdomain(input));
  bool qualified = Valid("IsQualifiedName", input, IsQualifiedName(input));
  bool value = Valid("IsValidLabelValue", input, IsValidLabelValue(input));

  if (label != ReferenceLabel(input)) Fail("IsDns1123Label disagrees with the reference", input);
  if (subdomain != ReferenceSubdomain(input)) {
    Fail("IsDns1123Subdomain disagrees with the reference", input);
  }
  if (qualified != ReferenceQualifiedName(input)) {
    Fail("IsQualifiedName disagrees with the reference", input);
  }
  if (value != ReferenceLabelValue(input)) {
    Fail("IsValidLabelValue disagrees with the reference", input);
  }
  if (label && !(subdomain && qualified && value)) {
    Fail("a valid label is not also a subdomain, qualified name and label value", input);
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckAll(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
