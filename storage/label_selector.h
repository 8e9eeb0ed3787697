#pragma once

// Label selectors as Kubernetes clients send them in ?labelSelector=, parsed
// once per request and then matched against many label sets.
//
// Grammar: a comma-separated list of requirements, all of which must hold.
//
//   key                  the object has the label
//   !key                 the object lacks the label
//   key=value, key==value
//                        the object has the label with this value
//   key!=value           the object lacks the label or has another value
//   key in (v1,v2)       the object has the label with one of the values
//   key notin (v1,v2)    the object lacks the label or has none of the values
//   key>5, key<5         the object has the label and its value, read as a
//                        base-10 integer, is greater (less) than the bound
//
// Whitespace is allowed around every token. The empty string (or only
// whitespace) selects everything. Keys must be qualified names and values
// label values (storage/validation.h); "=" and "!=" take an empty value when
// nothing follows them ("tier=" selects objects labelled tier with value "").
// As upstream, a value set may hold empty elements ("in (a,)" is {"", "a"})
// but may not itself be empty ("in ()" is an error), and "in" and "notin" are
// keywords only in the operator position, so they work as keys and values.
//
//   absl::StatusOr<LabelSelector> selector = LabelSelector::Parse("tier in (edge,core),!legacy");
//   if (!selector.ok()) return selector.status();  // InvalidArgument
//   for (const Node& node : nodes) {
//     if (selector->Matches(node.labels)) ...
//   }
//
// Thread safety: a LabelSelector and its requirements are immutable values;
// const methods may be called from any number of threads at once.
// Cost: Matches() allocates nothing and makes one lookup call per
// requirement; "in" and "notin" search their sorted values in O(log n).

#include <absl/functional/function_ref.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::storage {

// Returns the value of label `key` on the object being matched, or nullopt
// when the object has no such label. The view need only stay valid until the
// lookup is called again.
using LabelLookup = absl::FunctionRef<std::optional<std::string_view>(std::string_view key)>;

enum class LabelOperator {
  kExists,        // key
  kDoesNotExist,  // !key
  kEquals,        // key=value and key==value, which mean the same
  kNotEquals,     // key!=value
  kIn,            // key in (v1,v2)
  kNotIn,         // key notin (v1,v2)
  kGreaterThan,   // key>5
  kLessThan,      // key<5
};

// One requirement of a selector. Invariants, established by Create(): the
// key is a qualified name; every value is a label value; values() is sorted
// and free of duplicates; it holds no values for kExists and kDoesNotExist,
// exactly one for kEquals, kNotEquals, kGreaterThan and kLessThan (an integer
// for the last two) and at least one for kIn and kNotIn.
class LabelRequirement {
 public:
  // Validates and normalises a requirement. Returns InvalidArgument naming
  // the bad key or value, or the operator whose value count is wrong.
  static absl::StatusOr<LabelRequirement> Create(std::string key, LabelOperator op,
                                                 std::vector<std::string> values);

  const std::string& key() const { return key_; }
  LabelOperator op() const { return op_; }
  const std::vector<std::string>& values() const { return values_; }

  // Whether an object whose label `key()` has `value` (nullopt: the object
  // has no such label) satisfies this requirement.
  bool Matches(std::optional<std::string_view> value) const;

  // The requirement in selector syntax, for example "tier in (core,edge)".
  std::string String() const;

  friend bool operator==(const LabelRequirement&, const LabelRequirement&) = default;

 private:
  LabelRequirement(std::string key, LabelOperator op, std::vector<std::string> values,
                   int64_t bound)
      : key_(std::move(key)), op_(op), values_(std::move(values)), bound_(bound) {}

  std::string key_;
  LabelOperator op_;
  std::vector<std::string> values_;
  // The integer form of values_[0] for kGreaterThan and kLessThan, so that
  // Matches() does not parse it again for every object; 0 otherwise.
  int64_t bound_;
};

// A parsed label selector: the conjunction of its requirements. Requirements
// are kept sorted (by key, then operator, then values) with exact duplicates
// removed, so two selectors that differ only in order compare equal and
// print the same String().
class LabelSelector {
 public:
  // The selector that matches everything, same as Everything().
  LabelSelector() = default;

  // Parses the grammar above. Returns InvalidArgument whose message quotes
  // the selector and says what was wrong and where: the unexpected token and
  // its offset, or the key or value that failed validation.
  static absl::StatusOr<LabelSelector> Parse(std::string_view text);

  // Matches every object; Empty() is true and String() is "".
  static LabelSelector Everything();

  // Builds a selector from requirements built elsewhere, for example from a
  // metav1.LabelSelector's matchLabels and matchExpressions.
  static LabelSelector FromRequirements(std::vector<LabelRequirement> requirements);

  // True when the selector has no requirements and so matches everything.
  bool Empty() const { return requirements_.empty(); }

  // Whether the object whose labels `lookup` reports satisfies every
  // requirement. Calls `lookup` once per requirement, stopping at the first
  // that fails.
  bool Matches(LabelLookup lookup) const;

  // Convenience form for a plain list of (key, value) labels; scans the list
  // once per requirement, which is fast for the handful of labels an object
  // has. If a key appears twice, the first value counts.
  bool Matches(const std::vector<std::pair<std::string, std::string>>& labels) const;

  // Whether any requirement mentions `key`, whatever its operator.
  bool ReferencesKey(std::string_view key) const;

  // The requirements in canonical order, for a store that wants to turn
  // "key=value" or "key in (...)" into an index lookup.
  const std::vector<LabelRequirement>& Requirements() const { return requirements_; }

  // Canonical form: requirements in canonical order, joined by ',', with no
  // whitespace except around "in" and "notin". Parse(String()) gives back an
  // equal selector. "key==value" prints as "key=value".
  std::string String() const;

  friend bool operator==(const LabelSelector&, const LabelSelector&) = default;

 private:
  explicit LabelSelector(std::vector<LabelRequirement> requirements);

  std::vector<LabelRequirement> requirements_;
};

}  // namespace kole::storage
