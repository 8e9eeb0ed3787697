#include "mqtt-bridge/mqtt_client.h"

#include <MQTTAsync.h>
#include <absl/random/random.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"

namespace kole::protocol {
namespace {

// Paho spells the schemes tcp:// and ssl://; mqtt:// and mqtts:// are the
// registered names users write.
absl::StatusOr<std::pair<std::string, bool>> PahoUri(std::string_view broker) {
  for (auto [scheme, paho, tls] :
       {std::tuple{"tcp://", "tcp://", false}, std::tuple{"mqtt://", "tcp://", false},
        std::tuple{"ssl://", "ssl://", true}, std::tuple{"mqtts://", "ssl://", true}}) {
    std::string_view prefix(scheme);
    if (broker.substr(0, prefix.size()) == prefix && broker.size() > prefix.size()) {
      return std::pair{std::string(paho) + std::string(broker.substr(prefix.size())), tls};
    }
  }
  return absl::InvalidArgumentError(fmt::format(
      "broker {:?} must look like tcp://host:port, mqtt://, ssl:// or mqtts://", broker));
}

std::string PahoError(int code) {
  const char* text = MQTTAsync_strerror(code);
  return text != nullptr ? fmt::format("{} ({})", text, code) : fmt::format("code {}", code);
}

}  // namespace

// Paho calls plain C functions with our `this` as context.
struct MqttClient::Callbacks {
  static int MessageArrived(void* context, char* topic, int topic_length,
                            MQTTAsync_message* message) {
    auto* self = static_cast<MqttClient*>(context);
    size_t length = topic_length > 0 ? static_cast<size_t>(topic_length) : strlen(topic);
    MqttMessage view{
        .topic = std::string_view(topic, length),
        .payload = std::string_view(static_cast<const char*>(message->payload),
                                    static_cast<size_t>(std::max(message->payloadlen, 0))),
        .qos = message->qos,
        .retained = message->retained != 0,
    };
    self->received_.fetch_add(1, std::memory_order_relaxed);
    if (self->on_message_) self->on_message_(view);
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    return 1;
  }

  static void ConnectionLost(void* context, char* cause) {
    auto* self = static_cast<MqttClient*>(context);
    absl::MutexLock lock(&self->mu_);
    if (self->state_ != State::kConnected) return;
    self->state_ = State::kDisconnected;
    self->connected_.store(false, std::memory_order_release);
    self->connection_losses_.fetch_add(1, std::memory_order_relaxed);
    KOLE_LOG(Warning, "MQTT connection lost", "client", self->options_.client_id, "broker",
             self->options_.broker, "cause", cause != nullptr ? cause : "unknown");
  }

  static void AttemptSucceeded(void* context, MQTTAsync_successData*) {
    auto* self = static_cast<MqttClient*>(context);
    absl::MutexLock lock(&self->mu_);
    self->attempt_done_ = true;
    self->attempt_ok_ = true;
  }

