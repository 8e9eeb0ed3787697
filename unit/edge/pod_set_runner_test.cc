#include "edge/pod_set_runner.h"

#include <absl/time/clock.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

// The process runtime cases run real processes (/bin/sh) in a temporary
// directory, with backoffs and grace periods of tens of milliseconds.

namespace kole::edge {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

std::string Payload(const std::string& workload, const std::string& revision,
                    const std::string& spec) {
  std::string out;
  protocol::EncodeWorkloadTemplate(
      {.namespace_ = "edge",
       .workload = workload,
       .revision = revision,
       .template_json = R"({"metadata":{"labels":{},"annotations":{}},"spec":)" + spec + "}"},
      out);
  return out;
}

// A pod whose one container runs `script` with /bin/sh. The script is an
// arg, so Kubernetes' $(VAR) expansion applies: "$$$$" gives the shell "$$".
std::string ShellSpec(const std::string& script, const std::string& policy = "Always") {
  std::string quoted;
  for (char c : script) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return fmt::format(R"({{"restartPolicy":"{}","containers":[{{"name":"main","image":"ignored:1",)"
                     R"("command":["/bin/sh","-c"],"args":["{}"],"env":[{{"name":"NODE_NAME",)"
                     R"("valueFrom":{{"fieldRef":{{"fieldPath":"spec.nodeName"}}}}}}]}}]}})",
                     policy, quoted);
}

protocol::PodRef Ref(const std::string& workload, const std::string& revision,
                     uint32_t restart = 0) {
  return {.namespace_ = "edge",
          .name = workload + "-n1",
          .workload = workload,
          .revision = revision,
          .restart = restart};
}

protocol::NodePods Set(const std::string& revision, std::vector<protocol::PodRef> pods) {
  return {.node = "n1", .pod_revision = revision, .pods = std::move(pods)};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

bool Alive(pid_t pid) {
  std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

std::string Describe(const std::vector<protocol::PodStatus>& due) {
  std::string out;
  for (const protocol::PodStatus& s : due) {
    out += fmt::format("[{}/{} {} {} ready={} restarts={} {}] ", s.namespace_, s.workload,
                       s.revision, s.phase, s.ready, s.restarts, s.reason);
  }
  return out.empty() ? "no reports" : out;
}

class PodSetRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    work_dir_ = (std::filesystem::path(::testing::TempDir()) / ("pod-set-runner-" + name))
                    .lexically_normal()
                    .string();
    std::filesystem::remove_all(work_dir_);
  }

  std::unique_ptr<PodSetRunner> Runner(PodRuntimeKind kind = PodRuntimeKind::kProcess,
                                       absl::Duration stop_grace = absl::Milliseconds(200)) {
    return std::make_unique<PodSetRunner>(
        PodSetRunnerOptions{.node = "n1",
                            .runtime = kind,
                            .process = {.work_dir = work_dir_,
                                        .initial_backoff = absl::Milliseconds(50),
                                        .max_backoff = absl::Milliseconds(200),
                                        .stop_grace = stop_grace},
                            .report_hold = absl::Seconds(1)});
  }

  // The pod's working directory (where the test scripts write).
  std::string Dir(const std::string& workload) const { return work_dir_ + "/edge_" + workload; }

  // Polls every 20 ms until `done` holds for the reports due; returns them.
  // Fails the test after `timeout`.
  static std::vector<protocol::PodStatus> PollUntil(
      PodSetRunner& runner,
      const std::function<bool(const std::vector<protocol::PodStatus>&)>& done,
      absl::Duration timeout = absl::Seconds(5)) {
    absl::Time deadline = absl::Now() + timeout;
    std::vector<protocol::PodStatus> due;
    while (absl::Now() < deadline) {
      due = runner.Poll(absl::Now());
      if (done(due)) return due;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "condition not reached; last: " << Describe(due);
    return due;
  }

  // Polls until `path` holds at least `lines` lines.
  static std::string WaitForLines(PodSetRunner& runner, const std::string& path, int lines,
                                  absl::Duration timeout = absl::Seconds(5)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      runner.Poll(absl::Now());
      std::string text = ReadFile(path);
      if (CountLines(text) >= lines) return text;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << path << " did not reach " << lines << " lines: " << ReadFile(path);
    return ReadFile(path);
  }

  std::string work_dir_;
};

TEST_F(PodSetRunnerTest, NoneRuntimeRunsTheSetOnceEveryTemplateArrived) {
  std::unique_ptr<PodSetRunner> runner = Runner(PodRuntimeKind::kNone);
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "");
  ASSERT_TRUE(runner->SetDesired(Set("0000aaaa", {Ref("a", "00000001"), Ref("b", "00000002")})));
  EXPECT_TRUE(runner->waiting());
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "") << "no template yet";

