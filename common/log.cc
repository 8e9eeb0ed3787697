#include "common/log.h"

#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <mutex>
#include <vector>

namespace kole::log {
namespace {

std::atomic<int> g_verbosity{0};
std::atomic<int> g_output_fd{2};
std::atomic<bool> g_have_vmodule{false};

struct VModuleRule {
  std::string pattern;
  int level;
};
std::mutex g_vmodule_mu;
std::vector<VModuleRule> g_vmodule;  // Guarded by g_vmodule_mu.

// Glob match with '*' and '?', as klog's vmodule does.
bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern[0] == '*') {
    for (size_t i = 0; i <= text.size(); ++i) {
      if (GlobMatch(pattern.substr(1), text.substr(i))) return true;
    }
    return false;
  }
  if (text.empty()) return false;
  if (pattern[0] != '?' && pattern[0] != text[0]) return false;
  return GlobMatch(pattern.substr(1), text.substr(1));
}

std::string_view BaseName(const char* file) {
  std::string_view path(file);
  size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  return path;
}

char SeverityLetter(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return 'I';
    case Severity::kWarning:
      return 'W';
    case Severity::kError:
      return 'E';
    case Severity::kFatal:
      return 'F';
  }
  return 'I';
}

}  // namespace

void SetVerbosity(int level) { g_verbosity.store(level, std::memory_order_relaxed); }

int Verbosity() { return g_verbosity.load(std::memory_order_relaxed); }

absl::Status SetVModule(std::string_view spec) {
  std::vector<VModuleRule> rules;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
      return absl::InvalidArgumentError(fmt::format("vmodule entry {:?} is not pattern=N", item));
    }
    int level = 0;
    for (char c : item.substr(eq + 1)) {
      if (c < '0' || c > '9') {
        return absl::InvalidArgumentError(
            fmt::format("vmodule level in {:?} is not a number", item));
      }
      // Checked before it happens: a signed overflow here is undefined behaviour.
      if (level > (std::numeric_limits<int>::max() - (c - '0')) / 10) {
        return absl::InvalidArgumentError(
            fmt::format("vmodule level in {:?} is out of range", item));
      }
      level = level * 10 + (c - '0');
    }
    rules.push_back({std::string(item.substr(0, eq)), level});
  }

  std::lock_guard lock(g_vmodule_mu);
  g_vmodule = std::move(rules);
  g_have_vmodule.store(!g_vmodule.empty(), std::memory_order_release);
  return absl::OkStatus();
}

void SetOutputFdForTest(int fd) { g_output_fd.store(fd, std::memory_order_relaxed); }

bool VEnabled(int level, const char* file) {
  if (level <= g_verbosity.load(std::memory_order_relaxed)) return true;
  if (!g_have_vmodule.load(std::memory_order_acquire)) return false;

  std::string_view name = BaseName(file);
  size_t dot = name.find('.');
  if (dot != std::string_view::npos) name = name.substr(0, dot);
  std::lock_guard lock(g_vmodule_mu);
  for (const VModuleRule& rule : g_vmodule) {
    if (GlobMatch(rule.pattern, name)) return level <= rule.level;
  }
  return false;
}

namespace internal {

void AppendQuoted(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string Header(Severity severity, const char* file, int line, std::string_view message) {
  struct timeval now;
  gettimeofday(&now, nullptr);
  struct tm parts;
  localtime_r(&now.tv_sec, &parts);
  static thread_local const long tid = syscall(SYS_gettid);

  std::string out;
  out.reserve(160);
  fmt::format_to(std::back_inserter(out), "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}:{}] ",
                 SeverityLetter(severity), parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
                 parts.tm_min, parts.tm_sec, now.tv_usec, tid, BaseName(file), line);
  AppendQuoted(out, message);
  return out;
}

void Write(Severity severity, std::string& line) {
  line += '\n';
  int fd = g_output_fd.load(std::memory_order_relaxed);
  const char* data = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data += n;
    left -= static_cast<size_t>(n);
  }
  if (severity == Severity::kFatal) std::abort();
}

bool ShouldLogEveryN(std::atomic<uint64_t>& counter, uint64_t n) {
  uint64_t seen = counter.fetch_add(1, std::memory_order_relaxed);
  return n <= 1 || seen % n == 0;
}

}  // namespace internal
}  // namespace kole::log
