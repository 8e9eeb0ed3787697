#pragma once

// Test-side helpers for the edge integration tests: a real mosquitto on a
// free loopback port, a child process runner, and TestCloud, a tiny stand-in
// for kole-apiserver's bridge that acknowledges registrations and checks the
// order of what devices send. Built on the real MqttClient and codec.
//
// Thread safety: TestCloud's accessors lock; its handler runs on Paho's
// receive thread. Broker and Process are owned by one test thread.

#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mqtt-bridge/mqtt_client.h"
#include "mqtt-bridge/protocol.h"

namespace kole::edge::testing {

// A mosquitto broker (Debian's /usr/sbin/mosquitto) on 127.0.0.1.
class Broker {
 public:
  // `listener_config` lines follow the listener line (TLS settings).
  explicit Broker(std::string dir, std::string listener_config = "", bool tls = false);
  ~Broker();
  // Starts on a free port (the same port again after Stop()); false if it
  // does not accept connections within 5 s.
  bool Start();
  void Stop();
  std::string url() const {
    return (tls_ ? "ssl://127.0.0.1:" : "tcp://127.0.0.1:") + std::to_string(port_);
  }
  int port() const { return port_; }

 private:
  std::string dir_;
  std::string listener_config_;
  bool tls_ = false;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Writes a CA, a broker certificate for 127.0.0.1 and client certificates
// whose common names are `clients` into `dir` (ca.pem, broker.pem,
// broker-key.pem, <name>.pem, <name>-key.pem) with the openssl tool.
bool MakeCertificates(const std::string& dir, const std::vector<std::string>& clients);

// A child process with stdout and stderr in files.
class Process {
 public:
  Process(std::string path, std::vector<std::string> args, std::string output_prefix);
  ~Process();  // SIGKILL if still running.
  bool Start();
  void Signal(int signal);
  // The exit code, or nullopt if it did not exit within the timeout
  // (-signal if a signal ended it).
  std::optional<int> Wait(absl::Duration timeout);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  std::string path_;
  std::vector<std::string> args_;
  std::string prefix_;
  pid_t pid_ = -1;
  std::optional<int> exit_;
};

struct NodeRecord {
  protocol::Sender sender = protocol::Sender::kNode;
  std::string via;  // The node or gateway id of the topic it came on.
  uint32_t epoch = 0;
  uint32_t last_sequence = 0;  // Highest (epoch, sequence) seen.
  uint32_t registrations = 0;
  uint32_t heartbeats = 0;
  uint32_t last_registration_sequence = 0;
  bool accepted = false;
  bool heartbeat_before_accept = false;
  uint32_t order_violations = 0;  // A message not newer than the last one.
  std::string boot_id;
  std::set<std::string> boot_ids;  // Every boot id registered.
  std::string pod_revision;        // The last heartbeat's podRev.
};

class TestCloud {
 public:
  // Decides the ack for a registration (attempt = registrations seen for
  // that node, 1 first); nullopt sends none.
  using AckPolicy =
      std::function<std::optional<protocol::Ack>(const protocol::Registration&, uint32_t attempt)>;

  static AckPolicy AcceptAll();

  TestCloud(std::string broker, AckPolicy policy = AcceptAll());
  // TLS with a client certificate; before Start().
  void SetTls(std::string ca_file, std::string cert_file, std::string key_file);
  ~TestCloud();
  bool Start();

  // Waits until `predicate` (called under the lock) holds.
  bool WaitFor(const std::function<bool(const TestCloud&)>& predicate, absl::Duration timeout);

  // Under the lock (from WaitFor's predicate) or after Start() settled.
  const std::map<std::string, NodeRecord>& nodes() const { return nodes_; }
  size_t AcceptedCount() const;
  size_t NodesWithHeartbeats(uint32_t at_least) const;
  uint32_t decode_errors() const { return decode_errors_; }
  uint32_t wills() const { return wills_; }
  // Every podstatus entry received, in order, and the messages they came in.
  const std::vector<protocol::PodStatus>& pod_statuses() const { return pod_statuses_; }
  uint32_t pod_status_messages() const { return pod_status_messages_; }
  const std::vector<uint32_t>& will_epochs() const { return will_epochs_; }

  // Copies of the state, taken with the lock.
  std::map<std::string, NodeRecord> Snapshot() const;
  uint32_t DecodeErrors() const;
  uint32_t Wills() const;
  std::vector<protocol::PodStatus> PodStatuses() const;

  void SendControl(protocol::Sender sender, const std::string& id,
                   const protocol::ControlMessage& message);
  // Any bytes on any topic (hostile input for devices).
  void PublishRaw(const std::string& topic, const std::string& payload);
  // A node's desired pod set on its pods channel (QoS 1).
  void SendPods(const protocol::NodePods& pods);
  // A workload template, retained on its topic; an empty template_json
  // publishes the empty payload that clears it.
  void PublishTemplate(const protocol::WorkloadTemplate& workload);

 private:
  void Handle(const protocol::MqttMessage& message);

  std::string broker_;
  std::string ca_file_;
  std::string cert_file_;
  std::string key_file_;
  AckPolicy policy_;
  protocol::TopicScheme topics_;
  std::unique_ptr<protocol::MqttClient> client_;
  mutable absl::Mutex mu_;
  std::map<std::string, NodeRecord> nodes_ ABSL_GUARDED_BY(mu_);
  uint32_t decode_errors_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t wills_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> will_epochs_ ABSL_GUARDED_BY(mu_);
  std::vector<protocol::PodStatus> pod_statuses_ ABSL_GUARDED_BY(mu_);
  uint32_t pod_status_messages_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kole::edge::testing
