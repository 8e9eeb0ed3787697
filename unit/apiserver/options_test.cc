// kole-apiserver's flags, their validation and the completed configuration.

#include "apiserver-ext/options.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "unit/apiserver/test_support.h"

namespace kole::apiserver {
namespace {

Options Parse(std::vector<std::string> args) {
  Options options;
  CLI::App app;
  AddFlags(app, options);
  std::vector<std::string> argv = {"kole-apiserver"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  app.parse(static_cast<int>(raw.size()), raw.data());
  return options;
}

TEST(Options, UpstreamFlagNamesParse) {
  Options o = Parse({"--secure-port", "9443", "--bind-address", "127.0.0.1",
                     "--requestheader-allowed-names", "front-proxy-client,aggregator",
                     "--authorization-always-allow-paths", "/healthz,/metrics", "--v", "4",
                     "--max-requests-inflight", "10", "--max-mutating-requests-inflight", "5"});
  EXPECT_EQ(o.secure_port, 9443);
  EXPECT_EQ(o.requestheader_allowed_names,
            (std::vector<std::string>{"front-proxy-client", "aggregator"}));
  EXPECT_EQ(o.authorization_always_allow_paths, (std::vector<std::string>{"/healthz", "/metrics"}));
  EXPECT_EQ(o.v, 4);
  EXPECT_EQ(o.max_requests_inflight, 10);
  EXPECT_EQ(o.max_mutating_requests_inflight, 5);
}

TEST(Options, WatchCapMustStayBelowWorkers) {
  Options o;
  o.worker_threads = 10;
  o.max_watches = 10;
  EXPECT_TRUE(absl::IsInvalidArgument(Validate(o)));
  o.max_watches = 9;
  EXPECT_TRUE(Validate(o).ok());
}

TEST(Options, CertificateAndKeyComeTogether) {
  Options o;
  o.tls_cert_file = "/x.crt";
  EXPECT_TRUE(absl::IsInvalidArgument(Validate(o)));
}

TEST(Options, DelegationWithoutAuthorizationKubeconfigIsRefused) {
  testing::TempDir dir;
  Options o;
  o.cert_dir = dir.path();
  auto config = CompleteServerConfig(o);
  EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << config.status();
}

TEST(Options, StandaloneCreatesItsPkiAndKubeconfig) {
  testing::TempDir dir;
  Options o;
  o.standalone = true;
  o.cert_dir = dir.path();
  o.bind_address = "127.0.0.1";
  auto config = CompleteServerConfig(o);
  ASSERT_TRUE(config.ok()) << config.status();
  for (const char* f :
       {"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/" + f)) << f;
  }
  auto kubeconfig = WriteStandaloneKubeconfig(o, 12345);
  ASSERT_TRUE(kubeconfig.ok());
  std::stringstream text;
  text << std::ifstream(*kubeconfig).rdbuf();
  EXPECT_NE(text.str().find("server: https://127.0.0.1:12345"), std::string::npos);
  // The admin certificate is accepted by the CA the server trusts.
  auto ca = CertificateAuthority::FromFile(dir.path() + "/ca.crt");
  auto id = (*ca)->Verify({testing::DerOfPemFile(dir.path() + "/admin.crt")});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->common_name, "kole-admin");
  EXPECT_EQ(id->organizations, (std::vector<std::string>{"system:masters"}));
}

TEST(Options, GeneratedServingCertificateIsKeptAcrossRestarts) {
  testing::TempDir dir;
  auto first = EnsureSelfSignedServingCert(dir.path(), {"localhost"});
  ASSERT_TRUE(first.ok());
  std::string before = *ReadFile(first->cert_file);
  auto second = EnsureSelfSignedServingCert(dir.path(), {"localhost"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*ReadFile(second->cert_file), before);
}

}  // namespace
}  // namespace kole::apiserver
