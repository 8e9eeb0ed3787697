#include "common/log.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kole::log {
namespace {

// Sends log output to an unlinked temporary file for the duration of a test
// and puts verbosity, vmodule and the output back afterwards. A file rather
// than a pipe, so that a test writing many lines cannot block on a full pipe.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = ::testing::TempDir() + "kole_log_test_XXXXXX";
    fd_ = mkstemp(path.data());
    ASSERT_GE(fd_, 0) << path;
    unlink(path.c_str());
    SetOutputFdForTest(fd_);
    SetVerbosity(0);
    ASSERT_TRUE(SetVModule("").ok());
  }

  void TearDown() override {
    SetOutputFdForTest(2);
    SetVerbosity(0);
    EXPECT_TRUE(SetVModule("").ok());
    if (fd_ >= 0) close(fd_);
  }

  // Everything written so far.
  std::string Output() const {
    std::string out;
    char buffer[4096];
    off_t offset = 0;
    while (true) {
      ssize_t n = pread(fd_, buffer, sizeof(buffer), offset);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
      offset += n;
    }
    return out;
  }

  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::string out = Output();
    size_t start = 0;
    while (start < out.size()) {
      size_t end = out.find('\n', start);
      if (end == std::string::npos) end = out.size();
      lines.push_back(out.substr(start, end - start));
      start = end + 1;
    }
    return lines;
  }

  // The part of the only line written after the header, or "" when the
  // number of lines is not one.
  std::string OnlyLineBody() const {
    std::vector<std::string> lines = Lines();
    if (lines.size() != 1) {
      ADD_FAILURE() << "want one line, got " << lines.size() << ":\n" << Output();
      return "";
    }
    size_t end = lines[0].find("] ");
    return end == std::string::npos ? "" : lines[0].substr(end + 2);
  }

  int fd_ = -1;
};

// One parsed klog header: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg...
struct Header {
  char severity = 0;
  int month = 0, day = 0, hour = 0, minute = 0, second = 0, micros = 0;
  long thread_id = 0;
  std::string file;
  int line = 0;
  std::string rest;  // Everything after "] ".
};

