#include "storage/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace kole::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

// --- IsDns1123Subdomain ---------------------------------------------------

TEST(Dns1123Subdomain, AcceptsLowercaseDottedNames) {
  for (const char* name :
       {"a", "0", "edge-01", "edge.example.com", "a-b.c-d", "1.2.3.4", "a--b", "x.y.z.0"}) {
    EXPECT_THAT(IsDns1123Subdomain(name), IsEmpty()) << name;
  }
}

TEST(Dns1123Subdomain, RejectsEmptyName) { EXPECT_THAT(IsDns1123Subdomain(""), SizeIs(1)); }

TEST(Dns1123Subdomain, RejectsUppercaseAndUnderscore) {
  for (const char* name : {"Edge", "edge_01", "edge.Example", "a b", "a/b", "ü"}) {
    EXPECT_THAT(IsDns1123Subdomain(name), SizeIs(1)) << name;
  }
}

TEST(Dns1123Subdomain, RejectsPartsThatStartOrEndWithDash) {
  for (const char* name : {"-a", "a-", "a.-b", "a-.b", "a.b-"}) {
    EXPECT_THAT(IsDns1123Subdomain(name), SizeIs(1)) << name;
  }
}

TEST(Dns1123Subdomain, RejectsEmptyParts) {
  for (const char* name : {".a", "a.", "a..b", "."}) {
    EXPECT_THAT(IsDns1123Subdomain(name), SizeIs(1)) << name;
  }
}

TEST(Dns1123Subdomain, AcceptsExactly253Characters) {
  // Three parts of 63, one of 61 and three dots.
  std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                     std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(name.size(), 253u);
  EXPECT_THAT(IsDns1123Subdomain(name), IsEmpty());
}

TEST(Dns1123Subdomain, Rejects254CharactersWithLengthMessage) {
  std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                     std::string(63, 'c') + "." + std::string(62, 'd');
  ASSERT_EQ(name.size(), 254u);
  EXPECT_THAT(IsDns1123Subdomain(name), ElementsAre(HasSubstr("at most 253 characters")));
}

TEST(Dns1123Subdomain, PartsHaveNoLengthLimitOfTheirOwn) {
  EXPECT_THAT(IsDns1123Subdomain(std::string(100, 'a') + ".io"), IsEmpty());
}

TEST(Dns1123Subdomain, ReportsLengthAndCharacterProblemsTogether) {
  EXPECT_THAT(IsDns1123Subdomain(std::string(254, 'A')), SizeIs(2));
}

// --- IsDns1123Label -------------------------------------------------------

TEST(Dns1123Label, AcceptsLowercaseAlphanumericsAndDashes) {
  for (const char* name : {"a", "9", "edge-01", "a-b-c", "0a", "a--0"}) {
    EXPECT_THAT(IsDns1123Label(name), IsEmpty()) << name;
  }
}

TEST(Dns1123Label, RejectsDots) { EXPECT_THAT(IsDns1123Label("a.b"), SizeIs(1)); }

TEST(Dns1123Label, RejectsBadCharactersAndEdges) {
  for (const char* name : {"", "-a", "a-", "A", "a_b", "a b"}) {
    EXPECT_THAT(IsDns1123Label(name), ElementsAre(HasSubstr("RFC 1123 label"))) << name;
  }
}

TEST(Dns1123Label, AcceptsExactly63Characters) {
  EXPECT_THAT(IsDns1123Label(std::string(63, 'a')), IsEmpty());
}

TEST(Dns1123Label, Rejects64Characters) {
  EXPECT_THAT(IsDns1123Label(std::string(64, 'a')), ElementsAre(HasSubstr("at most 63")));
}

// --- IsQualifiedName ------------------------------------------------------

TEST(QualifiedName, AcceptsPlainNames) {
  for (const char* name : {"a", "A", "app", "App.Tier", "a_b", "a-b", "123-abc", "a.b_c-D9"}) {
    EXPECT_THAT(IsQualifiedName(name), IsEmpty()) << name;
  }
}