  runner->OnTemplate("edge", "a", "00000001", Payload("a", "00000001", ShellSpec("true")));
  EXPECT_TRUE(runner->waiting());
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "") << "one template of two";

  runner->OnTemplate("edge", "b", "00000002", Payload("b", "00000002", ShellSpec("true")));
  EXPECT_FALSE(runner->waiting());
  EXPECT_EQ(runner->applied_revision(), "0000aaaa");
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "0000aaaa");
  EXPECT_THAT(runner->Poll(absl::Now() + absl::Hours(1)), IsEmpty()) << "none never reports";
  EXPECT_FALSE(std::filesystem::exists(work_dir_)) << "nothing runs";

  ASSERT_TRUE(runner->SetDesired(Set("", {})));
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "") << "the empty set has no revision";
}

TEST_F(PodSetRunnerTest, WorkloadsAreThoseOfTheDesiredSetSorted) {
  std::unique_ptr<PodSetRunner> runner = Runner(PodRuntimeKind::kNone);
  ASSERT_TRUE(runner->SetDesired(Set("00000001", {Ref("b", "00000001"), Ref("a", "00000002")})));
  EXPECT_THAT(runner->Workloads(), ElementsAre(Pair("edge", "a"), Pair("edge", "b")));
}

TEST_F(PodSetRunnerTest, SetsWithDuplicateWorkloadsOrUnusableNamesAreRefused) {
  std::unique_ptr<PodSetRunner> runner = Runner(PodRuntimeKind::kNone);
  ASSERT_TRUE(runner->SetDesired(Set("00000001", {Ref("a", "00000001")})));
  EXPECT_FALSE(runner->SetDesired(Set("00000002", {Ref("a", "00000001"), Ref("a", "00000002")})));
  EXPECT_FALSE(runner->SetDesired(Set("00000003", {Ref("a/b", "00000001")})));
  EXPECT_FALSE(runner->SetDesired(Set("00000004", {Ref("a", "+")})));
  EXPECT_FALSE(runner->SetDesired(Set("00000005", {Ref("", "00000001")})));
  EXPECT_EQ(runner->desired_revision(), "00000001") << "a refused set changes nothing";
}

TEST_F(PodSetRunnerTest, ProcessRuntimeStartsThePodAndThenCarriesItsRevision) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001",
                     Payload("a", "00000001", ShellSpec("echo $NODE_NAME >> started; sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("0000abcd", {Ref("a", "00000001")})));
  EXPECT_EQ(runner->applied_revision(), "0000abcd");

  // Running: the first set after a start is reported once, since the cloud
  // may still hold what a previous run of the agent said.
  std::vector<protocol::PodStatus> due =
      PollUntil(*runner, [](const auto& due) { return !due.empty(); });
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].workload, "a");
  EXPECT_EQ(due[0].revision, "00000001");
  EXPECT_EQ(due[0].phase, "Running");
  EXPECT_EQ(due[0].ready, 1u);
  EXPECT_EQ(due[0].restarts, 0u);
  EXPECT_EQ(due[0].reason, "");
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "0000abcd");
  EXPECT_EQ(WaitForLines(*runner, Dir("a") + "/started", 1), "n1\n")
      << "the command ran in the pod's directory with the fieldRef variable";

  runner->ReportsSent(due);
  EXPECT_THAT(runner->Poll(absl::Now() + absl::Seconds(2)), IsEmpty())
      << "a report goes out once per change";
}

