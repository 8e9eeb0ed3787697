// Delegated authentication and authorization against a local HTTPS test
// double of kube-apiserver (loopback only): the server is configured from
// flags exactly as in a cluster (--authentication-kubeconfig,
// --authorization-kubeconfig), reads the extension-apiserver-authentication
// ConfigMap, reviews bearer tokens with TokenReview and authorizes with
// SubjectAccessReview.

#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "apiserver-ext/kube_client.h"
#include "apiserver-ext/options.h"
#include "apiserver-ext/server.h"
#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

constexpr char kNodes[] = "/apis/edge.kole.io/v1alpha1/nodes";

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// kube-apiserver's side of delegation: TokenReview knows one token (user
// bob), SubjectAccessReview allows bob and denies everyone else.
class FakeKubeApiserver {
 public:
  FakeKubeApiserver(const std::string& dir, const std::string& front_proxy_ca_pem,
                    const std::string& client_ca_pem) {
    paths_ = *EnsureSelfSignedServingCert(dir + "/fake-kas", {"127.0.0.1"});
    server_ =
        std::make_unique<httplib::SSLServer>(paths_.cert_file.c_str(), paths_.key_file.c_str());
    server_->Post("/apis/authentication.k8s.io/v1/tokenreviews", [this](const httplib::Request& req,
                                                                        httplib::Response& res) {
      token_reviews.fetch_add(1);
      last_authorization = req.get_header_value("Authorization");
      bool good = req.body.find(R"("token":"good-token")") != std::string::npos;
      res.set_content(
          good ? R"({"status":{"authenticated":true,"user":{"username":"bob","groups":["devs"]}}})"
               : R"({"status":{"authenticated":false,"error":"invalid token"}})",
          "application/json");
    });
    server_->Post("/apis/authorization.k8s.io/v1/subjectaccessreviews",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    sars.fetch_add(1);
                    {
                      std::lock_guard<std::mutex> lock(mu);
                      last_sar = req.body;
                    }
                    bool bob = req.body.find(R"("user":"bob")") != std::string::npos;
                    res.set_content(bob ? R"({"status":{"allowed":true}})"
                                        : R"({"status":{"allowed":false,"reason":"RBAC: no"}})",
                                    "application/json");
                  });
    SetConfigMap(front_proxy_ca_pem, client_ca_pem);
    server_->Get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
                 [this](const httplib::Request&, httplib::Response& res) {
                   std::lock_guard<std::mutex> lock(mu);
                   res.set_content(configmap_, "application/json");
                 });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    kubeconfig_ = dir + "/fake-kas.kubeconfig";
    std::ofstream(kubeconfig_) << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                               << "    server: https://127.0.0.1:" << port_ << "\n"
                               << "    certificate-authority: " << paths_.cert_file << "\n"
                               << "users:\n- name: u\n  user:\n    token: kole-sa-token\n"
                               << "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                               << "current-context: x\n";
  }
  // What the ConfigMap says; a later call is a CA rotation.
  void SetConfigMap(const std::string& front_proxy_ca_pem, const std::string& client_ca_pem) {
    std::lock_guard<std::mutex> lock(mu);
    configmap_ =
        R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"extension-apiserver-authentication"},"data":{)"
        R"("client-ca-file":)" +
        JsonQuote(client_ca_pem) + R"(,"requestheader-client-ca-file":)" +
        JsonQuote(front_proxy_ca_pem) +
        R"(,"requestheader-allowed-names":"[\"front-proxy-client\"]",)"
        R"("requestheader-username-headers":"[\"X-Remote-User\"]",)"
        R"("requestheader-group-headers":"[\"X-Remote-Group\"]",)"
        R"("requestheader-extra-headers-prefix":"[\"X-Remote-Extra-\"]"}})";
  }

  ~FakeKubeApiserver() {
    server_->stop();
    thread_.join();
  }
  const std::string& kubeconfig() const { return kubeconfig_; }

  std::atomic<int> token_reviews{0};
  std::atomic<int> sars{0};
  std::mutex mu;
  std::string last_sar;
  std::string last_authorization;

 private:
  std::string configmap_;
  CertPaths paths_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::string kubeconfig_;
};

class DelegatedAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    front_proxy_ = std::make_unique<testing::TestPki>(dir_.path(), "front-proxy-ca");
    clients_ = std::make_unique<testing::TestPki>(dir_.path(), "client-ca");
    kas_ = std::make_unique<FakeKubeApiserver>(dir_.path(), *ReadFile(front_proxy_->CaCert()),
                                               *ReadFile(clients_->CaCert()));
    Options options;
    options.secure_port = 0;
    options.bind_address = "127.0.0.1";
    options.cert_dir = dir_.path() + "/certs";
    options.authentication_kubeconfig = kas_->kubeconfig();
    options.authorization_kubeconfig = kas_->kubeconfig();
    options.worker_threads = 8;
    options.max_watches = 2;
    auto config = CompleteServerConfig(options);
    ASSERT_TRUE(config.ok()) << config.status();
    storage::StoreOptions so;
    so.background_maintenance = false;
    store_ = std::move(*storage::NodeStore::Open(so));
    pods_ = std::move(*storage::PodStore::Open({}));
    server_ = std::move(*Server::Create(std::move(*config), store_.get(), pods_.get()));
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override { server_->Stop(); }

  std::unique_ptr<httplib::SSLClient> Client(const std::string& cert_prefix = "") {
    auto c = cert_prefix.empty()
                 ? std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port())
                 : std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port(),
                                                        cert_prefix + ".crt", cert_prefix + ".key");
    c->enable_server_certificate_verification(false);
    c->set_read_timeout(10, 0);
    return c;
  }

  std::string LastSar() {
    std::lock_guard<std::mutex> lock(kas_->mu);
    return kas_->last_sar;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TestPki> front_proxy_;
  std::unique_ptr<testing::TestPki> clients_;
  std::unique_ptr<FakeKubeApiserver> kas_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<storage::PodStore> pods_;
  std::unique_ptr<Server> server_;
};