// Reads `width` digits (or, with width 0, one or more) at *pos.
bool ReadNumber(std::string_view text, size_t* pos, size_t width, long* value) {
  size_t start = *pos;
  *value = 0;
  while (*pos < text.size() && text[*pos] >= '0' && text[*pos] <= '9' &&
         (width == 0 || *pos - start < width)) {
    *value = *value * 10 + (text[(*pos)++] - '0');
  }
  return *pos > start && (width == 0 || *pos - start == width);
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

// Parses the header strictly; nullopt if any part is off.
std::optional<Header> ParseHeader(std::string_view text) {
  Header h;
  size_t pos = 0;
  long month, day, hour, minute, second, micros, tid, line;
  if (text.empty() || std::string_view("IWEF").find(text[0]) == std::string_view::npos) {
    return std::nullopt;
  }
  h.severity = text[pos++];
  if (!ReadNumber(text, &pos, 2, &month) || !ReadNumber(text, &pos, 2, &day) ||
      !Expect(text, &pos, ' ') || !ReadNumber(text, &pos, 2, &hour) || !Expect(text, &pos, ':') ||
      !ReadNumber(text, &pos, 2, &minute) || !Expect(text, &pos, ':') ||
      !ReadNumber(text, &pos, 2, &second) || !Expect(text, &pos, '.') ||
      !ReadNumber(text, &pos, 6, &micros) || !Expect(text, &pos, ' ')) {
    return std::nullopt;
  }
  while (pos < text.size() && text[pos] == ' ') ++pos;
  if (!ReadNumber(text, &pos, 0, &tid) || !Expect(text, &pos, ' ')) return std::nullopt;
  size_t colon = text.find(':', pos);
  if (colon == std::string_view::npos) return std::nullopt;
  h.file = std::string(text.substr(pos, colon - pos));
  if (h.file.empty() || h.file.find(' ') != std::string::npos) return std::nullopt;
  pos = colon + 1;
  if (!ReadNumber(text, &pos, 0, &line) || !Expect(text, &pos, ']') || !Expect(text, &pos, ' ')) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  h.month = month, h.day = day, h.hour = hour, h.minute = minute, h.second = second;
  h.micros = micros, h.thread_id = tid, h.line = line;
  h.rest = std::string(text.substr(pos));
  return h;
}

TEST(LogHeaderParser, RejectsMalformedHeaders) {
  EXPECT_TRUE(ParseHeader("I1204 13:31:05.123456    4242 node_store.cc:88] \"x\"").has_value());
  EXPECT_FALSE(ParseHeader("X1204 13:31:05.123456    4242 node_store.cc:88] \"x\""));
  EXPECT_FALSE(ParseHeader("I1304 13:31:05.123456    4242 node_store.cc:88] \"x\""));
  EXPECT_FALSE(ParseHeader("I1204 13:31:05.12345    4242 node_store.cc:88] \"x\""));
  EXPECT_FALSE(ParseHeader("I1204 13:31:05.123456 node_store.cc:88] \"x\""));
  EXPECT_FALSE(ParseHeader("I1204 13:31:05.123456    4242 node_store.cc:88 \"x\""));
}

TEST_F(LogTest, HeaderHasSeverityDateTimeThreadIdAndLocation) {
  const time_t before = time(nullptr);
  const int line = __LINE__ + 1;
  KOLE_LOG(Info, "Node registered");
  const time_t after = time(nullptr);

  std::string out = Output();
  ASSERT_FALSE(out.empty());
  ASSERT_EQ(out.back(), '\n');
  std::optional<Header> h = ParseHeader(std::string_view(out).substr(0, out.size() - 1));
  ASSERT_TRUE(h.has_value()) << out;
  EXPECT_EQ(h->severity, 'I');
  EXPECT_EQ(h->thread_id, syscall(SYS_gettid));
  EXPECT_EQ(h->file, "log_test.cc");  // The base name, not the build path.
  EXPECT_EQ(h->line, line);
  EXPECT_EQ(h->rest, "\"Node registered\"");

  // Local wall-clock time, as klog writes it; the second may have ticked.
  auto matches = [&h](time_t t) {
    struct tm parts;
    localtime_r(&t, &parts);
    return h->month == parts.tm_mon + 1 && h->day == parts.tm_mday && h->hour == parts.tm_hour &&
           h->minute == parts.tm_min && h->second == parts.tm_sec;
  };
  EXPECT_TRUE(matches(before) || matches(after)) << out;

  // The thread id is right-aligned in seven columns, so headers line up.
  if (h->thread_id < 10'000'000) {
    EXPECT_EQ(out.substr(22, 8), fmt::format("{:>7} ", h->thread_id)) << out;
  }
}

TEST_F(LogTest, SeverityLetters) {
  KOLE_LOG(Info, "A");
  KOLE_LOG(Warning, "B");
  KOLE_LOG(Error, "C");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0][0], 'I');
  EXPECT_EQ(lines[1][0], 'W');
  EXPECT_EQ(lines[2][0], 'E');
  for (const std::string& line : lines) EXPECT_TRUE(ParseHeader(line).has_value()) << line;
}

TEST(LogDeathTest, FatalLineIsWrittenThenTheProcessAborts) {
  EXPECT_DEATH(
      {
        SetOutputFdForTest(2);
        KOLE_LOG(Fatal, "Store corrupt", "segment", 7);
      },
      R"(F[0-9]{4} .* log_test\.cc:[0-9]+] "Store corrupt" segment=7)");
}

TEST_F(LogTest, MessageAndStringValuesAreQuotedAndEscaped) {
  KOLE_LOG(Info, "Say \"hi\"", "path", "C:\\dir", "text", "one\ntwo\tthree", "control",
           std::string("\x01\x1f"), "city", "Z\xc3\xbcrich", "empty", "");
  EXPECT_EQ(OnlyLineBody(),
            R"("Say \"hi\"" path="C:\\dir" text="one\ntwo\tthree" control="\x01\x1f" )"
            "city=\"Z\xc3\xbcrich\" empty=\"\"");
}

TEST_F(LogTest, EscapedLinesStayOnOneLine) {
  KOLE_LOG(Info, "Multi\nline", "err", "a\nb\nc");
  EXPECT_EQ(Lines().size(), 1u) << Output();
}

TEST_F(LogTest, NumbersAndBoolsAreUnquoted) {
  KOLE_LOG(Info, "Values", "count", 42, "delta", -7, "ratio", 0.5, "ready", true, "stale", false,
           "max", std::numeric_limits<uint64_t>::max(), "small", int8_t{-3});
  EXPECT_EQ(OnlyLineBody(), R"("Values" count=42 delta=-7 ratio=0.5 ready=true stale=false )"
                            "max=18446744073709551615 small=-3");
}

