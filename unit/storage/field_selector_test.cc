#include "storage/field_selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace kole::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Fields = std::map<std::string, std::string, std::less<>>;

FieldSelector MustParse(std::string_view text) {
  absl::StatusOr<FieldSelector> selector = FieldSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << text << ": " << selector.status();
  return selector.ok() ? *std::move(selector) : FieldSelector();
}

bool Selects(std::string_view text, const Fields& fields) {
  return MustParse(text).Matches([&fields](std::string_view field) {
    auto it = fields.find(field);
    return it == fields.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  });
}

// The error message of a selector that must fail to parse.
std::string ParseError(std::string_view text) {
  absl::StatusOr<FieldSelector> selector = FieldSelector::Parse(text);
  EXPECT_FALSE(selector.ok()) << text << " parsed as " << selector->String();
  if (selector.ok()) return "";
  EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(selector.status().message());
}

// --- Selecting everything ---------------------------------------------------

TEST(FieldSelector, EmptyStringSelectsEverything) {
  FieldSelector selector = MustParse("");
  EXPECT_TRUE(selector.Empty());
  EXPECT_TRUE(Selects("", {}));
  EXPECT_TRUE(Selects("", {{"metadata.name", "a"}}));
}

TEST(FieldSelector, EverythingIsEmptyAndPrintsAsEmptyString) {
  EXPECT_TRUE(FieldSelector::Everything().Empty());
  EXPECT_EQ(FieldSelector::Everything().String(), "");
  EXPECT_EQ(FieldSelector::Everything(), FieldSelector());
}

TEST(FieldSelector, EmptyTermsAreSkipped) {
  EXPECT_TRUE(MustParse(",").Empty());
  EXPECT_TRUE(MustParse(",,").Empty());
  EXPECT_EQ(MustParse("a=1,,b=2,"), MustParse("a=1,b=2"));
  EXPECT_EQ(MustParse(",a=1"), MustParse("a=1"));
}

// --- Operators --------------------------------------------------------------

TEST(FieldSelector, EqualsRequiresTheValue) {
  EXPECT_TRUE(Selects("metadata.name=edge-01", {{"metadata.name", "edge-01"}}));
  EXPECT_FALSE(Selects("metadata.name=edge-01", {{"metadata.name", "edge-02"}}));
}

TEST(FieldSelector, DoubleEqualsMeansEquals) {
  EXPECT_TRUE(Selects("metadata.name==edge-01", {{"metadata.name", "edge-01"}}));
  EXPECT_FALSE(Selects("metadata.name==edge-01", {{"metadata.name", "edge-02"}}));
  EXPECT_EQ(MustParse("a==b"), MustParse("a=b"));
}

TEST(FieldSelector, NotEqualsMatchesOtherValues) {
  EXPECT_TRUE(Selects("status.phase!=Ready", {{"status.phase", "NotReady"}}));
  EXPECT_FALSE(Selects("status.phase!=Ready", {{"status.phase", "Ready"}}));
}

TEST(FieldSelector, UnknownFieldFailsEquals) {
  EXPECT_FALSE(Selects("spec.nodeName=a", {}));
  EXPECT_FALSE(Selects("spec.nodeName=", {}));
}

TEST(FieldSelector, UnknownFieldSatisfiesNotEquals) {
  EXPECT_TRUE(Selects("spec.nodeName!=a", {}));
  EXPECT_TRUE(Selects("spec.nodeName!=", {}));
}

TEST(FieldSelector, EmptyValueIsAValue) {
  EXPECT_TRUE(Selects("spec.nodeName=", {{"spec.nodeName", ""}}));
  EXPECT_FALSE(Selects("spec.nodeName=", {{"spec.nodeName", "a"}}));
  EXPECT_TRUE(Selects("spec.nodeName!=", {{"spec.nodeName", "a"}}));
  EXPECT_FALSE(Selects("spec.nodeName!=", {{"spec.nodeName", ""}}));
}

TEST(FieldSelector, AllRequirementsMustHold) {
  const char* text = "metadata.name=a,metadata.namespace=ns,status.phase!=Gone";
  EXPECT_TRUE(Selects(text, {{"metadata.name", "a"}, {"metadata.namespace", "ns"}}));
  EXPECT_FALSE(Selects(text, {{"metadata.name", "a"}, {"metadata.namespace", "other"}}));
  EXPECT_FALSE(Selects(
      text, {{"metadata.name", "a"}, {"metadata.namespace", "ns"}, {"status.phase", "Gone"}}));
}

