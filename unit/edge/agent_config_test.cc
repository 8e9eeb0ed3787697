#include "edge/agent_config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace kole::edge {
namespace {

std::string WriteConfig(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

absl::StatusOr<AgentOptions> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "kole-agent");
  absl::StatusOr<AgentArgs> parsed = ParseAgentArgs(args);
  if (!parsed.ok()) return parsed.status();
  return parsed->options;
}

TEST(AgentConfig, DefaultsWithoutArguments) {
  absl::StatusOr<AgentOptions> options = Parse({});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->broker, "tcp://127.0.0.1:1883");
  EXPECT_EQ(options->heartbeat_interval, absl::Seconds(10));
  EXPECT_EQ(options->state_dir, "/var/lib/kole-agent");
  EXPECT_FALSE(options->cloud_epoch);
}

TEST(AgentConfig, YamlFileSetsOptions) {
  std::string path = WriteConfig("agent-a.yaml", R"(
broker: mqtts://mqtt.example.net:8883
node-name: shelf-12
heartbeat-interval: 30s
cloud-epoch: true
labels:
  edge.kole.io/site: fra-0042
  topology.kubernetes.io/zone: eu-central-1a
)");
  absl::StatusOr<AgentOptions> options = Parse({"--config", path});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->broker, "mqtts://mqtt.example.net:8883");
  EXPECT_EQ(options->node_name, "shelf-12");
  EXPECT_EQ(options->heartbeat_interval, absl::Seconds(30));
  EXPECT_TRUE(options->cloud_epoch);
  ASSERT_EQ(options->labels.size(), 2u);
  EXPECT_EQ(options->config_file, path);
}

TEST(AgentConfig, FlagsOverrideTheFile) {
  std::string path = WriteConfig("agent-b.yaml", "broker: tcp://10.1.1.1:1883\nnode-name: a\n");
  absl::StatusOr<AgentOptions> options =
      Parse({"--config", path, "--broker", "tcp://127.0.0.1:1999"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->broker, "tcp://127.0.0.1:1999");
  EXPECT_EQ(options->node_name, "a") << "keys not given as flags keep the file's value";
}

TEST(AgentConfig, UnknownKeyInTheFileIsAnError) {
  std::string path = WriteConfig("agent-c.yaml", "brokr: tcp://127.0.0.1:1883\n");
  absl::StatusOr<AgentOptions> options = Parse({"--config", path});
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.status().message().find("brokr"), std::string::npos)
      << options.status().message();
}

TEST(AgentConfig, UserOwnedLabelIsRefused) {
  absl::StatusOr<AgentOptions> options = Parse({"--labels", "tier=prod"});
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.status().message().find("not device-owned"), std::string::npos);
}

TEST(AgentConfig, LabelSyntaxIsChecked) {
  EXPECT_FALSE(Parse({"--labels", "edge.kole.io/site=-bad"}).ok());
  EXPECT_FALSE(Parse({"--labels", "edge.kole.io/site"}).ok());
  absl::StatusOr<AgentOptions> ok =
      Parse({"--labels", "edge.kole.io/site=fra-1,rack.edge.kole.io/slot=7"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->labels.size(), 2u);
}

TEST(AgentConfig, BadDurationIsAnError) {
  EXPECT_FALSE(Parse({"--heartbeat-interval", "soon"}).ok());
  absl::StatusOr<AgentOptions> options = Parse({"--heartbeat-interval", "2.5"});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->heartbeat_interval, absl::Milliseconds(2500));
}

TEST(AgentConfig, RuntimeDefaultsToNoneWithKubeletsBackoff) {
  absl::StatusOr<AgentOptions> options = Parse({});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->runtime, PodRuntimeKind::kNone);
  EXPECT_EQ(options->pod_restart_backoff, absl::Seconds(10));
  EXPECT_EQ(options->pod_restart_max_backoff, absl::Minutes(5));
  EXPECT_EQ(options->pod_stop_grace_period, absl::Seconds(10));
}

TEST(AgentConfig, ProcessRuntimeAndItsTimingsFromFlagsOrFile) {
  absl::StatusOr<AgentOptions> flags =
      Parse({"--runtime=process", "--pod-restart-backoff", "200ms", "--pod-restart-max-backoff",
             "1s", "--pod-stop-grace-period", "0s"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->runtime, PodRuntimeKind::kProcess);
  EXPECT_EQ(flags->pod_restart_backoff, absl::Milliseconds(200));
  EXPECT_EQ(flags->pod_restart_max_backoff, absl::Seconds(1));
  EXPECT_EQ(flags->pod_stop_grace_period, absl::ZeroDuration());

  std::string path =
      WriteConfig("agent-pods.yaml", "runtime: process\npod-stop-grace-period: 30s\n");
  absl::StatusOr<AgentOptions> file = Parse({"--config", path});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->runtime, PodRuntimeKind::kProcess);
  EXPECT_EQ(file->pod_stop_grace_period, absl::Seconds(30));
}

