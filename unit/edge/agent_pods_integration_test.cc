// kole-agent (the real binary) running the pods the cloud assigns it,
// against a real mosquitto and TestCloud, which publishes retained workload
// templates and pod sets and records the heartbeats' podRev and the
// podstatus reports. With --runtime=process the pods' commands are real
// /bin/sh processes writing into this test's directory.

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "unit/edge/edge_test_support.h"

namespace kole::edge::testing {
namespace {

const std::string kAgent = std::string(KOLE_BIN_DIR) + "/kole-agent";
const std::string kNode = "pi-lab-07";  // The node name of testdata/rpi.

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The template of a pod with one container running `script` with /bin/sh,
// NODE_NAME in its environment. Kubernetes' $(VAR) expansion applies to the
// script: "$$$$" is the shell's "$$".
protocol::WorkloadTemplate ShellTemplate(const std::string& workload, const std::string& revision,
                                         const std::string& script) {
  return {.namespace_ = "edge",
          .workload = workload,
          .revision = revision,
          .template_json = fmt::format(
              R"({{"metadata":{{"labels":{{"app":"{}"}},"annotations":{{}}}},"spec":{{)"
              R"("restartPolicy":"Always","containers":[{{"name":"main","image":"busybox:1.36",)"
              R"("command":["/bin/sh","-c",{}],"env":[{{"name":"NODE_NAME","valueFrom":)"
              R"({{"fieldRef":{{"fieldPath":"spec.nodeName"}}}}}}]}}]}}}})",
              workload, JsonString(script))};
}

protocol::PodRef Ref(const std::string& workload, const std::string& revision,
                     uint32_t restart = 0) {
  return {.namespace_ = "edge",
          .name = workload + "-" + kNode,
          .workload = workload,
          .revision = revision,
          .restart = restart};
}

protocol::NodePods Set(const std::string& revision, std::vector<protocol::PodRef> pods) {
  return {.node = kNode, .pod_revision = revision, .pods = std::move(pods)};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(15)) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// False once the process is gone or a zombie.
bool Alive(pid_t pid) {
  std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

class AgentPodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/agent-pods-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/out");
    broker_ = std::make_unique<Broker>(dir_ + "/broker");
    ASSERT_TRUE(broker_->Start()) << "mosquitto did not start";
    cloud_ = std::make_unique<TestCloud>(broker_->url());
    ASSERT_TRUE(cloud_->Start());
  }

  void TearDown() override {
    if (agent_) {
      agent_->Signal(SIGTERM);
      agent_->Wait(absl::Seconds(10));
    }
  }

