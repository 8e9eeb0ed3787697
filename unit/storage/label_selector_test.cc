#include "storage/label_selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace kole::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Labels = std::vector<std::pair<std::string, std::string>>;

LabelSelector MustParse(std::string_view text) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << text << ": " << selector.status();
  return selector.ok() ? *std::move(selector) : LabelSelector();
}

bool Selects(std::string_view text, const Labels& labels) {
  return MustParse(text).Matches(labels);
}

// The error message of a selector that must fail to parse.
std::string ParseError(std::string_view text) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  EXPECT_FALSE(selector.ok()) << text << " parsed as " << selector->String();
  if (selector.ok()) return "";
  EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(selector.status().message());
}

// --- Selecting everything ---------------------------------------------------

TEST(LabelSelector, EmptyStringSelectsEverything) {
  LabelSelector selector = MustParse("");
  EXPECT_TRUE(selector.Empty());
  EXPECT_TRUE(selector.Matches(Labels{}));
  EXPECT_TRUE(selector.Matches(Labels{{"a", "b"}}));
}

TEST(LabelSelector, WhitespaceOnlySelectsEverything) { EXPECT_TRUE(MustParse(" \t\r\n ").Empty()); }

TEST(LabelSelector, EverythingIsEmptyAndPrintsAsEmptyString) {
  LabelSelector selector = LabelSelector::Everything();
  EXPECT_TRUE(selector.Empty());
  EXPECT_EQ(selector.String(), "");
  EXPECT_TRUE(selector.Matches(Labels{{"x", "y"}}));
  EXPECT_EQ(selector, LabelSelector());
}

// --- Operators --------------------------------------------------------------

TEST(LabelSelector, ExistsMatchesObjectsWithTheKey) {
  EXPECT_TRUE(Selects("tier", {{"tier", "edge"}}));
  EXPECT_TRUE(Selects("tier", {{"tier", ""}}));
  EXPECT_FALSE(Selects("tier", {{"zone", "a"}}));
  EXPECT_FALSE(Selects("tier", {}));
}

TEST(LabelSelector, DoesNotExistMatchesObjectsWithoutTheKey) {
  EXPECT_TRUE(Selects("!legacy", {}));
  EXPECT_TRUE(Selects("!legacy", {{"tier", "edge"}}));
  EXPECT_FALSE(Selects("!legacy", {{"legacy", ""}}));
  EXPECT_FALSE(Selects("!legacy", {{"legacy", "true"}}));
}

TEST(LabelSelector, EqualsRequiresTheKeyWithTheValue) {
  EXPECT_TRUE(Selects("tier=edge", {{"tier", "edge"}}));
  EXPECT_FALSE(Selects("tier=edge", {{"tier", "core"}}));
  EXPECT_FALSE(Selects("tier=edge", {}));
}

TEST(LabelSelector, DoubleEqualsMeansEquals) {
  EXPECT_TRUE(Selects("tier==edge", {{"tier", "edge"}}));
  EXPECT_FALSE(Selects("tier==edge", {{"tier", "core"}}));
  EXPECT_EQ(MustParse("tier==edge"), MustParse("tier=edge"));
}

TEST(LabelSelector, EqualsWithNothingAfterItSelectsTheEmptyValue) {
  EXPECT_TRUE(Selects("tier=", {{"tier", ""}}));
  EXPECT_FALSE(Selects("tier=", {{"tier", "edge"}}));
  EXPECT_FALSE(Selects("tier=", {}));
  EXPECT_TRUE(Selects("tier=,zone", {{"tier", ""}, {"zone", "a"}}));
}

TEST(LabelSelector, NotEqualsMatchesOtherValues) {
  EXPECT_TRUE(Selects("tier!=edge", {{"tier", "core"}}));
  EXPECT_FALSE(Selects("tier!=edge", {{"tier", "edge"}}));
}

