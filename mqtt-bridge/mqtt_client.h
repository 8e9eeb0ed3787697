#pragma once

// MqttClient: one MQTT 3.1.1 connection over Paho MQTT C's asynchronous API,
// with the policies every KOLE program needs, so the bridge, the simulator and
// the agent behave alike:
//
//   - it keeps trying to connect, with exponential backoff and jitter
//     (min_backoff doubling up to max_backoff), and logs the first failure and
//     then every tenth;
//   - subscriptions are remembered and made again after every connect, since
//     a broker restarted without persistence has forgotten them;
//   - TLS with a CA file, and a client certificate or user name and password;
//   - a last will registered with each connect;
//   - Publish never blocks: while disconnected it fails with Unavailable, and
//     the caller's own retry (the protocol's acknowledgements) covers the gap.
//
//   MqttClientOptions options{.broker = "tcp://127.0.0.1:1883", .client_id = "edge-1"};
//   auto client = MqttClient::Create(options, [](const MqttMessage& m) { ... });
//   (*client)->Subscribe({"kole/v1/nodes/edge-1/ack"}, 1);
//   (*client)->Start();
//
// Thread safety: every method may be called from any thread. The message
// handler runs on Paho's receive thread, one message at a time; while it runs
// no further message is read from the socket, which is how a consumer applies
// back-pressure (it may block briefly). The connection handler runs on the
// client's own connection thread. Neither handler may call Stop().

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kole::protocol {

struct MqttWill {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retained = false;
};

struct MqttClientOptions {
  // tcp://host:port, mqtt://host:port (plain) or ssl://, mqtts:// (TLS).
  std::string broker = "tcp://127.0.0.1:1883";
  std::string client_id;
  std::string username;
  std::string password;
  // TLS: the CA that signed the broker's certificate (empty: the system's),
  // and an optional client certificate and key (PEM files).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_hostname = true;
  // false: a persistent session, so the broker keeps subscriptions and queued
  // QoS 1 messages while the client is away.
  bool clean_session = true;
  int keepalive_seconds = 30;
  int connect_timeout_seconds = 10;
  std::optional<MqttWill> will;
  absl::Duration min_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
};

struct MqttMessage {
  std::string_view topic;
  std::string_view payload;
  int qos = 0;
  bool retained = false;
};

struct MqttClientStats {
  uint64_t connects = 0;           // Successful connects, the first included.
  uint64_t connection_losses = 0;  // Connections that ended other than by Stop().
  uint64_t failed_attempts = 0;    // Connect attempts that did not succeed.
  uint64_t published = 0;
  uint64_t publish_failures = 0;  // Publish() calls that returned an error.
  uint64_t received = 0;
};

class MqttClient {
 public:
  using MessageHandler = std::function<void(const MqttMessage&)>;
  using ConnectionHandler = std::function<void(bool connected)>;

  // Validates the options (scheme, client id) and creates the Paho client
  // without connecting.
  static absl::StatusOr<std::unique_ptr<MqttClient>> Create(
      MqttClientOptions options, MessageHandler on_message,
      ConnectionHandler on_connection = nullptr);

  ~MqttClient();  // Stop().
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Starts the connection thread; it connects and reconnects until Stop().
  void Start();

  // Disconnects (flushing in-flight messages for up to `drain`) and joins the
  // connection thread. Idempotent.
  void Stop(absl::Duration drain = absl::Seconds(1));

  // Adds topic filters, subscribed now if connected and after every connect.
  absl::Status Subscribe(const std::vector<std::string>& filters, int qos);

  // Queues one message. Unavailable while disconnected; ResourceExhausted when
  // Paho's in-flight window is full.
  absl::Status Publish(std::string_view topic, std::string_view payload, int qos,
                       bool retained = false);

  bool connected() const { return connected_.load(std::memory_order_acquire); }

  // Blocks until connected or the timeout passes; returns connected().
  bool WaitConnected(absl::Duration timeout);

  MqttClientStats stats() const;
  const MqttClientOptions& options() const { return options_; }

 private:
  struct Callbacks;  // Paho's C callbacks, which see only this class's context.
  enum class State { kDisconnected, kConnecting, kConnected, kStopped };

  MqttClient(MqttClientOptions options, MessageHandler on_message, ConnectionHandler on_connection);
  void Run();
  bool ConnectOnce();  // One attempt; true once connected.
  void SubscribeLocked(const std::vector<std::string>& filters, int qos)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const MqttClientOptions options_;
  const std::string server_uri_;  // The broker URL in the form Paho accepts.
  const bool tls_;
  MessageHandler on_message_;
  ConnectionHandler on_connection_;
  void* handle_ = nullptr;  // MQTTAsync.

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kDisconnected;
  bool attempt_done_ ABSL_GUARDED_BY(mu_) = false;
  bool attempt_ok_ ABSL_GUARDED_BY(mu_) = false;
  std::string attempt_error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int>> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
  std::atomic<bool> connected_{false};

  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> connection_losses_{0};
  std::atomic<uint64_t> failed_attempts_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> publish_failures_{0};
  std::atomic<uint64_t> received_{0};
};

}  // namespace kole::protocol