TEST(AgentConfig, BadRuntimeSettingsAreRefused) {
  EXPECT_FALSE(Parse({"--runtime", "docker"}).ok());
  EXPECT_FALSE(Parse({"--pod-restart-backoff", "0s"}).ok());
  EXPECT_FALSE(Parse({"--pod-restart-backoff", "2m", "--pod-restart-max-backoff", "1m"}).ok());
  EXPECT_FALSE(Parse({"--pod-stop-grace-period", "-1s"}).ok());
  absl::StatusOr<AgentOptions> stateless =
      Parse({"--runtime=process", "--cloud-epoch", "--state-dir", ""});
  ASSERT_FALSE(stateless.ok());
  EXPECT_NE(stateless.status().message().find("--state-dir"), std::string::npos)
      << stateless.status().message();
  EXPECT_TRUE(Parse({"--cloud-epoch", "--state-dir", ""}).ok()) << "none needs no directory";
}

TEST(AgentConfig, HelpAsksToExit) {
  absl::StatusOr<AgentArgs> parsed = ParseAgentArgs({"kole-agent", "--help"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->exit);
  EXPECT_NE(parsed->output.find("--heartbeat-interval"), std::string::npos);
  EXPECT_NE(parsed->output.find("--runtime"), std::string::npos);
}

TEST(AgentConfig, NodeNameFromHostnameIsLowercased) {
  AgentOptions options;
  absl::StatusOr<std::string> name = ResolveNodeName(options, "Pi-Lab-07");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "pi-lab-07");
}

TEST(AgentConfig, InvalidNodeNameGivesAClearError) {
  AgentOptions options;
  absl::StatusOr<std::string> name = ResolveNodeName(options, "my_host");
  ASSERT_FALSE(name.ok());
  EXPECT_NE(name.status().message().find("--node-name"), std::string::npos);
  options.node_name = "edge..1";
  EXPECT_FALSE(ResolveNodeName(options, "ok").ok());
}

TEST(AgentConfig, RegistrationCarriesFactsAndLabels) {
  AgentOptions options;
  options.labels = {{"edge.kole.io/site", "fra-1"}};
  options.container_runtime_version = "containerd://1.7.18";
  HostFacts facts{.hostname = "Pi-Lab-07",
                  .machine_id = "0123456789abcdef0123456789abcdef",
                  .system_uuid = "u",
                  .boot_id = "b",
                  .kernel_version = "6.6",
                  .os_image = "Debian",
                  .architecture = "arm64",
                  .cpus = 4,
                  .memory_bytes = 4ull << 30,
                  .addresses = {{"eth0", "192.0.2.7", false}}};
  protocol::Registration r = BuildRegistration(options, "pi-lab-07", facts, "v0.1.0-kole");
  EXPECT_EQ(r.node, "pi-lab-07");
  protocol::StringPairs labels = {{"edge.kole.io/site", "fra-1"},
                                  {"kubernetes.io/arch", "arm64"},
                                  {"kubernetes.io/hostname", "pi-lab-07"},
                                  {"kubernetes.io/os", "linux"}};
  EXPECT_EQ(r.labels, labels);
  EXPECT_EQ(r.capacity,
            (protocol::StringPairs{{"cpu", "4"}, {"memory", "4194304Ki"}, {"pods", "110"}}));
  EXPECT_EQ(r.allocatable[1], (std::pair<std::string, std::string>{"memory", "4091904Ki"}));
  ASSERT_EQ(r.addresses.size(), 2u);
  EXPECT_EQ(r.addresses[0], (protocol::Address{"InternalIP", "192.0.2.7"}));
  EXPECT_EQ(r.addresses[1], (protocol::Address{"Hostname", "Pi-Lab-07"}));
  EXPECT_EQ(r.node_info.boot_id, "b");
  EXPECT_EQ(r.node_info.container_runtime_version, "containerd://1.7.18");
  EXPECT_EQ(r.node_info.agent_version, "v0.1.0-kole");
}

TEST(AgentConfig, EphemeralStorageKeepsTenPercentBack) {
  HostFacts facts;
  facts.cpus = 1;
  facts.memory_bytes = 1ull << 30;
  facts.storage_bytes = 10ull << 30;
  protocol::Registration r = BuildRegistration(AgentOptions{}, "n", facts, "v");
  EXPECT_EQ(r.capacity, (protocol::StringPairs{{"cpu", "1"},
                                               {"ephemeral-storage", "10485760Ki"},
                                               {"memory", "1048576Ki"},
                                               {"pods", "110"}}));
  EXPECT_EQ(r.allocatable[1],
            (std::pair<std::string, std::string>{"ephemeral-storage", "9437184Ki"}));
}

}  // namespace
}  // namespace kole::edge
