// kole-agent: the KOLE reference agent for a Linux edge device
// (docs/agent.md).

#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "edge/agent.h"
#include "edge/agent_config.h"
#include "edge/cli_util.h"

int main(int argc, char** argv) {
  using namespace kole::edge;
  std::vector<std::string> args(argv, argv + argc);
  absl::StatusOr<AgentArgs> parsed = ParseAgentArgs(args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "kole-agent: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->exit) {
    std::printf("%s\n", parsed->output.c_str());
    return 0;
  }
  AgentOptions& options = parsed->options;
  if (absl::Status status = ApplyLogFlags(options.verbosity, options.vmodule); !status.ok()) {
    std::fprintf(stderr, "kole-agent: %s\n", std::string(status.message()).c_str());
    return 2;
  }

  // Signals are taken by this thread; the agent's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  FactSource source;
  source.root = options.facts_root;
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(options, source);
  if (!agent.ok()) {
    KOLE_LOG(Error, "kole-agent cannot start", "err", agent.status());
    return 1;
  }
  std::thread run([&] { (*agent)->Run(); });
  int signal = 0;
  sigwait(&signals, &signal);
  KOLE_LOG(Info, "Stopping on signal", "signal", signal);
  (*agent)->Stop();
  run.join();
  return 0;
}
