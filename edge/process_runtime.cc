#include "edge/process_runtime.h"

#include <absl/status/statusor.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <system_error>

#include "common/log.h"

namespace kole::edge {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// One path component from any string, injectively: letters, digits, '-' and
// '.' (except a leading one, which would make "." and "..") are kept, '/'
// becomes '_', everything else (including '_' and '%') is %XX.
std::string Escape(std::string_view text) {
  if (text.empty()) return "%";
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || (c == '.' && i > 0);
    if (keep) {
      out += static_cast<char>(c);
    } else if (c == '/') {
      out += '_';
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// execvp's lookup, done in the parent against the PATH the container gets
// (execvp would use the agent's). Relative PATH entries are skipped: they
// would be relative to the agent's directory, not the pod's.
std::optional<std::string> FindExecutable(const std::string& file, std::string_view path) {
  if (file.find('/') != std::string::npos) return file;
  while (!path.empty()) {
    size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    path = colon == std::string_view::npos ? std::string_view() : path.substr(colon + 1);
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = fmt::format("{}/{}", dir, file);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

// Owns the two posix_spawn argument objects.
struct SpawnArgs {
  SpawnArgs() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnArgs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

// Starts `exe` in a new process group with the given argv and environment,
// working directory `dir`, stdin /dev/null and stdout+stderr appended to
// `log`. posix_spawn rather than fork+exec: the child runs no code of ours,
// glibc starts it with a vfork-like clone (cheap in a big agent), and an exec
// failure comes back as the return value. chdir and closefrom are GNU
// extensions (glibc 2.29 and 2.34; Debian 12 has 2.36).
absl::StatusOr<pid_t> Spawn(const std::string& exe, const std::vector<std::string>& argv,
                            const std::vector<std::string>& env, const std::string& dir,
                            const std::string& log) {
  std::vector<char*> argv_p;
  for (const std::string& arg : argv) argv_p.push_back(const_cast<char*>(arg.c_str()));
  argv_p.push_back(nullptr);
  std::vector<char*> env_p;
  for (const std::string& var : env) env_p.push_back(const_cast<char*>(var.c_str()));
  env_p.push_back(nullptr);

  // Signals start at their defaults and unblocked: an ignored SIGPIPE or a
  // blocked mask of the agent would otherwise be inherited across exec.
  SpawnArgs args;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  int rc = posix_spawnattr_setflags(
      &args.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0) rc = posix_spawnattr_setpgroup(&args.attr, 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&args.attr, &none);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&args.attr, &all);

  // Descriptors: stdin, stdout, stderr, and nothing else of the agent's
  // (its MQTT socket, state files) even where O_CLOEXEC was forgotten.
  if (rc == 0) rc = posix_spawn_file_actions_addopen(&args.actions, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) {
    rc = posix_spawn_file_actions_addopen(&args.actions, 1, log.c_str(),
                                          O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&args.actions, 1, 2);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&args.actions, 3);
  if (rc == 0) rc = posix_spawn_file_actions_addchdir_np(&args.actions, dir.c_str());
  if (rc != 0) return absl::InternalError(fmt::format("posix_spawn setup: {}", ErrnoText(rc)));

  pid_t pid = -1;
  rc = posix_spawn(&pid, exe.c_str(), &args.actions, &args.attr, argv_p.data(), env_p.data());
  if (rc != 0) return absl::FailedPreconditionError(fmt::format("{}: {}", exe, ErrnoText(rc)));
  return pid;
}

// If the process `pid` has exited: kills what is left of its process group
// and reaps it. The group is killed before the reap on purpose: while the
// leader is an unreaped zombie its pid, and so the group id, cannot be given
// to a new process, so the SIGKILL cannot hit a stranger.
// Returns the wait status, -1 if it was lost (reaped by someone else), or
// nullopt while the process runs.
std::optional<int> TryReap(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == ECHILD) return -1;
    return std::nullopt;
  }
  if (info.si_pid != pid) return std::nullopt;
  kill(-pid, SIGKILL);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

std::string DescribeStatus(int status) {
  if (status == -1) return "exit status lost (was SIGCHLD ignored?)";
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("ended with wait status {}", status);
}

void TruncateIfOver(const std::string& path, int64_t max_bytes) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && st.st_size > max_bytes) {
    // The writer has the file open with O_APPEND, so it continues at the new
    // end; a reader may see the file shrink.
    if (truncate(path.c_str(), 0) != 0) {
      KOLE_LOG_EVERY_N(Warning, 100, "Could not truncate a container log", "path", path, "err",
                       ErrnoText(errno));
    }
  }
}

// Why the spec cannot run, or "".
std::string Validate(const PodSpec& spec) {
  if (spec.key.empty()) return "empty pod key";
  if (spec.restart_policy != "Always" && spec.restart_policy != "OnFailure" &&
      spec.restart_policy != "Never") {
    return fmt::format("unknown restartPolicy \"{}\"", spec.restart_policy);
  }
  if (spec.containers.empty()) return "no containers";
  for (size_t i = 0; i < spec.containers.size(); ++i) {
    const ContainerSpec& c = spec.containers[i];
    if (c.name.empty()) return fmt::format("container {} has no name", i);
    for (size_t j = 0; j < i; ++j) {
      if (spec.containers[j].name == c.name) {
        return fmt::format("container name \"{}\" is used twice", c.name);
      }
    }
    if (c.command.empty() || c.command[0].empty()) {
      return fmt::format(
          "container \"{}\": no command (the process runtime ignores images, so the command "
          "must be given and exist on the device)",
          c.name);
    }
    for (const auto& [name, value] : c.env) {
      if (name.empty() || name.find('=') != std::string::npos) {
        return fmt::format("container \"{}\": invalid environment variable name \"{}\"", c.name,
                           name);
      }
    }
  }
  return "";
}

}  // namespace

std::string_view PodPhaseName(PodPhase phase) {
  switch (phase) {
    case PodPhase::kPending:
      return "Pending";
    case PodPhase::kRunning:
      return "Running";
    case PodPhase::kSucceeded:
      return "Succeeded";
    case PodPhase::kFailed:
      return "Failed";
  }
  return "Unknown";
}

ProcessRuntime::ProcessRuntime(ProcessRuntimeOptions options)
    : options_(std::move(options)),
      work_dir_(std::filesystem::absolute(options_.work_dir).lexically_normal().string()),
      path_([] {
        const char* path = std::getenv("PATH");
        return std::string(path != nullptr && *path != '\0' ? path : kDefaultPath);
      }()) {}

ProcessRuntime::~ProcessRuntime() {
  absl::Time now = absl::Now();
  for (auto& [key, pod] : pods_) StopPod(pod, now);
  while (!stopping_.empty()) {
    ReapStopping(absl::Now());
    if (!stopping_.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string ProcessRuntime::PodDir(std::string_view key) const {
  std::string dir = work_dir_;
  if (dir.empty() || dir.back() != '/') dir += '/';
  return dir + Escape(key);
}

std::string ProcessRuntime::LogPath(std::string_view key, std::string_view container) const {
  return fmt::format("{}/{}.log", PodDir(key), Escape(container));
}

ProcessRuntime::Pod ProcessRuntime::NewPod(const PodSpec& spec) const {
  Pod pod{.spec = spec, .invalid = Validate(spec)};
  if (!pod.invalid.empty()) {
    KOLE_LOG(Warning, "Pod cannot run", "pod", spec.key, "revision", spec.revision, "err",
             pod.invalid);
    return pod;
  }
  for (const ContainerSpec& c : spec.containers) {
    pod.containers.push_back(Container{.spec = c, .backoff = options_.initial_backoff});
  }
  return pod;
}

void ProcessRuntime::Apply(const std::vector<PodSpec>& pods) {
  absl::Time now = absl::Now();
  std::map<std::string_view, const PodSpec*> wanted;
  for (const PodSpec& spec : pods) {
    if (!wanted.emplace(spec.key, &spec).second) {
      KOLE_LOG(Warning, "Pod listed twice; the first spec is used", "pod", spec.key);
    }
  }

  // Stop what is no longer listed; its directory goes once it has stopped.
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    KOLE_VLOG(2, "Pod removed", "pod", it->first);
    StopPod(it->second, now);
    removed_.insert(it->first);
    it = pods_.erase(it);
  }

  // Add new pods; replace those whose revision changed. The replacement's
  // containers wait in kWaiting until IsStopping() is false for the key.
  for (const auto& [key, spec] : wanted) {
    auto it = pods_.find(key);
    if (it != pods_.end() && it->second.spec.revision == spec->revision) continue;
    if (it != pods_.end()) {
      KOLE_VLOG(2, "Pod revision changed", "pod", key, "from", it->second.spec.revision, "to",
                spec->revision);
      StopPod(it->second, now);
      it->second = NewPod(*spec);
    } else {
      KOLE_VLOG(2, "Pod added", "pod", key, "revision", spec->revision);
      pods_.emplace(std::string(key), NewPod(*spec));
    }
  }

  Step(now);
}

bool ProcessRuntime::Restart(std::string_view key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return false;
  absl::Time now = absl::Now();
  Pod& pod = it->second;
  KOLE_VLOG(2, "Pod restarted on request", "pod", key);
  StopPod(pod, now);
  for (Container& c : pod.containers) {
    c = Container{.spec = std::move(c.spec), .backoff = options_.initial_backoff};
  }
  ++pod.restarts;
  pod.last_restart_unix = absl::ToUnixSeconds(now);
  Step(now);
  return true;
}

std::vector<PodReport> ProcessRuntime::Poll() {
  Step(absl::Now());
  std::vector<PodReport> reports;
  reports.reserve(pods_.size());
  for (const auto& [key, pod] : pods_) reports.push_back(Report(pod));
  return reports;
}

void ProcessRuntime::StopPod(Pod& pod, absl::Time now) {
  for (Container& c : pod.containers) {
    if (c.state != State::kRunning) continue;
    kill(-c.pid, SIGTERM);
    stopping_.push_back(
        StoppingGroup{.key = pod.spec.key, .pid = c.pid, .kill_at = now + options_.stop_grace});
    c.pid = -1;
    c.state = State::kWaiting;
  }
}

bool ProcessRuntime::IsStopping(std::string_view key) const {
  return std::any_of(stopping_.begin(), stopping_.end(),
                     [&](const StoppingGroup& group) { return group.key == key; });
}

void ProcessRuntime::ReapStopping(absl::Time now) {
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    if (TryReap(it->pid).has_value()) {
      it = stopping_.erase(it);
      continue;
    }
    if (!it->killed && now >= it->kill_at) {
      KOLE_VLOG(1, "Container outlived its stop grace; killing it", "pod", it->key, "pid", it->pid);
      kill(-it->pid, SIGKILL);
      it->killed = true;
    }
    ++it;
  }
}

void ProcessRuntime::Step(absl::Time now) {
  ReapStopping(now);

  // Directories of removed pods, once nothing runs in them (and unless the
  // key came back meanwhile).
  for (auto it = removed_.begin(); it != removed_.end();) {
    if (pods_.count(*it) != 0) {
      it = removed_.erase(it);
    } else if (!IsStopping(*it)) {
      std::error_code ec;
      std::filesystem::remove_all(PodDir(*it), ec);
      if (ec)
        KOLE_LOG(Warning, "Could not remove a pod directory", "pod", *it, "err", ec.message());
      it = removed_.erase(it);
    } else {
      ++it;
    }
  }

  for (auto& [key, pod] : pods_) {
    for (Container& c : pod.containers) StepContainer(pod, c, now);
  }
}

void ProcessRuntime::StepContainer(Pod& pod, Container& c, absl::Time now) {
  switch (c.state) {
    case State::kRunning:
      if (std::optional<int> status = TryReap(c.pid)) {
        Exited(pod, c, *status, now);
      } else {
        TruncateIfOver(LogPath(pod.spec.key, c.spec.name), options_.max_log_bytes);
      }
      break;
    case State::kWaiting:
    case State::kBackOff:
      if (now >= c.start_at && !IsStopping(pod.spec.key)) Start(pod, c, now);
      break;
    case State::kCompleted:
    case State::kFailed:
      break;
  }
}

void ProcessRuntime::Start(Pod& pod, Container& c, absl::Time now) {
  if (c.state == State::kBackOff) {
    ++pod.restarts;
    pod.last_restart_unix = absl::ToUnixSeconds(now);
  }

  // argv, then the environment: PATH first, later names replacing earlier.
  std::vector<std::string> argv = c.spec.command;
  argv.insert(argv.end(), c.spec.args.begin(), c.spec.args.end());
  std::vector<std::pair<std::string, std::string>> vars = {{"PATH", path_}};
  for (const auto& var : c.spec.env) {
    auto same = std::find_if(vars.begin(), vars.end(),
                             [&](const auto& seen) { return seen.first == var.first; });
    if (same != vars.end()) {
      same->second = var.second;
    } else {
      vars.push_back(var);
    }
  }
  std::vector<std::string> env;
  for (const auto& [name, value] : vars) env.push_back(name + "=" + value);

  // Resolve, prepare the directory and the log, spawn.
  absl::StatusOr<pid_t> pid = absl::NotFoundError(
      fmt::format("executable \"{}\" not found in PATH {}", argv[0], vars[0].second));
  std::optional<std::string> exe = FindExecutable(argv[0], vars[0].second);
  const std::string dir = PodDir(pod.spec.key);
  const std::string log = LogPath(pod.spec.key, c.spec.name);
  std::error_code ec;
  if (exe.has_value() && !std::filesystem::create_directories(dir, ec) && ec) {
    pid = absl::UnavailableError(fmt::format("cannot create {}: {}", dir, ec.message()));
  } else if (exe.has_value()) {
    TruncateIfOver(log, options_.max_log_bytes);
    pid = Spawn(*exe, argv, env, dir, log);
  }

  c.started_at = now;
  if (pid.ok()) {
    KOLE_VLOG(2, "Container started", "pod", pod.spec.key, "container", c.spec.name, "pid", *pid);
    c.state = State::kRunning;
    c.pid = *pid;
    c.started = true;
    c.start_failed = false;
    c.error.clear();
    return;
  }

  KOLE_LOG(Warning, "Container could not start", "pod", pod.spec.key, "container", c.spec.name,
           "err", pid.status());
  c.start_failed = true;
  c.error = std::string(pid.status().message());
  if (pod.spec.restart_policy == "Never") {
    c.state = State::kFailed;
  } else {
    Schedule(c, now);
  }
}

void ProcessRuntime::Exited(Pod& pod, Container& c, int status, absl::Time now) {
  bool success = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  KOLE_VLOG(2, "Container exited", "pod", pod.spec.key, "container", c.spec.name, "pid", c.pid,
            "status", DescribeStatus(status));
  c.pid = -1;
  c.start_failed = false;
  c.error = DescribeStatus(status);
  const std::string& policy = pod.spec.restart_policy;
  if (policy == "Always" || (policy == "OnFailure" && !success)) {
    Schedule(c, now);
  } else {
    c.state = success ? State::kCompleted : State::kFailed;
  }
}

void ProcessRuntime::Schedule(Container& c, absl::Time now) {
  if (now - c.started_at >= options_.stable_after) c.backoff = options_.initial_backoff;
  c.state = State::kBackOff;
  c.start_at = now + c.backoff;
  c.backoff = std::min(c.backoff * 2, options_.max_backoff);
}

PodReport ProcessRuntime::Report(const Pod& pod) const {
  PodReport report{.key = pod.spec.key,
                   .revision = pod.spec.revision,
                   .containers = static_cast<int>(pod.spec.containers.size()),
                   .restarts = pod.restarts,
                   .last_restart_unix = pod.last_restart_unix};
  if (!pod.invalid.empty()) {
    report.phase = PodPhase::kFailed;
    report.reason = "StartError";
    report.message = pod.invalid;
    return report;
  }

  bool all_finished = true, all_succeeded = true, all_started = true;
  for (const Container& c : pod.containers) {
    bool finished = c.state == State::kCompleted || c.state == State::kFailed;
    if (c.state == State::kRunning) ++report.ready_containers;
    all_finished = all_finished && finished;
    all_succeeded = all_succeeded && c.state == State::kCompleted;
    all_started = all_started && (finished || c.started);
  }
  if (all_finished) {
    report.phase = all_succeeded ? PodPhase::kSucceeded : PodPhase::kFailed;
  } else {
    report.phase = all_started ? PodPhase::kRunning : PodPhase::kPending;
  }

  // The reason: the first container showing the most important condition.
  auto find = [&](auto predicate) -> const Container* {
    auto it = std::find_if(pod.containers.begin(), pod.containers.end(), predicate);
    return it == pod.containers.end() ? nullptr : &*it;
  };
  if (const Container* c = find([](const Container& c) {
        return c.start_failed && (c.state == State::kBackOff || c.state == State::kFailed);
      })) {
    report.reason = "StartError";
    report.message = fmt::format("container \"{}\": {}", c->spec.name, c->error);
  } else if (const Container* c =
                 find([](const Container& c) { return c.state == State::kBackOff; })) {
    report.reason = "CrashLoopBackOff";
    report.message =
        fmt::format("back-off restarting container \"{}\"; it {}", c->spec.name, c->error);
  } else if (const Container* c =
                 find([](const Container& c) { return c.state == State::kFailed; })) {
    report.reason = "Error";
    report.message = fmt::format("container \"{}\" {}", c->spec.name, c->error);
  } else if (report.phase == PodPhase::kPending) {
    report.reason = "ContainerCreating";
  } else if (report.phase == PodPhase::kSucceeded) {
    report.reason = "Completed";
  }
  return report;
}

}  // namespace kole::edge
