// Broker faults while kole-edge-sim runs: mosquitto restarted with and without
// its persistence, and stopped for a minute. The bridge must reconnect and
// resubscribe, no node may be marked NotReady because of the outage,
// registrations sent during it must all arrive (the devices retry until the
// cloud acknowledges), and every node must heartbeat again within one
// interval of its connection coming back.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "mqtt-bridge/bridge.h"
#include "unit/testing/mosquitto_server.h"

namespace kole::bridge {
namespace {

constexpr char kSimPassword[] = "sim-pw";
constexpr int kHeartbeatSeconds = 2;

std::string SimBinary() {
  return (std::filesystem::canonical("/proc/self/exe").parent_path().parent_path() / "bin" /
          "kole-edge-sim")
      .string();
}

// One kole-edge-sim process; SIGTERM on destruction.
class Simulator {
 public:
  Simulator(const std::string& broker, int nodes, int first_index, int connections,
            const std::string& dir)
      : status_file_(fmt::format("{}/sim-{}.status", dir, first_index)), connections_(connections) {
    std::vector<std::string> args = {SimBinary(),
                                     "--broker",
                                     broker,
                                     "--nodes",
                                     std::to_string(nodes),
                                     "--first-index",
                                     std::to_string(first_index),
                                     "--connections",
                                     std::to_string(connections),
                                     "--password",
                                     kSimPassword,
                                     "--heartbeat-interval",
                                     fmt::format("{}s", kHeartbeatSeconds),
                                     "--retry-initial-backoff",
                                     "500ms",
                                     "--retry-max-backoff",
                                     "5s",
                                     "--status-file",
                                     status_file_,
                                     "--progress-interval",
                                     "5s",
                                     "--threads",
                                     "1"};
    log_ = fmt::format("{}/sim-{}.log", dir, first_index);
    const std::string& log = log_;
    pid_ = fork();
    if (pid_ == 0) {
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "a", stderr);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  ~Simulator() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  std::map<std::string, std::string> Status() const {
    std::map<std::string, std::string> status;
    std::ifstream in(status_file_);
    std::string line;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq != std::string::npos) status[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return status;
  }

  const std::string& log() const { return log_; }

  bool AllConnected() const {
    auto status = Status();
    return status.count("connectionsUp") && std::stoi(status["connectionsUp"]) == connections_;
  }

 private:
  std::string status_file_;
  std::string log_;
  int connections_;
  pid_t pid_ = -1;
};

class BrokerFaultTest : public ::testing::Test {
 protected:
  void StartAll(bool persistence) {
    testing::MosquittoOptions options;
    options.users = {{"kole-cloud", "cloud-pw"}};
    // The simulator's gateways are named gw-<seed>-<first index of their nodes>.
    for (int first : {0, 1000, 2000}) {
      options.users.emplace_back(fmt::format("gw-1-{}", first), kSimPassword);
    }
    options.persistence = persistence;
    broker_ = std::make_unique<testing::MosquittoServer>(options);
    ASSERT_TRUE(broker_->Start().ok());

    store_ = *storage::NodeStore::Open({});
    BridgeOptions bridge_options;
    bridge_options.mqtt = {.broker = broker_->url(),
                           .client_id = "kole-cloud",
                           .username = "kole-cloud",
                           .password = "cloud-pw",
                           .min_backoff = absl::Milliseconds(100),
                           .max_backoff = absl::Seconds(2)};
    bridge_ = *Bridge::Create(bridge_options, store_.get(), &registry_);
    bridge_->Start();
    WaitUntil("the bridge connects", [&] { return bridge_->status().consumers_connected == 1; });
  }

  static void WaitUntil(std::string_view what, const std::function<bool()>& done,
                        absl::Duration timeout = absl::Seconds(60)) {
    absl::Time deadline = absl::Now() + timeout;
    while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(done()) << "timed out waiting until " << what;
  }

  size_t NotReady() {
    size_t count = 0;
    storage::ListResult page;
    EXPECT_TRUE(store_
                    ->ListEach(
                        {},
                        [&](const storage::Node& node) {
                          count += node.ready != storage::ConditionStatus::kTrue;
                        },
                        &page)
                    .ok());
    return count;
  }

  // Every node heartbeat within the last interval (plus scheduling slack).
  void ExpectEveryNodeBeatRecently(const Simulator& sim) {
    WaitUntil("the simulator reconnects", [&] { return sim.AllConnected(); });
    absl::SleepFor(absl::Seconds(kHeartbeatSeconds + 2));
    EXPECT_EQ(store_->CountExpired(kHeartbeatSeconds + 2), 0u)
        << registry_.Render() << "\nsimulator log:\n"
        << Tail(sim.log());
  }

  static std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::string tail;
    for (size_t i = lines.size() > 30 ? lines.size() - 30 : 0; i < lines.size(); ++i) {
      tail += lines[i] + "\n";
    }
    return tail;
  }

  std::unique_ptr<testing::MosquittoServer> broker_;
  std::unique_ptr<storage::NodeStore> store_;
  metrics::MetricsRegistry registry_;
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BrokerFaultTest, RestartWithoutPersistence) {
  StartAll(/*persistence=*/false);
  Simulator sim(broker_->url(), 1000, 0, 1, broker_->dir());
  WaitUntil("1000 nodes register", [&] { return store_->Stats().nodes == 1000; });

  broker_->Stop();
  WaitUntil("the bridge sees the outage",
            [&] { return bridge_->status().consumers_connected == 0; });
  absl::SleepFor(absl::Seconds(3));
  ASSERT_TRUE(broker_->Start().ok());
  WaitUntil("the bridge reconnects", [&] { return bridge_->status().consumers_connected == 1; });

  ExpectEveryNodeBeatRecently(sim);
  EXPECT_EQ(NotReady(), 0u);
}

TEST_F(BrokerFaultTest, RestartWithPersistenceAndAMinuteDown) {
  StartAll(/*persistence=*/true);
  auto sim = std::make_unique<Simulator>(broker_->url(), 1000, 0, 1, broker_->dir());
  WaitUntil("1000 nodes register", [&] { return store_->Stats().nodes == 1000; });

  // A quick restart: the broker keeps sessions and subscriptions.
  broker_->Stop();
  ASSERT_TRUE(broker_->Start().ok());
  WaitUntil("the bridge reconnects", [&] { return bridge_->status().consumers_connected == 1; });
  ExpectEveryNodeBeatRecently(*sim);
  EXPECT_EQ(NotReady(), 0u);

  // A minute down, longer than the 40 s grace period. Nodes that boot during
  // the outage keep retrying their registrations.
  broker_->Stop();
  Simulator late(broker_->url(), 500, 2000, 1, broker_->dir());
  absl::SleepFor(absl::Seconds(60));
  bridge_->CheckLiveness();
  EXPECT_TRUE(bridge_->status().liveness_paused);
  EXPECT_EQ(NotReady(), 0u);
  ASSERT_TRUE(broker_->Start().ok());

  WaitUntil("the late nodes register", [&] { return store_->Stats().nodes == 1500; });
  ExpectEveryNodeBeatRecently(*sim);
  ExpectEveryNodeBeatRecently(late);
  EXPECT_EQ(NotReady(), 0u);
}

}  // namespace
}  // namespace kole::bridge