  static void AttemptFailed(void* context, MQTTAsync_failureData* response) {
    auto* self = static_cast<MqttClient*>(context);
    absl::MutexLock lock(&self->mu_);
    self->attempt_done_ = true;
    self->attempt_ok_ = false;
    self->attempt_error_ = response == nullptr ? "no reason given"
                           : response->message != nullptr
                               ? fmt::format("{} ({})", response->message, response->code)
                               : PahoError(response->code);
  }
};

absl::StatusOr<std::unique_ptr<MqttClient>> MqttClient::Create(MqttClientOptions options,
                                                               MessageHandler on_message,
                                                               ConnectionHandler on_connection) {
  if (options.client_id.empty()) return absl::InvalidArgumentError("an MQTT client id is needed");
  if (options.min_backoff <= absl::ZeroDuration() || options.max_backoff < options.min_backoff) {
    return absl::InvalidArgumentError("MQTT backoff: need 0 < min_backoff <= max_backoff");
  }
  absl::StatusOr<std::pair<std::string, bool>> uri = PahoUri(options.broker);
  if (!uri.ok()) return uri.status();
  if (!uri->second && (!options.cert_file.empty() || !options.ca_file.empty())) {
    return absl::InvalidArgumentError(fmt::format(
        "TLS files are set but broker {:?} is not an ssl:// or mqtts:// URL", options.broker));
  }

  std::unique_ptr<MqttClient> client(
      new MqttClient(std::move(options), std::move(on_message), std::move(on_connection)));
  MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
  create.MQTTVersion = MQTTVERSION_3_1_1;
  MQTTAsync handle = nullptr;
  int rc = MQTTAsync_createWithOptions(&handle, client->server_uri_.c_str(),
                                       client->options_.client_id.c_str(),
                                       MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
  if (rc != MQTTASYNC_SUCCESS) {
    return absl::InvalidArgumentError(
        fmt::format("creating MQTT client for {:?}: {}", client->options_.broker, PahoError(rc)));
  }
  client->handle_ = handle;
  rc = MQTTAsync_setCallbacks(handle, client.get(), &Callbacks::ConnectionLost,
                              &Callbacks::MessageArrived, nullptr);
  if (rc != MQTTASYNC_SUCCESS) {
    return absl::InternalError(fmt::format("setting MQTT callbacks: {}", PahoError(rc)));
  }
  return client;
}

MqttClient::MqttClient(MqttClientOptions options, MessageHandler on_message,
                       ConnectionHandler on_connection)
    : options_(std::move(options)),
      server_uri_(PahoUri(options_.broker)->first),
      tls_(PahoUri(options_.broker)->second),
      on_message_(std::move(on_message)),
      on_connection_(std::move(on_connection)) {}

MqttClient::~MqttClient() {
  Stop();
  if (handle_ != nullptr) {
    MQTTAsync handle = handle_;
    MQTTAsync_destroy(&handle);
  }
}

void MqttClient::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || state_ == State::kStopped) return;
  thread_ = std::thread([this] { Run(); });
}

void MqttClient::Stop(absl::Duration drain) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return;
    state_ = State::kStopped;
  }
  if (thread_.joinable()) thread_.join();
  if (connected_.exchange(false)) {
    MQTTAsync_disconnectOptions disconnect = MQTTAsync_disconnectOptions_initializer;
    disconnect.timeout = static_cast<int>(absl::ToInt64Milliseconds(drain));
    MQTTAsync_disconnect(handle_, &disconnect);
    // Paho finishes the disconnect on its own thread; give it the drain time.
    absl::SleepFor(std::min(drain, absl::Milliseconds(200)));
  }
}

