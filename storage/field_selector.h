#pragma once

// Field selectors as Kubernetes clients send them in ?fieldSelector=, for
// example "metadata.name=edge-01,status.phase!=Ready".
//
// Grammar, as upstream's fields package reads it: terms separated by ',',
// each "field=value", "field==value" (the same as '=') or "field!=value",
// all of which must hold. The field runs up to the first operator; the value
// is the rest of the term. In a value, '\' escapes the three characters that
// would otherwise end or split a term: "\,", "\=" and "\\"; any other escape,
// a lone trailing '\' or an unescaped '=' in the value is an error. The empty
// string selects everything, and empty terms ("a=b,,c=d", a trailing ',')
// are skipped, as upstream does. Whitespace is not trimmed: it is part of the
// field or value, again as upstream, so "a = b" names the field "a ".
//
// Which fields exist depends on the resource, so Parse() accepts any field
// name and the handler calls CheckSupported() with the fields it serves.
//
// Thread safety: a FieldSelector is an immutable value; const methods may be
// called from any number of threads at once. Matches() allocates nothing.

#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::storage {

// Returns the value of `field` (for example "metadata.name") on the object
// being matched, or nullopt when the object has no such field. The view need
// only stay valid until the lookup is called again.
using FieldLookup = absl::FunctionRef<std::optional<std::string_view>(std::string_view field)>;

enum class FieldOperator {
  kEquals,     // field=value and field==value, which mean the same
  kNotEquals,  // field!=value
};

struct FieldRequirement {
  std::string field;  // Never empty.
  FieldOperator op;
  std::string value;  // Unescaped.

  friend bool operator==(const FieldRequirement&, const FieldRequirement&) = default;
};

// A parsed field selector: the conjunction of its requirements, kept sorted
// (by field, then operator, then value) with exact duplicates removed.
class FieldSelector {
 public:
  // The selector that matches everything, same as Everything().
  FieldSelector() = default;

  // Parses the grammar above. Returns InvalidArgument quoting the selector
  // and the term at fault: a term without an operator, an empty field name,
  // or a value with a bad escape or an unescaped '='.
  static absl::StatusOr<FieldSelector> Parse(std::string_view text);

  // Matches every object; Empty() is true and String() is "".
  static FieldSelector Everything();

  // True when the selector has no requirements and so matches everything.
  bool Empty() const { return requirements_.empty(); }

  // Whether every requirement holds. A field the lookup does not know
  // (nullopt) fails "=" and satisfies "!=". Calls `lookup` once per
  // requirement, stopping at the first that fails.
  bool Matches(FieldLookup lookup) const;

  // The requirements in canonical order.
  const std::vector<FieldRequirement>& Requirements() const { return requirements_; }

  // The value `field` must equal, if some requirement says "field=value",
  // so that a handler can serve "metadata.name=x" from its name index and
  // run Matches() on that one object only.
  std::optional<std::string_view> RequiredValue(std::string_view field) const;

  // OK when every requirement names one of `fields`; otherwise
  // InvalidArgument "field label not supported: <field>" for the first one
  // that does not. The wording is upstream's, which clients match on.
  absl::Status CheckSupported(std::initializer_list<std::string_view> fields) const;

  // Canonical form: requirements in canonical order joined by ',', "==" as
  // "=", values escaped. Parse(String()) gives back an equal selector.
  std::string String() const;

  friend bool operator==(const FieldSelector&, const FieldSelector&) = default;

 private:
  explicit FieldSelector(std::vector<FieldRequirement> requirements)
      : requirements_(std::move(requirements)) {}

  std::vector<FieldRequirement> requirements_;
};

// Escapes '\', ',' and '=' in a field selector value with a '\', for callers
// that build selector strings.
std::string EscapeFieldValue(std::string_view value);

}  // namespace kole::storage
