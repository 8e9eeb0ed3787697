#pragma once

// The request and response shapes the API handlers work on, independent of
// the HTTP library. server.cc converts cpp-httplib's requests into these and
// writes the responses back; unit tests call the handlers with them directly.
//
// Ownership: plain values. A streamed response's `stream` callback may run on
// the worker thread after the handler returned; it must own what it uses.
// Thread safety: none needed; one request is handled by one thread.

#include <strings.h>

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kole::apiserver {

struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const {
    return strcasecmp(a.c_str(), b.c_str()) < 0;
  }
};

using HeaderMap = std::multimap<std::string, std::string, CaseInsensitiveLess>;
using QueryMap = std::multimap<std::string, std::string>;

// Who made a request, after authentication.
struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::vector<std::pair<std::string, std::vector<std::string>>> extra;
  bool authenticated() const { return !name.empty() && name != "system:anonymous"; }
};

struct HttpRequest {
  std::string method;
  std::string path;
  QueryMap query;  // Decoded.
  HeaderMap headers;
  std::string body;
  std::string remote_addr;
  UserInfo user;

  // The first value of a query parameter or header, or nullopt.
  std::optional<std::string_view> Query(const std::string& key) const {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return std::string_view(it->second);
  }
  std::string_view Header(const std::string& key) const {
    auto it = headers.find(key);
    if (it == headers.end()) return {};
    return it->second;
  }
};

// Where a streamed response's bytes go. Write() returns false once the client
// is gone or the server is stopping; the stream must then return promptly.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool Write(std::string_view data) = 0;
  // True while the server is not shutting down and the peer can take data.
  virtual bool Alive() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  HeaderMap headers;
  std::string body;
  // When set, the body is produced by this callback with chunked transfer
  // encoding, and `body` is ignored. Returns false to abort the connection.
  std::function<bool(ChunkSink&)> stream;
  // A watch: counted against the watch cap for as long as it streams.
  bool long_running = false;
};

}  // namespace kole::apiserver