  // Starts the agent and waits for its first heartbeats.
  void StartAgent(std::vector<std::string> extra = {"--runtime=process"}) {
    std::vector<std::string> args = {"--broker",
                                     broker_->url(),
                                     "--facts-root",
                                     std::string(KOLE_EDGE_TESTDATA) + "/rpi",
                                     "--state-dir",
                                     dir_ + "/state",
                                     "--heartbeat-interval",
                                     "300ms",
                                     "--retry-initial-backoff",
                                     "300ms",
                                     "--pod-restart-backoff",
                                     "200ms",
                                     "--pod-restart-max-backoff",
                                     "400ms",
                                     "--pod-stop-grace-period",
                                     "1s",
                                     "-v",
                                     "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<Process>(kAgent, args, dir_ + "/agent");
    ASSERT_TRUE(agent_->Start());
    ASSERT_TRUE(cloud_->WaitFor(
        [](const TestCloud& c) {
          auto it = c.nodes().find(kNode);
          return it != c.nodes().end() && it->second.accepted && it->second.heartbeats >= 1;
        },
        absl::Seconds(15)))
        << agent_->Stderr();
  }

  // True once heartbeats carry `revision`, and two more after the first.
  bool HeartbeatsCarry(const std::string& revision) {
    uint32_t seen = 0;
    return cloud_->WaitFor(
        [&](const TestCloud& c) {
          const NodeRecord& r = c.nodes().at(kNode);
          if (r.pod_revision != revision) {
            seen = 0;
            return false;
          }
          if (seen == 0) seen = r.heartbeats;
          return r.heartbeats >= seen + 2;
        },
        absl::Seconds(15));
  }

  std::string PodRevision() { return cloud_->Snapshot().at(kNode).pod_revision; }

  std::string Out(const std::string& name) const { return dir_ + "/out/" + name; }

  std::string dir_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<TestCloud> cloud_;
  std::unique_ptr<Process> agent_;
};

TEST_F(AgentPodsTest, ProcessRuntimeRunsTheAssignedPodAndHeartbeatsCarryItsRevision) {
  // The template is retained before the agent knows it needs it.
  cloud_->PublishTemplate(ShellTemplate(
      "logger", "00000001", "echo $NODE_NAME $$$$ >> " + Out("starts") + "; exec sleep 60"));
  StartAgent();
  EXPECT_EQ(PodRevision(), "") << "no pods yet";

  cloud_->SendPods(Set("0000abcd", {Ref("logger", "00000001")}));
  ASSERT_TRUE(WaitUntil([&] { return Lines(Out("starts")).size() == 1; })) << agent_->Stderr();
  std::string line = Lines(Out("starts"))[0];
  EXPECT_THAT(line, ::testing::StartsWith(kNode + " ")) << "env from a fieldRef";
  pid_t pid = std::stoi(line.substr(line.find(' ') + 1));
  EXPECT_TRUE(Alive(pid));
  ASSERT_TRUE(HeartbeatsCarry("0000abcd")) << agent_->Stderr();

  // The first set after a start is reported once (the cloud may hold what a
  // previous run said); after that a healthy pod sends nothing more.
  ASSERT_TRUE(cloud_->WaitFor([](const TestCloud& c) { return c.pod_status_messages() >= 1; },
                              absl::Seconds(5)));
  std::vector<protocol::PodStatus> statuses = cloud_->PodStatuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].workload, "logger");
  EXPECT_EQ(statuses[0].revision, "00000001");
  EXPECT_EQ(statuses[0].phase, "Running");
  EXPECT_EQ(statuses[0].ready, 1u);
  EXPECT_EQ(statuses[0].restarts, 0u);
  uint32_t beats = cloud_->Snapshot().at(kNode).heartbeats;
  ASSERT_TRUE(cloud_->WaitFor(
      [&](const TestCloud& c) { return c.nodes().at(kNode).heartbeats >= beats + 5; },
      absl::Seconds(10)));
  EXPECT_EQ(cloud_->PodStatuses().size(), 1u) << "no report per heartbeat";
  EXPECT_EQ(Lines(Out("starts")).size(), 1u) << "started once";

  // A clean stop of the agent stops its pods.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(absl::Seconds(10)), 0);
  agent_.reset();
  EXPECT_TRUE(WaitUntil([&] { return !Alive(pid); }, absl::Seconds(5)));
}

TEST_F(AgentPodsTest, SetWaitsForItsTemplateThenRuns) {
  StartAgent();
  cloud_->SendPods(Set("0000beef", {Ref("late", "00000003")}));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(std::filesystem::exists(Out("late")));
  EXPECT_EQ(PodRevision(), "") << "not applied without its template";

  // Published after the agent subscribed: delivered live.
  cloud_->PublishTemplate(
      ShellTemplate("late", "00000003", "echo here >> " + Out("late") + "; exec sleep 60"));
  ASSERT_TRUE(WaitUntil([&] { return Lines(Out("late")).size() == 1; })) << agent_->Stderr();
  EXPECT_TRUE(HeartbeatsCarry("0000beef")) << agent_->Stderr();
}

TEST_F(AgentPodsTest, CrashLoopingPodIsReportedWithCrashLoopBackOffAndRestarts) {
  cloud_->PublishTemplate(
      ShellTemplate("crasher", "00000002", "echo run >> " + Out("runs") + "; exit 1"));
  StartAgent();
  cloud_->SendPods(Set("0000c0de", {Ref("crasher", "00000002")}));

  ASSERT_TRUE(cloud_->WaitFor(
      [](const TestCloud& c) {
        for (const protocol::PodStatus& s : c.pod_statuses()) {
          if (s.reason == "CrashLoopBackOff" && s.restarts >= 2) return true;
        }
        return false;
      },
      absl::Seconds(15)))
      << agent_->Stderr();
  std::vector<protocol::PodStatus> statuses = cloud_->PodStatuses();
  const protocol::PodStatus& crash = statuses.back();
  EXPECT_EQ(crash.workload, "crasher");
  EXPECT_EQ(crash.revision, "00000002");
  EXPECT_EQ(crash.phase, "Running");
  EXPECT_EQ(crash.ready, 0u);
  EXPECT_GT(crash.last_restart, 0u);
  EXPECT_GE(Lines(Out("runs")).size(), 3u);
  EXPECT_TRUE(HeartbeatsCarry("0000c0de")) << "a crash-looping pod was started: the set is applied";

  // Restart counts only grow, and every report is a change from the one
  // before it.
  statuses = cloud_->PodStatuses();
  for (size_t i = 1; i < statuses.size(); ++i) {
    EXPECT_GE(statuses[i].restarts, statuses[i - 1].restarts);
    EXPECT_FALSE(statuses[i].phase == statuses[i - 1].phase &&
                 statuses[i].ready == statuses[i - 1].ready &&
                 statuses[i].restarts == statuses[i - 1].restarts &&
                 statuses[i].reason == statuses[i - 1].reason)
        << "report " << i << " repeats the one before";
  }
}

