#include "mqtt-bridge/bridge_flags.h"

#include <absl/strings/ascii.h>
#include <absl/time/time.h>
#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace kole::bridge {
namespace {

absl::StatusOr<absl::Duration> ParseDurationFlag(std::string_view flag, const std::string& text) {
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) || duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        fmt::format("--{}: {:?} is not a positive duration such as 40s or 2m", flag, text));
  }
  return duration;
}

}  // namespace

void AddBridgeFlags(CLI::App& app, BridgeFlags& flags) {
  app.add_option("--mqtt-broker", flags.broker,
                 "Broker URL: tcp://host:port or mqtts://host:port. Empty: no MQTT bridge")
      ->group("MQTT bridge");
  app.add_option("--mqtt-client-id", flags.client_id,
                 "Client id base; consumer i connects as <base>-<i> with a persistent session")
      ->capture_default_str()
      ->group("MQTT bridge");
  app.add_option("--mqtt-username", flags.username, "User name at the broker")
      ->capture_default_str()
      ->group("MQTT bridge");
  app.add_option("--mqtt-password-file", flags.password_file,
                 "File holding the broker password (its first line)")
      ->check(CLI::ExistingFile)
      ->group("MQTT bridge");
  app.add_option("--mqtt-ca-file", flags.ca_file, "CA bundle that signed the broker's certificate")
      ->check(CLI::ExistingFile)
      ->group("MQTT bridge");
  app.add_option("--mqtt-cert-file", flags.cert_file, "Client certificate for the broker (PEM)")
      ->check(CLI::ExistingFile)
      ->group("MQTT bridge");
  app.add_option("--mqtt-key-file", flags.key_file, "Private key of --mqtt-cert-file (PEM)")
      ->check(CLI::ExistingFile)
      ->group("MQTT bridge");
  app.add_option("--mqtt-topic-prefix", flags.topic_prefix, "Topic prefix of the edge protocol")
      ->capture_default_str()
      ->group("MQTT bridge");
  app.add_option("--mqtt-share-group", flags.share_group,
                 "Shared-subscription group; empty subscribes plainly")
      ->capture_default_str()
      ->group("MQTT bridge");
  app.add_option("--mqtt-consumers", flags.consumers,
                 "Consumer connections that split the stream (needs a share group when > 1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64))
      ->group("MQTT bridge");
  app.add_option("--mqtt-queue-capacity", flags.queue_capacity,
                 "Device messages held between the consumers and the store; beyond it the "
                 "bridge applies back-pressure, then sheds")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1000}, size_t{10'000'000}))
      ->group("MQTT bridge");
  app.add_option("--node-monitor-grace-period", flags.grace_period,
                 "Silence after which a node is marked Ready=Unknown")
      ->capture_default_str()
      ->group("Node lifecycle");
  app.add_option("--mass-transition-fraction", flags.mass_fraction,
                 "A liveness pass marking more than this share of the fleet at once is held back")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group("Node lifecycle");
  app.add_option("--mass-transition-min-nodes", flags.mass_min_nodes,
                 "...and more than this many nodes")
      ->capture_default_str()
      ->group("Node lifecycle");
  app.add_option("--mass-transition-hold", flags.mass_hold,
                 "How long a mass transition is held back before nodes are released gradually")
      ->capture_default_str()
      ->group("Node lifecycle");
}

absl::StatusOr<BridgeOptions> CompleteBridgeOptions(const BridgeFlags& flags) {
  BridgeOptions options;
  options.mqtt.broker = flags.broker;
  options.mqtt.client_id = flags.client_id;
  options.mqtt.username = flags.username;
  options.mqtt.ca_file = flags.ca_file;
  options.mqtt.cert_file = flags.cert_file;
  options.mqtt.key_file = flags.key_file;
  if (flags.cert_file.empty() != flags.key_file.empty()) {
    return absl::InvalidArgumentError("--mqtt-cert-file and --mqtt-key-file go together");
  }
  if (!flags.password_file.empty()) {
    std::ifstream in(flags.password_file);
    std::string password;
    std::getline(in, password);
    if (!in && password.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("--mqtt-password-file {:?} cannot be read", flags.password_file));
    }
    options.mqtt.password = std::string(absl::StripAsciiWhitespace(password));
  }
  options.topic_prefix = flags.topic_prefix;
  options.share_group = flags.share_group;
  options.consumers = flags.consumers;
  options.queue_capacity = flags.queue_capacity;

  absl::StatusOr<absl::Duration> grace =
      ParseDurationFlag("node-monitor-grace-period", flags.grace_period);
  if (!grace.ok()) return grace.status();
  absl::StatusOr<absl::Duration> hold = ParseDurationFlag("mass-transition-hold", flags.mass_hold);
  if (!hold.ok()) return hold.status();
  options.liveness.grace_period = *grace;
  options.liveness.mass_fraction = flags.mass_fraction;
  options.liveness.mass_min_nodes = flags.mass_min_nodes;
  options.liveness.mass_hold = *hold;
  return options;
}

}  // namespace kole::bridge
