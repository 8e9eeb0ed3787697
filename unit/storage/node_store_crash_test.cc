// A child process writes to a NodeStore on the real file system under load
// and is killed with SIGKILL at random points, many times over the same data
// directory. After each kill every acknowledged write must be present and the
// store consistent with itself. (SIGKILL keeps the page cache, so this test
// finds recovery bugs, not missing fsyncs: node_store_recovery_test drives the
// fault-injecting file layer for those.)

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "storage/node_store.h"

namespace kole::storage {
namespace {

constexpr int kUpdatedNames = 64;

std::string UpdatedName(int i) { return fmt::format("upd-{:03}", i); }

Node DeviceNode(const std::string& name) {
  Node node;
  node.name = name;
  node.labels = {{"kubernetes.io/hostname", name}};
  node.node_info.kernel_version = "6.1.0";
  return node;
}

std::string GenerationOf(const Node& node) {
  for (const auto& [key, value] : node.labels) {
    if (key == "gen") return value;
  }
  return "";
}

StoreOptions CrashOptions(const std::string& dir) {
  StoreOptions options;
  options.data_dir = dir;
  options.background_maintenance = true;
  // Small enough that snapshots and log pruning happen under the load too.
  options.snapshot_after_log_bytes = 256 << 10;
  return options;
}

void WriteLine(int fd, const std::string& line) {
  std::string data = line + "\n";
  const char* at = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = write(fd, at, left);
    if (n <= 0) _exit(3);
    at += n;
    left -= static_cast<size_t>(n);
  }
}

// The child: writes until killed, reporting each acknowledged write as a
// line on `fd`: "U <name> <gen>" (label gen set), "R <name>" (registered),
// "D <name>" (deleted).
[[noreturn]] void WriteUntilKilled(const std::string& dir, int fd, uint32_t seed) {
  auto opened = NodeStore::Open(CrashOptions(dir));
  if (!opened.ok()) {
    std::fprintf(stderr, "child: open failed: %s\n", opened.status().ToString().c_str());
    _exit(2);
  }
  NodeStore& store = **opened;
  std::mt19937 rng(seed);

  // Resume generations from what survived the last kill.
  std::vector<int64_t> generation(kUpdatedNames, 0);
  for (int i = 0; i < kUpdatedNames; ++i) {
    auto node = store.Get(UpdatedName(i));
    if (node.ok()) {
      std::string gen = GenerationOf(*node);
      generation[i] = gen.empty() ? 0 : std::stoll(gen);
    } else if (!store.Register(DeviceNode(UpdatedName(i))).ok()) {
      _exit(4);
    }
  }

  for (uint64_t n = 0;; ++n) {
    int choice = static_cast<int>(rng() % 10);
    if (choice < 6) {
      // An API update, durable when it returns.
      int i = static_cast<int>(rng() % kUpdatedNames);
      auto node = store.Get(UpdatedName(i));
      if (!node.ok()) _exit(5);
      int64_t gen = ++generation[i];
      std::erase_if(node->labels, [](const auto& label) { return label.first == "gen"; });
      node->labels.push_back({"gen", std::to_string(gen)});
      NormalizePairs(node->labels);
      if (!store.UpdateSpec(*node, 0).ok()) _exit(6);
      WriteLine(fd, fmt::format("U {} {}", UpdatedName(i), gen));
    } else if (choice < 9) {
      // A registration burst, acknowledged after one group commit.
      std::vector<std::string> names;
      uint64_t token = 0;
      for (int k = 0; k < 16; ++k) {
        std::string name = fmt::format("reg-{}-{}-{}", seed, n, k);
        auto registered = store.Register(DeviceNode(name));
        if (!registered.ok()) _exit(7);
        token = registered->durable_token;
        names.push_back(name);
      }
      if (!store.WaitDurable(token).ok()) _exit(8);
      for (const std::string& name : names) WriteLine(fd, "R " + name);
    } else {
      std::string name = fmt::format("del-{}-{}", seed, n);
      auto registered = store.Register(DeviceNode(name));
      if (!registered.ok() || !store.WaitDurable(registered->durable_token).ok()) _exit(9);
      if (!store.Delete(name, 0, /*tombstone=*/false).ok()) _exit(10);
      WriteLine(fd, "D " + name);
    }
  }
}

TEST(NodeStoreCrash, EveryAcknowledgedWriteSurvivesRepeatedSigkill) {
  std::string dir = std::filesystem::temp_directory_path() / fmt::format("kole-crash-{}", getpid());
  std::filesystem::remove_all(dir);
  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());

  std::map<std::string, int64_t> acked_generation;
  std::set<std::string> acked_registered;
  std::set<std::string> acked_deleted;
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      WriteUntilKilled(dir, fds[1], static_cast<uint32_t>(round * 7919 + 1));
    }
    close(fds[1]);

    // Let it get going (recovery of the last round first), then kill it.
    usleep(50'000 + rng() % 250'000);
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "round " << round << ": child exited early with " << WEXITSTATUS(status);

    std::string lines;
    char buffer[4096];
    for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) lines.append(buffer, n);
    close(fds[0]);
    std::istringstream in(lines);
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string op, name;
      fields >> op >> name;
      if (name.empty()) continue;  // A line cut by the kill was not acknowledged whole.
      if (op == "U") {
        int64_t gen = 0;
        if (fields >> gen) acked_generation[name] = std::max(acked_generation[name], gen);
      } else if (op == "R") {
        acked_registered.insert(name);
      } else if (op == "D") {
        acked_deleted.insert(name);
      }
    }

    // Recover in this process and check.
    StoreOptions options = CrashOptions(dir);
    options.background_maintenance = false;
    auto opened = NodeStore::Open(options);
    ASSERT_TRUE(opened.ok()) << "round " << round << ": " << opened.status();
    NodeStore& store = **opened;
    for (const auto& [name, gen] : acked_generation) {
      auto node = store.Get(name);
      ASSERT_TRUE(node.ok()) << name;
      // Unacknowledged later updates may have landed too, never fewer.
      EXPECT_GE(std::stoll(GenerationOf(*node)), gen) << "round " << round << " " << name;
    }
    for (const std::string& name : acked_registered) {
      EXPECT_TRUE(store.Get(name).ok()) << "round " << round << " lost registration " << name;
    }
    for (const std::string& name : acked_deleted) {
      EXPECT_TRUE(absl::IsNotFound(store.Get(name).status()))
          << "round " << round << " deleted node came back: " << name;
    }
    auto list = store.List({});
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->nodes.size(), store.Stats().nodes);
    for (size_t i = 1; i < list->nodes.size(); ++i) {
      ASSERT_LT(list->nodes[i - 1].name, list->nodes[i].name);
    }
    if (HasFailure()) break;
  }
  EXPECT_GT(acked_registered.size(), 100u) << "the child made too little progress to test much";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kole::storage