bool MqttClient::ConnectOnce() {
  MQTTAsync_connectOptions connect = MQTTAsync_connectOptions_initializer;
  connect.keepAliveInterval = options_.keepalive_seconds;
  connect.cleansession = options_.clean_session ? 1 : 0;
  connect.connectTimeout = options_.connect_timeout_seconds;
  connect.automaticReconnect = 0;  // Run() reconnects, with our backoff and logging.
  connect.onSuccess = &Callbacks::AttemptSucceeded;
  connect.onFailure = &Callbacks::AttemptFailed;
  connect.context = this;
  if (!options_.username.empty()) connect.username = options_.username.c_str();
  if (!options_.password.empty()) connect.password = options_.password.c_str();

  MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
  if (options_.will) {
    will.topicName = options_.will->topic.c_str();
    will.payload.data = options_.will->payload.data();
    will.payload.len = static_cast<int>(options_.will->payload.size());
    will.message = nullptr;
    will.qos = options_.will->qos;
    will.retained = options_.will->retained ? 1 : 0;
    connect.will = &will;
  }

  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  if (tls_) {
    ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
    ssl.enableServerCertAuth = 1;
    ssl.verify = options_.verify_hostname ? 1 : 0;
    if (!options_.ca_file.empty()) ssl.trustStore = options_.ca_file.c_str();
    if (!options_.cert_file.empty()) ssl.keyStore = options_.cert_file.c_str();
    if (!options_.key_file.empty()) ssl.privateKey = options_.key_file.c_str();
    connect.ssl = &ssl;
  }

  {
    absl::MutexLock lock(&mu_);
    attempt_done_ = false;
    state_ = state_ == State::kStopped ? State::kStopped : State::kConnecting;
    if (state_ == State::kStopped) return false;
  }
  int rc = MQTTAsync_connect(handle_, &connect);
  absl::MutexLock lock(&mu_);
  if (rc != MQTTASYNC_SUCCESS) {
    attempt_error_ = PahoError(rc);
  } else {
    mu_.AwaitWithTimeout(absl::Condition(&attempt_done_),
                         absl::Seconds(options_.connect_timeout_seconds + 1));
    if (!attempt_done_) attempt_error_ = "connect timed out";
  }
  bool ok = rc == MQTTASYNC_SUCCESS && attempt_done_ && attempt_ok_;
  if (state_ == State::kStopped) return ok;
  if (!ok) {
    state_ = State::kDisconnected;
    return false;
  }

  // Subscriptions are made again on every connect and waited for, so that a
  // caller who sees connected() can rely on receiving replies.
  if (!subscriptions_.empty()) {
    std::vector<std::pair<std::string, int>> subscriptions = subscriptions_;
    std::vector<const char*> filters;
    std::vector<int> qos;
    for (const auto& [filter, level] : subscriptions) {
      filters.push_back(filter.c_str());
      qos.push_back(level);
    }
    MQTTAsync_responseOptions response = MQTTAsync_responseOptions_initializer;
    response.onSuccess = &Callbacks::AttemptSucceeded;
    response.onFailure = &Callbacks::AttemptFailed;
    response.context = this;
    attempt_done_ = false;
    rc = MQTTAsync_subscribeMany(handle_, static_cast<int>(filters.size()),
                                 const_cast<char* const*>(filters.data()), qos.data(), &response);
    if (rc == MQTTASYNC_SUCCESS) {
      mu_.AwaitWithTimeout(absl::Condition(&attempt_done_),
                           absl::Seconds(options_.connect_timeout_seconds));
    }
    if (rc != MQTTASYNC_SUCCESS || !attempt_done_ || !attempt_ok_) {
      KOLE_LOG(Warning, "MQTT subscribe failed; reconnecting", "client", options_.client_id, "err",
               rc != MQTTASYNC_SUCCESS ? PahoError(rc) : attempt_error_);
      attempt_error_ = "subscribe failed";
      state_ = State::kDisconnected;
      return false;
    }
  }
  state_ = State::kConnected;
  connected_.store(true, std::memory_order_release);
  return true;
}

void MqttClient::Run() {
  absl::BitGen random;
  absl::Duration backoff = options_.min_backoff;
  uint64_t failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (state_ == State::kStopped) return;
    }

    if (ConnectOnce()) {
      connects_.fetch_add(1, std::memory_order_relaxed);
      if (failures > 0 || connects_.load() > 1) {
        KOLE_LOG(Info, "MQTT connected", "client", options_.client_id, "broker", options_.broker,
                 "failedAttempts", failures);
      } else {
        KOLE_VLOG(1, "MQTT connected", "client", options_.client_id, "broker", options_.broker);
      }
      failures = 0;
      backoff = options_.min_backoff;
      if (on_connection_) on_connection_(true);

      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](State* state) { return *state != State::kConnected; }, &state_));
        if (state_ == State::kStopped) return;
      }
      if (on_connection_) on_connection_(false);

      // Reconnecting at once races Paho's own clean-up of the lost connection
      // (it ignores the command, or never answers it); a short, jittered
      // pause also keeps a fleet that lost its broker from returning in step.
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](State* state) { return *state == State::kStopped; }, &state_),
                           options_.min_backoff * absl::Uniform(random, 0.5, 1.0));
      continue;
    }

    failed_attempts_.fetch_add(1, std::memory_order_relaxed);
    std::string error;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == State::kStopped) return;
      error = attempt_error_;
    }
    if (failures % 10 == 0) {
      KOLE_LOG(Warning, "MQTT connect failed; retrying", "client", options_.client_id, "broker",
               options_.broker, "attempt", failures + 1, "err", error);
    }
    ++failures;

    // Full jitter keeps a fleet that lost its broker from reconnecting in step.
    absl::Duration wait = backoff * absl::Uniform(random, 0.0, 1.0);
    backoff = std::min(backoff * 2, options_.max_backoff);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](State* state) { return *state == State::kStopped; }, &state_),
                         wait);
  }
}