TEST_F(DelegatedAuthTest, BearerTokenIsReviewedOnceAndCached) {
  auto c = Client();
  httplib::Headers h = {{"Authorization", "Bearer good-token"}};
  auto first = c->Get(kNodes, h);
  auto second = c->Get(kNodes, h);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(kas_->token_reviews.load(), 1);
  EXPECT_EQ(kas_->sars.load(), 1);  // The allow answer is cached too.
  EXPECT_EQ(kas_->last_authorization, "Bearer kole-sa-token");
}

TEST_F(DelegatedAuthTest, UnknownBearerTokenIs401) {
  auto res = Client()->Get(kNodes, {{"Authorization", "Bearer bad-token"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

TEST_F(DelegatedAuthTest, FrontProxyWithUnprivilegedUserIs403) {
  std::string proxy = front_proxy_->Issue("front-proxy-client");
  auto res = Client(proxy)->Get((std::string(kNodes) + "/n1").c_str(),
                                {{"X-Remote-User", "eve"}, {"X-Remote-Group", "interns"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_NE(res->body.find(R"(User \"eve\" cannot get resource \"nodes\")"), std::string::npos)
      << res->body;
  std::string sar = LastSar();
  EXPECT_NE(sar.find(R"("groups":["interns","system:authenticated"])"), std::string::npos) << sar;
  EXPECT_NE(sar.find(R"("resource":"nodes")"), std::string::npos);
}

TEST_F(DelegatedAuthTest, FrontProxyUserHeadersAreTrustedForAllowedProxy) {
  std::string proxy = front_proxy_->Issue("front-proxy-client");
  auto res = Client(proxy)->Get(kNodes, {{"X-Remote-User", "bob"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(DelegatedAuthTest, ProxyCertificateWithAnotherNameIsNotTrusted) {
  std::string other = front_proxy_->Issue("not-the-proxy");
  auto res = Client(other)->Get(kNodes, {{"X-Remote-User", "bob"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

TEST_F(DelegatedAuthTest, RemoteUserHeadersWithoutProxyCertificateAreIgnored) {
  std::string eve = clients_->Issue("eve");
  auto res = Client(eve)->Get(kNodes, {{"X-Remote-User", "bob"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_NE(LastSar().find(R"("user":"eve")"), std::string::npos);
}

TEST_F(DelegatedAuthTest, ClientCertificateUserIsItsCommonName) {
  std::string bob = clients_->Issue("bob", {"devs"});
  auto res = Client(bob)->Get(kNodes);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(LastSar().find(R"("groups":["devs","system:authenticated"])"), std::string::npos);
}

TEST_F(DelegatedAuthTest, RotatedFrontProxyCaTakesEffectWithoutRestart) {
  testing::TestPki rotated(dir_.path(), "front-proxy-ca-2");
  kas_->SetConfigMap(*ReadFile(rotated.CaCert()), *ReadFile(clients_->CaCert()));
  server_->RunPeriodicTasksForTest();
  auto fresh = Client(rotated.Issue("front-proxy-client"))->Get(kNodes, {{"X-Remote-User", "bob"}});
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->status, 200);
  auto old =
      Client(front_proxy_->Issue("front-proxy-client"))->Get(kNodes, {{"X-Remote-User", "bob"}});
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 401);
}

TEST_F(DelegatedAuthTest, TokenFileIsReadForEveryCall) {
  // Service-account tokens rotate; a kubeconfig's tokenFile is not cached.
  std::string token = dir_.path() + "/token";
  std::ofstream(token) << "first\n";
  std::string text = *ReadFile(kas_->kubeconfig());
  text.replace(text.find("token: kole-sa-token"), 20, "tokenFile: " + token);
  std::string kubeconfig = dir_.path() + "/token-file.kubeconfig";
  std::ofstream(kubeconfig) << text;
  auto target = LoadKubeconfig(kubeconfig);
  ASSERT_TRUE(target.ok()) << target.status();
  KubeClient client(*target);
  ASSERT_TRUE(client.Post("/apis/authentication.k8s.io/v1/tokenreviews", "{}").ok());
  EXPECT_EQ(kas_->last_authorization, "Bearer first");
  std::ofstream(token) << "second\n";
  ASSERT_TRUE(client.Post("/apis/authentication.k8s.io/v1/tokenreviews", "{}").ok());
  EXPECT_EQ(kas_->last_authorization, "Bearer second");
}

TEST_F(DelegatedAuthTest, HealthPathsSkipAuthorization) {
  auto res = Client()->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(kas_->sars.load(), 0);
}

TEST_F(DelegatedAuthTest, NonResourcePathsAreAuthorizedByPath) {
  std::string eve = clients_->Issue("eve");
  auto res = Client(eve)->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_NE(res->body.find(R"(cannot get path \"/metrics\")"), std::string::npos) << res->body;
  EXPECT_NE(LastSar().find(R"("nonResourceAttributes":{"path":"/metrics","verb":"get"})"),
            std::string::npos);
}

}  // namespace
}  // namespace kole::apiserver
