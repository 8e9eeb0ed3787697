// kole-bench-edge-counter: a counting consumer for device-side load tests.
// It subscribes to every device-to-cloud topic, decodes each payload with the
// protocol codec and counts registrations, heartbeats (entries, not
// messages), wills and undecodable payloads; it acknowledges nothing (run
// the simulator with --assume-accepted). Prints `figure` lines at the end.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>

#include "mqtt-bridge/mqtt_client.h"
#include "mqtt-bridge/protocol.h"

int main(int argc, char** argv) {
  using namespace kole::protocol;
  std::string broker = "tcp://127.0.0.1:1883";
  double seconds = 30;
  bool ack = false;
  CLI::App app{"kole-bench-edge-counter: counts what devices send"};
  app.add_option("--broker", broker, "Broker URL");
  app.add_option("--seconds", seconds, "Run this long");
  app.add_flag("--ack", ack, "Accept every registration");
  CLI11_PARSE(app, argc, argv);

  std::atomic<uint64_t> messages{0}, registrations{0}, heartbeats{0}, wills{0}, bad{0};
  TopicScheme topics;
  std::unique_ptr<MqttClient>* self = nullptr;
  auto client = MqttClient::Create(
      [&] {
        MqttClientOptions options;
        options.broker = broker;
        options.client_id = "kole-bench-edge-counter";
        return options;
      }(),
      [&](const MqttMessage& m) {
        // Paho's receive thread: one decoder state per process is enough.
        static thread_local RegisterMessage registers;
        static thread_local HeartbeatBatch beats;
        messages.fetch_add(1, std::memory_order_relaxed);
        std::optional<Topic> topic = topics.Parse(m.topic);
        if (!topic) return;
        switch (topic->channel) {
          case Channel::kRegister:
            if (DecodeRegister(*topic, m.payload, &registers) == DecodeError::kOk) {
              registrations.fetch_add(registers.nodes.size(), std::memory_order_relaxed);
              if (ack && self != nullptr) {
                static thread_local AckMessage acks;
                static thread_local std::string payload;
                acks.id = registers.id;
                acks.acks.resize(registers.nodes.size());
                for (size_t i = 0; i < registers.nodes.size(); ++i) {
                  Ack& a = acks.acks[i];
                  a.node = registers.nodes[i].node;
                  a.result = AckResult::kAccepted;
                  a.epoch = registers.nodes[i].epoch;
                  a.resource_version = 1;
                }
                payload.clear();
                EncodeAck(acks, topic->sender == Sender::kNode, payload);
                (void)(*self)->Publish(topics.Build(topic->sender, topic->id, Channel::kAck),
                                       payload, 1);
              }
            } else {
              bad.fetch_add(1, std::memory_order_relaxed);
            }
            break;
          case Channel::kHeartbeat:
            if (DecodeHeartbeats(*topic, m.payload, &beats) == DecodeError::kOk) {
              heartbeats.fetch_add(beats.beats.size(), std::memory_order_relaxed);
            } else {
              bad.fetch_add(1, std::memory_order_relaxed);
            }
            break;
          case Channel::kWill:
            wills.fetch_add(1, std::memory_order_relaxed);
            break;
          default:
            break;
        }
      });
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", std::string(client.status().message()).c_str());
    return 2;
  }
  self = &*client;
  (void)(*client)->Subscribe(topics.CloudSubscriptions(""), 0);
  (*client)->Start();
  if (!(*client)->WaitConnected(absl::Seconds(10))) return 1;
  std::printf("connected\n");
  std::fflush(stdout);

  uint64_t last_beats = 0, last_messages = 0;
  for (int s = 0; s < seconds; ++s) {
    absl::SleepFor(absl::Seconds(1));
    uint64_t b = heartbeats.load(), m = messages.load();
    std::printf("t=%d registrations=%lu heartbeats/s=%lu messages/s=%lu\n", s + 1,
                registrations.load(), b - last_beats, m - last_messages);
    std::fflush(stdout);
    last_beats = b;
    last_messages = m;
  }
  (*client)->Stop();
  std::printf("figure counter.registrations %lu nodes\n", registrations.load());
  std::printf("figure counter.heartbeats %lu messages\n", heartbeats.load());
  std::printf("figure counter.messages %lu messages\n", messages.load());
  std::printf("figure counter.undecodable %lu messages\n", bad.load());
  return 0;
}