absl::Status MqttClient::Subscribe(const std::vector<std::string>& filters, int qos) {
  if (qos < 0 || qos > 2) return absl::InvalidArgumentError("MQTT QoS must be 0, 1 or 2");
  absl::MutexLock lock(&mu_);
  for (const std::string& filter : filters) subscriptions_.emplace_back(filter, qos);
  if (state_ == State::kConnected) SubscribeLocked(filters, qos);
  return absl::OkStatus();
}

void MqttClient::SubscribeLocked(const std::vector<std::string>& filters, int qos) {
  std::vector<const char*> names;
  std::vector<int> levels;
  for (const std::string& filter : filters) {
    names.push_back(filter.c_str());
    levels.push_back(qos);
  }
  MQTTAsync_responseOptions response = MQTTAsync_responseOptions_initializer;
  int rc =
      MQTTAsync_subscribeMany(handle_, static_cast<int>(names.size()),
                              const_cast<char* const*>(names.data()), levels.data(), &response);
  if (rc != MQTTASYNC_SUCCESS) {
    KOLE_LOG(Warning, "MQTT subscribe failed", "client", options_.client_id, "err", PahoError(rc));
  }
}

absl::Status MqttClient::Publish(std::string_view topic, std::string_view payload, int qos,
                                 bool retained) {
  if (!connected()) {
    publish_failures_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError("not connected to the MQTT broker");
  }
  std::string topic_name(topic);
  MQTTAsync_message message = MQTTAsync_message_initializer;
  message.payload = const_cast<char*>(payload.data());
  message.payloadlen = static_cast<int>(payload.size());
  message.qos = qos;
  message.retained = retained ? 1 : 0;
  MQTTAsync_responseOptions response = MQTTAsync_responseOptions_initializer;
  int rc = MQTTAsync_sendMessage(handle_, topic_name.c_str(), &message, &response);
  if (rc == MQTTASYNC_SUCCESS) {
    published_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  publish_failures_.fetch_add(1, std::memory_order_relaxed);
  if (rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT || rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
    return absl::ResourceExhaustedError(fmt::format("MQTT publish: {}", PahoError(rc)));
  }
  return absl::UnavailableError(fmt::format("MQTT publish: {}", PahoError(rc)));
}

bool MqttClient::WaitConnected(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](State* state) { return *state == State::kConnected || *state == State::kStopped; },
          &state_),
      timeout);
  return state_ == State::kConnected;
}

MqttClientStats MqttClient::stats() const {
  return MqttClientStats{
      .connects = connects_.load(std::memory_order_relaxed),
      .connection_losses = connection_losses_.load(std::memory_order_relaxed),
      .failed_attempts = failed_attempts_.load(std::memory_order_relaxed),
      .published = published_.load(std::memory_order_relaxed),
      .publish_failures = publish_failures_.load(std::memory_order_relaxed),
      .received = received_.load(std::memory_order_relaxed),
  };
}

}  // namespace kole::protocol
