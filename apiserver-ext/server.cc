#include "apiserver-ext/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "apiserver-ext/api_status.h"
#include "apiserver-ext/request_info.h"
#include "common/log.h"

namespace kole::apiserver {

namespace {

// Set on the overflow pool's threads: connections there get only cheap
// answers (see server.h).
thread_local bool tl_overflow = false;

// What admission reserved for the request being handled on this thread;
// released by the post-routing handler unless a stream took it over.
struct Admission {
  std::atomic<int>* counter = nullptr;
  std::atomic<int64_t>* gauge = nullptr;
};
thread_local Admission tl_admission;
thread_local std::chrono::steady_clock::time_point tl_start;

void Release(Admission& a) {
  if (a.counter != nullptr) a.counter->fetch_sub(1);
  if (a.gauge != nullptr) a.gauge->fetch_sub(1);
  a = Admission{};
}

bool IsCheapPath(std::string_view path) {
  return HealthChecks::IsHealthPath(path) || path == "/version" || path == "/metrics" ||
         path == "/api" || path == "/apis" || path == "/apis/edge.kole.io" ||
         path == "/apis/edge.kole.io/v1alpha1" || path.substr(0, 9) == "/openapi/";
}

bool IsWatch(const httplib::Request& req) {
  if (req.method != "GET") return false;
  std::string w = req.get_param_value("watch");
  return w == "true" || w == "1";
}

bool IsMutating(const std::string& method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

// cpp-httplib gzips "application/json" bodies on its own when the client
// accepts gzip, including chunked streams, which would hold watch events
// in the compressor. KOLE compresses lists itself (body_writer.h), so JSON
// goes out with a charset parameter, which httplib leaves alone and every
// client reads as application/json.
std::string WireContentType(const std::string& type) {
  if (type == "application/json") return "application/json; charset=utf-8";
  return type;
}

void WriteError(httplib::Response& res, const ApiError& error) {
  HttpResponse r = ErrorResponse(error);
  res.status = r.status;
  for (const auto& [k, v] : r.headers) res.set_header(k, v);
  res.set_content(r.body, WireContentType(r.content_type));
}

class SinkAdapter : public ChunkSink {
 public:
  SinkAdapter(httplib::DataSink& sink, const std::atomic<bool>* stopping)
      : sink_(sink), stopping_(stopping) {}
  bool Write(std::string_view data) override {
    if (stopping_->load(std::memory_order_relaxed)) return false;
    return sink_.write(data.data(), data.size());
  }
  bool Alive() override {
    return !stopping_->load(std::memory_order_relaxed) && sink_.is_writable();
  }

 private:
  httplib::DataSink& sink_;
  const std::atomic<bool>* stopping_;
};

}  // namespace

// Connections go to an idle worker or, when none is idle, to the overflow
// threads; nothing waits in an unbounded queue for a worker that a watch
// holds.
class AdmissionPool : public httplib::TaskQueue {
 public:
  AdmissionPool(size_t workers, size_t overflow) : workers_(workers) {
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Run(false); });
    for (size_t i = 0; i < overflow; ++i) threads_.emplace_back([this] { Run(true); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A worker counts as free from the moment its connection ends, not
      // from when it next waits, so a busy but cycling pool does not push
      // connections to the overflow threads.
      if (busy_ + jobs_.size() < workers_) {
        jobs_.push_back(std::move(fn));
      } else {
        overflow_jobs_.push_back(std::move(fn));
      }
    }
    cv_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Run(bool overflow) {
    tl_overflow = overflow;
    std::deque<std::function<void()>>& queue = overflow ? overflow_jobs_ : jobs_;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue.empty() || shutdown_; });
        if (queue.empty()) return;  // shutdown_
        fn = std::move(queue.front());
        queue.pop_front();
        if (!overflow) ++busy_;
      }
      fn();
      if (!overflow) {
        std::lock_guard<std::mutex> lock(mu_);
        --busy_;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::deque<std::function<void()>> overflow_jobs_;
  const size_t workers_;
  size_t busy_ = 0;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServerConfig config,
                                                       storage::NodeStore* store,
                                                       storage::PodStore* pods) {
  if (config.authenticator == nullptr || config.authorizer == nullptr) {
    return absl::InvalidArgumentError("the server needs an authenticator and an authorizer");
  }
  if (config.max_watches >= config.worker_threads) {
    return absl::InvalidArgumentError(fmt::format(
        "--max-watches ({}) must be below the worker thread count ({}) so that health checks "
        "and discovery always find a worker",
        config.max_watches, config.worker_threads));
  }
  if (config.serving.cert_file.empty() || config.serving.key_file.empty()) {
    return absl::InvalidArgumentError("no serving certificate");
  }
  std::unique_ptr<Server> server(new Server(std::move(config), store, pods));
  if (!server->http_->is_valid()) {
    return absl::InvalidArgumentError(
        fmt::format("cannot load the serving certificate {} and key {}",
                    server->config_.serving.cert_file, server->config_.serving.key_file));
  }
  return server;
}

Server::Server(ServerConfig config, storage::NodeStore* store, storage::PodStore* pods)
    : config_(std::move(config)), store_(store), pods_(pods) {
  // The store is recovered before the server exists; writes failing after a
  // disk error keep reads working, so liveness does not depend on them.
  health_.AddCheck("store-recovered", HealthChecks::kReadyz, [] { return absl::OkStatus(); });
  health_.AddCheck("shutdown", HealthChecks::kReadyz, [this] {
    return stopping_.load() ? absl::UnavailableError("the server is shutting down")
                            : absl::OkStatus();
  });
  handler_ = std::make_unique<ApiHandler>(store_, pods_, config_.authenticator.get(),
                                          config_.authorizer.get(), &metrics_, &health_, &stopping_,
                                          config_.handler);
  CertPaths paths = config_.serving;
  http_ = std::make_unique<httplib::SSLServer>(
      [paths](SSL_CTX& ctx) { return ConfigureServerContext(ctx, paths); });
  Install();
}

Server::~Server() { Stop(); }

void Server::Install() {
  httplib::SSLServer& svr = *http_;
  size_t workers = static_cast<size_t>(config_.worker_threads);
  size_t overflow = static_cast<size_t>(config_.overflow_threads);
  svr.new_task_queue = [workers, overflow] { return new AdmissionPool(workers, overflow); };
  svr.set_keep_alive_timeout(config_.keep_alive_timeout_seconds);
  svr.set_keep_alive_max_count(static_cast<size_t>(config_.keep_alive_max_count));
  svr.set_read_timeout(config_.read_timeout_seconds, 0);
  svr.set_write_timeout(config_.write_timeout_seconds, 0);
  svr.set_payload_max_length(config_.max_request_body_bytes);
  svr.set_tcp_nodelay(true);

  // Admission, before the body is read.
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    tl_start = std::chrono::steady_clock::now();
    tl_admission = Admission{};
    if (IsCheapPath(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    if (tl_overflow) {
      metrics_.Rejected("workers");
      res.set_header("Connection", "close");
      WriteError(res, TooManyRequests("all workers are busy, please try again later", 1));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (IsWatch(req)) {
      if (watches_.fetch_add(1) >= config_.max_watches) {
        watches_.fetch_sub(1);
        metrics_.Rejected("watches");
        WriteError(res, TooManyRequests("too many open watches, please try again later", 1));
        return httplib::Server::HandlerResponse::Handled;
      }
      tl_admission = {&watches_, &metrics_.watches};
      metrics_.watches.fetch_add(1);
      return httplib::Server::HandlerResponse::Unhandled;
    }
    bool mutating = IsMutating(req.method);
    std::atomic<int>& counter = mutating ? inflight_mutating_ : inflight_read_;
    int limit = mutating ? config_.max_mutating_requests_inflight : config_.max_requests_inflight;
    if (counter.fetch_add(1) >= limit) {
      counter.fetch_sub(1);
      metrics_.Rejected(mutating ? "mutating_inflight" : "inflight");
      WriteError(res, TooManyRequests("too many requests, please try again later", 1));
      return httplib::Server::HandlerResponse::Handled;
    }
    std::atomic<int64_t>& gauge =
        mutating ? metrics_.inflight_mutating : metrics_.inflight_read_only;
    gauge.fetch_add(1);
    tl_admission = {&counter, &gauge};
    return httplib::Server::HandlerResponse::Unhandled;
  });

  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request;
    request.method = req.method;
    request.path = req.path;
    for (const auto& [k, v] : req.params) request.query.emplace(k, v);
    for (const auto& [k, v] : req.headers) request.headers.emplace(k, v);
    request.body = req.body;
    request.remote_addr = req.remote_addr;
    std::vector<std::string> chain = PeerChainDer(req.ssl);

    HttpResponse r = handler_->Handle(request, chain);
    res.status = r.status;
    for (const auto& [k, v] : r.headers) res.set_header(k, v);
    RequestInfo info = ParseRequestInfo(req.method, req.path, req.get_param_value("watch"), "");
    std::string resource = ApiHandler::MetricResource(info);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - tl_start).count();
    metrics_.ObserveRequest(info.verb, resource, ApiHandler::MetricScope(info), r.status,
                            req.get_header_value("User-Agent"), seconds);
    KOLE_VLOG(4, "HTTP", "verb", req.method, "path", req.path, "code", r.status, "user",
              request.user.name, "userAgent", req.get_header_value("User-Agent"), "latency",
              fmt::format("{:.3f}ms", seconds * 1000), "srcIP", req.remote_addr);
    if (r.status >= 500) {
      KOLE_LOG(Error, "Request failed", "verb", req.method, "path", req.path, "code", r.status,
               "body", r.body.substr(0, 512));
    }

    if (!r.stream) {
      res.set_content(r.body, WireContentType(r.content_type));
      return;
    }
    // The stream keeps what admission reserved until it ends.
    auto admission = std::make_shared<Admission>(tl_admission);
    tl_admission = Admission{};
    auto stream = std::make_shared<std::function<bool(ChunkSink&)>>(std::move(r.stream));
    res.set_chunked_content_provider(
        WireContentType(r.content_type),
        [this, stream](size_t, httplib::DataSink& sink) {
          SinkAdapter adapter(sink, &stopping_);
          bool ok = (*stream)(adapter);
          if (ok) sink.done();
          return ok;
        },
        [admission](bool) { Release(*admission); });
  };
  svr.Get(".*", handle);
  svr.Post(".*", handle);
  svr.Put(".*", handle);
  svr.Patch(".*", handle);
  svr.Delete(".*", handle);

