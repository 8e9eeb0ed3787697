#include "storage/field_selector.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace kole::storage {
namespace {

// Splits at every ',' that is not escaped. The escape is only skipped over
// here; values are unescaped once the term is split.
std::vector<std::string_view> SplitTerms(std::string_view text) {
  std::vector<std::string_view> terms;
  std::size_t start = 0;
  bool escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (escaped) {
      escaped = false;
    } else if (text[i] == '\\') {
      escaped = true;
    } else if (text[i] == ',') {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

struct SplitTerm {
  std::string_view field;
  FieldOperator op;
  std::string_view raw_value;
};

// Finds the first unescaped operator. At each position "!=" and "==" are
// tried before "=", so "a==b" is field "a" with value "b", not value "=b".
std::optional<SplitTerm> SplitAtOperator(std::string_view term) {
  bool escaped = false;
  for (std::size_t i = 0; i < term.size(); ++i) {
    if (escaped) {
      escaped = false;
      continue;
    }
    std::string_view rest = term.substr(i);
    if (rest.front() == '\\') {
      escaped = true;
    } else if (rest.starts_with("!=")) {
      return SplitTerm{term.substr(0, i), FieldOperator::kNotEquals, rest.substr(2)};
    } else if (rest.starts_with("==")) {
      return SplitTerm{term.substr(0, i), FieldOperator::kEquals, rest.substr(2)};
    } else if (rest.front() == '=') {
      return SplitTerm{term.substr(0, i), FieldOperator::kEquals, rest.substr(1)};
    }
  }
  return std::nullopt;
}

// Undoes EscapeFieldValue into `value`. On failure returns false and leaves
// in `problem` a phrase that reads on from "has a value".
bool UnescapeValue(std::string_view raw, std::string* value, std::string* problem) {
  value->reserve(raw.size());
  bool escaped = false;
  for (char c : raw) {
    if (escaped) {
      if (c != '\\' && c != ',' && c != '=') {
        *problem = fmt::format(
            R"(with the escape sequence "\{}"; only "\\", "\," and "\=" are allowed)", c);
        return false;
      }
      value->push_back(c);
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '=') {
      // ',' cannot get here: SplitTerms has already split at every
      // unescaped one.
      *problem = R"(with an unescaped '='; write it as "\=")";
      return false;
    } else {
      value->push_back(c);
    }
  }
  if (escaped) {
    *problem = R"(ending in a '\' that escapes nothing)";
    return false;
  }
  return true;
}

bool RequirementLess(const FieldRequirement& a, const FieldRequirement& b) {
  if (a.field != b.field) return a.field < b.field;
  if (a.op != b.op) return a.op < b.op;
  return a.value < b.value;
}

}  // namespace

absl::StatusOr<FieldSelector> FieldSelector::Parse(std::string_view text) {
  auto error = [text](std::string_view term, std::string_view problem) {
    return absl::InvalidArgumentError(
        fmt::format("invalid field selector \"{}\": term \"{}\" {}", text, term, problem));
  };

  std::vector<FieldRequirement> requirements;
  for (std::string_view term : SplitTerms(text)) {
    if (term.empty()) continue;

    std::optional<SplitTerm> split = SplitAtOperator(term);
    if (!split.has_value()) {
      return error(term, "has no operator; expected field=value, field==value or field!=value");
    }
    if (split->field.empty()) return error(term, "has an empty field name");
    std::string value;
    std::string problem;
    if (!UnescapeValue(split->raw_value, &value, &problem)) {
      return error(term, "has a value " + problem);
    }
    requirements.push_back(
        FieldRequirement{std::string(split->field), split->op, std::move(value)});
  }

  std::sort(requirements.begin(), requirements.end(), RequirementLess);
  requirements.erase(std::unique(requirements.begin(), requirements.end()), requirements.end());
  return FieldSelector(std::move(requirements));
}

FieldSelector FieldSelector::Everything() { return FieldSelector(); }

bool FieldSelector::Matches(FieldLookup lookup) const {
  for (const FieldRequirement& requirement : requirements_) {
    std::optional<std::string_view> value = lookup(requirement.field);
    bool equal = value.has_value() && *value == requirement.value;
    if (equal != (requirement.op == FieldOperator::kEquals)) return false;
  }
  return true;
}

std::optional<std::string_view> FieldSelector::RequiredValue(std::string_view field) const {
  for (const FieldRequirement& requirement : requirements_) {
    if (requirement.op == FieldOperator::kEquals && requirement.field == field) {
      return requirement.value;
    }
  }
  return std::nullopt;
}

absl::Status FieldSelector::CheckSupported(std::initializer_list<std::string_view> fields) const {
  for (const FieldRequirement& requirement : requirements_) {
    if (std::find(fields.begin(), fields.end(), requirement.field) == fields.end()) {
      return absl::InvalidArgumentError("field label not supported: " + requirement.field);
    }
  }
  return absl::OkStatus();
}

std::string FieldSelector::String() const {
  std::string out;
  for (const FieldRequirement& requirement : requirements_) {
    if (!out.empty()) out.push_back(',');
    out += requirement.field;
    out += requirement.op == FieldOperator::kEquals ? "=" : "!=";
    out += EscapeFieldValue(requirement.value);
  }
  return out;
}

std::string EscapeFieldValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == ',' || c == '=') escaped.push_back('\\');
    escaped.push_back(c);
  }
  return escaped;
}

}  // namespace kole::storage
