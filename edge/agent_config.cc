#include "edge/agent_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "edge/cli_util.h"
#include "edge/device_labels.h"

namespace kole::edge {
namespace {

// Reads the YAML config file for CLI11: a flat map whose keys are the long
// flag names; a value is a scalar, a list, or (for labels) a map.
class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return ""; }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items;
    YAML::Node root;
    try {
      root = YAML::Load(input);
    } catch (const YAML::Exception& e) {
      throw CLI::ConversionError(fmt::format("config file: {}", e.what()));
    }
    if (root.IsNull()) return items;
    if (!root.IsMap()) throw CLI::ConversionError("config file: the top level must be a map");
    for (const auto& entry : root) {
      CLI::ConfigItem item;
      item.name = entry.first.as<std::string>();
      const YAML::Node& value = entry.second;
      if (value.IsScalar()) {
        item.inputs.push_back(value.as<std::string>());
      } else if (value.IsSequence()) {
        for (const auto& element : value) item.inputs.push_back(element.as<std::string>());
      } else if (value.IsMap()) {
        for (const auto& pair : value) {
          item.inputs.push_back(pair.first.as<std::string>() + "=" + pair.second.as<std::string>());
        }
      } else if (value.IsNull()) {
        continue;
      }
      items.push_back(std::move(item));
    }
    return items;
  }
};

