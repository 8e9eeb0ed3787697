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
    for (const char* channel : {"register", "heartbeat", "will"}) {
      acl << "topic read " << p << "/" << kind << "/+/" << channel << "\n";
    }
    for (const char* channel : {"ack", "control"}) {
      acl << "topic write " << p << "/" << kind << "/+/" << channel << "\n";
    }
  }
  acl << "\n";
  for (const char* kind : {"nodes", "gateways"}) {
    for (const char* channel : {"register", "heartbeat", "will"}) {
      acl << "pattern write " << p << "/" << kind << "/%u/" << channel << "\n";
    }
    for (const char* channel : {"ack", "control"}) {
      acl << "pattern read " << p << "/" << kind << "/%u/" << channel << "\n";
    }
  }
  acl.close();

  // Started as root, mosquitto would switch to its own user, which cannot
  // read this private directory; staying the test's user keeps it simple.
  const passwd* self = getpwuid(geteuid());
  std::ofstream config(dir_ + "/mosquitto.conf");
  if (self != nullptr) config << "user " << self->pw_name << "\n";
  config << "listener " << port_ << " 127.0.0.1\n"
         << "allow_anonymous false\n"
         << "password_file " << passwords << "\n"
         << "acl_file " << dir_ << "/acl\n"
         << "persistence " << (options_.persistence ? "true" : "false") << "\n"
         << "persistence_location " << dir_ << "/\n"
         << "max_queued_messages 100000\n"
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