TEST(LabelSelector, NotEqualsMatchesObjectsWithoutTheKey) {
  EXPECT_TRUE(Selects("tier!=edge", {}));
  EXPECT_TRUE(Selects("tier!=edge", {{"zone", "edge"}}));
}

TEST(LabelSelector, InMatchesAnyListedValue) {
  EXPECT_TRUE(Selects("tier in (edge,core)", {{"tier", "edge"}}));
  EXPECT_TRUE(Selects("tier in (edge,core)", {{"tier", "core"}}));
  EXPECT_FALSE(Selects("tier in (edge,core)", {{"tier", "cloud"}}));
}

TEST(LabelSelector, InRequiresTheKey) { EXPECT_FALSE(Selects("tier in (edge,core)", {})); }

TEST(LabelSelector, InWithManyValuesFindsEachOne) {
  std::string text = "n in (";
  for (int i = 0; i < 100; ++i) text += (i ? "," : "") + std::to_string(i * 7);
  text += ")";
  LabelSelector selector = MustParse(text);
  for (int i = 0; i < 700; ++i) {
    EXPECT_EQ(selector.Matches(Labels{{"n", std::to_string(i)}}), i % 7 == 0) << i;
  }
}

TEST(LabelSelector, NotInRejectsListedValues) {
  EXPECT_FALSE(Selects("tier notin (edge,core)", {{"tier", "edge"}}));
  EXPECT_FALSE(Selects("tier notin (edge,core)", {{"tier", "core"}}));
  EXPECT_TRUE(Selects("tier notin (edge,core)", {{"tier", "cloud"}}));
}

TEST(LabelSelector, NotInMatchesObjectsWithoutTheKey) {
  EXPECT_TRUE(Selects("tier notin (edge,core)", {}));
  EXPECT_TRUE(Selects("tier notin (edge,core)", {{"zone", "edge"}}));
}

TEST(LabelSelector, GreaterThanComparesAsIntegers) {
  EXPECT_TRUE(Selects("rack>9", {{"rack", "10"}}));
  EXPECT_FALSE(Selects("rack>9", {{"rack", "9"}}));
  EXPECT_FALSE(Selects("rack>10", {{"rack", "9"}}));
  EXPECT_TRUE(Selects("rack>9", {{"rack", "010"}}));
}

TEST(LabelSelector, LessThanComparesAsIntegers) {
  EXPECT_TRUE(Selects("rack<10", {{"rack", "9"}}));
  EXPECT_FALSE(Selects("rack<10", {{"rack", "10"}}));
  EXPECT_FALSE(Selects("rack<9", {{"rack", "10"}}));
}

TEST(LabelSelector, GreaterThanNeedsTheKeyAndAnIntegerLabel) {
  EXPECT_FALSE(Selects("rack>1", {}));
  EXPECT_FALSE(Selects("rack>1", {{"rack", "two"}}));
  EXPECT_FALSE(Selects("rack>1", {{"rack", ""}}));
  EXPECT_FALSE(Selects("rack<1", {{"rack", "99999999999999999999"}}));
}

TEST(LabelSelector, AllRequirementsMustHold) {
  const char* text = "tier=edge,zone in (a,b),!legacy";
  EXPECT_TRUE(Selects(text, {{"tier", "edge"}, {"zone", "a"}}));
  EXPECT_FALSE(Selects(text, {{"tier", "edge"}, {"zone", "c"}}));
  EXPECT_FALSE(Selects(text, {{"tier", "edge"}, {"zone", "a"}, {"legacy", "1"}}));
  EXPECT_FALSE(Selects(text, {{"zone", "a"}}));
}

TEST(LabelSelector, PrefixedKeysAreAccepted) {
  EXPECT_TRUE(Selects("kole.io/tier=edge", {{"kole.io/tier", "edge"}}));
  EXPECT_FALSE(Selects("kole.io/tier=edge", {{"tier", "edge"}}));
}