TEST_F(LogTest, StringTypesAndStatusAreQuoted) {
  const std::string name = "edge-000042";
  const char* c_string = "c";
  KOLE_LOG(Info, "Kinds", "node", name, "view", std::string_view("sv"), "pointer", c_string, "err",
           absl::InvalidArgumentError("bad \"spec\""), "ok", absl::OkStatus());
  EXPECT_EQ(OnlyLineBody(), R"("Kinds" node="edge-000042" view="sv" pointer="c" )"
                            R"(err="INVALID_ARGUMENT: bad \"spec\"" ok="OK")");
}

TEST_F(LogTest, AppendQuotedEscapesEveryControlCharacter) {
  std::string all;
  for (int c = 0; c < 0x20; ++c) all.push_back(static_cast<char>(c));
  std::string out;
  internal::AppendQuoted(out, all);
  ASSERT_EQ(out.front(), '"');
  ASSERT_EQ(out.back(), '"');
  for (char c : out) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << out;
  EXPECT_NE(out.find("\\x00"), std::string::npos);
  EXPECT_NE(out.find("\\n"), std::string::npos);
  EXPECT_NE(out.find("\\t"), std::string::npos);
}

TEST_F(LogTest, VlogFollowsVerbosity) {
  SetVerbosity(2);
  EXPECT_EQ(Verbosity(), 2);
  KOLE_VLOG(1, "One");
  KOLE_VLOG(2, "Two");
  KOLE_VLOG(3, "Three");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << Output();
  EXPECT_NE(lines[0].find("\"One\""), std::string::npos);
  EXPECT_NE(lines[1].find("\"Two\""), std::string::npos);
  // V lines are written at Info severity.
  EXPECT_EQ(lines[0][0], 'I');
}

TEST_F(LogTest, DisabledVlogDoesNotEvaluateItsArguments) {
  int evaluations = 0;
  auto expensive = [&evaluations] {
    ++evaluations;
    return 1;
  };
  KOLE_VLOG(5, "Per heartbeat", "value", expensive());
  EXPECT_EQ(evaluations, 0);
  EXPECT_EQ(Output(), "");
  SetVerbosity(5);
  KOLE_VLOG(5, "Per heartbeat", "value", expensive());
  EXPECT_EQ(evaluations, 1);
}

TEST_F(LogTest, VmoduleRaisesVerbosityForMatchingFiles) {
  ASSERT_TRUE(SetVModule("node_store=1,log_test=3").ok());
  KOLE_VLOG(3, "Three");
  KOLE_VLOG(4, "Four");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << Output();
  EXPECT_NE(lines[0].find("\"Three\""), std::string::npos);

  // Matching uses the base name without extension, wherever the file lives.
  EXPECT_TRUE(VEnabled(1, "/src/kole/storage/node_store.cc"));
  EXPECT_FALSE(VEnabled(2, "/src/kole/storage/node_store.cc"));
  EXPECT_TRUE(VEnabled(1, "node_store.h"));
  EXPECT_FALSE(VEnabled(1, "/src/kole/storage/change_log.cc"));
}

TEST_F(LogTest, VmodulePatternsTakeWildcards) {
  for (const char* spec : {"log_*=2", "*_test=2", "lo?_test=2", "*=2", "l*t?st=2"}) {
    ASSERT_TRUE(SetVModule(spec).ok()) << spec;
    EXPECT_TRUE(VEnabled(2, __FILE__)) << spec;
    EXPECT_FALSE(VEnabled(3, __FILE__)) << spec;
  }
  for (const char* spec : {"log=9", "log_test?=9", "?log_test=9", "og_test=9", "log_tes=9"}) {
    ASSERT_TRUE(SetVModule(spec).ok()) << spec;
    EXPECT_FALSE(VEnabled(1, __FILE__)) << spec;
  }
}

TEST_F(LogTest, FirstMatchingVmodulePatternWins) {
  ASSERT_TRUE(SetVModule("log_test=1,*=5").ok());
  EXPECT_TRUE(VEnabled(1, __FILE__));
  EXPECT_FALSE(VEnabled(2, __FILE__));
  EXPECT_TRUE(VEnabled(5, "other.cc"));
}

