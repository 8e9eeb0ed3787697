#include "storage/label_selector.h"

#include <absl/status/status.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <functional>

#include "storage/validation.h"

namespace kole::storage {
namespace {

std::string_view OperatorText(LabelOperator op) {
  switch (op) {
    case LabelOperator::kExists:
      return "exists";
    case LabelOperator::kDoesNotExist:
      return "!";
    case LabelOperator::kEquals:
      return "=";
    case LabelOperator::kNotEquals:
      return "!=";
    case LabelOperator::kIn:
      return "in";
    case LabelOperator::kNotIn:
      return "notin";
    case LabelOperator::kGreaterThan:
      return ">";
    case LabelOperator::kLessThan:
      return "<";
  }
  return "?";
}

// Base-10 int64 with an optional '-', as Go's strconv.ParseInt reads the
// bound of '>' and '<' upstream. Valid label values never start with '+' or
// '-', so the one difference (ParseInt also takes a leading '+') never shows.
bool ParseInt64(std::string_view text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// --- Lexer ---------------------------------------------------------------

enum class TokenKind {
  kIdentifier,
  kBang,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kGreater,
  kLess,
  kOpenParen,
  kCloseParen,
  kComma,
  kEnd,
};

struct Token {
  TokenKind kind;
  std::string_view text;
  std::size_t offset;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsSymbol(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

// Splits the whole selector up front; it is short and parsed once. Every
// character is whitespace, a symbol or part of an identifier, so lexing
// cannot fail. "in" and "notin" come out as identifiers: the parser treats
// them as keywords only where an operator is expected.
std::vector<Token> Tokenize(std::string_view input) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (true) {
    while (i < input.size() && IsSpace(input[i])) ++i;
    if (i == input.size()) break;

    std::size_t start = i;
    char c = input[i];
    bool followed_by_equals = i + 1 < input.size() && input[i + 1] == '=';
    TokenKind kind = TokenKind::kIdentifier;
    std::size_t length = 1;
    switch (c) {
      case '=':
        kind = followed_by_equals ? TokenKind::kDoubleEquals : TokenKind::kEquals;
        length = followed_by_equals ? 2 : 1;
        break;
      case '!':
        kind = followed_by_equals ? TokenKind::kNotEquals : TokenKind::kBang;
        length = followed_by_equals ? 2 : 1;
        break;
      case '>':
        kind = TokenKind::kGreater;
        break;
      case '<':
        kind = TokenKind::kLess;
        break;
      case '(':
        kind = TokenKind::kOpenParen;
        break;
      case ')':
        kind = TokenKind::kCloseParen;
        break;
      case ',':
        kind = TokenKind::kComma;
        break;
      default:
        length = 0;
        while (start + length < input.size() && !IsSpace(input[start + length]) &&
               !IsSymbol(input[start + length])) {
          ++length;
        }
    }
    tokens.push_back(Token{kind, input.substr(start, length), start});
    i = start + length;
  }
  tokens.push_back(Token{TokenKind::kEnd, {}, input.size()});
  return tokens;
}

// --- Parser --------------------------------------------------------------

class Parser {
 public:
  explicit Parser(std::string_view input) : input_(input), tokens_(Tokenize(input)) {}

  absl::StatusOr<std::vector<LabelRequirement>> ParseAll() {
    std::vector<LabelRequirement> requirements;
    if (Peek().kind == TokenKind::kEnd) return requirements;
    while (true) {
      absl::StatusOr<LabelRequirement> requirement = ParseRequirement();
      if (!requirement.ok()) return requirement.status();
      requirements.push_back(*std::move(requirement));

      const Token& separator = Next();
      if (separator.kind == TokenKind::kEnd) return requirements;
      if (separator.kind != TokenKind::kComma) {
        return Unexpected(separator, "',' or the end of the selector");
      }
      // Checked here rather than by ParseRequirement so that "a=b," is
      // reported as the trailing comma it is.
      TokenKind next = Peek().kind;
      if (next != TokenKind::kIdentifier && next != TokenKind::kBang) {
        return Unexpected(Peek(), "another requirement after ','");
      }
    }
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }

  // Never moves past the kEnd token, so callers need no bounds checks.
  const Token& Next() {
    const Token& token = tokens_[pos_];
    if (token.kind != TokenKind::kEnd) ++pos_;
    return token;
  }

  absl::Status Unexpected(const Token& token, std::string_view expected) const {
    std::string found = token.kind == TokenKind::kEnd ? std::string("the end of the selector")
                                                      : fmt::format("'{}'", token.text);
    return absl::InvalidArgumentError(
        fmt::format("invalid label selector \"{}\": found {} at offset {}, expected {}", input_,
                    found, token.offset, expected));
  }

  absl::StatusOr<LabelRequirement> Build(std::string_view key, LabelOperator op,
                                         std::vector<std::string> values) const {
    absl::StatusOr<LabelRequirement> requirement =
        LabelRequirement::Create(std::string(key), op, std::move(values));
    if (!requirement.ok()) {
      absl::string_view problem = requirement.status().message();
      return absl::InvalidArgumentError(
          fmt::format("invalid label selector \"{}\": {}", input_,
                      std::string_view(problem.data(), problem.size())));
    }
    return requirement;
  }

  absl::StatusOr<LabelRequirement> ParseRequirement() {
    const Token* key = &Next();
    if (key->kind == TokenKind::kBang) {
      key = &Next();
      if (key->kind != TokenKind::kIdentifier) return Unexpected(*key, "a label key after '!'");
      // Whatever follows "!key" is the caller's to check: only ',' or the
      // end may.
      return Build(key->text, LabelOperator::kDoesNotExist, {});
    }
    if (key->kind != TokenKind::kIdentifier) return Unexpected(*key, "a label key or '!'");

    TokenKind after = Peek().kind;
    if (after == TokenKind::kEnd || after == TokenKind::kComma) {
      return Build(key->text, LabelOperator::kExists, {});
    }

    const Token& op = Next();
    switch (op.kind) {
      case TokenKind::kEquals:
      case TokenKind::kDoubleEquals:
        return ParseSingleValue(key->text, LabelOperator::kEquals);
      case TokenKind::kNotEquals:
        return ParseSingleValue(key->text, LabelOperator::kNotEquals);
      case TokenKind::kGreater:
        return ParseSingleValue(key->text, LabelOperator::kGreaterThan);
      case TokenKind::kLess:
        return ParseSingleValue(key->text, LabelOperator::kLessThan);
      case TokenKind::kIdentifier:
        if (op.text == "in") return ParseValueSet(key->text, LabelOperator::kIn);
        if (op.text == "notin") return ParseValueSet(key->text, LabelOperator::kNotIn);
        break;
      default:
        break;
    }
    return Unexpected(op, "an operator ('=', '==', '!=', 'in', 'notin', '>' or '<')");
  }

  // The value after '=', '!=', '>' or '<'. Nothing there (',' or the end)
  // means the empty value, which is a valid label value.
  absl::StatusOr<LabelRequirement> ParseSingleValue(std::string_view key, LabelOperator op) {
    const Token& value = Peek();
    if (value.kind == TokenKind::kEnd || value.kind == TokenKind::kComma) {
      return Build(key, op, {std::string()});
    }
    if (value.kind != TokenKind::kIdentifier) {
      return Unexpected(value, fmt::format("a value after '{}'", OperatorText(op)));
    }
    Next();
    return Build(key, op, {std::string(value.text)});
  }

  // "(" [element {"," element}] ")", where an element may be empty: "(a,)"
  // and "(,a)" both hold "" and "a". Only "()" is empty, which Create()
  // rejects.
  absl::StatusOr<LabelRequirement> ParseValueSet(std::string_view key, LabelOperator op) {
    const Token& open = Next();
    if (open.kind != TokenKind::kOpenParen) {
      return Unexpected(open, fmt::format("'(' after '{}'", OperatorText(op)));
    }
    std::vector<std::string> values;
    if (Peek().kind == TokenKind::kCloseParen) {
      Next();
      return Build(key, op, std::move(values));
    }
    while (true) {
      const Token& element = Peek();
      if (element.kind == TokenKind::kIdentifier) {
        values.emplace_back(element.text);
        Next();
      } else if (element.kind == TokenKind::kComma || element.kind == TokenKind::kCloseParen) {
        values.emplace_back();
      } else {
        return Unexpected(element, "a value, ',' or ')'");
      }

      const Token& separator = Next();
      if (separator.kind == TokenKind::kCloseParen) return Build(key, op, std::move(values));
      if (separator.kind != TokenKind::kComma) return Unexpected(separator, "',' or ')'");
    }
  }

  std::string_view input_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
};

bool RequirementLess(const LabelRequirement& a, const LabelRequirement& b) {
  if (a.key() != b.key()) return a.key() < b.key();
  if (a.op() != b.op()) return a.op() < b.op();
  return a.values() < b.values();
}

}  // namespace

absl::StatusOr<LabelRequirement> LabelRequirement::Create(std::string key, LabelOperator op,
                                                          std::vector<std::string> values) {
  std::vector<std::string> key_problems = IsQualifiedName(key);
  if (!key_problems.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("label key \"{}\" is invalid: {}", key, fmt::join(key_problems, "; ")));
  }

  switch (op) {
    case LabelOperator::kExists:
    case LabelOperator::kDoesNotExist:
      if (!values.empty()) {
        return absl::InvalidArgumentError(
            fmt::format("operator '{}' on key \"{}\" takes no values, got {}", OperatorText(op),
                        key, values.size()));
      }
      break;
    case LabelOperator::kIn:
    case LabelOperator::kNotIn:
      if (values.empty()) {
        return absl::InvalidArgumentError(
            fmt::format("the value set of '{}' on key \"{}\" is empty; it needs at least one value",
                        OperatorText(op), key));
      }
      break;
    default:
      if (values.size() != 1) {
        return absl::InvalidArgumentError(
            fmt::format("operator '{}' on key \"{}\" takes exactly one value, got {}",
                        OperatorText(op), key, values.size()));
      }
  }

  for (const std::string& value : values) {
    std::vector<std::string> value_problems = IsValidLabelValue(value);
    if (!value_problems.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("label value \"{}\" for key \"{}\" is invalid: {}", value, key,
                      fmt::join(value_problems, "; ")));
    }
  }

