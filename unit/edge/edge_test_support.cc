#include "unit/edge/edge_test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace kole::edge::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

pid_t Spawn(const std::string& path, const std::vector<std::string>& args, const std::string& out,
            const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

}  // namespace

Broker::Broker(std::string dir, std::string listener_config, bool tls)
    : dir_(std::move(dir)), listener_config_(std::move(listener_config)), tls_(tls) {
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

Broker::~Broker() { Stop(); }

bool MakeCertificates(const std::string& dir, const std::vector<std::string>& clients) {
  std::filesystem::create_directories(dir);
  auto run = [](const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
  };
  const std::string d = dir + "/";
  if (!run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kole-test-ca -keyout " + d +
           "ca-key.pem -out " + d + "ca.pem")) {
    return false;
  }
  std::ofstream(d + "san.cnf") << "subjectAltName=IP:127.0.0.1\n";
  auto issue = [&](const std::string& name, const std::string& extensions) {
    return run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + d + name +
               "-key.pem -out " + d + name + ".csr") &&
           run("openssl x509 -req -days 2 -CA " + d + "ca.pem -CAkey " + d +
               "ca-key.pem -CAcreateserial -in " + d + name + ".csr -out " + d + name + ".pem " +
               extensions);
  };
  if (!issue("broker", "-extfile " + d + "san.cnf")) return false;
  for (const std::string& client : clients) {
    if (!issue(client, "")) return false;
  }
  return true;
}