TEST(FieldSelector, ValueRunsToTheEndOfTheTerm) {
  EXPECT_TRUE(Selects("a=!b", {{"a", "!b"}}));
  EXPECT_TRUE(Selects("a!=!b", {{"a", "b"}}));
  EXPECT_TRUE(Selects("a=b!c", {{"a", "b!c"}}));
  EXPECT_EQ(MustParse("a=x/y:z").Requirements()[0].value, "x/y:z");
}

TEST(FieldSelector, FieldEndsAtTheFirstOperator) {
  FieldSelector selector = MustParse("a!b=c");
  ASSERT_EQ(selector.Requirements().size(), 1u);
  EXPECT_EQ(selector.Requirements()[0].field, "a!b");
  EXPECT_EQ(selector.Requirements()[0].op, FieldOperator::kEquals);
}

// --- Whitespace -------------------------------------------------------------

TEST(FieldSelector, WhitespaceIsPartOfFieldAndValue) {
  FieldSelector selector = MustParse(" a = b ");
  ASSERT_EQ(selector.Requirements().size(), 1u);
  EXPECT_EQ(selector.Requirements()[0].field, " a ");
  EXPECT_EQ(selector.Requirements()[0].value, " b ");
  EXPECT_EQ(selector.CheckSupported({"a"}).message(), "field label not supported:  a ");
}

// --- Escapes ----------------------------------------------------------------

TEST(FieldSelector, EscapedCommaStaysInTheValue) {
  FieldSelector selector = MustParse("a=x\\,y,b=z");
  ASSERT_EQ(selector.Requirements().size(), 2u);
  EXPECT_EQ(selector.Requirements()[0].value, "x,y");
  EXPECT_EQ(selector.Requirements()[1].value, "z");
}

TEST(FieldSelector, EscapedEqualsAndBackslashAreUnescaped) {
  EXPECT_EQ(MustParse("a=x\\=y").Requirements()[0].value, "x=y");
  EXPECT_EQ(MustParse("a=x\\\\y").Requirements()[0].value, "x\\y");
  EXPECT_EQ(MustParse("a=\\\\\\,\\=").Requirements()[0].value, "\\,=");
  EXPECT_EQ(MustParse("a!=\\=").Requirements()[0].value, "=");
}

TEST(FieldSelector, EscapedBackslashDoesNotEscapeTheFollowingComma) {
  FieldSelector selector = MustParse("a=x\\\\,b=y");
  ASSERT_EQ(selector.Requirements().size(), 2u);
  EXPECT_EQ(selector.Requirements()[0].value, "x\\");
  EXPECT_EQ(selector.Requirements()[1].field, "b");
}

TEST(FieldSelector, EscapedOperatorInFieldIsNotASplitPoint) {
  FieldSelector selector = MustParse("a\\=b=c");
  ASSERT_EQ(selector.Requirements().size(), 1u);
  EXPECT_EQ(selector.Requirements()[0].field, "a\\=b");
  EXPECT_EQ(selector.Requirements()[0].value, "c");
}

TEST(FieldSelector, MatchingComparesUnescapedValues) {
  EXPECT_TRUE(Selects("a=x\\,y", {{"a", "x,y"}}));
  EXPECT_FALSE(Selects("a=x\\,y", {{"a", "x\\,y"}}));
}

TEST(FieldSelector, UnknownEscapeIsAnError) {
  EXPECT_THAT(ParseError("a=x\\n"), HasSubstr("escape sequence \"\\n\""));
  EXPECT_THAT(ParseError("a=\\ "), HasSubstr("escape sequence \"\\ \""));
}

TEST(FieldSelector, TrailingBackslashIsAnError) {
  EXPECT_THAT(ParseError("a=x\\"), HasSubstr("escapes nothing"));
}

TEST(FieldSelector, UnescapedEqualsInValueIsAnError) {
  EXPECT_THAT(ParseError("a=b=c"), HasSubstr("unescaped '='"));
  EXPECT_THAT(ParseError("a===b"), HasSubstr("unescaped '='"));
  EXPECT_THAT(ParseError("a!==b"), HasSubstr("unescaped '='"));
}