TEST(LabelSelector, KeywordsWorkAsKeysAndValues) {
  LabelSelector selector = MustParse("in in (in,notin),notin=in,notin notin (x)");
  EXPECT_TRUE(selector.Matches(Labels{{"in", "notin"}, {"notin", "in"}}));
  EXPECT_FALSE(selector.Matches(Labels{{"in", "x"}, {"notin", "in"}}));
}

TEST(LabelSelector, ValueSetMayHoldAnEmptyElement) {
  LabelSelector selector = MustParse("tier in (edge,)");
  EXPECT_THAT(selector.Requirements()[0].values(), ElementsAre("", "edge"));
  EXPECT_TRUE(selector.Matches(Labels{{"tier", ""}}));
  EXPECT_TRUE(selector.Matches(Labels{{"tier", "edge"}}));
  EXPECT_THAT(MustParse("tier in (,edge)").Requirements()[0].values(), ElementsAre("", "edge"));
  EXPECT_THAT(MustParse("tier in (a,,b)").Requirements()[0].values(), ElementsAre("", "a", "b"));
  EXPECT_THAT(MustParse("tier in (,)").Requirements()[0].values(), ElementsAre(""));
}

TEST(LabelSelector, ValueSetDropsDuplicates) {
  EXPECT_THAT(MustParse("tier in (b,a,b,a)").Requirements()[0].values(), ElementsAre("a", "b"));
}

// --- Whitespace -------------------------------------------------------------

TEST(LabelSelector, WhitespaceAroundTokensIsIgnored) {
  EXPECT_EQ(MustParse("  a = b ,\tc in ( x , y ) , ! d ,e notin(z), f != g , h == i , j  "),
            MustParse("a=b,c in (x,y),!d,e notin (z),f!=g,h=i,j"));
}

TEST(LabelSelector, NoWhitespaceIsNeededAroundSymbols) {
  EXPECT_EQ(MustParse("a in(x,y),b notin(z)"), MustParse("a in (x,y),b notin (z)"));
  EXPECT_EQ(MustParse("a>1,b<2"), MustParse("a > 1 , b < 2"));
}

TEST(LabelSelector, WhitespaceInsideAValueIsAnError) {
  EXPECT_THAT(ParseError("a=b c"), HasSubstr("found 'c'"));
  EXPECT_THAT(ParseError("a in (b c)"), HasSubstr("found 'c'"));
}

TEST(LabelSelector, KeywordMustBeSeparatedFromTheKey) {
  EXPECT_THAT(ParseError("ain(b)"), HasSubstr("found '('"));
}

// --- Syntax errors ----------------------------------------------------------

TEST(LabelSelector, ErrorQuotesTheSelectorTheTokenAndItsOffset) {
  std::string message = ParseError("a=b c");
  EXPECT_THAT(message, HasSubstr("\"a=b c\""));
  EXPECT_THAT(message, HasSubstr("found 'c' at offset 4"));
  EXPECT_THAT(message, HasSubstr("expected ','"));
}

TEST(LabelSelector, TrailingCommaIsAnError) {
  EXPECT_THAT(ParseError("a=b,"), HasSubstr("another requirement after ','"));
  EXPECT_THAT(ParseError("a=b, "), HasSubstr("the end of the selector"));
}

TEST(LabelSelector, LeadingCommaIsAnError) {
  EXPECT_THAT(ParseError(",a"), HasSubstr("found ','"));
}

TEST(LabelSelector, DoubleCommaIsAnError) {
  EXPECT_THAT(ParseError("a,,b"), HasSubstr("another requirement after ','"));
}

TEST(LabelSelector, EmptyValueSetIsAnError) {
  EXPECT_THAT(ParseError("a in ()"), HasSubstr("is empty"));
  EXPECT_THAT(ParseError("a notin ( )"), HasSubstr("is empty"));
}

