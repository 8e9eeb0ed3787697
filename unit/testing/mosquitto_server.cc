#include "unit/testing/mosquitto_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace kole::testing {
namespace {

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

absl::Status Run(const std::string& command) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
    return absl::InternalError("failed: " + command);
  }
  return absl::OkStatus();
}

}  // namespace

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

MosquittoServer::MosquittoServer(MosquittoOptions options) : options_(std::move(options)) {
  std::string pattern = (std::filesystem::temp_directory_path() / "kole-mosquitto-XXXXXX").string();
  dir_ = mkdtemp(pattern.data());
}

MosquittoServer::~MosquittoServer() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status MosquittoServer::Start() {
  if (pid_ > 0) return absl::FailedPreconditionError("mosquitto is already running");
  if (port_ == 0) port_ = FreeLoopbackPort();

  std::string passwords = dir_ + "/passwd";
  std::ofstream(passwords).close();
  for (const auto& [user, password] : options_.users) {
    std::string command = fmt::format("mosquitto_passwd -b '{}' '{}' '{}' >/dev/null 2>&1",
                                      passwords, user, password);
    if (std::system(command.c_str()) != 0) {
      return absl::InternalError("mosquitto_passwd failed: is the mosquitto package installed?");
    }
  }

  // The ACLs of docs/protocol.md: the cloud reads device channels and writes
  // replies; every other user only its own node or gateway topics.
  const std::string& p = options_.topic_prefix;
  std::ofstream acl(dir_ + "/acl");
  acl << "user " << options_.cloud_user << "\n";
  for (const char* kind : {"nodes", "gateways"}) {
    for (const char* channel : {"register", "heartbeat", "will", "podstatus"}) {
      acl << "topic read " << p << "/" << kind << "/+/" << channel << "\n";
    }
    for (const char* channel : {"ack", "control", "pods"}) {
      acl << "topic write " << p << "/" << kind << "/+/" << channel << "\n";
    }
  }
  acl << "topic write " << p << "/workloads/#\n";
  acl << "\n";
  for (const char* kind : {"nodes", "gateways"}) {
    for (const char* channel : {"register", "heartbeat", "will", "podstatus"}) {
      acl << "pattern write " << p << "/" << kind << "/%u/" << channel << "\n";
    }
    for (const char* channel : {"ack", "control", "pods"}) {
      acl << "pattern read " << p << "/" << kind << "/%u/" << channel << "\n";
    }
  }
  // Every device reads the retained workload templates.
  acl << "pattern read " << p << "/workloads/#\n";
  acl.close();

  // Started as root, mosquitto would switch to its own user, which cannot
  // read this private directory; staying the test's user keeps it simple.
  const passwd* self = getpwuid(geteuid());
  std::ofstream config(dir_ + "/mosquitto.conf");
  if (self != nullptr) config << "user " << self->pw_name << "\n";
  config << "listener " << port_ << " 127.0.0.1\n";
  if (options_.tls) {
    if (absl::Status made = MakeCertificates(); !made.ok()) return made;
    config << "cafile " << ca_file() << "\n"
           << "certfile " << dir_ << "/broker.pem\n"
           << "keyfile " << dir_ << "/broker.key\n"
           << "tls_version tlsv1.2\n"
           << "require_certificate true\n"
           << "use_identity_as_username true\n"
           << "allow_anonymous false\n"
           << "acl_file " << dir_ << "/acl\n";
  } else if (options_.allow_anonymous) {
    config << "allow_anonymous true\n";
  } else {
    config << "allow_anonymous false\n"
           << "password_file " << passwords << "\n"
           << "acl_file " << dir_ << "/acl\n";
  }
  config << "persistence " << (options_.persistence ? "true" : "false") << "\n"
         << "persistence_location " << dir_ << "/\n"
         << "max_queued_messages " << options_.max_queued_messages << "\n"
         << "log_dest file " << dir_ << "/mosquitto.log\n"
         << "log_type error\nlog_type warning\nlog_type notice\n";
  config.close();

  pid_ = fork();
  if (pid_ == 0) {
    execl("/usr/sbin/mosquitto", "mosquitto", "-c", (dir_ + "/mosquitto.conf").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 200; ++i) {
    if (CanConnect(port_)) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          fmt::format("mosquitto exited at start; see {}/mosquitto.log", dir_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return absl::DeadlineExceededError("mosquitto did not start listening within 5 s");
}

absl::Status MosquittoServer::MakeCertificates() {
  if (std::filesystem::exists(ca_file())) return absl::OkStatus();
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string& d = dir_;
  absl::Status status = Run(fmt::format(
      "openssl req -x509 {} -keyout {}/ca.key -out {}/ca.pem -days 2 -subj /CN=kole-test-ca", key,
      d, d));
  std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
  std::vector<std::string> identities = {"broker", options_.cloud_user};
  for (const auto& [user, password] : options_.users) identities.push_back(user);
  for (const std::string& name : identities) {
    if (!status.ok()) return status;
    std::string cn = name == "broker" ? "127.0.0.1" : name;
    std::string out = name == "broker" ? d + "/broker" : d + "/" + name;
    status = Run(
        fmt::format("openssl req {} -keyout {}.key -out {}.csr -subj /CN={}", key, out, out, cn));
    if (!status.ok()) return status;
    status = Run(fmt::format(
        "openssl x509 -req -in {}.csr -CA {}/ca.pem -CAkey {}/ca.key -CAcreateserial -days 2 "
        "-out {}.pem {}",
        out, d, d, out, name == "broker" ? "-extfile " + d + "/san.ext" : ""));
  }
  return status;
}

void MosquittoServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void MosquittoServer::WipePersistence() {
  std::error_code ignored;
  std::filesystem::remove(dir_ + "/mosquitto.db", ignored);
}

}  // namespace kole::testing