TEST_F(LogTest, VmoduleDoesNotLowerTheGlobalVerbosity) {
  // As in klog, -v applies everywhere; -vmodule only adds.
  SetVerbosity(3);
  ASSERT_TRUE(SetVModule("log_test=1").ok());
  EXPECT_TRUE(VEnabled(3, __FILE__));
  EXPECT_FALSE(VEnabled(4, __FILE__));
}

TEST_F(LogTest, EmptyVmoduleClearsTheRules) {
  ASSERT_TRUE(SetVModule("log_test=4").ok());
  ASSERT_TRUE(VEnabled(4, __FILE__));
  ASSERT_TRUE(SetVModule("").ok());
  EXPECT_FALSE(VEnabled(1, __FILE__));
}

TEST_F(LogTest, InvalidVmoduleSpecIsRejectedAndKeepsTheOldRules) {
  ASSERT_TRUE(SetVModule("log_test=3").ok());
  for (const char* spec : {"log_test", "=3", "log_test=", "log_test=x", "log_test=-1",
                           "log_test=3x", "a=1,,b=2", "a=1,b", "log_test=99999999999"}) {
    absl::Status status = SetVModule(spec);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << spec << ": " << status;
    EXPECT_TRUE(VEnabled(3, __FILE__)) << spec;
    EXPECT_FALSE(VEnabled(4, __FILE__)) << spec;
  }
  absl::Status status = SetVModule("node_store=4,log_test=x");
  EXPECT_NE(status.message().find("log_test=x"), std::string_view::npos) << status;
}

TEST_F(LogTest, LogEveryNWritesTheFirstAndThenEveryNth) {
  for (int i = 0; i < 10; ++i) {
    KOLE_LOG_EVERY_N(Warning, 3, "Dropped malformed message", "i", i);
  }
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 4u) << Output();
  const char* want[] = {" i=0", " i=3", " i=6", " i=9"};
  for (size_t k = 0; k < lines.size(); ++k) {
    EXPECT_EQ(lines[k][0], 'W');
    EXPECT_TRUE(lines[k].ends_with(want[k])) << lines[k];
  }
}

TEST_F(LogTest, LogEveryNCountsEachCallSiteSeparately) {
  for (int i = 0; i < 4; ++i) {
    KOLE_LOG_EVERY_N(Info, 2, "First site", "i", i);
    KOLE_LOG_EVERY_N(Info, 4, "Second site", "i", i);
  }
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 3u) << Output();
  EXPECT_TRUE(lines[0].ends_with("\"First site\" i=0"));
  EXPECT_TRUE(lines[1].ends_with("\"Second site\" i=0"));
  EXPECT_TRUE(lines[2].ends_with("\"First site\" i=2"));
}

TEST_F(LogTest, LogEveryNWithNOfOneOrZeroWritesEveryLine) {
  for (int i = 0; i < 5; ++i) KOLE_LOG_EVERY_N(Info, 1, "Each");
  for (int i = 0; i < 5; ++i) KOLE_LOG_EVERY_N(Info, 0, "Each");
  EXPECT_EQ(Lines().size(), 10u);
}

TEST_F(LogTest, LinesFromConcurrentThreadsDoNotInterleave) {
  constexpr int kThreads = 4;
  constexpr int kLinesPerThread = 500;
  const std::string payload(1500, 'x');
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&payload, t] {
      for (int i = 0; i < kLinesPerThread; ++i) {
        KOLE_LOG(Info, "Concurrent", "thread", t, "i", i, "payload", payload);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), size_t{kThreads * kLinesPerThread});
  // Every line is whole, and each (thread, i) shows up exactly once.
  const std::string tail = " payload=\"" + payload + "\"";
  std::set<std::pair<int, int>> seen;
  for (const std::string& line : lines) {
    std::optional<Header> h = ParseHeader(line);
    ASSERT_TRUE(h.has_value()) << line.substr(0, 200);
    ASSERT_EQ(h->file, "log_test.cc");
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(h->rest.c_str(), "\"Concurrent\" thread=%d i=%d", &t, &i), 2) << line;
    ASSERT_EQ(h->rest, fmt::format("\"Concurrent\" thread={} i={}{}", t, i, tail));
    seen.emplace(t, i);
  }
  EXPECT_EQ(seen.size(), size_t{kThreads * kLinesPerThread});
}

}  // namespace
}  // namespace kole::log
