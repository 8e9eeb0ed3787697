// kole-bench-bridge: the MQTT bridge at fleet scale, in two parts.
//
// In process (--mode inprocess): the bridge's own ceiling with the broker
// taken out. Seeded nodes from the shared fleet generator are encoded
// as the protocol's gateway messages and handed to Bridge::Deliver() exactly
// as a consumer connection would; replies go to a counting publisher.
//
//   1. durable bulk registration of N nodes (batches of --batch per message,
//      acknowledged only after the write-ahead log is synced);
//   2. heartbeats for --seconds: gateway batches and, separately, one node per
//      message (the per-message cost that bounds a fleet without gateways).
//
// Through mosquitto (--mode mosquitto): a real broker on a loopback port,
// the bridge connected to it as in kole-apiserver, and kole-edge-sim
// simulating the fleet over gateway connections: the time until every node is
// durable and acknowledged, then the sustained heartbeat rate at the consumer
// and how much of what the simulator sent never reached the store.
//
// Every figure is printed as `figure NAME VALUE UNIT` on a line of its own.

#include <absl/strings/ascii.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_support.h"
#include "common/log.h"
#include "common/metrics.h"
#include "edge/fleet_generator.h"
#include "mqtt-bridge/bridge.h"
#include "mqtt-bridge/protocol.h"
#include "unit/testing/mosquitto_server.h"