  svr.set_post_routing_handler(
      [](const httplib::Request&, httplib::Response&) { Release(tl_admission); });
  // Answers cpp-httplib writes itself (413 for an oversized body, 404 for an
  // unknown method, 400 for a malformed request) get a Status body too.
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError e;
        if (res.status == 413) {
          e = RequestEntityTooLarge(config_.max_request_body_bytes);
        } else if (res.status == 404) {
          e = NotFound({});
        } else if (res.status == 400) {
          e = BadRequest("malformed request");
        } else {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        int status = res.status;
        WriteError(res, e);
        res.status = status;
        return httplib::Server::HandlerResponse::Handled;
      }));
  svr.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        KOLE_LOG(Error, "Handler threw", "path", req.path, "err", what);
        WriteError(res, InternalError(what));
      });
}

void Server::RunPeriodicTasksForTest() {
  for (const PeriodicTask& task : config_.periodic) task.run();
}

absl::Status Server::Start() {
  if (started_) return absl::FailedPreconditionError("already started");
  if (config_.port == 0) {
    port_ = http_->bind_to_any_port(config_.bind_address);
    if (port_ <= 0) {
      return absl::UnavailableError(fmt::format("cannot bind {}", config_.bind_address));
    }
  } else {
    if (!http_->bind_to_port(config_.bind_address, config_.port)) {
      return absl::UnavailableError(
          fmt::format("cannot bind {}:{}", config_.bind_address, config_.port));
    }
    port_ = config_.port;
  }
  started_ = true;
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  if (!config_.periodic.empty()) {
    periodic_ = std::thread([this] {
      std::vector<absl::Time> due(config_.periodic.size());
      for (size_t i = 0; i < due.size(); ++i) {
        due[i] = absl::Now() + absl::Seconds(config_.periodic[i].every_seconds);
      }
      absl::MutexLock lock(&periodic_mu_);
      while (!periodic_stop_) {
        absl::Time next = *std::min_element(due.begin(), due.end());
        periodic_mu_.AwaitWithDeadline(absl::Condition(&periodic_stop_), next);
        if (periodic_stop_) break;
        for (size_t i = 0; i < due.size(); ++i) {
          if (absl::Now() < due[i]) continue;
          periodic_mu_.Unlock();
          config_.periodic[i].run();
          periodic_mu_.Lock();
          due[i] = absl::Now() + absl::Seconds(config_.periodic[i].every_seconds);
        }
      }
    });
  }
  KOLE_LOG(Info, "Serving securely", "address", config_.bind_address, "port", port_, "workers",
           config_.worker_threads, "maxWatches", config_.max_watches);
  return absl::OkStatus();
}

void Server::Stop() {
  if (!started_) return;
  started_ = false;
  // Watches and streams notice within a second and end their responses.
  stopping_.store(true);
  {
    absl::MutexLock lock(&periodic_mu_);
    periodic_stop_ = true;
  }
  if (periodic_.joinable()) periodic_.join();
  http_->stop();
  if (listener_.joinable()) listener_.join();
  KOLE_LOG(Info, "Server stopped");
}

}  // namespace kole::apiserver
