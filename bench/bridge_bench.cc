// kole-bench-bridge, in-process part: the bridge's own ceiling with the
// broker taken out. Seeded nodes from the shared fleet generator are encoded
// as the protocol's gateway messages and handed to Bridge::Deliver() exactly
// as a consumer connection would; replies go to a counting publisher.
//
//   1. durable bulk registration of N nodes (batches of --batch per message,
//      acknowledged only after the write-ahead log is synced);
//   2. heartbeats for --seconds: gateway batches and, separately, one node per
//      message (the per-message cost that bounds a fleet without gateways).
//
// The end-to-end figures through mosquitto come from the same binary's
// companion run with kole-edge-sim (docs/benchmarks.md).
//
// Every figure is printed as `figure NAME VALUE UNIT` on a line of its own.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/metrics.h"
#include "edge/fleet_generator.h"
#include "mqtt-bridge/bridge.h"
#include "mqtt-bridge/protocol.h"

namespace kole::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Figure(const char* name, double value, const char* unit) {
  std::printf("figure %s %.6g %s\n", name, value, unit);
  std::fflush(stdout);
}

class CountingPublisher : public bridge::Publisher {
 public:
  absl::Status Publish(std::string_view, std::string_view, int) override {
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

int Run(int argc, char** argv) {
  CLI::App app{"kole-bench-bridge: the MQTT bridge's ceiling in process (no broker)"};
  uint64_t nodes = 1'000'000;
  size_t batch = 500;
  double seconds = 10;
  std::string data_dir;
  app.add_option("--nodes", nodes, "Fleet size")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  app.add_option("--batch", batch, "Nodes per gateway message")
      ->check(CLI::Range(size_t{1}, protocol::kMaxBatchNodes));
  app.add_option("--seconds", seconds, "Duration of each heartbeat phase")
      ->check(CLI::Range(1.0, 600.0));
  app.add_option("--data-dir", data_dir, "Store directory (default: a fresh temporary one)");
  CLI11_PARSE(app, argc, argv);
  log::SetVerbosity(0);

  std::string dir = data_dir;
  if (dir.empty()) {
    dir =
        (std::filesystem::temp_directory_path() / ("kole-bench-bridge-" + std::to_string(getpid())))
            .string();
  }
  std::filesystem::remove_all(dir);
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

}  // namespace
}  // namespace kole::bench

int main(int argc, char** argv) { return kole::bench::Run(argc, argv); }