absl::Status ParseLabel(const std::string& text, std::pair<std::string, std::string>* out) {
  size_t equals = text.find('=');
  if (equals == std::string::npos) {
    return absl::InvalidArgumentError(fmt::format("label {:?} must be key=value", text));
  }
  std::string key = text.substr(0, equals);
  std::string value = text.substr(equals + 1);
  if (absl::Status status = ValidateLabelKey(key); !status.ok()) return status;
  if (absl::Status status = ValidateLabelValue(value); !status.ok()) return status;
  if (!IsDeviceOwnedLabel(key)) {
    return absl::InvalidArgumentError(fmt::format(
        "label {:?} is not device-owned: a device may set only keys under edge.kole.io/ (or "
        "<sub>.edge.kole.io/), node.kubernetes.io/instance-type and "
        "topology.kubernetes.io/{{region,zone}}; other labels belong to users",
        key));
  }
  *out = {key, value};
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AgentArgs> ParseAgentArgs(const std::vector<std::string>& argv) {
  AgentArgs result;
  AgentOptions& o = result.options;
  std::string heartbeat_interval = "10s";
  std::string facts_interval = "1m";
  std::string retry_initial = "2s";
  std::string retry_max = "60s";
  std::string tombstone_retry = "1h";
  std::string runtime = "none";
  std::string pod_restart_backoff = "10s";
  std::string pod_restart_max_backoff = "5m";
  std::string pod_stop_grace_period = "10s";
  std::vector<std::string> labels;

  CLI::App app{"kole-agent: the KOLE reference agent for a Linux edge device"};
  app.config_formatter(std::make_shared<YamlConfig>());
  app.set_config("--config", "", "YAML file with the same keys as the flags (flags win)");
  app.allow_config_extras(false);
  app.set_version_flag("--version", "kole-agent " KOLE_VERSION);
  const char* connection = "Connection";
  app.add_option("--broker", o.broker, "Broker URL: tcp://, mqtt://, ssl:// or mqtts://")
      ->capture_default_str()
      ->group(connection);
  app.add_option("--username", o.username, "MQTT user name (default: the node name)")
      ->group(connection);
  app.add_option("--password", o.password, "MQTT password (prefer --password-file)")
      ->group(connection);
  app.add_option("--password-file", o.password_file, "File holding the MQTT password")
      ->group(connection);
  app.add_option("--ca-file", o.ca_file, "CA of the broker's certificate (TLS)")->group(connection);
  app.add_option("--cert-file", o.cert_file, "Client certificate, PEM (TLS)")->group(connection);
  app.add_option("--key-file", o.key_file, "Client key, PEM (TLS)")->group(connection);
  app.add_flag("!--no-verify-hostname", o.verify_hostname,
               "Do not check the broker's host name against its certificate")
      ->group(connection);
  app.add_option("--topic-prefix", o.topic_prefix, "Topic prefix")
      ->capture_default_str()
      ->group(connection);

  const char* node = "Node";
  app.add_option("--node-name", o.node_name, "Node name (default: the hostname, lowercased)")
      ->group(node);
  app.add_option("--labels", labels,
                 "Device-owned labels key=value[,key=value] (edge.kole.io/... and the "
                 "topology/instance-type keys)")
      ->delimiter(',')
      ->group(node);
  app.add_option("--state-dir", o.state_dir,
                 "Where the agent keeps its epoch (and with --runtime=process its pods)")
      ->capture_default_str()
      ->group(node);
  app.add_flag("--cloud-epoch", o.cloud_epoch,
               "Let the cloud assign epochs (devices without persistent storage)")
      ->group(node);
  app.add_option("--facts-root", o.facts_root, "Root the host facts are read under")
      ->capture_default_str()
      ->group(node);
  app.add_option("--container-runtime-version", o.container_runtime_version,
                 "nodeInfo.containerRuntimeVersion, e.g. containerd://1.7.18")
      ->group(node);
  app.add_option("--max-pods", o.max_pods, "Pod capacity")->capture_default_str()->group(node);

  const char* timing = "Timing";
  app.add_option("--heartbeat-interval", heartbeat_interval, "Heartbeat interval")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--facts-interval", facts_interval,
                 "How often facts are read again (a change is registered)")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--retry-initial-backoff", retry_initial, "First registration retry wait")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--retry-max-backoff", retry_max, "Longest registration retry wait")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--tombstone-retry", tombstone_retry,
                 "Retry interval after the cloud answered Tombstoned")
      ->capture_default_str()
      ->group(timing);
  const char* pods = "Pods";
  app.add_option("--runtime", runtime,
                 "Who runs the pods the cloud assigns: none (report them running, start "
                 "nothing) or process (run each container's command as a host process, no "
                 "isolation, no images)")
      ->check(CLI::IsMember({"none", "process"}))
      ->capture_default_str()
      ->group(pods);
  app.add_option("--pod-restart-backoff", pod_restart_backoff,
                 "process: first wait before restarting an exited container (doubles)")
      ->capture_default_str()
      ->group(pods);
  app.add_option("--pod-restart-max-backoff", pod_restart_max_backoff,
                 "process: longest wait before restarting an exited container")
      ->capture_default_str()
      ->group(pods);
  app.add_option("--pod-stop-grace-period", pod_stop_grace_period,
                 "process: time between SIGTERM and SIGKILL when a container is stopped")
      ->capture_default_str()
      ->group(pods);
  app.add_option("-v,--v", o.verbosity, "Log verbosity (klog levels)")->group("Logging");
  app.add_option("--vmodule", o.vmodule, "Per-file verbosity, e.g. agent=4")->group("Logging");

  std::vector<const char*> args;
  for (const std::string& arg : argv) args.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp&) {
    result.exit = true;
    result.output = app.help();
    return result;
  } catch (const CLI::CallForVersion&) {
    result.exit = true;
    result.output = app.version();
    return result;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (CLI::Option* config = app.get_option("--config"); config->count() > 0) {
    o.config_file = config->as<std::string>();
  }

  for (auto [text, out] :
       {std::pair{&heartbeat_interval, &o.heartbeat_interval},
        std::pair{&facts_interval, &o.facts_interval}, std::pair{&retry_initial, &o.retry.initial},
        std::pair{&retry_max, &o.retry.max}, std::pair{&tombstone_retry, &o.retry.tombstone_retry},
        std::pair{&pod_restart_backoff, &o.pod_restart_backoff},
        std::pair{&pod_restart_max_backoff, &o.pod_restart_max_backoff},
        std::pair{&pod_stop_grace_period, &o.pod_stop_grace_period}}) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag(*text);
    if (!parsed.ok()) return parsed.status();
    *out = *parsed;
  }
  if (o.heartbeat_interval < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError("--heartbeat-interval must be at least 100ms");
  }
  if (o.facts_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--facts-interval must be at least 1s");
  }
  if (o.retry.tombstone_retry < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tombstone-retry must be at least 1s");
  }
  if (o.retry.initial <= absl::ZeroDuration() || o.retry.max < o.retry.initial) {
    return absl::InvalidArgumentError("need 0 < --retry-initial-backoff <= --retry-max-backoff");
  }
  if (o.pod_restart_backoff <= absl::ZeroDuration() ||
      o.pod_restart_max_backoff < o.pod_restart_backoff) {
    return absl::InvalidArgumentError(
        "need 0 < --pod-restart-backoff <= --pod-restart-max-backoff");
  }
  if (o.pod_stop_grace_period < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--pod-stop-grace-period must not be negative");
  }
  o.runtime = runtime == "process" ? PodRuntimeKind::kProcess : PodRuntimeKind::kNone;
  for (const std::string& text : labels) {
    if (text.empty()) continue;
    std::pair<std::string, std::string> label;
    if (absl::Status status = ParseLabel(text, &label); !status.ok()) return status;
    auto same = [&](const auto& l) { return l.first == label.first; };
    std::erase_if(o.labels, same);
    o.labels.push_back(std::move(label));
  }
  if (!o.password_file.empty()) {
    std::ifstream in(o.password_file);
    if (!in) {
      return absl::InvalidArgumentError(
          fmt::format("--password-file: cannot read {}", o.password_file));
    }
    std::getline(in, o.password);
  }
  if (!o.cloud_epoch && o.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is needed unless --cloud-epoch is set");
  }
  if (o.runtime == PodRuntimeKind::kProcess && o.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "--runtime=process needs --state-dir (the pods' directories are kept there)");
  }
  return result;
}

