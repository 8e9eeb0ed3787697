#pragma once

// kole-agent's options: flags, a YAML config file with the same keys
// (`--config`), and their validation. A flag given on the command line wins
// over the file; the file wins over the defaults. docs/agent.md is the
// reference for every key.
//
//   # /etc/kole/agent.yaml
//   broker: mqtts://mqtt.example.net:8883
//   ca-file: /etc/kole/ca.pem
//   cert-file: /etc/kole/node.pem
//   key-file: /etc/kole/node-key.pem
//   labels:
//     edge.kole.io/site: fra-0042
//
// Thread safety: free functions.

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <string>
#include <utility>
#include <vector>

#include "edge/host_facts.h"
#include "edge/node_state.h"
#include "edge/pod_set_runner.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge {

struct AgentOptions {
  std::string config_file;
  std::string broker = "tcp://127.0.0.1:1883";
  std::string username;  // Default: the node name.
  std::string password;
  std::string password_file;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_hostname = true;
  std::string topic_prefix = "kole/v1";

  std::string node_name;  // Default: the hostname, lowercased.
  std::vector<std::pair<std::string, std::string>> labels;
  std::string state_dir = "/var/lib/kole-agent";
  // Let the cloud assign epochs (devices without persistent storage).
  bool cloud_epoch = false;
  std::string facts_root = "/";
  std::string container_runtime_version;
  uint32_t max_pods = 110;

  absl::Duration heartbeat_interval = absl::Seconds(10);
  absl::Duration facts_interval = absl::Minutes(1);
  RetryPolicy retry;

  // Pods (docs/agent.md, "Pods"): who runs them, and the process runtime's
  // restart backoff and stop grace period. kProcess keeps its pods' working
  // directories in <state_dir>/pods.
  PodRuntimeKind runtime = PodRuntimeKind::kNone;
  absl::Duration pod_restart_backoff = absl::Seconds(10);
  absl::Duration pod_restart_max_backoff = absl::Minutes(5);
  absl::Duration pod_stop_grace_period = absl::Seconds(10);

  int verbosity = 0;
  std::string vmodule;
};

// The outcome of parsing a command line.
struct AgentArgs {
  AgentOptions options;
  // --help or --version: print `output` and exit 0 without running.
  bool exit = false;
  std::string output;
};

// Parses argv (argv[0] is the program name), loading --config first. Errors
// name the flag or key: an unknown key in the file, a malformed duration,
// a label that is not device-owned.
absl::StatusOr<AgentArgs> ParseAgentArgs(const std::vector<std::string>& argv);

// The node name from --node-name or the hostname: lowercased and checked to
// be a DNS-1123 subdomain.
absl::StatusOr<std::string> ResolveNodeName(const AgentOptions& options,
                                            const std::string& hostname);

// The full registration of this device (epoch and sequence left 0).
protocol::Registration BuildRegistration(const AgentOptions& options, const std::string& node,
                                         const HostFacts& facts, const std::string& agent_version);

}  // namespace kole::edge