TEST_F(PodSetRunnerTest, RevisionWaitsUntilEveryPodHasStarted) {
  std::unique_ptr<PodSetRunner> runner = Runner(PodRuntimeKind::kProcess, absl::Seconds(3));
  runner->OnTemplate(
      "edge", "a", "00000001",
      Payload("a", "00000001", ShellSpec("trap '' TERM; echo ready > ready; sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  WaitForLines(*runner, Dir("a") + "/ready", 1);
  ASSERT_EQ(runner->HeartbeatRevision(absl::Now()), "00000010");

  // The new revision waits for the old process, which ignores SIGTERM,
  // until the grace period (3 s) ends.
  runner->OnTemplate("edge", "a", "00000002", Payload("a", "00000002", ShellSpec("sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000020", {Ref("a", "00000002")})));
  for (int i = 0; i < 10; ++i) {
    runner->Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000010")
      << "ContainerCreating: the previous revision still rides on heartbeats";
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (runner->HeartbeatRevision(absl::Now()) != "00000020" && absl::Now() < deadline) {
    runner->Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000020");
}

TEST_F(PodSetRunnerTest, HealthyPodOfALaterSetIsNeverReported) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001", Payload("a", "00000001", ShellSpec("sleep 60")));
  runner->OnTemplate("edge", "b", "00000001",
                     Payload("b", "00000001", ShellSpec("echo up > up; sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  runner->ReportsSent(PollUntil(*runner, [](const auto& due) { return !due.empty(); }));
  runner->HeartbeatRevision(absl::Now());

  ASSERT_TRUE(runner->SetDesired(Set("00000020", {Ref("a", "00000001"), Ref("b", "00000001")})));
  WaitForLines(*runner, Dir("b") + "/up", 1);
  EXPECT_THAT(runner->Poll(absl::Now() + absl::Seconds(2)), IsEmpty())
      << Describe(runner->Poll(absl::Now() + absl::Seconds(2)));
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000020");
  EXPECT_THAT(runner->Poll(absl::Now() + absl::Seconds(2)), IsEmpty());
}

TEST_F(PodSetRunnerTest, CrashLoopIsReportedWhenItsStateChangesOnly) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "crash", "00000001",
                     Payload("crash", "00000001", ShellSpec("echo run >> runs; exit 3")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("crash", "00000001")})));
  std::vector<protocol::PodStatus> due = PollUntil(*runner, [](const auto& due) {
    return !due.empty() && due[0].reason == "CrashLoopBackOff" && due[0].restarts >= 1;
  });
  EXPECT_EQ(due[0].phase, "Running");
  EXPECT_EQ(due[0].ready, 0u);
  EXPECT_GT(due[0].last_restart, 0u);
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000010")
      << "a crash-looping pod has started: the set is applied";
  runner->ReportsSent(due);
  uint32_t restarts = due[0].restarts;

  // Each restart is a change; between them nothing is due.
  due = PollUntil(*runner, [&](const auto& due) { return !due.empty(); });
  ASSERT_EQ(due.size(), 1u);
  EXPECT_GT(due[0].restarts, restarts) << Describe(due);
  runner->ReportsSent(due);
  EXPECT_GE(CountLines(ReadFile(Dir("crash") + "/runs")), 3);
}

TEST_F(PodSetRunnerTest, ReportsNotTakenAreDueAgain) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001", Payload("a", "00000001", ShellSpec("sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  std::vector<protocol::PodStatus> first =
      PollUntil(*runner, [](const auto& due) { return !due.empty(); });
  // Not published (disconnected, say): the next poll has it again.
  EXPECT_EQ(runner->Poll(absl::Now()), first);
}

TEST_F(PodSetRunnerTest, ChangedRestartCounterRestartsThePodWhichCountsFromZero) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001",
                     Payload("a", "00000001", ShellSpec("echo $$$$ >> starts; exec sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001", 0)})));
  runner->ReportsSent(PollUntil(*runner, [](const auto& due) { return !due.empty(); }));
  runner->HeartbeatRevision(absl::Now());
  std::string first = WaitForLines(*runner, Dir("a") + "/starts", 1);
  pid_t old_pid = std::stoi(first);

  ASSERT_TRUE(runner->SetDesired(Set("00000011", {Ref("a", "00000001", 1)})));
  std::string both = WaitForLines(*runner, Dir("a") + "/starts", 2);
  pid_t new_pid = std::stoi(both.substr(both.find('\n') + 1));
  EXPECT_NE(new_pid, old_pid);
  EXPECT_FALSE(Alive(old_pid)) << "the old process was stopped";
  EXPECT_TRUE(Alive(new_pid));
  PollUntil(*runner,
            [&](const auto&) { return runner->HeartbeatRevision(absl::Now()) == "00000011"; });

  // Running as the cloud's new pod expects: restarts 0, nothing to report.
  EXPECT_THAT(runner->Poll(absl::Now() + absl::Seconds(2)), IsEmpty())
      << Describe(runner->Poll(absl::Now() + absl::Seconds(2)));
}