TEST_F(AgentPodsTest, EmptySetStopsThePod) {
  cloud_->PublishTemplate(
      ShellTemplate("logger", "00000001", "echo $$$$ >> " + Out("starts") + "; exec sleep 60"));
  StartAgent();
  cloud_->SendPods(Set("0000abcd", {Ref("logger", "00000001")}));
  ASSERT_TRUE(WaitUntil([&] { return Lines(Out("starts")).size() == 1; })) << agent_->Stderr();
  pid_t pid = std::stoi(Lines(Out("starts"))[0]);
  ASSERT_TRUE(HeartbeatsCarry("0000abcd")) << agent_->Stderr();

  cloud_->SendPods(Set("", {}));
  EXPECT_TRUE(WaitUntil([&] { return !Alive(pid); }, absl::Seconds(10))) << agent_->Stderr();
  EXPECT_TRUE(HeartbeatsCarry("")) << agent_->Stderr();
  EXPECT_TRUE(WaitUntil([&] { return !std::filesystem::exists(dir_ + "/state/pods/edge_logger"); },
                        absl::Seconds(5)))
      << "the pod's directory goes with it";
}

TEST_F(AgentPodsTest, ChangedRestartCounterRestartsThePod) {
  cloud_->PublishTemplate(
      ShellTemplate("logger", "00000001", "echo $$$$ >> " + Out("starts") + "; exec sleep 60"));
  StartAgent();
  cloud_->SendPods(Set("0000abcd", {Ref("logger", "00000001", 0)}));
  ASSERT_TRUE(WaitUntil([&] { return Lines(Out("starts")).size() == 1; })) << agent_->Stderr();
  pid_t first = std::stoi(Lines(Out("starts"))[0]);
  ASSERT_TRUE(HeartbeatsCarry("0000abcd")) << agent_->Stderr();
  size_t reports = cloud_->PodStatuses().size();

  // The cloud deleted the pod: same revision, restart 1, a new set revision.
  cloud_->SendPods(Set("0000abce", {Ref("logger", "00000001", 1)}));
  ASSERT_TRUE(WaitUntil([&] { return Lines(Out("starts")).size() == 2; })) << agent_->Stderr();
  pid_t second = std::stoi(Lines(Out("starts"))[1]);
  EXPECT_NE(second, first);
  EXPECT_TRUE(WaitUntil([&] { return !Alive(first); }, absl::Seconds(5)));
  EXPECT_TRUE(Alive(second));
  EXPECT_TRUE(HeartbeatsCarry("0000abce")) << agent_->Stderr();

  // The new pod runs as told: restarts 0, so nothing to report.
  EXPECT_EQ(cloud_->PodStatuses().size(), reports);

  // A resend of the same set restarts nothing.
  cloud_->SendPods(Set("0000abce", {Ref("logger", "00000001", 1)}));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Lines(Out("starts")).size(), 2u);
}

TEST_F(AgentPodsTest, NoneRuntimeCarriesTheRevisionWithoutRunningAnything) {
  cloud_->PublishTemplate(
      ShellTemplate("logger", "00000001", "echo ran >> " + Out("ran") + "; exec sleep 60"));
  StartAgent({});
  cloud_->SendPods(Set("0000abcd", {Ref("logger", "00000001")}));
  EXPECT_TRUE(HeartbeatsCarry("0000abcd")) << agent_->Stderr();
  EXPECT_FALSE(std::filesystem::exists(Out("ran")));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/pods"));
  EXPECT_EQ(cloud_->PodStatuses().size(), 0u) << "none reports nothing";
}

}  // namespace
}  // namespace kole::edge::testing