namespace kole::bench {
namespace {

class CountingPublisher : public bridge::Publisher {
 public:
  absl::Status Publish(std::string_view, std::string_view, int, bool) override {
    sent_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  uint64_t sent() const { return sent_.load(); }

 private:
  std::atomic<uint64_t> sent_{0};
};

protocol::Registration ToRegistration(const edge::NodeSpec& spec) {
  protocol::Registration r;
  r.node = spec.name;
  r.epoch = 1;
  r.sequence = 1;
  r.labels = spec.labels;
  r.capacity = spec.capacity;
  r.allocatable = spec.allocatable;
  for (const edge::NodeAddress& address : spec.addresses) {
    r.addresses.push_back({address.type, address.address});
  }
  r.node_info = {.machine_id = spec.machine_id,
                 .system_uuid = spec.system_uuid,
                 .boot_id = spec.boot_id,
                 .kernel_version = spec.kernel_version,
                 .os_image = spec.os_image,
                 .container_runtime_version = spec.container_runtime_version,
                 .agent_version = spec.agent_version,
                 .operating_system = spec.operating_system,
                 .architecture = spec.architecture};
  return r;
}

double Counter(const metrics::MetricsRegistry& registry, std::string_view series) {
  std::string text = registry.Render();
  std::string needle = "\n" + std::string(series) + " ";
  size_t at = text.find(needle);
  return at == std::string::npos ? 0 : std::stod(text.substr(at + needle.size()));
}

struct BenchOptions {
  uint64_t nodes = 1'000'000;
  size_t batch = 500;
  double seconds = 10;
  std::string data_dir;
  uint64_t connections = 1000;
  double heartbeat_interval = 10;
  int consumers = 1;
  std::vector<std::string> sim_args;  // Passed through to kole-edge-sim.
};

std::string FreshDir(const std::string& data_dir, const char* name) {
  std::string dir = data_dir;
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / fmt::format("kole-bench-{}-{}", name, getpid()))
              .string();
  }
  std::filesystem::remove_all(dir);
  return dir;
}

int RunInProcess(const BenchOptions& bench) {
  const uint64_t nodes = bench.nodes;
  const size_t batch = bench.batch;
  const double seconds = bench.seconds;
  const std::string& data_dir = bench.data_dir;

  std::string dir = FreshDir(data_dir, "bridge");
  absl::StatusOr<std::unique_ptr<storage::NodeStore>> store =
      storage::NodeStore::Open({.data_dir = dir});
  if (!store.ok()) {
    std::fprintf(stderr, "opening the store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  metrics::MetricsRegistry registry;
  CountingPublisher publisher;
  bridge::BridgeOptions options;
  options.connect = false;
  options.publisher = &publisher;
  // Deliver() stands for a consumer: wait for room rather than shed, so the
  // figure is the apply rate, not the shedding policy.
  options.queue_full_wait = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<bridge::Bridge>> created =
      bridge::Bridge::Create(options, store->get(), &registry);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  bridge::Bridge& bridge = **created;
  bridge.Start();

  absl::StatusOr<edge::FleetGenerator> fleet = edge::FleetGenerator::Create({.seed = 7});
  protocol::TopicScheme topics;
  uint64_t gateways = (nodes + batch - 1) / batch;
  std::printf("bridge benchmark: %llu nodes, %llu gateways of %zu nodes, store in %s\n",
              static_cast<unsigned long long>(nodes), static_cast<unsigned long long>(gateways),
              batch, dir.c_str());

  // 1. Registration: encode outside the timed part, deliver, wait for acks.
  std::vector<std::pair<std::string, std::string>> messages;
  messages.reserve(gateways);
  edge::NodeSpec spec;
  protocol::RegisterMessage message;
  for (uint64_t g = 0; g < gateways; ++g) {
    message.id = g;
    message.nodes.clear();
    for (uint64_t i = g * batch; i < std::min(nodes, (g + 1) * batch); ++i) {
      fleet->FillNode(i, 0, &spec);
      message.nodes.push_back(ToRegistration(spec));
    }
    std::string payload;
    protocol::EncodeRegister(message, /*on_node_topic=*/false, payload);
    if (payload.size() > protocol::kMaxPayloadBytes) {
      std::fprintf(stderr, "--batch %zu makes %zu-byte registration messages, over the %zu limit\n",
                   batch, payload.size(), protocol::kMaxPayloadBytes);
      return 2;
    }
    messages.emplace_back(topics.Build(protocol::Sender::kGateway, fmt::format("gw-{}", g),
                                       protocol::Channel::kRegister),
                          std::move(payload));
  }
  Clock::time_point start = Clock::now();
  for (const auto& [topic, payload] : messages) bridge.Deliver(topic, payload);
  bridge.Drain();
  double register_seconds = Seconds(start);
  messages.clear();
  Figure("bridge.inprocess.register_seconds", register_seconds, "s");
  Figure("bridge.inprocess.registrations_per_second", nodes / register_seconds, "nodes/s");
  Figure("bridge.inprocess.ack_messages", static_cast<double>(publisher.sent()), "messages");

  // The node names, once, for the heartbeat payloads.
  std::vector<std::string> names(nodes);
  for (uint64_t i = 0; i < nodes; ++i) {
    fleet->FillNode(i, 0, &spec);
    names[i] = spec.name;
  }

  // 2a. Gateway heartbeats: one message carries `batch` nodes.
  std::vector<std::pair<std::string, std::string>> beats(gateways);
  std::vector<protocol::HeartbeatEntry> entries;
  auto encode_gateway = [&](uint32_t sequence) {
    for (uint64_t g = 0; g < gateways; ++g) {
      entries.clear();
      for (uint64_t i = g * batch; i < std::min(nodes, (g + 1) * batch); ++i) {
        entries.push_back({.node = names[i], .epoch = 1, .sequence = sequence});
      }
      beats[g].first = topics.Build(protocol::Sender::kGateway, fmt::format("gw-{}", g),
                                    protocol::Channel::kHeartbeat);
      beats[g].second.clear();
      protocol::EncodeHeartbeats(entries, /*on_node_topic=*/false, beats[g].second);
    }
  };
  double applied_before = Counter(registry, R"(kole_bridge_heartbeats_total{outcome="applied"})");
  uint64_t delivered = 0, rounds = 0;
  start = Clock::now();
  for (uint32_t sequence = 2; Seconds(start) < seconds; ++sequence, ++rounds) {
    Clock::time_point encode_start = Clock::now();
    encode_gateway(sequence);
    start += Clock::now() - encode_start;  // Encoding is the devices' work, not the bridge's.
    for (const auto& [topic, payload] : beats) bridge.Deliver(topic, payload);
    delivered += nodes;
  }
  bridge.Drain();
  double gateway_seconds = Seconds(start);
  double applied = Counter(registry, R"(kole_bridge_heartbeats_total{outcome="applied"})") +
                   Counter(registry, R"(kole_bridge_heartbeats_total{outcome="published"})") -
                   applied_before;
  Figure("bridge.inprocess.gateway_heartbeats_per_second", applied / gateway_seconds,
         "heartbeats/s");
  Figure("bridge.inprocess.gateway_messages_per_second", rounds * gateways / gateway_seconds,
         "messages/s");
  Figure("bridge.inprocess.gateway_heartbeat_loss", delivered - applied, "heartbeats");

  // 2b. One node per message, as devices with their own connections send.
  uint64_t sample = std::min<uint64_t>(nodes, 200'000);
  std::vector<std::pair<std::string, std::string>> single(sample);
  uint32_t base = static_cast<uint32_t>(rounds + 2);
  applied_before = Counter(registry, R"(kole_bridge_heartbeats_total{outcome="applied"})") +
                   Counter(registry, R"(kole_bridge_heartbeats_total{outcome="published"})");
  uint64_t sent = 0;
  start = Clock::now();
  for (uint32_t round = 0; Seconds(start) < seconds; ++round) {
    Clock::time_point encode_start = Clock::now();
    for (uint64_t i = 0; i < sample; ++i) {
      single[i].first =
          topics.Build(protocol::Sender::kNode, names[i], protocol::Channel::kHeartbeat);
      single[i].second = fmt::format(R"({{"v":1,"epoch":1,"seq":{}}})", base + round);
    }
    start += Clock::now() - encode_start;
    for (const auto& [topic, payload] : single) bridge.Deliver(topic, payload);
    sent += sample;
  }
  bridge.Drain();
  double single_seconds = Seconds(start);
  applied = Counter(registry, R"(kole_bridge_heartbeats_total{outcome="applied"})") +
            Counter(registry, R"(kole_bridge_heartbeats_total{outcome="published"})") -
            applied_before;
  Figure("bridge.inprocess.node_messages_per_second", applied / single_seconds, "messages/s");
  Figure("bridge.inprocess.node_heartbeat_loss", sent - applied, "heartbeats");

  bridge.Stop();
  store->reset();
  if (data_dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

int RunThroughMosquitto(const BenchOptions& bench) {
  testing::MosquittoServer broker({.allow_anonymous = true, .max_queued_messages = 1'000'000});
  if (absl::Status started = broker.Start(); !started.ok()) {
    std::fprintf(stderr, "mosquitto: %s\n", started.ToString().c_str());
    return 1;
  }
  std::string dir = FreshDir(bench.data_dir, "bridge-mqtt");
  absl::StatusOr<std::unique_ptr<storage::NodeStore>> store =
      storage::NodeStore::Open({.data_dir = dir});
  if (!store.ok()) {
    std::fprintf(stderr, "opening the store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  metrics::MetricsRegistry registry;
  bridge::BridgeOptions options;
  options.mqtt = {.broker = broker.url(), .client_id = "kole-bench"};
  options.consumers = bench.consumers;
  absl::StatusOr<std::unique_ptr<bridge::Bridge>> created =
      bridge::Bridge::Create(options, store->get(), &registry);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  bridge::Bridge& bridge = **created;
  bridge.Start();
  for (int i = 0; i < 200 && bridge.status().consumers_connected < bench.consumers; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }

  std::string sim =
      (std::filesystem::canonical("/proc/self/exe").parent_path() / "kole-edge-sim").string();
  std::string status_file = broker.dir() + "/sim.status";
  std::vector<std::string> args = {sim,
                                   "--broker",
                                   broker.url(),
                                   "--nodes",
                                   std::to_string(bench.nodes),
                                   "--connections",
                                   std::to_string(bench.connections),
                                   "--heartbeat-interval",
                                   fmt::format("{}s", bench.heartbeat_interval),
                                   "--status-file",
                                   status_file,
                                   "--progress-interval",
                                   "10s"};
  std::printf(
      "bridge benchmark through mosquitto: %llu nodes over %llu connections, "
      "heartbeat every %g s, %d consumer(s)\n",
      static_cast<unsigned long long>(bench.nodes),
      static_cast<unsigned long long>(bench.connections), bench.heartbeat_interval,
      bench.consumers);
  std::fflush(stdout);
  Clock::time_point start = Clock::now();
  pid_t child = fork();
  if (child == 0) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }

  // 1. Until every node is durable in the store and acknowledged.
  double stored_seconds = 0, acked_seconds = 0;
  while (Seconds(start) < 600) {
    if (stored_seconds == 0 && (*store)->Stats().nodes >= bench.nodes)
      stored_seconds = Seconds(start);
    std::map<std::string, double> status = ReadStatus(status_file);
    if (status["accepted"] >= static_cast<double>(bench.nodes)) {
      acked_seconds = Seconds(start);
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (acked_seconds == 0) {
    std::fprintf(stderr, "not every node was acknowledged within 600 s\n");
  } else {
    Figure("bridge.mosquitto.register_stored_seconds", stored_seconds, "s");
    Figure("bridge.mosquitto.register_acked_seconds", acked_seconds, "s");
    Figure("bridge.mosquitto.registrations_per_second", bench.nodes / acked_seconds, "nodes/s");
  }
  for (const char* result : {"Accepted", "Rejected", "Retry"}) {
    Figure(
        fmt::format("bridge.mosquitto.registrations_{}", absl::AsciiStrToLower(result)).c_str(),
        Counter(registry, fmt::format(R"(kole_bridge_registrations_total{{result="{}"}})", result)),
        "nodes");
  }
  Figure("bridge.mosquitto.ack_publish_failures",
         Counter(registry, "kole_bridge_publish_failures_total"), "messages");
  Figure("bridge.mosquitto.shed_messages",
         Counter(registry, R"(kole_bridge_messages_dropped_total{reason="queue_full"})"),
         "messages");
  Figure("bridge.mosquitto.nodes_per_connection",
         static_cast<double>(bench.nodes) / static_cast<double>(bench.connections), "nodes");

  // 2. Sustained heartbeats: what the simulator sent against what the store
  // applied, over the same window (settled for one interval first).
  absl::SleepFor(absl::Seconds(bench.heartbeat_interval));
  auto applied = [&] {
    return Counter(registry, R"(kole_bridge_heartbeats_total{outcome="applied"})") +
           Counter(registry, R"(kole_bridge_heartbeats_total{outcome="published"})");
  };
  std::map<std::string, double> before = ReadStatus(status_file);
  double applied_before = applied();
  Clock::time_point window = Clock::now();
  absl::SleepFor(absl::Seconds(bench.seconds));
  std::map<std::string, double> after = ReadStatus(status_file);
  double applied_after = applied();
  double elapsed = Seconds(window);
  double sent = after["heartbeatsSent"] - before["heartbeatsSent"];
  double got = applied_after - applied_before;
  Figure("bridge.mosquitto.heartbeats_per_second", got / elapsed, "heartbeats/s");
  Figure("bridge.mosquitto.messages_per_second",
         (after["messagesSent"] - before["messagesSent"]) / elapsed, "messages/s");
  Figure("bridge.mosquitto.heartbeats_sent_per_second", sent / elapsed, "heartbeats/s");
  Figure("bridge.mosquitto.heartbeat_loss_ratio", sent > 0 ? std::max(0.0, 1 - got / sent) : 0,
         "ratio");
  Figure("bridge.mosquitto.queue_depth", static_cast<double>(bridge.status().queue_depth),
         "messages");

  kill(child, SIGTERM);
  int exit_status = 0;
  waitpid(child, &exit_status, 0);
  bridge.Stop();
  store->reset();
  if (bench.data_dir.empty()) std::filesystem::remove_all(dir);
  return acked_seconds == 0 ? 1 : 0;
}

int Run(int argc, char** argv) {
  CLI::App app{"kole-bench-bridge: the MQTT bridge's ceiling in process and through mosquitto"};
  BenchOptions bench;
  std::string mode = "all";
  app.add_option("--mode", mode, "inprocess, mosquitto or all")
      ->check(CLI::IsMember({"inprocess", "mosquitto", "all"}))
      ->capture_default_str();
  app.add_option("--nodes", bench.nodes, "Fleet size")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  app.add_option("--batch", bench.batch, "Nodes per gateway message (in process)")
      ->check(CLI::Range(size_t{1}, protocol::kMaxBatchNodes));
  app.add_option("--seconds", bench.seconds, "Duration of each heartbeat phase")
      ->check(CLI::Range(1.0, 600.0));
  app.add_option("--connections", bench.connections, "Simulator connections (through mosquitto)")
      ->capture_default_str();
  app.add_option("--heartbeat-interval", bench.heartbeat_interval,
                 "Seconds between a node's heartbeats (through mosquitto)")
      ->capture_default_str();
  app.add_option("--consumers", bench.consumers, "Bridge consumer connections")
      ->capture_default_str();
  app.add_option("--data-dir", bench.data_dir, "Store directory (default: a fresh temporary one)");
  app.add_option(
      "--sim-arg", bench.sim_args,
      "An argument for kole-edge-sim (repeat: --sim-arg=--register-rate --sim-arg=50000)");
  CLI11_PARSE(app, argc, argv);
  log::SetVerbosity(0);

  int status = 0;
  if (mode != "mosquitto") status |= RunInProcess(bench);
  if (mode != "inprocess") status |= RunThroughMosquitto(bench);
  return status;
}

}  // namespace
}  // namespace kole::bench

int main(int argc, char** argv) { return kole::bench::Run(argc, argv); }
