#include "storage/validation.h"

#include <fmt/format.h>

namespace kole::storage {
namespace {

constexpr std::string_view kSubdomainRule =
    "must be a lowercase RFC 1123 subdomain: one or more parts separated by '.', each made of "
    "lowercase letters, digits and '-' and starting and ending with a letter or digit (for "
    "example 'edge.example.com')";

constexpr std::string_view kLabelRule =
    "must be a lowercase RFC 1123 label: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit (for example 'edge-01')";

constexpr std::string_view kNameRule =
    "must consist of letters, digits, '-', '_' or '.' and start and end with a letter or digit "
    "(for example 'app', 'App.Tier' or '123-abc')";

constexpr std::string_view kQualifiedNameShape =
    "must be a name of letters, digits, '-', '_' or '.' that starts and ends with a letter or "
    "digit, optionally preceded by a DNS subdomain and a single '/' (for example 'app' or "
    "'kole.io/app')";

constexpr std::string_view kLabelValueRule =
    "must be empty or consist of letters, digits, '-', '_' or '.' and start and end with a "
    "letter or digit (for example 'v1.2', 'edge_a' or 'Blue')";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool MatchesDns1123Label(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// A label, then any number of ".label". Splitting on '.' and checking each
// part is the same as the regex: an empty part (leading, trailing or doubled
// dot) fails the label check.
bool MatchesDns1123Subdomain(std::string_view s) {
  while (true) {
    std::size_t dot = s.find('.');
    if (!MatchesDns1123Label(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], the name part of a qualified name
// and the non-empty form of a label value.
bool MatchesName(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string TooLong(std::size_t max, std::size_t actual) {
  return fmt::format("must be at most {} characters long (it is {})", max, actual);
}

}  // namespace

std::vector<std::string> IsDns1123Subdomain(std::string_view value) {
  std::vector<std::string> problems;
  if (value.size() > kDns1123SubdomainMaxLength) {
    problems.push_back(TooLong(kDns1123SubdomainMaxLength, value.size()));
  }
  if (!MatchesDns1123Subdomain(value)) problems.emplace_back(kSubdomainRule);
  return problems;
}

std::vector<std::string> IsDns1123Label(std::string_view value) {
  std::vector<std::string> problems;
  if (value.size() > kDns1123LabelMaxLength) {
    problems.push_back(TooLong(kDns1123LabelMaxLength, value.size()));
  }
  if (!MatchesDns1123Label(value)) problems.emplace_back(kLabelRule);
  return problems;
}

std::vector<std::string> IsQualifiedName(std::string_view value) {
  std::vector<std::string> problems;

  // Split off the prefix. Two or more slashes cannot be blamed on either part,
  // so that case gets one message describing the whole shape.
  std::string_view name = value;
  std::size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) {
      problems.emplace_back(kQualifiedNameShape);
      return problems;
    }
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) {
      problems.emplace_back("prefix part must not be empty");
    } else {
      for (std::string& problem : IsDns1123Subdomain(prefix)) {
        problems.push_back("prefix part " + problem);
      }
    }
  }

  // The name part. An empty name only gets the "empty" message: the
  // character rule would say the same thing less clearly.
  if (name.empty()) {
    problems.emplace_back("name part must not be empty");
    return problems;
  }
  if (name.size() > kQualifiedNameMaxLength) {
    problems.push_back("name part " + TooLong(kQualifiedNameMaxLength, name.size()));
  }
  if (!MatchesName(name)) problems.push_back(fmt::format("name part {}", kNameRule));
  return problems;
}

std::vector<std::string> IsValidLabelValue(std::string_view value) {
  std::vector<std::string> problems;
  if (value.empty()) return problems;
  if (value.size() > kLabelValueMaxLength) {
    problems.push_back(TooLong(kLabelValueMaxLength, value.size()));
  }
  if (!MatchesName(value)) problems.emplace_back(kLabelValueRule);
  return problems;
}

}  // namespace kole::storage
