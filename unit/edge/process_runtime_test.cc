#include "edge/process_runtime.h"

#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

// These tests run real processes (/bin/sh, /bin/sleep) in a temporary
// directory, with backoffs and grace periods of tens of milliseconds.

namespace kole::edge {
namespace {

std::string Describe(const PodReport& r) {
  std::ostringstream out;
  out << r.key << " rev=" << r.revision << " phase=" << PodPhaseName(r.phase)
      << " ready=" << r.ready_containers << "/" << r.containers << " restarts=" << r.restarts
      << " reason=" << r.reason << " message=\"" << r.message << "\"";
  return out.str();
}

ContainerSpec Shell(std::string name, std::string script) {
  return ContainerSpec{.name = std::move(name), .command = {"/bin/sh", "-c", std::move(script)}};
}

PodSpec ShellPod(std::string key, std::string revision, std::string script,
                 std::string policy = "Always") {
  return PodSpec{.key = std::move(key),
                 .revision = std::move(revision),
                 .containers = {Shell("main", std::move(script))},
                 .restart_policy = std::move(policy)};
}

std::optional<PodReport> Find(const std::vector<PodReport>& reports, std::string_view key) {
  for (const PodReport& r : reports) {
    if (r.key == key) return r;
  }
  return std::nullopt;
}

// Polls every 10 ms until `done` holds for `key`'s report; fails the test and
// returns nullopt after `timeout`.
std::optional<PodReport> PollUntil(ProcessRuntime& runtime, std::string_view key,
                                   const std::function<bool(const PodReport&)>& done,
                                   absl::Duration timeout = absl::Seconds(2)) {
  absl::Time deadline = absl::Now() + timeout;
  std::string last = "no report";
  while (absl::Now() < deadline) {
    if (std::optional<PodReport> r = Find(runtime.Poll(), key)) {
      if (done(*r)) return r;
      last = Describe(*r);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ADD_FAILURE() << "condition not reached; last report: " << last;
  return std::nullopt;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The content of `path` once it is non-empty and ends in a newline.
std::string WaitForFile(const std::string& path, absl::Duration timeout = absl::Seconds(2)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::string text = ReadFile(path);
    if (!text.empty() && text.back() == '\n') return text;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ADD_FAILURE() << path << " was not written";
  return "";
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// False once the process is gone or a zombie. Orphans are re-parented to the
// machine's init, which may never reap them, so a zombie counts as gone.
bool Alive(pid_t pid) {
  std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z';
}

bool WaitGone(pid_t pid, absl::Duration timeout = absl::Seconds(2)) {
  absl::Time deadline = absl::Now() + timeout;
  while (Alive(pid)) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

class ProcessRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    work_dir_ = (std::filesystem::path(::testing::TempDir()) / ("process-runtime-" + name))
                    .lexically_normal()
                    .string();
    std::filesystem::remove_all(work_dir_);
  }

  ProcessRuntimeOptions Options() const {
    return ProcessRuntimeOptions{.work_dir = work_dir_,
                                 .initial_backoff = absl::Milliseconds(50),
                                 .max_backoff = absl::Milliseconds(400),
                                 .stop_grace = absl::Milliseconds(300),
                                 .stable_after = absl::Minutes(10)};
  }

  std::string work_dir_;
};

TEST_F(ProcessRuntimeTest, StartsPodAndReportsRunning) {
  ProcessRuntime runtime(Options());
  runtime.Apply({PodSpec{.key = "default/web",
                         .revision = "7",
                         .containers = {{.name = "app", .command = {"/bin/sleep"}, .args = {"30"}},
                                        Shell("side", "exec sleep 30")}}});

  std::vector<PodReport> reports = runtime.Poll();
  ASSERT_EQ(reports.size(), 1u);
  const PodReport& r = reports[0];
  EXPECT_EQ(r.key, "default/web");
  EXPECT_EQ(r.revision, "7");
  EXPECT_EQ(r.phase, PodPhase::kRunning) << Describe(r);
  EXPECT_EQ(r.ready_containers, 2);
  EXPECT_EQ(r.containers, 2);
  EXPECT_EQ(r.restarts, 0);
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(r.last_restart_unix, 0);
  EXPECT_EQ(runtime.PodDir("default/web"), work_dir_ + "/default_web");
  EXPECT_TRUE(std::filesystem::is_directory(runtime.PodDir("default/web")));
}

TEST_F(ProcessRuntimeTest, ArgsEnvWorkingDirectoryAndLogReachTheProcess) {
  ProcessRuntime runtime(Options());
  PodSpec pod{
      .key = "ns/env",
      .revision = "1",
      .containers = {{.name = "main",
                      .command = {"/bin/sh", "-c"},
                      .args = {"echo \"$GREETING $0 $1\" > out.txt; env > env.txt; pwd > pwd.txt; "
                               "echo to-stdout; echo to-stderr >&2; echo done > done.txt; "
                               "exec sleep 30",
                               "first", "second two"},
                      .env = {{"GREETING", "hello"}, {"EMPTY", ""}}}}};
  runtime.Apply({pod});
  std::string dir = runtime.PodDir("ns/env");
  WaitForFile(dir + "/done.txt");

  EXPECT_EQ(ReadFile(dir + "/out.txt"), "hello first second two\n");
  EXPECT_EQ(ReadFile(dir + "/pwd.txt"), dir + "\n");
  std::string env = ReadFile(dir + "/env.txt");
  EXPECT_NE(env.find("GREETING=hello\n"), std::string::npos) << env;
  EXPECT_NE(env.find("EMPTY=\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH=/"), std::string::npos) << env;
  EXPECT_EQ(env.find("HOME="), std::string::npos) << "only PATH of the agent's environment\n"
                                                  << env;
  EXPECT_EQ(ReadFile(runtime.LogPath("ns/env", "main")), "to-stdout\nto-stderr\n");
  EXPECT_EQ(runtime.LogPath("ns/env", "main"), dir + "/main.log");
}

TEST_F(ProcessRuntimeTest, CrashLoopCountsRestartsAndBacksOffExponentially) {
  ProcessRuntimeOptions options = Options();
  options.initial_backoff = absl::Milliseconds(100);
  ProcessRuntime runtime(options);
  absl::Time applied = absl::Now();
  runtime.Apply({ShellPod("ns/crash", "1", "echo ran >> runs; exit 1")});

  std::optional<PodReport> r = PollUntil(runtime, "ns/crash", [](const PodReport& r) {
    return r.reason == "CrashLoopBackOff" && r.restarts >= 3;
  });
  ASSERT_TRUE(r.has_value());
  // Waits of 100, 200 and 400 ms before restarts 1, 2 and 3; without the
  // doubling the third restart would come after 300 ms.
  EXPECT_GE(absl::Now() - applied, absl::Milliseconds(650));
  EXPECT_EQ(r->phase, PodPhase::kRunning) << "it started once; " << Describe(*r);
  EXPECT_EQ(r->ready_containers, 0);
  EXPECT_NE(r->message.find("exited with code 1"), std::string::npos) << r->message;
  EXPECT_NEAR(r->last_restart_unix, absl::ToUnixSeconds(absl::Now()), 5);
  EXPECT_EQ(CountLines(ReadFile(runtime.PodDir("ns/crash") + "/runs")), r->restarts + 1);
}

TEST_F(ProcessRuntimeTest, AlwaysRestartsAContainerThatExitedZero) {
  ProcessRuntime runtime(Options());
  runtime.Apply({ShellPod("ns/zero", "1", "exit 0")});
  std::optional<PodReport> r =
      PollUntil(runtime, "ns/zero", [](const PodReport& r) { return r.restarts >= 2; });
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->phase, PodPhase::kSucceeded);
}

TEST_F(ProcessRuntimeTest, OnFailureRestartsOnlyFailedContainers) {
  ProcessRuntime runtime(Options());
  runtime.Apply({PodSpec{.key = "ns/mixed",
                         .revision = "1",
                         .containers = {Shell("ok", "echo ran >> ok.runs; exit 0"),
                                        Shell("bad", "echo ran >> bad.runs; exit 2")},
                         .restart_policy = "OnFailure"},
                 ShellPod("ns/job", "1", "echo ran >> runs; exit 0", "OnFailure")});

  std::optional<PodReport> mixed =
      PollUntil(runtime, "ns/mixed", [](const PodReport& r) { return r.restarts >= 3; });
  ASSERT_TRUE(mixed.has_value());
  EXPECT_EQ(mixed->phase, PodPhase::kRunning) << Describe(*mixed);
  std::string dir = runtime.PodDir("ns/mixed");
  EXPECT_EQ(CountLines(ReadFile(dir + "/ok.runs")), 1) << "a container that exited 0 stays done";
  EXPECT_GE(CountLines(ReadFile(dir + "/bad.runs")), 3);

  std::optional<PodReport> job = Find(runtime.Poll(), "ns/job");
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->phase, PodPhase::kSucceeded) << Describe(*job);
  EXPECT_EQ(job->reason, "Completed");
  EXPECT_EQ(job->restarts, 0);
  EXPECT_EQ(job->ready_containers, 0);
  EXPECT_EQ(CountLines(ReadFile(runtime.PodDir("ns/job") + "/runs")), 1);
}

TEST_F(ProcessRuntimeTest, NeverRestartsAndEndsSucceededOrFailed) {
  ProcessRuntime runtime(Options());
  runtime.Apply({ShellPod("ns/good", "1", "echo ran >> runs; exit 0", "Never"),
                 ShellPod("ns/bad", "1", "echo ran >> runs; exit 3", "Never"),
                 PodSpec{.key = "ns/half",
                         .revision = "1",
                         .containers = {Shell("fails", "exit 1"), Shell("works", "exec sleep 30")},
                         .restart_policy = "Never"}});

  std::optional<PodReport> good = PollUntil(
      runtime, "ns/good", [](const PodReport& r) { return r.phase == PodPhase::kSucceeded; });
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->reason, "Completed");
  std::optional<PodReport> bad =
      PollUntil(runtime, "ns/bad", [](const PodReport& r) { return r.phase == PodPhase::kFailed; });
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->reason, "Error");
  EXPECT_NE(bad->message.find("exited with code 3"), std::string::npos) << bad->message;