TEST(LabelSelector, UnclosedValueSetIsAnError) {
  EXPECT_THAT(ParseError("a in (b,c"), HasSubstr("found the end of the selector"));
  EXPECT_THAT(ParseError("a in (b,"), HasSubstr("found the end of the selector"));
  EXPECT_THAT(ParseError("a in ("), HasSubstr("found the end of the selector"));
}

TEST(LabelSelector, ValueSetWithoutOpenParenIsAnError) {
  EXPECT_THAT(ParseError("a in b)"), HasSubstr("expected '(' after 'in'"));
  EXPECT_THAT(ParseError("a notin"), HasSubstr("expected '(' after 'notin'"));
}

TEST(LabelSelector, StrayParenIsAnError) {
  EXPECT_THAT(ParseError("a=b)"), HasSubstr("found ')'"));
  EXPECT_THAT(ParseError("a in (b))"), HasSubstr("found ')'"));
  EXPECT_THAT(ParseError("(a)"), HasSubstr("found '('"));
  EXPECT_THAT(ParseError("a in ((b))"), HasSubstr("found '('"));
}

TEST(LabelSelector, MissingOperatorIsAnError) {
  EXPECT_THAT(ParseError("a b"), HasSubstr("expected an operator"));
  EXPECT_THAT(ParseError("a ~ b"), HasSubstr("found '~'"));
}

TEST(LabelSelector, MissingKeyIsAnError) {
  EXPECT_THAT(ParseError("=b"), HasSubstr("expected a label key"));
  EXPECT_THAT(ParseError("!=b"), HasSubstr("expected a label key"));
}

TEST(LabelSelector, BangNeedsAKeyAndTakesNoOperator) {
  EXPECT_THAT(ParseError("!"), HasSubstr("a label key after '!'"));
  EXPECT_THAT(ParseError("!,a"), HasSubstr("a label key after '!'"));
  EXPECT_THAT(ParseError("!a=b"), HasSubstr("found '='"));
  EXPECT_THAT(ParseError("!!a"), HasSubstr("found '!'"));
}

TEST(LabelSelector, ChainedOperatorsAreAnError) {
  EXPECT_THAT(ParseError("a=b=c"), HasSubstr("found '='"));
  EXPECT_THAT(ParseError("a===b"), HasSubstr("found '='"));
  EXPECT_THAT(ParseError("a>=1"), HasSubstr("found '='"));
  EXPECT_THAT(ParseError("a=(b)"), HasSubstr("a value after '='"));
}

// --- Validation errors ------------------------------------------------------

TEST(LabelSelector, InvalidKeyIsAnError) {
  EXPECT_THAT(ParseError("-a=b"), HasSubstr("label key \"-a\" is invalid"));
  EXPECT_THAT(ParseError("a/b/c"), HasSubstr("label key \"a/b/c\" is invalid"));
  EXPECT_THAT(ParseError("Bad_Prefix/x"), HasSubstr("prefix part"));
  EXPECT_THAT(ParseError("!" + std::string(64, 'k')), HasSubstr("at most 63"));
}

TEST(LabelSelector, InvalidValueIsAnError) {
  EXPECT_THAT(ParseError("a=-b"), HasSubstr("label value \"-b\" for key \"a\" is invalid"));
  EXPECT_THAT(ParseError("a!=b/c"), HasSubstr("label value \"b/c\""));
  EXPECT_THAT(ParseError("a in (ok,b/c)"), HasSubstr("label value \"b/c\""));
  EXPECT_THAT(ParseError("a notin (" + std::string(64, 'v') + ")"), HasSubstr("at most 63"));
}

TEST(LabelSelector, GreaterThanNeedsAnIntegerBound) {
  EXPECT_THAT(ParseError("a>b"), HasSubstr("needs an integer value, got \"b\""));
  EXPECT_THAT(ParseError("a<"), HasSubstr("needs an integer value, got \"\""));
  EXPECT_THAT(ParseError("a>99999999999999999999"), HasSubstr("needs an integer value"));
  // A negative bound is an integer but not a label value.
  EXPECT_THAT(ParseError("a>-1"), HasSubstr("label value \"-1\""));
}

