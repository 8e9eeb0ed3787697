#pragma once

// Structured logging in the klog text format that every Kubernetes component
// writes, so that KOLE's lines read and parse like kube-apiserver's:
//
//   I1204 13:31:05.123456    4242 node_store.cc:88] "Node registered" node="edge-000042" epoch=3
//
// Usage:
//   KOLE_LOG(Info, "Snapshot written", "path", path, "nodes", count);
//   KOLE_VLOG(2, "Node became NotReady", "node", name);
//   KOLE_LOG_EVERY_N(Warning, 1000, "Dropped malformed message", "reason", why);
//
// Arguments after the message are key/value pairs. Keys are lowerCamelCase;
// an error goes under "err". Strings are quoted, numbers and booleans are not.
// Verbosity follows the Kubernetes conventions (see STYLE.md): nothing per
// heartbeat below V(5).
//
// Thread safety: every function may be called from any thread. Each line is
// written with a single write(2), so lines from different threads never
// interleave. Configuration (SetVerbosity, SetVModule) is expected at start-up
// but is safe at any time.

#include <absl/status/status.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace kole::log {

enum class Severity { kInfo, kWarning, kError, kFatal };

// Sets the global verbosity (--v). Lines at V(n) with n <= level are written.
void SetVerbosity(int level);
int Verbosity();

// Sets per-file verbosity (--vmodule), for example "node_store=4,wal*=3".
// Patterns match the file's base name without extension; '*' and '?' are
// wildcards. Returns InvalidArgument for a malformed spec.
absl::Status SetVModule(std::string_view spec);

// Redirects output (tests). The default is standard error.
void SetOutputFdForTest(int fd);

// True when a V(level) line from `file` would be written. Cheap when vmodule
// is unset: one relaxed atomic load.
bool VEnabled(int level, const char* file);

namespace internal {

// Appends `value` to `out` in klog's key=value form.
void AppendQuoted(std::string& out, std::string_view value);

template <typename T>
void AppendValue(std::string& out, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    out += value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, char>) {
    AppendQuoted(out, std::string_view(&value, 1));
  } else if constexpr (std::is_same_v<T, const char*> || std::is_same_v<T, char*>) {
    AppendQuoted(out, value == nullptr ? std::string_view("<null>") : std::string_view(value));
  } else if constexpr (std::is_arithmetic_v<T>) {
    fmt::format_to(std::back_inserter(out), "{}", value);
  } else if constexpr (std::is_same_v<T, absl::Status>) {
    AppendQuoted(out, value.ToString());
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    AppendQuoted(out, std::string_view(value));
  } else {
    AppendQuoted(out, fmt::format("{}", value));
  }
}

inline void AppendPairs(std::string&) {}

template <typename K, typename V, typename... Rest>
void AppendPairs(std::string& out, const K& key, const V& value, const Rest&... rest) {
  static_assert(sizeof...(Rest) % 2 == 0, "log arguments must be key/value pairs");
  out += ' ';
  out += std::string_view(key);
  out += '=';
  AppendValue(out, value);
  AppendPairs(out, rest...);
}

// Starts a line with the klog header and the quoted message.
std::string Header(Severity severity, const char* file, int line, std::string_view message);

// Writes a finished line; aborts the process after a Fatal line.
void Write(Severity severity, std::string& line);

// A per-call-site counter for the sampled form.
bool ShouldLogEveryN(std::atomic<uint64_t>& counter, uint64_t n);

}  // namespace internal

template <typename... KV>
void Emit(Severity severity, const char* file, int line, std::string_view message,
          const KV&... kv) {
  std::string out = internal::Header(severity, file, line, message);
  internal::AppendPairs(out, kv...);
  internal::Write(severity, out);
}

}  // namespace kole::log

#define KOLE_LOG(severity, ...) \
  ::kole::log::Emit(::kole::log::Severity::k##severity, __FILE__, __LINE__, __VA_ARGS__)

#define KOLE_VLOG(level, ...)                       \
  do {                                              \
    if (::kole::log::VEnabled((level), __FILE__)) { \
      KOLE_LOG(Info, __VA_ARGS__);                  \
    }                                               \
  } while (0)

// Writes the first line and then one line in every n from this call site.
#define KOLE_LOG_EVERY_N(severity, n, ...)                                \
  do {                                                                    \
    static std::atomic<uint64_t> kole_log_counter_{0};                    \
    if (::kole::log::internal::ShouldLogEveryN(kole_log_counter_, (n))) { \
      KOLE_LOG(severity, __VA_ARGS__);                                    \
    }                                                                     \
  } while (0)