bool Broker::Start() {
  if (port_ == 0) port_ = FreePort();
  std::string config = dir_ + "/mosquitto.conf";
  // Started as root, mosquitto switches to its own user unless told to
  // stay, and then cannot read the test's files.
  const passwd* user = getpwuid(geteuid());
  std::ofstream(config) << "user " << (user != nullptr ? user->pw_name : "mosquitto") << "\n"
                        << "listener " << port_ << " 127.0.0.1\n"
                        << listener_config_ << "allow_anonymous true\n"
                        << "persistence false\n"
                        << "max_queued_messages 100000\n"
                        << "log_dest file " << dir_ << "/mosquitto.log\n";
  pid_ = Spawn("/usr/sbin/mosquitto", {"-c", config}, dir_ + "/stdout", dir_ + "/stderr");
  if (pid_ < 0) return false;
  for (int i = 0; i < 250; ++i) {
    if (Accepts(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Broker::Stop() {
  if (pid_ < 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

Process::Process(std::string path, std::vector<std::string> args, std::string output_prefix)
    : path_(std::move(path)), args_(std::move(args)), prefix_(std::move(output_prefix)) {}

Process::~Process() {
  if (pid_ > 0 && !exit_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::Start() {
  pid_ = Spawn(path_, args_, prefix_ + ".stdout", prefix_ + ".stderr");
  return pid_ > 0;
}

void Process::Signal(int signal) {
  if (pid_ > 0 && !exit_) kill(pid_, signal);
}

std::optional<int> Process::Wait(absl::Duration timeout) {
  if (exit_) return exit_;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return exit_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string Process::Stdout() const { return ReadAll(prefix_ + ".stdout"); }
std::string Process::Stderr() const { return ReadAll(prefix_ + ".stderr"); }

TestCloud::AckPolicy TestCloud::AcceptAll() {
  return [](const protocol::Registration& r, uint32_t) {
    protocol::Ack ack;
    ack.node = r.node;
    ack.result = protocol::AckResult::kAccepted;
    ack.epoch = r.epoch == 0 ? 100 : r.epoch;
    ack.resource_version = 1;
    return ack;
  };
}

TestCloud::TestCloud(std::string broker, AckPolicy policy)
    : broker_(std::move(broker)), policy_(std::move(policy)) {}

TestCloud::~TestCloud() {
  if (client_) client_->Stop();
}

void TestCloud::SetTls(std::string ca_file, std::string cert_file, std::string key_file) {
  ca_file_ = std::move(ca_file);
  cert_file_ = std::move(cert_file);
  key_file_ = std::move(key_file);
}

bool TestCloud::Start() {
  protocol::MqttClientOptions options;
  options.broker = broker_;
  options.client_id = "kole-test-cloud";
  options.ca_file = ca_file_;
  options.cert_file = cert_file_;
  options.key_file = key_file_;
  options.min_backoff = absl::Milliseconds(50);
  options.max_backoff = absl::Milliseconds(500);
  auto client = protocol::MqttClient::Create(
      options, [this](const protocol::MqttMessage& message) { Handle(message); });
  if (!client.ok()) return false;
  client_ = *std::move(client);
  if (!client_->Subscribe(topics_.CloudSubscriptions(""), 1).ok()) return false;
  client_->Start();
  return client_->WaitConnected(absl::Seconds(5));
}

void TestCloud::Handle(const protocol::MqttMessage& message) {
  std::optional<protocol::Topic> topic = topics_.Parse(message.topic);
  if (!topic) return;
  absl::MutexLock lock(&mu_);
  auto newer = [](NodeRecord& record, uint32_t epoch, uint32_t sequence) {
    if (std::pair(epoch, sequence) <= std::pair(record.epoch, record.last_sequence)) {
      ++record.order_violations;
    } else {
      record.epoch = epoch;
      record.last_sequence = sequence;
    }
  };
  switch (topic->channel) {
    case protocol::Channel::kRegister: {
      protocol::RegisterMessage registers;
      if (protocol::DecodeRegister(*topic, message.payload, &registers) !=
          protocol::DecodeError::kOk) {
        ++decode_errors_;
        return;
      }
      protocol::AckMessage acks;
      acks.id = registers.id;
      for (const protocol::Registration& r : registers.nodes) {
        NodeRecord& record = nodes_[r.node];
        record.sender = topic->sender;
        record.via = std::string(topic->id);
        ++record.registrations;
        record.last_registration_sequence = r.sequence;
        record.boot_id = r.node_info.boot_id;
        record.boot_ids.insert(r.node_info.boot_id);
        if (std::pair(r.epoch, r.sequence) > std::pair(record.epoch, record.last_sequence)) {
          record.epoch = r.epoch;
          record.last_sequence = r.sequence;
        }
        std::optional<protocol::Ack> ack = policy_(r, record.registrations);
        if (!ack) continue;
        if (ack->result == protocol::AckResult::kAccepted) {
          record.accepted = true;
          // A cloud-assigned epoch restarts the order check at that epoch.
          if (ack->epoch > record.epoch) {
            record.epoch = ack->epoch;
            record.last_sequence = r.sequence;
          }
        }
        acks.acks.push_back(*ack);
      }
      if (acks.acks.empty()) return;
      std::string payload;
      protocol::EncodeAck(acks, topic->sender == protocol::Sender::kNode, payload);
      (void)client_->Publish(topics_.Build(topic->sender, topic->id, protocol::Channel::kAck),
                             payload, 1);
      return;
    }
    case protocol::Channel::kHeartbeat: {
      protocol::HeartbeatBatch batch;
      if (protocol::DecodeHeartbeats(*topic, message.payload, &batch) !=
          protocol::DecodeError::kOk) {
        ++decode_errors_;
        return;
      }
      for (const protocol::HeartbeatEntry& beat : batch.beats) {
        NodeRecord& record = nodes_[std::string(beat.node)];
        if (!record.accepted) record.heartbeat_before_accept = true;
        ++record.heartbeats;
        record.pod_revision = std::string(beat.pod_revision);
        newer(record, beat.epoch, beat.sequence);
      }
      return;
    }
    case protocol::Channel::kPodStatus: {
      protocol::PodStatusMessage statuses;
      if (protocol::DecodePodStatus(*topic, message.payload, &statuses) !=
          protocol::DecodeError::kOk) {
        ++decode_errors_;
        return;
      }
      ++pod_status_messages_;
      for (const protocol::NodePodStatus& node : statuses.nodes) {
        pod_statuses_.insert(pod_statuses_.end(), node.pods.begin(), node.pods.end());
      }
      return;
    }
    case protocol::Channel::kWill: {
      protocol::Will will;
      if (protocol::DecodeWill(message.payload, &will) != protocol::DecodeError::kOk) {
        ++decode_errors_;
        return;
      }
      ++wills_;
      will_epochs_.push_back(will.epoch);
      return;
    }
    default:
      return;
  }
}

bool TestCloud::WaitFor(const std::function<bool(const TestCloud&)>& predicate,
                        absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (predicate(*this)) return true;
    }
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

size_t TestCloud::AcceptedCount() const {
  size_t count = 0;
  for (const auto& [name, record] : nodes_) count += record.accepted ? 1 : 0;
  return count;
}

size_t TestCloud::NodesWithHeartbeats(uint32_t at_least) const {
  size_t count = 0;
  for (const auto& [name, record] : nodes_) count += record.heartbeats >= at_least ? 1 : 0;
  return count;
}

std::map<std::string, NodeRecord> TestCloud::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return nodes_;
}

uint32_t TestCloud::DecodeErrors() const {
  absl::MutexLock lock(&mu_);
  return decode_errors_;
}

uint32_t TestCloud::Wills() const {
  absl::MutexLock lock(&mu_);
  return wills_;
}

void TestCloud::SendControl(protocol::Sender sender, const std::string& id,
                            const protocol::ControlMessage& message) {
  std::string payload;
  protocol::EncodeControl(message, sender == protocol::Sender::kNode, payload);
  (void)client_->Publish(topics_.Build(sender, id, protocol::Channel::kControl), payload, 1);
}

void TestCloud::PublishRaw(const std::string& topic, const std::string& payload) {
  (void)client_->Publish(topic, payload, 1);
}

std::vector<protocol::PodStatus> TestCloud::PodStatuses() const {
  absl::MutexLock lock(&mu_);
  return pod_statuses_;
}

void TestCloud::SendPods(const protocol::NodePods& pods) {
  std::string payload;
  protocol::EncodePods(protocol::PodsMessage{.nodes = {pods}}, /*on_node_topic=*/true, payload);
  (void)client_->Publish(
      topics_.Build(protocol::Sender::kNode, pods.node, protocol::Channel::kPods), payload, 1);
}

void TestCloud::PublishTemplate(const protocol::WorkloadTemplate& workload) {
  std::string payload;
  if (!workload.template_json.empty()) protocol::EncodeWorkloadTemplate(workload, payload);
  (void)client_->Publish(
      topics_.WorkloadTopic(workload.namespace_, workload.workload, workload.revision), payload, 1,
      /*retained=*/true);
}

}  // namespace kole::edge::testing
