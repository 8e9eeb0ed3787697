#pragma once

// The command-line flags of kole-apiserver that configure the MQTT bridge,
// in one place so that main() only wires them:
//
//   bridge::BridgeFlags flags;
//   bridge::AddBridgeFlags(app, flags);
//   ... parse ...
//   absl::StatusOr<bridge::BridgeOptions> options = bridge::CompleteBridgeOptions(flags);
//
// Secrets never go on the command line, where `ps` shows them: the password
// is read from --mqtt-password-file.
//
// Thread safety: plain data and free functions.

#include <absl/status/statusor.h>

#include <CLI/CLI.hpp>
#include <string>

#include "mqtt-bridge/bridge.h"

namespace kole::bridge {

struct BridgeFlags {
  std::string broker;  // Empty: no bridge (the API serves what the store holds).
  std::string client_id = "kole-apiserver";
  std::string username = "kole-cloud";
  std::string password_file;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string topic_prefix = std::string(protocol::kDefaultTopicPrefix);
  std::string share_group = "kole";
  int consumers = 1;
  size_t queue_capacity = 200'000;
  std::string grace_period = "40s";
  double mass_fraction = 0.1;
  size_t mass_min_nodes = 100;
  std::string mass_hold = "2m";
};

void AddBridgeFlags(CLI::App& app, BridgeFlags& flags);

// Checks the flags and turns them into options (reading the password file).
absl::StatusOr<BridgeOptions> CompleteBridgeOptions(const BridgeFlags& flags);

}  // namespace kole::bridge