absl::StatusOr<std::string> ResolveNodeName(const AgentOptions& options,
                                            const std::string& hostname) {
  std::string name = options.node_name.empty() ? hostname : options.node_name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (absl::Status status = ValidateDnsSubdomain(name); !status.ok()) {
    return absl::InvalidArgumentError(fmt::format(
        "node name {:?} (from {}) is not usable: {}; set --node-name", name,
        options.node_name.empty() ? "the hostname" : "--node-name", std::string(status.message())));
  }
  return name;
}

protocol::Registration BuildRegistration(const AgentOptions& options, const std::string& node,
                                         const HostFacts& facts, const std::string& agent_version) {
  protocol::Registration r;
  r.node = node;

  // Labels: the well-known ones kubelet sets, then the configured ones,
  // sorted by key as the API shows them.
  r.labels = {
      {"kubernetes.io/arch", facts.architecture},
      {"kubernetes.io/hostname", node.substr(0, std::min<size_t>(node.size(), 63))},
      {"kubernetes.io/os", "linux"},
  };
  for (const auto& label : options.labels) {
    std::erase_if(r.labels, [&](const auto& l) { return l.first == label.first; });
    r.labels.push_back(label);
  }
  std::sort(r.labels.begin(), r.labels.end());

  // Capacity as kubelet reports it; allocatable keeps back kubelet's default
  // hard eviction threshold for memory (100Mi).
  constexpr uint64_t kEvictionReserve = 100ull << 20;
  r.capacity = {
      {"cpu", std::to_string(facts.cpus)},
      {"memory", MemoryQuantity(facts.memory_bytes)},
      {"pods", std::to_string(options.max_pods)},
  };
  r.allocatable = {
      {"cpu", std::to_string(facts.cpus)},
      {"memory",
       MemoryQuantity(facts.memory_bytes > kEvictionReserve ? facts.memory_bytes - kEvictionReserve
                                                            : 0)},
      {"pods", std::to_string(options.max_pods)},
  };

  if (facts.storage_bytes > 0) {
    // kubelet's default hard eviction threshold for the node file system
    // is 10 % available.
    r.capacity.emplace_back("ephemeral-storage", MemoryQuantity(facts.storage_bytes));
    r.allocatable.emplace_back("ephemeral-storage",
                               MemoryQuantity(facts.storage_bytes - facts.storage_bytes / 10));
    std::sort(r.capacity.begin(), r.capacity.end());
    std::sort(r.allocatable.begin(), r.allocatable.end());
  }

  for (const InterfaceAddress& address : facts.addresses) {
    r.addresses.push_back({"InternalIP", address.address});
  }
  r.addresses.push_back({"Hostname", facts.hostname});

  r.node_info = protocol::NodeInfo{
      .machine_id = facts.machine_id,
      .system_uuid = facts.system_uuid,
      .boot_id = facts.boot_id,
      .kernel_version = facts.kernel_version,
      .os_image = facts.os_image,
      .container_runtime_version = options.container_runtime_version,
      .agent_version = agent_version,
      .operating_system = "linux",
      .architecture = facts.architecture,
  };
  r.conditions = {
      {"MemoryPressure", "False", "AgentHasSufficientMemory", "kole-agent has sufficient memory"},
      {"DiskPressure", "False", "AgentHasNoDiskPressure", "kole-agent has no disk pressure"},
      {"PIDPressure", "False", "AgentHasSufficientPID", "kole-agent has sufficient PID"},
  };
  return r;
}

}  // namespace kole::edge
