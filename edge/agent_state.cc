#include "edge/agent_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kole::edge {
namespace {

std::string StatePath(const std::string& dir) { return dir + "/state"; }

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(fmt::format("{}: {}", what, std::strerror(errno)));
}

}  // namespace

absl::StatusOr<uint32_t> LoadEpoch(const std::string& state_dir) {
  std::ifstream in(StatePath(state_dir));
  if (!in) {
    if (!std::filesystem::exists(StatePath(state_dir))) return 0;
    return absl::UnavailableError(fmt::format("cannot read {}", StatePath(state_dir)));
  }
  std::string word;
  long long epoch = -1;
  in >> word >> epoch;
  if (word != "epoch" || epoch < 0 || epoch > UINT32_MAX) {
    return absl::DataLossError(fmt::format(
        "{} is not an agent state file (want \"epoch <n>\"); move it away to start over at a "
        "new epoch the cloud may not order correctly",
        StatePath(state_dir)));
  }
  return static_cast<uint32_t>(epoch);
}

absl::Status SaveEpoch(const std::string& state_dir, uint32_t epoch) {
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error) {
    return absl::UnavailableError(
        fmt::format("creating state directory {}: {}", state_dir, error.message()));
  }
  std::string temporary = StatePath(state_dir) + ".tmp";
  std::string text = fmt::format("epoch {}\n", epoch);
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating " + temporary);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ok && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!ok) {
    errno = saved;
    return Errno("writing " + temporary);
  }
  if (rename(temporary.c_str(), StatePath(state_dir).c_str()) != 0) {
    return Errno("renaming " + temporary);
  }
  int dir = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Errno("opening " + state_dir);
  ok = fsync(dir) == 0;
  close(dir);
  if (!ok) return Errno("syncing " + state_dir);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> NextEpoch(const std::string& state_dir) {
  absl::StatusOr<uint32_t> epoch = LoadEpoch(state_dir);
  if (!epoch.ok()) return epoch.status();
  if (*epoch == UINT32_MAX) return absl::OutOfRangeError("the epoch counter is exhausted");
  uint32_t next = *epoch + 1;
  if (absl::Status saved = SaveEpoch(state_dir, next); !saved.ok()) return saved;
  return next;
}

}  // namespace kole::edge
