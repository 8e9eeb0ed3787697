#pragma once

// MosquittoServer runs a real mosquitto broker (the Debian package's
// /usr/sbin/mosquitto) for one test: on a free loopback port, with KOLE's
// broker ACLs (docs/protocol.md), user names and passwords, and optional
// persistence, all in a fresh directory. Tests can stop and restart it on the
// same port to exercise broker faults.
//
//   MosquittoServer broker({.users = {{"kole-cloud", "secret"}, {"edge-1", "pw"}}});
//   ASSERT_TRUE(broker.Start().ok());
//   options.broker = broker.url();
//
// Thread safety: one owning test thread. The destructor stops the broker.

#include <absl/status/status.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace kole::testing {

struct MosquittoOptions {
  // User names and passwords; every other client is refused. Node and gateway
  // users get the per-identity ACL patterns; `cloud_user` gets the cloud's.
  std::vector<std::pair<std::string, std::string>> users;
  std::string cloud_user = "kole-cloud";
  std::string topic_prefix = "kole/v1";
  bool persistence = false;
};

class MosquittoServer {
 public:
  explicit MosquittoServer(MosquittoOptions options);
  ~MosquittoServer();
  MosquittoServer(const MosquittoServer&) = delete;
  MosquittoServer& operator=(const MosquittoServer&) = delete;

  // Writes the configuration (first call picks the port) and starts the
  // broker, returning once it accepts connections.
  absl::Status Start();
  // SIGTERM and wait: mosquitto writes its persistence file on the way out.
  void Stop();
  // Forgets what a persistent broker saved, as a broker replaced without its
  // volume would.
  void WipePersistence();

  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

 private:
  MosquittoOptions options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

}  // namespace kole::testing