  int64_t bound = 0;
  if ((op == LabelOperator::kGreaterThan || op == LabelOperator::kLessThan) &&
      !ParseInt64(values[0], &bound)) {
    return absl::InvalidArgumentError(
        fmt::format("operator '{}' on key \"{}\" needs an integer value, got \"{}\"",
                    OperatorText(op), key, values[0]));
  }

  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return LabelRequirement(std::move(key), op, std::move(values), bound);
}

bool LabelRequirement::Matches(std::optional<std::string_view> value) const {
  auto in_values = [this](std::string_view v) {
    return std::binary_search(values_.begin(), values_.end(), v, std::less<>());
  };
  int64_t number = 0;
  switch (op_) {
    case LabelOperator::kExists:
      return value.has_value();
    case LabelOperator::kDoesNotExist:
      return !value.has_value();
    case LabelOperator::kEquals:
      return value.has_value() && *value == values_[0];
    case LabelOperator::kNotEquals:
      return !value.has_value() || *value != values_[0];
    case LabelOperator::kIn:
      return value.has_value() && in_values(*value);
    case LabelOperator::kNotIn:
      return !value.has_value() || !in_values(*value);
    case LabelOperator::kGreaterThan:
      return value.has_value() && ParseInt64(*value, &number) && number > bound_;
    case LabelOperator::kLessThan:
      return value.has_value() && ParseInt64(*value, &number) && number < bound_;
  }
  return false;
}

std::string LabelRequirement::String() const {
  switch (op_) {
    case LabelOperator::kExists:
      return key_;
    case LabelOperator::kDoesNotExist:
      return "!" + key_;
    case LabelOperator::kEquals:
    case LabelOperator::kNotEquals:
    case LabelOperator::kGreaterThan:
    case LabelOperator::kLessThan:
      return fmt::format("{}{}{}", key_, OperatorText(op_), values_[0]);
    case LabelOperator::kIn:
    case LabelOperator::kNotIn: {
      // A set holding only "" would print as "()", which is the empty set
      // and does not parse; "(,)" reads back as {""}.
      if (values_.size() == 1 && values_[0].empty()) {
        return fmt::format("{} {} (,)", key_, OperatorText(op_));
      }
      return fmt::format("{} {} ({})", key_, OperatorText(op_), fmt::join(values_, ","));
    }
  }
  return key_;
}

LabelSelector::LabelSelector(std::vector<LabelRequirement> requirements)
    : requirements_(std::move(requirements)) {
  std::sort(requirements_.begin(), requirements_.end(), RequirementLess);
  requirements_.erase(std::unique(requirements_.begin(), requirements_.end()), requirements_.end());
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(std::string_view text) {
  absl::StatusOr<std::vector<LabelRequirement>> requirements = Parser(text).ParseAll();
  if (!requirements.ok()) return requirements.status();
  return LabelSelector(*std::move(requirements));
}

LabelSelector LabelSelector::Everything() { return LabelSelector(); }

LabelSelector LabelSelector::FromRequirements(std::vector<LabelRequirement> requirements) {
  return LabelSelector(std::move(requirements));
}

bool LabelSelector::Matches(LabelLookup lookup) const {
  for (const LabelRequirement& requirement : requirements_) {
    if (!requirement.Matches(lookup(requirement.key()))) return false;
  }
  return true;
}

bool LabelSelector::Matches(const std::vector<std::pair<std::string, std::string>>& labels) const {
  return Matches([&labels](std::string_view key) -> std::optional<std::string_view> {
    for (const auto& [k, v] : labels) {
      if (k == key) return v;
    }
    return std::nullopt;
  });
}

bool LabelSelector::ReferencesKey(std::string_view key) const {
  return std::any_of(requirements_.begin(), requirements_.end(),
                     [key](const LabelRequirement& r) { return r.key() == key; });
}

std::string LabelSelector::String() const {
  std::string out;
  for (const LabelRequirement& requirement : requirements_) {
    if (!out.empty()) out.push_back(',');
    out += requirement.String();
  }
  return out;
}

}  // namespace kole::storage