// --- Canonical form ---------------------------------------------------------

TEST(LabelSelector, StringSortsRequirementsAndValues) {
  EXPECT_EQ(MustParse("b=2, a in (y,x,x) ,!c, d notin (2,1), e, f!=g, h>3, h<9").String(),
            "a in (x,y),b=2,!c,d notin (1,2),e,f!=g,h>3,h<9");
}

TEST(LabelSelector, StringPrintsDoubleEqualsAsEquals) {
  EXPECT_EQ(MustParse("a==b").String(), "a=b");
}

TEST(LabelSelector, OrderDoesNotAffectEquality) {
  EXPECT_EQ(MustParse("a=1,b in (x,y)"), MustParse("b in (y,x),a=1"));
  EXPECT_NE(MustParse("a=1"), MustParse("a!=1"));
}

TEST(LabelSelector, DuplicateRequirementsCollapse) {
  EXPECT_EQ(MustParse("a=1,a=1,a==1").String(), "a=1");
  EXPECT_EQ(MustParse("a=1,a=2").String(), "a=1,a=2");
}

TEST(LabelSelector, StringRoundTrips) {
  for (const char* text :
       {"a", "!a", "a=b", "a=", "a!=", "a!=b", "a in (x)", "a in (x,y,z)", "a notin (x,y)",
        "a in (,x)", "a in (,)", "a notin (,)", "a>5", "a<0", "kole.io/tier=edge,!legacy,zone",
        "in in (in,notin),notin!=in", "a=1,a!=2,a in (1,3),a"}) {
    LabelSelector selector = MustParse(text);
    absl::StatusOr<LabelSelector> reparsed = LabelSelector::Parse(selector.String());
    ASSERT_TRUE(reparsed.ok()) << text << " -> " << selector.String() << ": " << reparsed.status();
    EXPECT_EQ(*reparsed, selector) << text << " -> " << selector.String();
    EXPECT_EQ(reparsed->String(), selector.String()) << text;
  }
}

TEST(LabelSelector, SetHoldingOnlyTheEmptyValuePrintsAsParseableForm) {
  EXPECT_EQ(MustParse("a in (,)").String(), "a in (,)");
}

// --- Read access ------------------------------------------------------------

TEST(LabelSelector, RequirementsExposeOperatorKeyAndValues) {
  LabelSelector selector = MustParse("zone in (b,a),tier=edge,!legacy,rack>3");
  const std::vector<LabelRequirement>& requirements = selector.Requirements();
  ASSERT_EQ(requirements.size(), 4u);
  EXPECT_EQ(requirements[0].key(), "legacy");
  EXPECT_EQ(requirements[0].op(), LabelOperator::kDoesNotExist);
  EXPECT_TRUE(requirements[0].values().empty());
  EXPECT_EQ(requirements[1].key(), "rack");
  EXPECT_EQ(requirements[1].op(), LabelOperator::kGreaterThan);
  EXPECT_THAT(requirements[1].values(), ElementsAre("3"));
  EXPECT_EQ(requirements[2].key(), "tier");
  EXPECT_EQ(requirements[2].op(), LabelOperator::kEquals);
  EXPECT_THAT(requirements[2].values(), ElementsAre("edge"));
  EXPECT_EQ(requirements[3].key(), "zone");
  EXPECT_EQ(requirements[3].op(), LabelOperator::kIn);
  EXPECT_THAT(requirements[3].values(), ElementsAre("a", "b"));
}

TEST(LabelSelector, ReferencesKeyCoversEveryOperator) {
  LabelSelector selector = MustParse("a,!b,c=1,d!=1,e in (1),f notin (1),g>1,h<1");
  for (const char* key : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    EXPECT_TRUE(selector.ReferencesKey(key)) << key;
  }
  EXPECT_FALSE(selector.ReferencesKey("i"));
  EXPECT_FALSE(selector.ReferencesKey("1"));
  EXPECT_FALSE(LabelSelector::Everything().ReferencesKey("a"));
}