TEST(FieldSelector, EscapeFieldValueEscapesTheThreeSpecialCharacters) {
  EXPECT_EQ(EscapeFieldValue("plain"), "plain");
  EXPECT_EQ(EscapeFieldValue("a,b=c\\d"), "a\\,b\\=c\\\\d");
  EXPECT_EQ(EscapeFieldValue(""), "");
}

// --- Other errors -----------------------------------------------------------

TEST(FieldSelector, TermWithoutOperatorIsAnError) {
  std::string message = ParseError("a=b,metadata.name");
  EXPECT_THAT(message, HasSubstr("\"a=b,metadata.name\""));
  EXPECT_THAT(message, HasSubstr("term \"metadata.name\" has no operator"));
  EXPECT_THAT(ParseError("a\\=b"), HasSubstr("has no operator"));
}

TEST(FieldSelector, EmptyFieldNameIsAnError) {
  EXPECT_THAT(ParseError("=b"), HasSubstr("empty field name"));
  EXPECT_THAT(ParseError("a=1,!=b"), HasSubstr("term \"!=b\" has an empty field name"));
}

// --- Canonical form ---------------------------------------------------------

TEST(FieldSelector, StringSortsAndPrintsDoubleEqualsAsEquals) {
  EXPECT_EQ(MustParse("b!=2,a==1,a=0").String(), "a=0,a=1,b!=2");
}

TEST(FieldSelector, StringEscapesValues) {
  EXPECT_EQ(MustParse("a=x\\,y\\=z\\\\").String(), "a=x\\,y\\=z\\\\");
}

TEST(FieldSelector, DuplicateRequirementsCollapse) {
  EXPECT_EQ(MustParse("a=1,a==1,a=1").String(), "a=1");
}

TEST(FieldSelector, OrderDoesNotAffectEquality) {
  EXPECT_EQ(MustParse("a=1,b!=2"), MustParse("b!=2,a=1"));
  EXPECT_NE(MustParse("a=1"), MustParse("a!=1"));
}

TEST(FieldSelector, StringRoundTrips) {
  for (const char* text : {"a=b", "a!=b", "a=", "a!=", "a=\\,", "a=\\=\\\\", "a\\=b=c", "a!b=!c",
                           " a = b ", "metadata.name=x,status.phase!=Ready,a==b"}) {
    FieldSelector selector = MustParse(text);
    absl::StatusOr<FieldSelector> reparsed = FieldSelector::Parse(selector.String());
    ASSERT_TRUE(reparsed.ok()) << text << " -> " << selector.String() << ": " << reparsed.status();
    EXPECT_EQ(*reparsed, selector) << text << " -> " << selector.String();
  }
}

// --- Read access ------------------------------------------------------------

TEST(FieldSelector, RequirementsExposeFieldOperatorAndValue) {
  FieldSelector selector = MustParse("status.phase!=Ready,metadata.name=edge-01");
  EXPECT_THAT(selector.Requirements(),
              ElementsAre(FieldRequirement{"metadata.name", FieldOperator::kEquals, "edge-01"},
                          FieldRequirement{"status.phase", FieldOperator::kNotEquals, "Ready"}));
}

TEST(FieldSelector, RequiredValueReportsOnlyEqualsRequirements) {
  FieldSelector selector = MustParse("metadata.name=edge-01,status.phase!=Ready");
  EXPECT_EQ(selector.RequiredValue("metadata.name"), "edge-01");
  EXPECT_EQ(selector.RequiredValue("status.phase"), std::nullopt);
  EXPECT_EQ(selector.RequiredValue("spec.nodeName"), std::nullopt);
}

// --- CheckSupported ---------------------------------------------------------

TEST(FieldSelector, CheckSupportedAcceptsListedFields) {
  EXPECT_TRUE(MustParse("metadata.name=a,metadata.namespace!=b")
                  .CheckSupported({"metadata.name", "metadata.namespace"})
                  .ok());
  EXPECT_TRUE(FieldSelector::Everything().CheckSupported({}).ok());
}

TEST(FieldSelector, CheckSupportedNamesTheUnsupportedFieldInUpstreamWording) {
  absl::Status status = MustParse("metadata.name=a,spec.nodeName=b")
                            .CheckSupported({"metadata.name", "metadata.namespace"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "field label not supported: spec.nodeName");
}

}  // namespace
}  // namespace kole::storage
