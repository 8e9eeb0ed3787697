// The HTTPS server end to end on a loopback port: TLS without a client
// certificate, body limits, admission control (watch cap, busy workers),
// gzip and graceful shutdown. Clients are cpp-httplib's, over real TLS.

#include "apiserver-ext/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

constexpr char kNodes[] = "/apis/edge.kole.io/v1alpha1/nodes";

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(int workers = 8, int max_watches = 2, size_t max_body = 3 << 20,
                   TokenReviewFn token_review = nullptr, int max_inflight = 400) {
    storage::StoreOptions so;
    so.background_maintenance = false;
    store_ = std::move(*storage::NodeStore::Open(so));
    pki_ = std::make_unique<testing::TestPki>(dir_.path());
    admin_ = pki_->Issue("admin", {"system:masters"});
    ServerConfig config;
    config.bind_address = "127.0.0.1";
    config.port = 0;
    config.serving = *EnsureSelfSignedServingCert(dir_.path() + "/serving", {"127.0.0.1"});
    Authenticator::Options authn;
    authn.client_ca = *CertificateAuthority::FromFile(pki_->CaCert());
    authn.token_review = std::move(token_review);
    config.max_requests_inflight = max_inflight;
    config.authenticator = std::make_unique<Authenticator>(std::move(authn));
    config.authorizer = std::make_unique<AlwaysAllowAuthorizer>();
    config.worker_threads = workers;
    config.max_watches = max_watches;
    config.overflow_threads = 2;
    config.max_request_body_bytes = max_body;
    config.read_timeout_seconds = 30;
    pods_ = std::move(*storage::PodStore::Open({}));
    auto server = Server::Create(std::move(config), store_.get(), pods_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::unique_ptr<httplib::SSLClient> Client(bool with_cert = true, int read_timeout = 10) {
    auto c = with_cert ? std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port(),
                                                              admin_ + ".crt", admin_ + ".key")
                       : std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    c->set_ca_cert_path(dir_.path() + "/serving/apiserver.crt");
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(read_timeout, 0);
    c->set_connection_timeout(read_timeout, 0);
    return c;
  }

  // Opens a watch on its own thread; it ends when the server ends it.
  std::thread OpenWatch(std::atomic<int>* ended) {
    return std::thread([this, ended] {
      auto c = Client(true, 60);
      c->Get((std::string(kNodes) + "?watch=true").c_str(),
             [](const char*, size_t) { return true; });
      ended->fetch_add(1);
    });
  }

  void WaitForWatches(int n) {
    for (int i = 0; i < 500 && server_->metrics().watches.load() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(server_->metrics().watches.load(), n);
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<testing::TestPki> pki_;
  std::string admin_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, HealthzAnswersClientsWithoutCertificates) {
  StartServer();
  auto res = Client(false)->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");
}

TEST_F(ServerTest, ResourcesNeedCredentials) {
  StartServer();
  auto res = Client(false)->Get(kNodes);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(res->body.find("\"reason\":\"Unauthorized\""), std::string::npos);
}

TEST_F(ServerTest, TlsBelow12IsRefused) {
  StartServer();
  auto c = Client(false);
  SSL_CTX_set_max_proto_version(c->ssl_context(), TLS1_1_VERSION);
  SSL_CTX_set_min_proto_version(c->ssl_context(), TLS1_VERSION);
  auto res = c->Get("/healthz");
  EXPECT_FALSE(res);
}

TEST_F(ServerTest, OversizedBodyIs413WithStatus) {
  StartServer(8, 2, 1024);
  std::string body =
      R"({"metadata":{"name":"n1","annotations":{"a":")" + std::string(4096, 'x') + "\"}}}";
  auto res = Client()->Post(kNodes, body, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_NE(res->body.find("RequestEntityTooLarge"), std::string::npos) << res->body;
}

TEST_F(ServerTest, CreateAndGetOverTls) {
  StartServer();
  auto c = Client();
  auto created = c->Post(kNodes, R"({"metadata":{"name":"n1"}})", "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201) << created->body;
  auto got = c->Get((std::string(kNodes) + "/n1").c_str());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_NE(got->get_header_value("Content-Type").find("application/json"), std::string::npos);
}

TEST_F(ServerTest, WatchCapAnswers429WhileReadyzAndDiscoveryStillAnswer) {
  StartServer(8, 2);
  std::atomic<int> ended{0};
  std::thread w1 = OpenWatch(&ended);
  std::thread w2 = OpenWatch(&ended);
  WaitForWatches(2);

  auto third = Client()->Get((std::string(kNodes) + "?watch=true").c_str());
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 429);
  EXPECT_EQ(third->get_header_value("Retry-After"), "1");

  // A one-second client deadline: these must not wait behind the watches.
  auto ready = Client(false, 1)->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto discovery = Client(true, 1)->Get("/apis/edge.kole.io/v1alpha1");
  ASSERT_TRUE(discovery);
  EXPECT_EQ(discovery->status, 200);

  server_->Stop();
  w1.join();
  w2.join();
  EXPECT_EQ(ended.load(), 2);
}

TEST_F(ServerTest, BusyWorkersStillLetHealthChecksThroughAndRefuseTheRest) {
  StartServer(3, 1);
  // Three connections that never finish their TLS handshake hold every
  // worker (cpp-httplib gives each connection a worker).
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    idle.push_back(fd);
    // One at a time, so that each lands on a worker of its own.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  auto health = Client(false, 2)->Get("/livez");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto list = Client(true, 2)->Get(kNodes);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 429);
  for (int fd : idle) close(fd);
}

TEST_F(ServerTest, RequestsBeyondTheInflightLimitGet429) {
  // A token review that waits for the test holds the first request in
  // flight; the second finds the limit reached.
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  StartServer(
      8, 2, 3 << 20,
      [&](const std::string&) -> absl::StatusOr<UserInfo> {
        std::unique_lock<std::mutex> lock(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return UserInfo{"bob", "", {"system:masters"}, {}};
      },
      /*max_inflight=*/1);
  std::thread held([this] {
    auto res = Client(false)->Get(kNodes, {{"Authorization", "Bearer t"}});
    EXPECT_TRUE(res && res->status == 200);
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  auto rejected = Client()->Get(kNodes);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, 429);
  EXPECT_EQ(rejected->get_header_value("Retry-After"), "1");
  EXPECT_NE(rejected->body.find("TooManyRequests"), std::string::npos);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  held.join();
  auto after = Client()->Get(kNodes);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, StopEndsOpenWatches) {
  StartServer();
  std::atomic<int> ended{0};
  std::thread w = OpenWatch(&ended);
  WaitForWatches(1);
  server_->Stop();
  w.join();
  EXPECT_EQ(ended.load(), 1);
  EXPECT_EQ(server_->metrics().watches.load(), 0);
}

TEST_F(ServerTest, LargeListIsGzippedWhenAccepted) {
  StartServer();
  auto c = Client();
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(c->Post(kNodes, R"({"metadata":{"name":"n)" + std::to_string(i) + R"("}})",
                      "application/json")
                  ->status,
              201);
  }
  c->set_decompress(false);
  auto res = c->Get((std::string(kNodes) + "?limit=100").c_str(), {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Encoding"), "gzip");
  ASSERT_GE(res->body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(res->body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(res->body[1]), 0x8b);
}

}  // namespace
}  // namespace kole::apiserver