// --- Matching through a lookup ----------------------------------------------

TEST(LabelSelector, LookupIsCalledOncePerRequirementAndStopsAtFirstMiss) {
  LabelSelector selector = MustParse("a=1,b=2,c=3");
  std::vector<std::string> asked;
  auto lookup = [&asked](std::string_view key) -> std::optional<std::string_view> {
    asked.emplace_back(key);
    if (key == "a") return "1";
    return std::nullopt;
  };
  EXPECT_FALSE(selector.Matches(lookup));
  EXPECT_THAT(asked, ElementsAre("a", "b"));
}

TEST(LabelSelector, ConvenienceMatchUsesTheFirstOfDuplicateKeys) {
  LabelSelector selector = MustParse("a=1");
  EXPECT_TRUE(selector.Matches(Labels{{"a", "1"}, {"a", "2"}}));
  EXPECT_FALSE(selector.Matches(Labels{{"a", "2"}, {"a", "1"}}));
}

// --- LabelRequirement -------------------------------------------------------

TEST(LabelRequirement, CreateSortsAndDeduplicatesValues) {
  absl::StatusOr<LabelRequirement> requirement =
      LabelRequirement::Create("zone", LabelOperator::kNotIn, {"c", "a", "c", "b"});
  ASSERT_TRUE(requirement.ok()) << requirement.status();
  EXPECT_THAT(requirement->values(), ElementsAre("a", "b", "c"));
  EXPECT_EQ(requirement->String(), "zone notin (a,b,c)");
}

TEST(LabelRequirement, CreateChecksTheValueCountForTheOperator) {
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kExists, {"x"}).ok());
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kDoesNotExist, {"x"}).ok());
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kEquals, {}).ok());
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kNotEquals, {"x", "y"}).ok());
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kGreaterThan, {"1", "2"}).ok());
  EXPECT_FALSE(LabelRequirement::Create("a", LabelOperator::kIn, {}).ok());
  EXPECT_TRUE(LabelRequirement::Create("a", LabelOperator::kIn, {"x", "y"}).ok());
}

TEST(LabelRequirement, CreateValidatesKeyAndValues) {
  absl::StatusOr<LabelRequirement> bad_key =
      LabelRequirement::Create("a b", LabelOperator::kExists, {});
  EXPECT_EQ(bad_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_key.status().message(), HasSubstr("label key \"a b\""));
  absl::StatusOr<LabelRequirement> bad_value =
      LabelRequirement::Create("a", LabelOperator::kIn, {"ok", "not ok"});
  EXPECT_THAT(bad_value.status().message(), HasSubstr("label value \"not ok\""));
}

TEST(LabelRequirement, MatchesTakesTheLabelValueOrNullopt) {
  absl::StatusOr<LabelRequirement> requirement =
      LabelRequirement::Create("a", LabelOperator::kNotEquals, {"x"});
  ASSERT_TRUE(requirement.ok());
  EXPECT_TRUE(requirement->Matches(std::nullopt));
  EXPECT_TRUE(requirement->Matches("y"));
  EXPECT_FALSE(requirement->Matches("x"));
}

TEST(LabelSelector, FromRequirementsMatchesTheParsedEquivalent) {
  std::vector<LabelRequirement> requirements;
  requirements.push_back(*LabelRequirement::Create("zone", LabelOperator::kIn, {"b", "a"}));
  requirements.push_back(*LabelRequirement::Create("tier", LabelOperator::kEquals, {"edge"}));
  EXPECT_EQ(LabelSelector::FromRequirements(std::move(requirements)),
            MustParse("tier=edge,zone in (a,b)"));
}

}  // namespace
}  // namespace kole::storage