TEST(QualifiedName, AcceptsSubdomainPrefix) {
  for (const char* name : {"kole.io/app", "a/b", "node.kubernetes.io/Instance_Type"}) {
    EXPECT_THAT(IsQualifiedName(name), IsEmpty()) << name;
  }
}

TEST(QualifiedName, RejectsNamesThatStartOrEndWithPunctuation) {
  for (const char* name : {"-a", "a-", "_a", "a_", ".a", "a."}) {
    EXPECT_THAT(IsQualifiedName(name), ElementsAre(StartsWith("name part "))) << name;
  }
}

TEST(QualifiedName, RejectsForbiddenCharacters) {
  for (const char* name : {"a b", "a:b", "a=b", "a,b", "a*b"}) {
    EXPECT_THAT(IsQualifiedName(name), ElementsAre(StartsWith("name part "))) << name;
  }
}

TEST(QualifiedName, RejectsEmptyName) {
  EXPECT_THAT(IsQualifiedName(""), ElementsAre("name part must not be empty"));
}

TEST(QualifiedName, RejectsEmptyNameAfterPrefix) {
  EXPECT_THAT(IsQualifiedName("kole.io/"), ElementsAre("name part must not be empty"));
}

TEST(QualifiedName, RejectsEmptyPrefix) {
  EXPECT_THAT(IsQualifiedName("/app"), ElementsAre("prefix part must not be empty"));
}

TEST(QualifiedName, RejectsPrefixThatIsNotASubdomain) {
  EXPECT_THAT(IsQualifiedName("Kole.io/app"), ElementsAre(StartsWith("prefix part ")));
  EXPECT_THAT(IsQualifiedName("kole_io/app"), ElementsAre(StartsWith("prefix part ")));
}

TEST(QualifiedName, RejectsMoreThanOneSlash) {
  EXPECT_THAT(IsQualifiedName("a/b/c"), ElementsAre(HasSubstr("single '/'")));
}

TEST(QualifiedName, NameLimitIs63) {
  EXPECT_THAT(IsQualifiedName(std::string(63, 'a')), IsEmpty());
  EXPECT_THAT(IsQualifiedName(std::string(64, 'a')),
              ElementsAre(HasSubstr("name part must be at most 63")));
}

TEST(QualifiedName, PrefixMayBeLongerThanTheName) {
  std::string prefix = std::string(200, 'p') + ".io";
  EXPECT_THAT(IsQualifiedName(prefix + "/" + std::string(63, 'n')), IsEmpty());
}

TEST(QualifiedName, PrefixLimitIs253) {
  std::string prefix(254, 'p');
  EXPECT_THAT(IsQualifiedName(prefix + "/app"),
              ElementsAre(HasSubstr("prefix part must be at most 253")));
}

TEST(QualifiedName, ReportsPrefixAndNameProblemsTogether) {
  EXPECT_THAT(IsQualifiedName("Bad/-bad"),
              ElementsAre(StartsWith("prefix part "), StartsWith("name part ")));
}

// --- IsValidLabelValue ----------------------------------------------------

TEST(LabelValue, AcceptsEmpty) { EXPECT_THAT(IsValidLabelValue(""), IsEmpty()); }

TEST(LabelValue, AcceptsNameCharacters) {
  for (const char* value : {"a", "Blue", "v1.2", "edge_a", "1", "a-b.c_D"}) {
    EXPECT_THAT(IsValidLabelValue(value), IsEmpty()) << value;
  }
}

TEST(LabelValue, RejectsSlash) { EXPECT_THAT(IsValidLabelValue("a/b"), SizeIs(1)); }

TEST(LabelValue, RejectsBadEdgesAndCharacters) {
  for (const char* value : {"-a", "a-", ".a", "_a", "a b", "a,b", "a=b", "(a)", "-1"}) {
    EXPECT_THAT(IsValidLabelValue(value), ElementsAre(HasSubstr("must be empty or"))) << value;
  }
}

TEST(LabelValue, LimitIs63) {
  EXPECT_THAT(IsValidLabelValue(std::string(63, 'v')), IsEmpty());
  EXPECT_THAT(IsValidLabelValue(std::string(64, 'v')), ElementsAre(HasSubstr("at most 63")));
}

}  // namespace
}  // namespace kole::storage