  // Several initial backoffs later, nothing ran again.
  absl::SleepFor(absl::Milliseconds(300));
  std::vector<PodReport> reports = runtime.Poll();
  for (const char* key : {"ns/good", "ns/bad"}) {
    std::optional<PodReport> r = Find(reports, key);
    ASSERT_TRUE(r.has_value()) << key;
    EXPECT_EQ(r->restarts, 0) << Describe(*r);
    EXPECT_EQ(CountLines(ReadFile(runtime.PodDir(key) + "/runs")), 1) << key;
  }
  // One container failed, one still runs: Running until both have ended.
  std::optional<PodReport> half = Find(reports, "ns/half");
  ASSERT_TRUE(half.has_value());
  EXPECT_EQ(half->phase, PodPhase::kRunning) << Describe(*half);
  EXPECT_EQ(half->ready_containers, 1);
  EXPECT_EQ(half->reason, "Error");
}

TEST_F(ProcessRuntimeTest, ChangedRevisionReplacesTheProcesses) {
  ProcessRuntime runtime(Options());
  const std::string script = "echo $$ >> pids; exec sleep 30";
  runtime.Apply({ShellPod("ns/app", "1", script)});
  std::string pids_file = runtime.PodDir("ns/app") + "/pids";
  pid_t old_pid = std::stoi(WaitForFile(pids_file));

  runtime.Apply({ShellPod("ns/app", "1", script)});  // Same revision: nothing happens.
  runtime.Apply({ShellPod("ns/app", "2", script)});
  std::optional<PodReport> r = PollUntil(runtime, "ns/app", [&](const PodReport& r) {
    return r.phase == PodPhase::kRunning && CountLines(ReadFile(pids_file)) == 2;
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->revision, "2");
  EXPECT_EQ(r->restarts, 0) << "a new revision is a new pod";
  EXPECT_FALSE(Alive(old_pid));
  std::string pids = ReadFile(pids_file);
  EXPECT_NE(std::stoi(pids.substr(pids.find('\n') + 1)), old_pid);
}

TEST_F(ProcessRuntimeTest, RemovedPodIsStoppedWithTheChildrenItSpawned) {
  ProcessRuntime runtime(Options());
  runtime.Apply(
      {ShellPod("ns/parent", "1", "sleep 30 & echo $! > child.pid; echo $$ > main.pid; wait")});
  std::string dir = runtime.PodDir("ns/parent");
  pid_t main_pid = std::stoi(WaitForFile(dir + "/main.pid"));
  pid_t child_pid = std::stoi(WaitForFile(dir + "/child.pid"));
  ASSERT_TRUE(Alive(main_pid));
  ASSERT_TRUE(Alive(child_pid));

  runtime.Apply({});
  absl::Time deadline = absl::Now() + absl::Seconds(2);
  while ((Alive(main_pid) || Alive(child_pid) || std::filesystem::exists(dir)) &&
         absl::Now() < deadline) {
    EXPECT_TRUE(runtime.Poll().empty());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Alive(main_pid));
  EXPECT_FALSE(Alive(child_pid)) << "the whole process group is stopped";
  EXPECT_FALSE(std::filesystem::exists(dir)) << "a removed pod's directory is deleted";
}

TEST_F(ProcessRuntimeTest, RestartStopsStartsAgainAndCounts) {
  ProcessRuntime runtime(Options());
  runtime.Apply({ShellPod("ns/svc", "1", "echo $$ >> pids; exec sleep 30"),
                 ShellPod("ns/once", "1", "echo ran >> runs; exit 0", "Never")});
  std::string pids_file = runtime.PodDir("ns/svc") + "/pids";
  pid_t old_pid = std::stoi(WaitForFile(pids_file));
  ASSERT_TRUE(PollUntil(runtime, "ns/once",
                        [](const PodReport& r) { return r.phase == PodPhase::kSucceeded; }));

  EXPECT_FALSE(runtime.Restart("ns/unknown"));
  ASSERT_TRUE(runtime.Restart("ns/svc"));
  ASSERT_TRUE(runtime.Restart("ns/once"));
  std::optional<PodReport> r = PollUntil(runtime, "ns/svc", [&](const PodReport& r) {
    return r.phase == PodPhase::kRunning && CountLines(ReadFile(pids_file)) == 2;
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->restarts, 1);
  EXPECT_NEAR(r->last_restart_unix, absl::ToUnixSeconds(absl::Now()), 5);
  EXPECT_TRUE(WaitGone(old_pid));

  std::optional<PodReport> once = PollUntil(runtime, "ns/once", [&](const PodReport& r) {
    return r.phase == PodPhase::kSucceeded &&
           CountLines(ReadFile(runtime.PodDir("ns/once") + "/runs")) == 2;
  });
  ASSERT_TRUE(once.has_value()) << "a finished Never pod runs again";
  EXPECT_EQ(once->restarts, 1);
}

TEST_F(ProcessRuntimeTest, StopGraceEscalatesToSigkill) {
  ProcessRuntimeOptions options = Options();
  options.stop_grace = absl::Milliseconds(500);
  ProcessRuntime runtime(options);
  runtime.Apply({ShellPod("ns/stubborn", "1", "trap '' TERM; echo $$ > main.pid; exec sleep 30")});
  pid_t pid = std::stoi(WaitForFile(runtime.PodDir("ns/stubborn") + "/main.pid"));

  absl::Time stopped = absl::Now();
  runtime.Apply({});
  while (absl::Now() - stopped < absl::Milliseconds(250)) {
    runtime.Poll();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(Alive(pid)) << "SIGTERM is ignored and the grace has not passed";

  while (Alive(pid) && absl::Now() - stopped < absl::Seconds(2)) {
    runtime.Poll();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Alive(pid)) << "SIGKILL after the grace";
  EXPECT_GE(absl::Now() - stopped, absl::Milliseconds(500));
}

TEST_F(ProcessRuntimeTest, NewRevisionWaitsUntilTheOldProcessesAreGone) {
  ProcessRuntime runtime(Options());
  const std::string script = "trap '' TERM; echo $$ >> pids; exec sleep 30";
  runtime.Apply({ShellPod("ns/slow", "1", script)});
  std::string pids_file = runtime.PodDir("ns/slow") + "/pids";
  pid_t old_pid = std::stoi(WaitForFile(pids_file));

  runtime.Apply({ShellPod("ns/slow", "2", script)});
  std::optional<PodReport> r = Find(runtime.Poll(), "ns/slow");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->phase, PodPhase::kPending) << Describe(*r);
  EXPECT_EQ(r->reason, "ContainerCreating");
  EXPECT_EQ(r->ready_containers, 0);
  EXPECT_TRUE(Alive(old_pid));

  r = PollUntil(runtime, "ns/slow", [&](const PodReport& r) {
    return r.phase == PodPhase::kRunning && CountLines(ReadFile(pids_file)) == 2;
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(Alive(old_pid)) << "started only once the old process was killed";
}

TEST_F(ProcessRuntimeTest, UnstartableContainersAreReportedNotFatal) {
  ProcessRuntime runtime(Options());
  runtime.Apply({
      PodSpec{.key = "ns/missing-never",
              .revision = "1",
              .containers = {{.name = "main", .command = {"/nonexistent/kole-missing"}}},
              .restart_policy = "Never"},
      PodSpec{.key = "ns/missing-always",
              .revision = "1",
              .containers = {{.name = "main", .command = {"kole-no-such-command"}}}},
      PodSpec{.key = "ns/no-command", .revision = "1", .containers = {{.name = "main"}}},
      PodSpec{.key = "ns/twice",
              .revision = "1",
              .containers = {Shell("main", "exec sleep 30"), Shell("main", "exec sleep 30")}},
      ShellPod("ns/fine", "1", "exec sleep 30"),
  });

  std::vector<PodReport> reports = runtime.Poll();
  ASSERT_EQ(reports.size(), 5u);
  std::optional<PodReport> never = Find(reports, "ns/missing-never");
  EXPECT_EQ(never->phase, PodPhase::kFailed) << Describe(*never);
  EXPECT_EQ(never->reason, "StartError");
  EXPECT_NE(never->message.find("/nonexistent/kole-missing"), std::string::npos) << never->message;
  std::optional<PodReport> no_command = Find(reports, "ns/no-command");
  EXPECT_EQ(no_command->phase, PodPhase::kFailed) << Describe(*no_command);
  EXPECT_EQ(no_command->reason, "StartError");
  EXPECT_NE(no_command->message.find("no command"), std::string::npos) << no_command->message;
  std::optional<PodReport> twice = Find(reports, "ns/twice");
  EXPECT_EQ(twice->phase, PodPhase::kFailed) << Describe(*twice);
  EXPECT_NE(twice->message.find("used twice"), std::string::npos) << twice->message;
  std::optional<PodReport> fine = Find(reports, "ns/fine");
  EXPECT_EQ(fine->phase, PodPhase::kRunning) << Describe(*fine);

  // Always retries with backoff: it may appear on the device later.
  std::optional<PodReport> always =
      PollUntil(runtime, "ns/missing-always", [](const PodReport& r) { return r.restarts >= 2; });
  ASSERT_TRUE(always.has_value());
  EXPECT_EQ(always->phase, PodPhase::kPending) << "never started; " << Describe(*always);
  EXPECT_EQ(always->reason, "StartError");
  EXPECT_NE(always->message.find("not found in PATH"), std::string::npos) << always->message;
}

TEST_F(ProcessRuntimeTest, OversizedLogIsTruncated) {
  ProcessRuntimeOptions options = Options();
  options.max_log_bytes = 64 << 10;
  ProcessRuntime runtime(options);
  runtime.Apply(
      {ShellPod("ns/chatty", "1", "head -c 100000 /dev/zero; echo > written; exec sleep 30")});
  WaitForFile(runtime.PodDir("ns/chatty") + "/written");
  std::string log = runtime.LogPath("ns/chatty", "main");
  ASSERT_EQ(std::filesystem::file_size(log), 100000u);

  runtime.Poll();
  EXPECT_EQ(std::filesystem::file_size(log), 0u);
}

TEST_F(ProcessRuntimeTest, DestructorStopsEverything) {
  pid_t main_pid, child_pid;
  {
    ProcessRuntime runtime(Options());
    runtime.Apply(
        {ShellPod("ns/a", "1", "sleep 30 & echo $! > child.pid; echo $$ > main.pid; wait"),
         ShellPod("ns/b", "1", "trap '' TERM; exec sleep 30")});
    main_pid = std::stoi(WaitForFile(runtime.PodDir("ns/a") + "/main.pid"));
    child_pid = std::stoi(WaitForFile(runtime.PodDir("ns/a") + "/child.pid"));
  }
  EXPECT_FALSE(Alive(main_pid));
  EXPECT_TRUE(WaitGone(child_pid, absl::Milliseconds(200)));
}

TEST(ProcessRuntime, PodDirectoriesAreDistinctAndStayInsideTheWorkDir) {
  ProcessRuntime runtime({.work_dir = "/var/lib/pods/"});
  EXPECT_EQ(runtime.PodDir("kube-system/agent.v2"), "/var/lib/pods/kube-system_agent.v2");
  EXPECT_NE(runtime.PodDir("a_b/c"), runtime.PodDir("a/b_c"));
  EXPECT_EQ(runtime.PodDir(".."), "/var/lib/pods/%2E.");
  EXPECT_EQ(runtime.LogPath("ns/x", "a b"), "/var/lib/pods/ns_x/a%20b.log");
}

TEST(ProcessRuntime, PhaseNames) {
  EXPECT_EQ(PodPhaseName(PodPhase::kPending), "Pending");
  EXPECT_EQ(PodPhaseName(PodPhase::kSucceeded), "Succeeded");
}

}  // namespace
}  // namespace kole::edge
