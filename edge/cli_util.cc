#include "edge/cli_util.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <string>

#include "common/log.h"

namespace kole::edge {

absl::StatusOr<absl::Duration> ParseDurationFlag(std::string_view text) {
  absl::Duration duration;
  if (!text.empty() && absl::ParseDuration(std::string(text), &duration) &&
      duration >= absl::ZeroDuration()) {
    return duration;
  }
  double seconds = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (!text.empty() && error == std::errc() && end == text.data() + text.size() && seconds >= 0) {
    return absl::Seconds(seconds);
  }
  return absl::InvalidArgumentError(
      fmt::format("{:?} is not a duration (write e.g. 10s, 500ms, 1m30s)", text));
}

uint64_t ReadRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

absl::Status ApplyLogFlags(int verbosity, const std::string& vmodule) {
  log::SetVerbosity(verbosity);
  if (!vmodule.empty()) return log::SetVModule(vmodule);
  return absl::OkStatus();
}

}  // namespace kole::edge