TEST_F(PodSetRunnerTest, NonRunningReportIsSentAgainAfterTheConfirmingHeartbeat) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001", Payload("a", "00000001", ShellSpec("sleep 60")));
  runner->OnTemplate("edge", "job", "00000001",
                     Payload("job", "00000001", ShellSpec("exit 3", "Never")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  runner->ReportsSent(PollUntil(*runner, [](const auto& due) { return !due.empty(); }));
  runner->HeartbeatRevision(absl::Now());

  ASSERT_TRUE(runner->SetDesired(Set("00000020", {Ref("a", "00000001"), Ref("job", "00000001")})));
  std::vector<protocol::PodStatus> due =
      PollUntil(*runner, [](const auto& due) { return !due.empty() && due[0].phase == "Failed"; });
  ASSERT_EQ(due.size(), 1u) << Describe(due);
  EXPECT_EQ(due[0].workload, "job");
  EXPECT_EQ(due[0].reason, "Error");
  runner->ReportsSent(due);
  EXPECT_THAT(runner->Poll(absl::Now()), IsEmpty());

  // The cloud makes the set's pods Running when the heartbeat first shows
  // the revision, so the failure goes out again, after the hold.
  absl::Time now = absl::Now();
  EXPECT_EQ(runner->HeartbeatRevision(now), "00000020");
  EXPECT_THAT(runner->Poll(now + absl::Milliseconds(500)), IsEmpty()) << "held";
  due = runner->Poll(now + absl::Milliseconds(1100));
  ASSERT_EQ(due.size(), 1u) << Describe(due);
  EXPECT_EQ(due[0].workload, "job");
  EXPECT_EQ(due[0].phase, "Failed");
  runner->ReportsSent(due);
  EXPECT_EQ(runner->HeartbeatRevision(now), "00000020");
  EXPECT_THAT(runner->Poll(now + absl::Seconds(3)), IsEmpty())
      << "a later heartbeat changes nothing";
}

TEST_F(PodSetRunnerTest, SetWaitingForATemplateLeavesThePreviousSetRunning) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001",
                     Payload("a", "00000001", ShellSpec("echo one >> revs; sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  WaitForLines(*runner, Dir("a") + "/revs", 1);
  PollUntil(*runner, [&](const auto&) { return runner->HeartbeatRevision(absl::Now()) != ""; });

  ASSERT_TRUE(runner->SetDesired(Set("00000020", {Ref("a", "00000002")})));
  EXPECT_TRUE(runner->waiting());
  for (int i = 0; i < 10; ++i) {
    runner->Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000010");
  EXPECT_EQ(ReadFile(Dir("a") + "/revs"), "one\n");

  runner->OnTemplate("edge", "a", "00000002",
                     Payload("a", "00000002", ShellSpec("echo two >> revs; sleep 60")));
  EXPECT_FALSE(runner->waiting());
  EXPECT_EQ(WaitForLines(*runner, Dir("a") + "/revs", 2), "one\ntwo\n");
  PollUntil(*runner,
            [&](const auto&) { return runner->HeartbeatRevision(absl::Now()) == "00000020"; });
}

TEST_F(PodSetRunnerTest, EmptySetStopsThePods) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001",
                     Payload("a", "00000001", ShellSpec("echo $$$$ > pid; exec sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  pid_t pid = std::stoi(WaitForLines(*runner, Dir("a") + "/pid", 1));
  ASSERT_TRUE(Alive(pid));

  ASSERT_TRUE(runner->SetDesired(Set("", {})));
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "");
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (Alive(pid) && absl::Now() < deadline) {
    runner->Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(Alive(pid));
}

TEST_F(PodSetRunnerTest, TemplateNamingAnotherWorkloadRunsNothingAndReportsStartError) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001", Payload("other", "00000001", ShellSpec("sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  std::vector<protocol::PodStatus> due =
      PollUntil(*runner, [](const auto& due) { return !due.empty(); });
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].phase, "Failed");
  EXPECT_EQ(due[0].reason, "StartError");
  EXPECT_EQ(runner->HeartbeatRevision(absl::Now()), "00000010") << "tried, and reported";
}

TEST_F(PodSetRunnerTest, ClearedTemplateDoesNotStopItsPod) {
  std::unique_ptr<PodSetRunner> runner = Runner();
  runner->OnTemplate("edge", "a", "00000001",
                     Payload("a", "00000001", ShellSpec("echo $$$$ > pid; exec sleep 60")));
  runner->OnTemplate("edge", "b", "00000001", Payload("b", "00000001", ShellSpec("sleep 60")));
  ASSERT_TRUE(runner->SetDesired(Set("00000010", {Ref("a", "00000001")})));
  pid_t pid = std::stoi(WaitForLines(*runner, Dir("a") + "/pid", 1));
  runner->OnTemplate("edge", "a", "00000001", "");

  // A later set still names it: it keeps running without its template.
  ASSERT_TRUE(runner->SetDesired(Set("00000020", {Ref("a", "00000001"), Ref("b", "00000001")})));
  EXPECT_FALSE(runner->waiting());
  for (int i = 0; i < 5; ++i) {
    runner->Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(Alive(pid));
}

}  // namespace
}  // namespace kole::edge
